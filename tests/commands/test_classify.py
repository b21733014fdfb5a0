"""``phytoscope classify`` end to end, in-process, on real fixture images and IFCB bins."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest

from phytoscope.cli import main
from phytoscope.errors import ExitCode
from phytoscope.storage import Store

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture
def sample(tmp_path) -> Path:
    """Three good images, one corrupt one, and an IFCB bin in a subfolder."""
    root = tmp_path / "sample"
    (root / "bin").mkdir(parents=True)
    for name in ("smhi_cryptomonadales.png", "pn_delicatissima_crop.jpg", "pwssc_blob.png"):
        shutil.copyfile(DATA / "images" / name, root / name)
    for suffix in (".adc", ".hdr", ".roi"):
        name = "D20220522T003051_IFCB134" + suffix
        shutil.copyfile(DATA / "ifcb" / name, root / "bin" / name)
    return root


@pytest.fixture
def model_args(tiny_model_dir) -> list[str]:
    return ["--model", str(tiny_model_dir), "--backend", "onnxruntime"]


def test_no_model_installed_exits_4_with_a_clear_message(tmp_path, monkeypatch, capsys, sample):
    monkeypatch.setenv("PHYTOSCOPE_MODELS", str(tmp_path / "empty_models"))
    assert main(["classify", str(sample)]) == ExitCode.NO_MODEL
    err = capsys.readouterr().err
    assert "no model installed" in err and "Traceback" not in err


def test_table_output_and_summary(capsys, sample, model_args):
    code = main(
        ["classify", str(sample / "smhi_cryptomonadales.png"), str(sample / "bin"), *model_args]
    )
    assert code == ExitCode.OK
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["source", "roi", "x"]
    assert "smhi_cryptomonadales.png" in out
    assert "summary (onnxruntime, tiny-test 0 onnx/fp32)" in out
    # the bin is its own sample, with its volume from the header
    assert "D20220522T003051_IFCB134: 2 ROIs, 2.981 mL analysed" in out


def test_corrupt_file_is_skipped_and_exit_code_says_so(capsys, sample, model_args):
    shutil.copyfile(DATA / "images" / "corrupt.png", sample / "zz_corrupt.png")
    code = main(["classify", str(sample), "--format", "csv", *model_args])
    assert code == ExitCode.PARTIAL
    captured = capsys.readouterr()
    rows = list(csv.DictReader(io.StringIO(captured.out)))
    assert len(rows) == 3 + 2  # three images, two IFCB ROIs; the corrupt file is not a row
    assert set(rows[0]) >= {
        "source",
        "roi",
        "x",
        "y",
        "w",
        "h",
        "genus",
        "confidence",
        "top3",
        "flags",
    }
    assert all(len(r["top3"].split(";")) == 3 for r in rows)
    assert "skipped: " in captured.err and "zz_corrupt.png" in captured.err
    assert "summary" in captured.err  # CSV on stdout stays machine-readable


def test_json_to_file_with_database(tmp_path, capsys, sample, model_args):
    out_file, db = tmp_path / "out.json", tmp_path / "results.sqlite"
    shutil.copyfile(DATA / "images" / "corrupt.png", sample / "zz_corrupt.png")
    code = main(
        [
            "classify",
            str(sample),
            "--format",
            "json",
            "--output",
            str(out_file),
            "--db",
            str(db),
            "--batch-size",
            "2",
            "--top-k",
            "2",
            *model_args,
        ]
    )
    assert code == ExitCode.PARTIAL
    doc = json.loads(out_file.read_text())
    assert len(doc["predictions"]) == 5 and len(doc["skipped"]) == 1
    assert all(len(p["top_k"]) == 2 for p in doc["predictions"])
    assert doc["samples"]["D20220522T003051_IFCB134"]["ml_analyzed"] == pytest.approx(
        2.98127, rel=1e-4
    )
    assert sum(s["rois"] for s in doc["samples"].values()) == 5
    with Store(db) as store:
        (run,) = store.runs()
        assert run["backend"] == "onnxruntime" and run["finished_at"] is not None
        stored = store.predictions(run["id"])
        assert len(stored) == 5 and {p.label for p in stored} <= {
            "Alpha",
            "Beta",
            "Gamma",
            "unknown",
        }
        assert store.db.execute("SELECT COUNT(*) FROM skipped").fetchone()[0] == 1
    assert "stored as run" in capsys.readouterr().err


def test_db_without_path_uses_the_default_database(capsys, sample, model_args):
    from phytoscope.config import default_database

    assert main(["classify", str(sample / "pwssc_blob.png"), "--db", *model_args]) == ExitCode.OK
    with Store(default_database()) as store:
        assert len(store.runs()) == 1


def test_whole_frame_is_segmented(tmp_path, capsys, model_args):
    import cv2

    big = cv2.resize(
        cv2.imread(str(DATA / "frame" / "Pn_delicatissima_20230523_0035_14_half.jpg")),
        None,
        fx=2,
        fy=2,
    )
    cv2.imwrite(str(tmp_path / "frame.jpg"), big)
    assert (
        main(["classify", str(tmp_path / "frame.jpg"), "--format", "json", *model_args])
        == ExitCode.OK
    )
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["predictions"]) > 3 and all(p["w"] != "" for p in doc["predictions"])
    assert (
        main(
            [
                "classify",
                str(tmp_path / "frame.jpg"),
                "--segment",
                "never",
                "--format",
                "json",
                *model_args,
            ]
        )
        == 0
    )
    assert len(json.loads(capsys.readouterr().out)["predictions"]) == 1


def test_empty_folder_and_bad_options(tmp_path, capsys, model_args):
    (tmp_path / "empty").mkdir()
    assert main(["classify", str(tmp_path / "empty"), *model_args]) == ExitCode.ERROR
    assert "no images" in capsys.readouterr().err
    assert main(["classify", str(tmp_path), "--batch-size", "0", *model_args]) == ExitCode.ERROR
    with pytest.raises(SystemExit):
        main(["classify", str(tmp_path), "--format", "xml"])


def test_progress_bar_text():
    from phytoscope.commands.progressbar import terminal_progress

    stream = io.StringIO()
    with terminal_progress(True, units={"classify": "ROIs"}, stream=stream) as progress:
        progress.update("classify", 5, 10)
        progress.update("classify", 6, 10)  # within 0.1 s of the last report: not drawn
        progress.update("classify", 10, 10)  # the last one always is
    text = stream.getvalue()
    assert "classify" in text and "5/10" in text and "10/10" in text and "ROIs" in text
    assert "6/10" not in text
    quiet = io.StringIO()
    with terminal_progress(False, stream=quiet) as progress:
        progress.update("classify", 5, None)
    assert quiet.getvalue() == ""
