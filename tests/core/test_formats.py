"""The writers for other tools and the report template, without a model: hand-made
predictions over real fixture ROIs (tests/data)."""

from __future__ import annotations

import csv
import io
import shutil
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from phytoscope.core.formats import class_scores, ecotaxa, ecotaxa_read
from phytoscope.core.reports import read_rois
from phytoscope.errors import ConfigError
from phytoscope.modelcard import ClassInfo, ModelCard, NoveltySpec
from phytoscope.sources import iter_inputs
from phytoscope.types import Prediction, Roi

DATA = Path(__file__).resolve().parents[1] / "data"
BIN = "D20220522T003051_IFCB134"

CARD = ModelCard(
    name="open-set", version="2", file="m.onnx", format="onnx", precision="fp32", sha256="ab",
    classes=(ClassInfo("Pseudo-nitzschia", threshold=0.5), ClassInfo("Mesodinium"), ClassInfo("Ceratium (Tripos)")),
    novelty=NoveltySpec(method="energy", threshold=4.0),
)  # fmt: skip


@pytest.fixture
def ifcb_bin(tmp_path) -> Path:
    for suffix in (".adc", ".hdr", ".roi"):
        shutil.copy(DATA / "ifcb" / (BIN + suffix), tmp_path / (BIN + suffix))
    return tmp_path / BIN


def _predictions(ifcb_bin: Path) -> list[Prediction]:
    rois = [r for r in iter_inputs([ifcb_bin]) if isinstance(r, Roi)]
    made = [
        # identified; unsure (0.45 < 0.5); novel (novelty 6 > 4)
        ("Pseudo-nitzschia", [0.8, 0.1, 0.1], 1.0, ""),
        ("unknown", [0.45, 0.30, 0.25], 2.0, "unsure"),
    ]
    return [
        Prediction(r.source, r.index, label, max(s), (), novelty=nov, unknown_reason=why,
                   scores=np.array(s, np.float32))
        for r, (label, s, nov, why) in zip(rois, made, strict=True)
    ]  # fmt: skip


def test_class_scores_keep_novelty_thresholds_and_decisions(tmp_path, ifcb_bin):
    preds = _predictions(ifcb_bin)[::-1]  # any order in, ROI order out
    path = class_scores.write_class_scores(tmp_path / "out" / f"{BIN}_class.h5", BIN, preds, CARD)
    with h5py.File(path, "r") as f:
        assert [int(n) for n in f["roi_numbers"][:]] == sorted(p.roi_index for p in preds)
        assert [c.decode() for c in f["class_name"][:]] == ["Pseudo-nitzschia", "unknown"]
        assert [c.decode() for c in f["class_name_auto"][:]] == ["Pseudo-nitzschia"] * 2
        assert [c.decode() for c in f["unknown_reason"][:]] == ["", "unsure"]
        assert list(f["thresholds"][:]) == [0.5, 0.0, 0.0]
        assert list(f["novelty"][:]) == [1.0, 2.0]
        assert dict(f["novelty"].attrs) == {
            "method": "energy",
            "threshold": 4.0,
            "output": "novelty",
        }
        assert [c.decode("ascii") for c in f["class_labels"][:]][2] == "Ceratium (Tripos)"
    assert not list((tmp_path / "out").glob("*.tmp"))


def test_class_scores_need_full_vectors_and_distinct_bins(tmp_path, ifcb_bin):
    stored = [
        Prediction(p.source, p.roi_index, p.label, p.confidence, ()) for p in _predictions(ifcb_bin)
    ]
    with pytest.raises(ConfigError, match="classify the bin again"):
        class_scores.write_bins(tmp_path, stored, CARD)
    twin = tmp_path / "elsewhere"
    twin.mkdir()
    for f in ifcb_bin.parent.glob(BIN + ".*"):
        shutil.copy(f, twin / f.name)
    preds = _predictions(ifcb_bin) + _predictions(twin / BIN)
    with pytest.raises(ConfigError, match=f"two IFCB bins named {BIN}"):
        class_scores.write_bins(tmp_path, preds, CARD)


def test_ecotaxa_export_leaves_unknown_unclassified_and_unreadable_rois_out(tmp_path, ifcb_bin):
    preds = _predictions(ifcb_bin)
    ghost = Prediction(str(tmp_path / "gone.png"), 0, "Mesodinium", 0.9, ())
    facts = lambda p: ecotaxa.SampleFacts(sample_id=BIN, sampled_at="2022-05-22T02:30:51+02:00")  # noqa: E731
    result = ecotaxa.write_export(
        tmp_path / "x.zip", [*preds, ghost], facts, CARD.label, images=read_rois
    )
    assert (result.objects, result.unclassified) == (2, 1)
    assert result.missing == [(ghost.source, 0)]
    with zipfile.ZipFile(tmp_path / "x.zip") as zf:
        text = zf.read("ecotaxa_x.tsv").decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text), delimiter="\t"))[1:]
    known, unknown = rows
    assert (known["object_annotation_status"], known["object_annotation_category"]) == (
        "predicted",
        "Pseudo-nitzschia",
    )
    # EcoTaxa refuses a status without a category: "unknown" goes in unclassified
    assert (unknown["object_annotation_status"], unknown["object_annotation_category"]) == ("", "")
    assert unknown["object_unknown_reason"] == "unsure" and unknown["object_novelty"] == "2"
    assert (known["object_date"], known["object_time"]) == ("20220522", "003051")  # in UTC
    assert "object_lat" not in known  # no position given: no column


def test_ecotaxa_refuses_impossible_positions(tmp_path, ifcb_bin):
    facts = lambda p: ecotaxa.SampleFacts(sample_id="s", lat=95.0)  # noqa: E731
    with pytest.raises(ConfigError, match="latitude 95"):
        ecotaxa.write_export(tmp_path / "x.zip", _predictions(ifcb_bin), facts, "m", read_rois)
    assert not list(tmp_path.glob("x.zip*"))


def test_folder_names_of_ecotaxa_categories():
    assert (
        ecotaxa_read.folder_name("Chaetoceros<Chaetocerotaceae") == "Chaetoceros_Chaetocerotaceae"
    )
    assert ecotaxa_read.folder_name("detritus/other") == "detritus_other"
    assert ecotaxa_read.folder_name("..") == "unnamed"
