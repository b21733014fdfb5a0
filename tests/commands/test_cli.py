from __future__ import annotations

import pytest

from phytoscope.cli import build_parser, main, with_default_command


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], ["gui"]),
        (["--open", "x"], ["gui", "--open", "x"]),
        (["-v", "--open", "x"], ["-v", "gui", "--open", "x"]),
        (["-vv"], ["-vv", "gui"]),
        (["classify", "x"], ["classify", "x"]),
        (["-v", "info"], ["-v", "info"]),
        (["--help"], ["--help"]),
    ],
)
def test_no_sub_command_means_the_desktop_application(argv, expected):
    assert with_default_command(argv) == expected
    if "gui" in expected:
        assert build_parser().parse_args(expected).command == "gui"


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert "phytoscope" in capsys.readouterr().out
