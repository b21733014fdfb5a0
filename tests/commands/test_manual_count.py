"""``phytoscope report SAMPLE --manual-count TAXON N --volume-ml ML`` (#17): the stored
sample is re-opened, given the count, saved as its next revision and its alerts assess it,
marked "manual"; in-process with the tiny ONNX model, which sees no rule-set taxon."""

from __future__ import annotations

import shutil

import pytest

from phytoscope.cli import main
from phytoscope.errors import ExitCode
from phytoscope.storage import Store
from tests.conftest import DATA


@pytest.fixture
def stored(tmp_path, tiny_model_dir, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("smhi_cryptomonadales.png", "pn_delicatissima_crop.jpg"):
        shutil.copyfile(DATA / "images" / name, folder / name)
    db = tmp_path / "r.sqlite"
    args = ["classify", str(folder), "--model", str(tiny_model_dir), "--backend", "onnxruntime"]
    args += ["--db", str(db), "--site", "Loch", "--sampled-at", "2026-06-01T10:00Z"]
    assert main([*args, "--sample-volume", "5", "--rules", "scotland_habreports"]) == 0
    out = capsys.readouterr().out
    assert "count these by microscope, then: phytoscope report 1 --manual-count" in out
    return db, ["--db", str(db), "--model", str(tiny_model_dir)]


def test_a_manual_count_makes_the_next_revision_and_a_manual_alert(stored, tmp_path, capsys):
    db, opts = stored
    code = main(["report", "1", *opts, "--manual-count", "Alexandrium", "12", "--volume-ml", "50",
                 "--by", "A. Tech", "--note", "Utermohl 50 mL"])  # fmt: skip
    assert code == ExitCode.OK
    out = capsys.readouterr().out
    assert "sample 1 (revision 2)" in out
    assert "Alexandrium (manual)         240 cells/L" in out
    assert "RED Alexandrium: 240 cells/L" in out and "manual count: 12 in 50 mL (A. Tech)" in out
    with Store(db) as store:
        (m,) = store.manual_counts(1)
        assert m["note"] == "Utermohl 50 mL" and store.sample(1).revision == 2
    assert main(["report", "1", *opts[:2], "--out", str(tmp_path / "rep")]) == 0
    assert "Alexandrium (manual)" in (tmp_path / "rep" / "sample-1.csv").read_text()
    assert main(["report", "1", *opts, "--remove-manual", "Alexandrium"]) == ExitCode.OK
    assert "Alexandrium (manual)" not in capsys.readouterr().out
    with Store(db) as store:
        assert store.manual_counts(1) == [] and not store.open_alerts()


def test_a_manual_count_needs_its_volume_and_a_known_model(stored, tmp_path, capsys):
    db, opts = stored
    code = main(["report", "1", *opts, "--manual-count", "Alexandrium", "12"])
    assert code != 0 and "--volume-ml" in capsys.readouterr().err
    empty = tmp_path / "no-models"
    empty.mkdir()
    code = main(["report", "1", "--db", str(db), "--model", str(empty),
                 "--manual-count", "Alexandrium", "1", "--volume-ml", "1"])  # fmt: skip
    assert code != 0 and "pass --model" in capsys.readouterr().err
