"""``phytoscope classify`` with samples, in-process on real fixture bins and images: the
rules of the core session as the command line shows them, checks before the work starts
(#19.9), a failing store and a resumed run (#19.8), partial bins in the store, CSV and
HTML report (#19.2)."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from phytoscope.cli import main
from phytoscope.core.session import SampleSession
from phytoscope.errors import ExitCode, StorageError
from phytoscope.modelcard import ModelCard, card_path_for
from phytoscope.storage import Store
from tests.conftest import DATA
from tests.ifcb_bins import copy_bin, make_bin, ml_of


@pytest.fixture
def model(tiny_model_dir) -> list[str]:
    return ["--model", str(tiny_model_dir), "--backend", "onnxruntime"]


@pytest.fixture
def images(tmp_path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("smhi_cryptomonadales.png", "pn_delicatissima_crop.jpg", "pwssc_blob.png"):
        shutil.copyfile(DATA / "images" / name, folder / name)
    return folder


# -- #19.9: checked before the work --------------------------------------------------------


def test_an_unwritable_output_is_refused_before_any_work(tmp_path, images, model, capsys):
    db = tmp_path / "r.sqlite"
    for bad in (tmp_path / "no" / "such" / "dir" / "out.csv", tmp_path):
        code = main(["classify", str(images), "-o", str(bad), "--db", str(db), *model])
        assert code == ExitCode.ERROR
        err = capsys.readouterr().err
        assert "--output" in err and "Traceback" not in err
    assert not db.exists()  # nothing was started, let alone classified


def test_an_unusable_database_is_refused_before_any_work(tmp_path, images, model, capsys):
    (tmp_path / "db").mkdir()
    out = tmp_path / "out.csv"
    code = main(["classify", str(images), "--db", str(tmp_path / "db"), "-o", str(out), *model])
    assert code == ExitCode.ERROR
    assert "results database" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob(".out.csv*"))


def test_a_database_failure_mid_run_says_which_run_and_how_many_rows(
    tmp_path, images, model, capsys, monkeypatch
):
    calls = {"n": 0}
    real = Store.add_predictions

    def fill_the_disk(self, run_id, predictions):
        calls["n"] += 1
        if calls["n"] > 1:
            raise StorageError(f"results database {self.path}: database or disk is full")
        real(self, run_id, predictions)

    monkeypatch.setattr(Store, "add_predictions", fill_the_disk)
    db, out = tmp_path / "r.sqlite", tmp_path / "out.csv"
    code = main(["classify", str(images), "--db", str(db), "--batch-size", "1", "-o", str(out),
                 "--format", "csv", *model])  # fmt: skip
    assert code == ExitCode.ERROR
    err = capsys.readouterr().err
    assert "disk is full" in err and f"run 1: 1 rows stored in {db}" in err
    assert "Traceback" not in err
    monkeypatch.undo()
    with Store(db) as store:
        assert store.prediction_count(1) == 1 and store.runs()[0]["finished_at"] is None
    with out.open() as fh:
        assert len(list(csv.DictReader(fh))) >= 1  # what was classified is written


def test_ctrl_c_in_process_keeps_output_and_says_how_to_resume(
    tmp_path, images, model, capsys, monkeypatch
):
    real = SampleSession.add
    calls = {"n": 0}

    def interrupted(self, batch):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        real(self, batch)

    monkeypatch.setattr(SampleSession, "add", interrupted)
    db = tmp_path / "r.sqlite"
    args = ["classify", str(images), "--db", str(db), "--batch-size", "1", *model]
    assert main(args) == ExitCode.CANCELLED
    err = capsys.readouterr().err
    assert "interrupted" in err and f"run 1: 2 rows stored in {db}" in err
    # the same inputs again: refused with the way out, then resumed without duplicates
    monkeypatch.undo()
    assert main(args) == ExitCode.ERROR
    assert "--resume" in capsys.readouterr().err
    assert main([*args, "--resume"]) == ExitCode.OK
    with Store(db) as store:
        keys = [(p.source, p.roi_index) for p in store.predictions(1)]
        assert len(keys) == len(set(keys)) == 3 and len(store.runs()) == 1
    assert main([*args, "--new-run"]) == ExitCode.OK  # a deliberate second run
    with Store(db) as store:
        assert len(store.runs()) == 2


# -- samples ---------------------------------------------------------------------------------


def test_a_truncated_bin_is_stored_partial_and_the_flag_reaches_csv_and_html(
    tmp_path, model, capsys
):
    stem = make_bin(tmp_path / "bins", "D20220519T124533_IFCB134", rois=17, keep_rois=8)
    db = tmp_path / "r.sqlite"
    code = main(["classify", str(stem), "--db", str(db), "--site", "Skagerrak", *model])
    assert code == ExitCode.PARTIAL  # the unread rest of the bin is reported as skipped
    out = capsys.readouterr().out
    assert "PARTIAL: D20220519T124533_IFCB134: 8 of 17 ROIs classified" in out
    with Store(db) as store:
        (sample,) = store.samples()
        assert sample.flags == ("partial",)
        assert sample.volume.ml_analyzed == pytest.approx(ml_of() * 8 / 17)
    assert main(["report", str(sample.id), "--db", str(db), "--out", str(tmp_path / "r")]) == 0
    with (tmp_path / "r" / f"sample-{sample.id}.csv").open() as fh:
        (row,) = csv.DictReader(fh)
    assert row["flags"] == "partial"
    page = (tmp_path / "r" / f"sample-{sample.id}.html").read_text()
    assert "partial" in page and "8 of 17 ROIs classified" in page


def test_bins_and_images_become_separate_samples_and_images_need_a_time(
    tmp_path, images, model, capsys
):
    stem = copy_bin(tmp_path / "bins")
    db = tmp_path / "r.sqlite"
    base = ["classify", str(stem), str(images), "--db", str(db), "--sample-volume", "10", *model]
    assert main(base) == ExitCode.OK  # the bin's sample is saved; the images' is not
    out = capsys.readouterr().out
    assert "NOT SAVED: no sampling time" in out and "mix IFCB bins and other images" in out
    with Store(db) as store:
        assert [s.kind for s in store.samples()] == ["ifcb"]
    assert main([*base, "--new-run", "--sampled-at", "2024-06-01T10:00+02:00"]) == ExitCode.OK
    with Store(db) as store:
        ifcb, files = store.samples()[1:]
    assert (ifcb.kind, ifcb.sampled_at, ifcb.time_source) == (
        "ifcb", "2022-05-22T00:30:51+00:00", "bins",
    )  # fmt: skip
    assert (files.kind, files.volume.ml_analyzed, files.sampled_at) == (
        "files", 10.0, "2024-06-01T08:00:00+00:00",
    )  # fmt: skip


def test_a_utermohl_count_is_a_microscope_sample(tmp_path, images, model):
    db = tmp_path / "r.sqlite"
    code = main(["classify", str(images), "--db", str(db), "--settled-ml", "10",
                 "--chamber-area", "530.9", "--fields", "20", "--field-area", "0.5",
                 "--sampled-at", "2024-06-01T10:00Z", *model])  # fmt: skip
    assert code == ExitCode.OK
    with Store(db) as store:
        (sample,) = store.samples()
    assert sample.kind == "microscope"
    assert sample.volume.ml_analyzed == pytest.approx(10 * 10 / 530.9)


def test_bins_of_different_instruments_are_not_pooled_unless_asked(tmp_path, model, capsys):
    bins = tmp_path / "bins"
    copy_bin(bins)
    for suffix in (".adc", ".hdr", ".roi"):
        shutil.copyfile(DATA / "ifcb" / f"IFCB5_2012_028_081515{suffix}",
                        bins / f"IFCB5_2012_028_081515{suffix}")  # fmt: skip
    db = tmp_path / "r.sqlite"
    assert main(["classify", str(bins), "--db", str(db), "--sample", *model]) == ExitCode.OK
    out = capsys.readouterr().out
    assert "NOT pooled" in out and "outside the usual" in out  # the 0.0034 mL old bin
    with Store(db) as store:
        assert len(store.samples()) == 2
    assert main(["classify", str(bins), "--db", str(db), "--pool", "--new-run", *model]) == 0
    with Store(db) as store:
        assert len(store.samples()[-1].volume.details) == 2


def test_unknown_organisms_are_shown_as_not_identified(tmp_path, tiny_model_dir, images, capsys):
    strict = tmp_path / "strict"
    strict.mkdir()
    shutil.copyfile(tiny_model_dir / "tiny.onnx", strict / "tiny.onnx")
    card = ModelCard.load(card_path_for(tiny_model_dir / "tiny.onnx"))
    classes = tuple(c.__class__(**{**c.__dict__, "threshold": 0.999}) for c in card.classes)
    ModelCard(**{**card.__dict__, "classes": classes, "path": None}).save(
        card_path_for(strict / "tiny.onnx")
    )
    db = tmp_path / "r.sqlite"
    code = main(["classify", str(images), "--model", str(strict), "--backend", "onnxruntime",
                 "--db", str(db), "--sample-volume", "1", "--sampled-at", "2024-06-01T10:00Z"])  # fmt: skip
    assert code == ExitCode.OK
    out = capsys.readouterr().out
    assert "3 organisms not identified: check by microscope" in out
    with Store(db) as store:
        assert store.samples()[0].unidentified == 3


def test_an_engine_failure_mid_run_says_which_run_and_how_many_rows(
    tmp_path, images, model, capsys, monkeypatch
):
    from phytoscope.core.classifier import Classifier
    from phytoscope.errors import BackendError

    real = Classifier.predict_tensor
    calls = {"n": 0}

    def failing(self, tensor, rois):
        calls["n"] += 1
        if calls["n"] > 1:
            raise BackendError("the engine failed (out of device memory)")
        return real(self, tensor, rois)

    monkeypatch.setattr(Classifier, "predict_tensor", failing)
    db = tmp_path / "r.sqlite"
    code = main(["classify", str(images), "--db", str(db), "--batch-size", "1", *model])
    assert code == ExitCode.ERROR
    err = capsys.readouterr().err
    assert "out of device memory" in err and f"run 1: 1 rows stored in {db}" in err
    assert "Traceback" not in err
