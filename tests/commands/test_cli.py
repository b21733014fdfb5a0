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


def test_help_lists_every_command_with_its_modules_own_help(capsys):
    import importlib

    from phytoscope.cli import COMMANDS, command_help

    for command in COMMANDS:
        module = importlib.import_module("phytoscope.commands." + command.replace("-", "_"))
        assert command_help(command) == module.HELP  # read from the source, not imported
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert all(command in out for command in COMMANDS)
    assert "build the TensorRT engine" in out


def test_only_the_command_being_run_is_configured():
    parser = build_parser("info")
    assert parser.parse_args(["info"])._module.__name__ == "phytoscope.commands.info"
    with pytest.raises(SystemExit):  # classify was listed but not configured: no PATH option
        build_parser(None).parse_args(["classify", "x.png"])._module  # noqa: B018
