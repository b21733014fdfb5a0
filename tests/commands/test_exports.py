"""Files for the lab's other tools, end to end through ``phytoscope classify``: IFCB Dashboard
class scores read back with h5py, an EcoTaxa zip parsed with its typed header, an EcoTaxa
export read back as training folders, and a recorded video classified."""

from __future__ import annotations

import csv
import io
import shutil
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

from phytoscope.cli import main
from phytoscope.errors import ExitCode
from phytoscope.sources.video import split_frame_source
from phytoscope.training.dataset import from_folder
from tests.videos import drifting_frames, set_mp4_creation_time, write_video

DATA = Path(__file__).resolve().parents[1] / "data"
BIN = "D20220522T003051_IFCB134"


@pytest.fixture
def bins(tmp_path) -> Path:
    """The new-format and the old-format test bins, and one plain image, in one folder."""
    root = tmp_path / "in"
    root.mkdir()
    for f in (DATA / "ifcb").iterdir():
        if f.suffix in (".adc", ".hdr", ".roi"):
            shutil.copy(f, root / f.name)
    shutil.copy(DATA / "images" / "smhi_cryptomonadales.png", root / "crypto.png")
    return root


@pytest.fixture
def model_args(tiny_model_dir) -> list[str]:
    return ["--model", str(tiny_model_dir), "--backend", "onnxruntime"]


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _tsv(data: bytes) -> tuple[list[str], list[str], list[dict[str, str]]]:
    assert data.startswith(b"\xef\xbb\xbf"), "EcoTaxa reads a TSV without a BOM as Latin-1"
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig")), delimiter="\t"))
    header, types = rows[0], rows[1]
    return header, types, [dict(zip(header, r, strict=True)) for r in rows[2:]]


def test_class_scores_read_back_with_h5py_match_the_csv(tmp_path, bins, model_args, capsys):
    out = tmp_path / "rows.csv"
    scores_dir = tmp_path / "scores"
    code = main(
        ["classify", str(bins), "--format", "csv", "-o", str(out), "--class-scores", str(scores_dir), *model_args]
    )  # fmt: skip
    assert code == ExitCode.OK
    assert "1 organisms came from no IFCB bin" in capsys.readouterr().out  # the PNG has none
    rows = _csv(out)
    files = sorted(p.name for p in scores_dir.iterdir())
    assert files == [f"{BIN}_class.h5", "IFCB5_2012_028_081515_class.h5"]
    for name in files:
        bin_id = name.removesuffix("_class.h5")
        expected = sorted(
            (r for r in rows if Path(r["source"]).name == bin_id), key=lambda r: int(r["roi"])
        )
        with h5py.File(scores_dir / name, "r") as f:
            # what pyifcb's ClassScoresFile (the Dashboard's reader) does with a v3 file
            labels = [label.decode("ascii") for label in f["class_labels"][:]]
            scores = f["output_scores"][:]
            roi_numbers = f["roi_numbers"][:]
            assert labels == ["Alpha", "Beta", "Gamma"]
            assert scores.shape == (len(expected), 3) and scores.dtype == np.float32
            assert np.allclose(scores.sum(axis=1), 1.0, atol=1e-5)
            assert [int(n) for n in roi_numbers] == [int(r["roi"]) for r in expected]
            meta = f["metadata"].attrs
            assert (meta["version"], meta["bin_id"]) == ("v3", bin_id)
            assert meta["model_id"] == f["classifier_name"][()].decode() == "tiny-test 0 onnx/fp32"
            assert datetime.fromisoformat(meta["timestamp"]).tzinfo is not None
            assert list(f["thresholds"][:]) == [0.0, 0.0, 0.0]
            class_name = [c.decode() for c in f["class_name"][:]]
            top = f["output_classes"][:]
            for row, vector, label, best in zip(expected, scores, class_name, top, strict=True):
                assert label == row["genus"]
                assert labels[int(best)] == row["genus"]  # thresholds 0: the top class stands
                assert round(float(vector.max()), 4) == pytest.approx(float(row["confidence"]))
                ranked = [labels[i] for i in np.argsort(-vector)]
                assert ranked == [t.split(":")[0] for t in row["top3"].split(";")]
            assert "novelty" not in f  # the tiny model has no open-set score


def test_ecotaxa_zip_has_a_typed_header_and_every_image(tmp_path, bins, model_args, capsys):
    out = tmp_path / "rows.csv"
    zip_path = tmp_path / "export" / "gullmar.zip"
    code = main(
        ["classify", str(bins), "--format", "csv", "-o", str(out), "--ecotaxa", str(zip_path),
         "--lat", "58.25", "--lon", "11.43", "--depth", "0:3", "--site", "Släggö",
         "--sample-volume", "5", *model_args]
    )  # fmt: skip
    assert code == ExitCode.OK
    assert f"EcoTaxa: {len(_csv(out))} organisms" in capsys.readouterr().out
    with zipfile.ZipFile(zip_path) as zf:
        names = set(zf.namelist())
        header, types, rows = _tsv(zf.read("ecotaxa_gullmar.tsv"))
        # the second row types every column: [t] text or [f] number, and numbers parse
        assert len(types) == len(header) and set(types) <= {"[t]", "[f]"}
        for column, kind in zip(header, types, strict=True):
            assert column.split("_", 1)[0] in {"img", "object", "sample", "acq", "process"}
            if kind == "[f]":
                assert all(r[column] == "" or float(r[column]) == float(r[column]) for r in rows)
        assert {"object_id", "img_file_name", "sample_id", "acq_id", "process_id"} <= set(header)
        assert len(rows) == len(_csv(out)) and len({r["object_id"] for r in rows}) == len(rows)
        assert {r["img_file_name"] for r in rows} == names - {"ecotaxa_gullmar.tsv"}
        for r in rows:
            image = cv2.imdecode(np.frombuffer(zf.read(r["img_file_name"]), np.uint8), -1)
            assert image.shape[:2] == (int(r["object_height"]), int(r["object_width"]))
            assert r["object_annotation_status"] == "predicted"
            assert r["object_annotation_category"] in {"Alpha", "Beta", "Gamma"}
            assert (r["object_lat"], r["object_lon"]) == ("58.25", "11.43")
            assert (r["object_depth_min"], r["object_depth_max"]) == ("0", "3")
            assert r["sample_site"] == "Släggö" and r["process_model"] == "tiny-test 0 onnx/fp32"
        by_id = {r["object_id"]: r for r in rows}
        ifcb = by_id[f"{BIN}_00002"]  # named as the IFCB Dashboard names ROIs
        assert (ifcb["object_date"], ifcb["object_time"]) == ("20220522", "003051")  # bin time, UTC
        assert ifcb["acq_instrument"] == "IFCB" and ifcb["sample_id"] == BIN
        assert by_id["crypto_0"]["object_date"] == ""  # a plain image has no time


def _ecotaxa_like_export(path: Path) -> None:
    """A zip laid out as EcoTaxa's general export: the TSV at the root (BOM, quoted text, type
    row), images in a folder per sample, categories in EcoTaxa's display names."""
    crop = cv2.imread(str(DATA / "images" / "pn_delicatissima_crop.jpg"))
    ok, jpg = cv2.imencode(".jpg", crop)
    assert ok
    rows = [
        ("o1", "validated", "Pseudo-nitzschia", "s1/o1.jpg"),
        ("o2", "validated", "Chaetoceros<Chaetocerotaceae", "s1/o2.jpg"),
        ("o3", "predicted", "Pseudo-nitzschia", "s1/o3.jpg"),
        ("o4", "dubious", "detritus", "s2/o4.jpg"),
        ("o5", "", "", "s2/o5.jpg"),
        ("o6", "validated", "Pseudo-nitzschia", "s2/missing.jpg"),
    ]
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter="\t", quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
    writer.writerow(
        [
            "img_file_name",
            "object_id",
            "object_annotation_status",
            "object_annotation_category",
            "object_lat",
        ]
    )
    writer.writerow(["[t]", "[t]", "[t]", "[t]", "[f]"])
    for oid, status, category, image in rows:
        writer.writerow([image, oid, status, category, 43.5])
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ecotaxa_export_123.tsv", buf.getvalue().encode("utf-8-sig"))
        for _, _, _, image in rows[:-1]:
            zf.writestr(image, jpg.tobytes())


def test_an_ecotaxa_export_comes_back_as_training_folders(tmp_path, capsys):
    export = tmp_path / "export_123.zip"
    _ecotaxa_like_export(export)
    out = tmp_path / "training"
    assert (
        main(["ecotaxa-import", str(export), "--out", str(out)]) == ExitCode.PARTIAL
    )  # o6 missing
    captured = capsys.readouterr()
    assert "missing image: ecotaxa_export_123.tsv line 8: s2/missing.jpg" in captured.err
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.jpg")) == [
        "Chaetoceros_Chaetocerotaceae/o2.jpg",
        "Pseudo-nitzschia/o1.jpg",
    ]
    assert "not taken: 1 predicted, 1 dubious, 1 unclassified" in captured.out
    items = from_folder(out)  # what `phytoscope train DATASET` reads
    assert sorted((i.path.name, i.cls) for i in items) == [
        ("o1.jpg", "Pseudo-nitzschia"),
        ("o2.jpg", "Chaetoceros_Chaetocerotaceae"),
    ]
    # asked for, the dubious ones come too; a second import keeps what is there
    assert main(["ecotaxa-import", str(export), "--out", str(out), "--status", "validated", "--status", "dubious"]) == ExitCode.PARTIAL  # fmt: skip
    assert (out / "detritus" / "o4.jpg").is_file()
    assert "2 already there (kept)" in capsys.readouterr().out


def test_our_own_export_validated_in_ecotaxa_comes_home(tmp_path, bins, model_args, capsys):
    zip_path = tmp_path / "run.zip"
    assert main(["classify", str(bins / BIN), "--ecotaxa", str(zip_path), *model_args]) == 0
    # a taxonomist validates the first organism and files the second under another genus
    with zipfile.ZipFile(zip_path) as zf:
        header, types, rows = _tsv(zf.read("ecotaxa_run.tsv"))
        images = {n: zf.read(n) for n in zf.namelist() if n.endswith(".png")}
    rows[0]["object_annotation_status"] = "validated"
    rows[1].update(object_annotation_status="validated", object_annotation_category="Dinophysis")
    folder = tmp_path / "from_ecotaxa"
    folder.mkdir()
    with open(folder / "ecotaxa_run.tsv", "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerows([header, types, *[[r[c] for c in header] for r in rows]])
    for name, data in images.items():
        (folder / name).write_bytes(data)
    out = tmp_path / "training"
    assert main(["ecotaxa-import", str(folder / "ecotaxa_run.tsv"), "--out", str(out)]) == 0
    assert {p.parent.name for p in out.rglob("*.png")} == {
        rows[0]["object_annotation_category"],
        "Dinophysis",
    }
    assert (out / "Dinophysis" / f"{rows[1]['object_id']}.png").read_bytes() == images[
        rows[1]["img_file_name"]
    ]


def test_a_recorded_video_is_classified_end_to_end(tmp_path, model_args, capsys):
    clip = write_video(tmp_path / "slide.mp4", drifting_frames(4), fps=2.0, fourcc="mp4v")
    recorded = datetime(2025, 6, 3, 9, 41, 7, tzinfo=timezone.utc)
    set_mp4_creation_time(clip, recorded)
    out, zip_path = tmp_path / "rows.csv", tmp_path / "video.zip"
    code = main(
        ["classify", str(clip), "--every", "2", "--format", "csv", "-o", str(out),
         "--ecotaxa", str(zip_path), *model_args]
    )  # fmt: skip
    assert code == ExitCode.OK
    rows = _csv(out)
    frames = {split_frame_source(r["source"])[1] for r in rows}
    assert frames == {0, 2} and all(r["sample"] == str(clip) for r in rows)
    assert all(r["x"] != "" and r["genus"] in {"Alpha", "Beta", "Gamma"} for r in rows)
    summary = capsys.readouterr().out
    assert f"{clip}: {len(rows)} ROIs" in summary
    with zipfile.ZipFile(zip_path) as zf:
        _, _, objects = _tsv(zf.read("ecotaxa_video.tsv"))
    assert len(objects) == len(rows)
    times = {(o["object_date"], o["object_time"]) for o in objects}
    assert times == {("20250603", "094107"), ("20250603", "094108")}  # frame 2 is 1 s later
    assert {o["acq_instrument"] for o in objects} == {"Other microscope"}


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--ecotaxa", "out.txt", "EcoTaxa imports a .zip"),
        ("--class-scores", "file.txt", "exists and is not a folder"),
        ("--every", "0", "whole number of frames >= 1"),
        ("--fps", "-2", "positive number of frames per second"),
        ("--depth", "10:2", "0 <= MIN <= MAX"),
    ],
)
def test_bad_export_options_fail_before_any_work(
    tmp_path, monkeypatch, capsys, option, value, message
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(SystemExit) as exc:
        main(["classify", str(tmp_path), option, value])
    assert exc.value.code == ExitCode.USAGE
    assert message in capsys.readouterr().err
