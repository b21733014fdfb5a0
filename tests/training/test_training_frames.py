"""Frame segments as training items: labels from COCO polygons, one split per frame."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from phytoscope.training import dataset as ds
from phytoscope.training import frames
from tests.training.frame_fixtures import FRAME_DIR, frame_with_coco


def _frame_with_coco(tmp_path: Path) -> tuple[Path, Path]:
    """The half-size fixture frame and a COCO file holding its three cells as rectangles."""
    frames_dir, coco_dir = tmp_path / "marzi" / "full_frames" / "Pn", tmp_path / "coco"
    frame_with_coco(frames_dir, coco_dir)
    return frames_dir.parent, coco_dir


def test_frame_segments_are_labelled_by_the_polygons_and_split_with_their_cells(tmp_path):
    frames_dir, coco_dir = _frame_with_coco(tmp_path)
    stem = Path(json.loads((FRAME_DIR / "annotations.json").read_text())["image"]).stem
    crops = [
        ds.Item(
            Path(f"/x/{stem}_a001_1.jpg"),
            "Pseudo-nitzschia_delicatissima",
            "Pseudo-nitzschia",
            "marzi",
            "g1",
            split="val",
        ),
        ds.Item(
            Path("/x/other_frame_a002_1.jpg"),
            "Pseudo-nitzschia_delicatissima",
            "Pseudo-nitzschia",
            "marzi",
            "g2",
            split="test",
        ),
    ]
    items = frames.frame_items(frames_dir, coco_dir, crops)
    assert {i.split for i in items} == {
        "val"
    }  # its own cell's crop is in val; another frame's is not
    assert len({i.group for i in items}) == 1 and {i.source for i in items} == {"marzi_frames"}
    counts = Counter(i.cls for i in items)
    assert counts["detritus/other"] > 10 and counts["Pseudo-nitzschia"] >= 1
    boxes = json.loads((FRAME_DIR / "annotations.json").read_text())["boxes_xywh"]
    for item in items:
        x, y, w, h = (int(v) for v in item.path.name.split(ds.ROI_MARK)[1].split(","))
        crop = ds.read_image(item.path)
        assert crop.shape[:2] == (h, w)
        if item.cls == "detritus/other":  # a negative touches no annotated cell
            assert all(
                x + w <= bx or bx + bw <= x or y + h <= by or by + bh <= y
                for bx, by, bw, bh in boxes
            )
    only_negatives = frames.frame_items(frames_dir, coco_dir, crops, positives=False)
    assert {i.cls for i in only_negatives} == {"detritus/other"}


def test_frame_segment_paths_round_trip_through_the_split_file(tmp_path):
    frames_dir, coco_dir = _frame_with_coco(tmp_path)
    items = frames.frame_items(frames_dir, coco_dir, [])
    assert {i.split for i in items} == {"train"}  # no crop of its cells anywhere
    path = ds.write_split(items, tmp_path / "split.csv", tmp_path)
    back = ds.read_split(path, tmp_path)
    assert [i.path for i in back] == [i.path for i in items]
    assert "#roi=" in path.read_text().splitlines()[1] and str(tmp_path) not in path.read_text()
