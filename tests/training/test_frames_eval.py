"""Whole-frame evaluation: counts against annotated cells, and the ``evaluate --frames`` command.

A synthetic frame with a stand-in classifier gives counts that can be worked out by hand;
the command runs on the real half-size fixture frame with a tiny random-weight model, so
only what holds for any labels is checked there.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np

from phytoscope import cli
from phytoscope.core.classifier import NOVEL
from phytoscope.imaging.segment import SegmentParams
from phytoscope.modelcard import UNKNOWN, ModelCard, card_path_for
from phytoscope.training import dataset as ds
from phytoscope.training import frames_eval as fe
from tests.conftest import make_tiny_model
from tests.training.frame_fixtures import frame_with_coco


class _ByBox:
    """Stand-in classifier: wide boxes are Pseudo-nitzschia, boxes left of x=1000 colonial
    cyanobacteria (HAB), the rest unknown."""

    card = SimpleNamespace(
        classes=[ds.class_info("Pseudo-nitzschia"), ds.class_info("colonial cyanobacteria")]
    )

    def predict(self, rois):
        def label(box):
            if box[2] > 600:
                return "Pseudo-nitzschia"
            return "colonial cyanobacteria" if box[0] < 1000 else UNKNOWN

        return [
            SimpleNamespace(
                label=label(r.box), unknown_reason=NOVEL if label(r.box) == UNKNOWN else ""
            )
            for r in rois
        ]


def _chain_frame() -> tuple[np.ndarray, list]:
    """A chain broken in three pieces (annotated as one cell) and three round cells."""
    rng = np.random.default_rng(0)
    img = np.full((1200, 1600), 128, np.float32) + rng.normal(0, 2, (1200, 1600))
    cv2.line(img, (200, 200), (900, 600), 60, 5, cv2.LINE_AA)
    for cx, cy in ((431, 332), (662, 464)):  # two 30 px gaps along the chain
        cv2.line(img, (cx - 13, cy - 7), (cx + 13, cy + 7), 128, 9)
    for centre in ((450, 500), (1200, 900), (1290, 900)):
        cv2.circle(img, centre, 30, 70, -1)
    polygon = [200, 196, 900, 596, 900, 604, 200, 204]
    annotation = ("Pseudo-nitzschia-delicatissima", (200.0, 196.0, 700.0, 408.0), [polygon])
    return np.clip(img, 0, 255).astype(np.uint8), [annotation]


def test_counts_of_a_frame_before_and_after_merging():
    image, annotations = _chain_frame()
    classifier = _ByBox()
    before = fe.evaluate_frame(image, annotations, classifier, SegmentParams(merge=False))
    after = fe.evaluate_frame(image, annotations, classifier, SegmentParams())
    # before: three pieces, each holding about a third of the chain, none wide enough
    assert (before.segments, before.cell_segments, before.cells_found) == (6, 3, 1)
    assert before.cells_called == 0
    # after: the chain is one ROI, called Pseudo-nitzschia and matching the cell's box
    assert (after.segments, after.cell_segments, after.cells_found) == (4, 1, 1)
    assert (after.cells_called, after.cells_whole) == (1, 1)
    for r in (before, after):  # the round cells touch no annotated pixel: non-cell
        assert (r.non_cell, r.non_cell_hab, r.non_cell_unknown, r.non_cell_novel) == (3, 1, 2, 2)
        assert r.non_cell_labels == {UNKNOWN: 2, "colonial cyanobacteria": 1}
    assert before.cell_labels == {"colonial cyanobacteria": 3}
    assert after.cell_labels == {"Pseudo-nitzschia": 1}
    d = after.to_dict()
    assert d["cell_recall"] == 1.0 and d["false_hab_share"] == round(1 / 3, 4)
    total = fe.FrameResult(frame="total")
    total.add(before)
    total.add(after)
    assert total.segments == 10 and total.non_cell_labels[UNKNOWN] == 4


def test_held_out_frames_follow_the_split_of_their_cells_crops(tmp_path):
    for name in ("a.jpg", "b.jpg", "c.png"):
        (tmp_path / name).write_bytes(b"")
    crops = [
        ds.Item(Path("/x/a_a001_1.jpg"), "l", "Pseudo-nitzschia", "s", "g1", split="test"),
        ds.Item(Path("/x/b_a002_1.jpg"), "l", "Pseudo-nitzschia", "s", "g2", split="val"),
    ]
    assert [f.name for f in fe.held_out_frames(tmp_path, crops)] == ["a.jpg"]
    assert [f.name for f in fe.held_out_frames(tmp_path, crops, "train")] == ["c.png"]
    assert len(fe.held_out_frames(tmp_path, crops, "all")) == 3


def test_evaluate_frames_command_writes_json_and_markdown(tmp_path, capsys):
    frames_dir, coco_dir = tmp_path / "frames", tmp_path / "coco"
    notes = frame_with_coco(frames_dir, coco_dir)
    stem = Path(notes["image"]).stem
    crop = ds.Item(tmp_path / f"{stem}_a001_1.jpg", "l", "Pseudo-nitzschia", "s", "g", "test")
    split = ds.write_split([crop], tmp_path / "split.csv", tmp_path)
    model = make_tiny_model(
        tmp_path / "model", ("Pseudo-nitzschia", "colonial cyanobacteria", "detritus/other")
    )
    card_path = card_path_for(model / "tiny.onnx")
    card = ModelCard.load(card_path)  # the taxonomy's HAB flags, as the shipped card has them
    replace(card, classes=tuple(ds.class_info(c.name) for c in card.classes)).save(card_path)
    out = tmp_path / "out"
    code = cli.main(
        [
            "evaluate",
            str(model),
            str(split),
            "--frames",
            str(frames_dir),
            "--frames-coco",
            str(coco_dir),
            "--out",
            str(out),
        ]
    )
    assert code == 0
    report = json.loads((out / "frames.json").read_text())
    assert report["frames"] == [notes["image"]] and report["cells"] == 3
    assert report["hab_classes"] == ["Pseudo-nitzschia", "colonial cyanobacteria"]
    assert list(report["variants"]) == list(fe.VARIANTS)
    for result in report["variants"].values():
        (row,) = result["frames"]
        total = result["total"]
        assert total["segments"] == row["segments"] > 10
        assert row["segments"] == row["cell_segments"] + row["partial_segments"] + row["non_cell"]
        assert row["non_cell"] == sum(row["non_cell_labels"].values())
        assert row["cell_segments"] == sum(row["cell_labels"].values())
        assert row["non_cell_hab"] + row["non_cell_unknown"] <= row["non_cell"]
        assert row["cells_whole"] <= row["cells_called"] <= row["cells_found"] <= 3
    text = (out / "frames.md").read_text()
    assert "Reproduce: `phytoscope evaluate" in text and "**total**" in text
    assert "non-cell segments called HAB-relevant" in capsys.readouterr().out
