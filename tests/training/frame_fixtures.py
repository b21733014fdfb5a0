"""The annotated fixture frame with its cells as a COCO file (shared by frame tests)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

FRAME_DIR = Path(__file__).resolve().parents[1] / "data" / "frame"


def frame_with_coco(frames_dir: Path, coco_dir: Path) -> dict[str, Any]:
    """Copy the half-size fixture frame into ``frames_dir`` and write its three cells as
    rectangles to ``coco_dir/instances.json``; returns the fixture's notes."""
    notes = json.loads((FRAME_DIR / "annotations.json").read_text())
    frames_dir.mkdir(parents=True, exist_ok=True)
    coco_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(FRAME_DIR / notes["image"], frames_dir / notes["image"])
    coco = {
        "images": [{"id": 1, "file_name": notes["image"]}],
        "categories": [{"id": 1, "name": "Pseudo-nitzschia-delicatissima"}],
        "annotations": [
            {
                "id": k + 1,
                "image_id": 1,
                "category_id": 1,
                "bbox": [x, y, w, h],
                "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]],
            }
            for k, (x, y, w, h) in enumerate(notes["boxes_xywh"])
        ],
    }
    (coco_dir / "instances.json").write_text(json.dumps(coco))
    return notes
