"""Frame segmentation and the focus gate on a real annotated microscope field.

The fixture is a Marzidovšek et al. phase-contrast frame downscaled by 2 (see
tests/data/ATTRIBUTION.md); the parameters are the defaults scaled to match, so this tests
the same algorithm the README's recall figures were measured with.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from phytoscope.imaging.segment import (
    FRAME_MIN_SIDE,
    SegmentParams,
    edge_flag,
    looks_like_frame,
    segment_frame,
)
from phytoscope.sources import rois_from_image
from phytoscope.types import Roi, Skipped

FRAME_DIR = Path(__file__).resolve().parents[1] / "data" / "frame"
HALF = SegmentParams(scale=1.0, min_area=1500 // 4, padding=4, min_line_px=120)


@pytest.fixture(scope="module")
def frame():
    notes = json.loads((FRAME_DIR / "annotations.json").read_text())
    image = cv2.cvtColor(cv2.imread(str(FRAME_DIR / notes["image"])), cv2.COLOR_BGR2RGB)
    return image, notes["boxes_xywh"]


def iou(a, b) -> float:
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def test_every_annotated_cell_is_found(frame):
    image, truth = frame
    rois, quality = segment_frame(image, HALF)
    boxes = [box for box, _ in rois]
    assert len(truth) == 3
    for cell in truth:  # three Pseudo-nitzschia cells annotated by the dataset's authors
        assert max(iou(cell, box) for box in boxes) >= 0.3, cell
    assert not quality.blurry and quality.flags == ()
    assert quality.objects == len(rois)


def test_crops_are_views_of_the_frame_at_their_boxes(frame):
    image, _ = frame
    rois, _ = segment_frame(image, HALF)
    for (x, y, w, h), crop in rois:
        assert crop.shape == (h, w, 3) and crop.dtype == image.dtype
        assert np.array_equal(crop, image[y : y + h, x : x + w])
        assert (
            w > 0
            and h > 0
            and x >= 0
            and y >= 0
            and x + w <= image.shape[1]
            and y + h <= image.shape[0]
        )
    assert [b[1] for b, _ in rois] == sorted(b[1] for b, _ in rois)  # reading order


def test_out_of_focus_frame_is_flagged_blurry(frame):
    image, _ = frame
    _, sharp = segment_frame(image, HALF)
    _, blurred = segment_frame(cv2.GaussianBlur(image, (0, 0), 2.0), HALF)
    assert blurred.focus < sharp.focus / 4
    assert blurred.blurry and "blurry" in blurred.flags


def test_empty_field_gives_no_roi():
    rng = np.random.default_rng(0)
    flat = np.clip(rng.normal(120, 2, (1200, 1600)), 0, 255).astype(np.uint8)
    rois, quality = segment_frame(flat)
    assert rois == [] and "empty" in quality.flags


def test_sixteen_bit_frame_is_segmented(frame):
    image, _ = frame
    grey16 = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257
    rois, quality = segment_frame(grey16, HALF)
    assert rois and all(crop.dtype == np.uint16 for _, crop in rois) and not quality.blurry


def test_auto_mode_segments_only_whole_frames(frame):
    image, _ = frame
    assert not looks_like_frame(image[:500, :500])
    big = cv2.resize(image, None, fx=2, fy=2)  # back to the camera's 2584x1936
    assert looks_like_frame(big) and min(big.shape[:2]) >= FRAME_MIN_SIDE
    whole = list(rois_from_image(image[:500, :500], "crop.png", "auto"))
    assert len(whole) == 1 and whole[0].box is None
    pieces = list(rois_from_image(big, "frame.jpg", "auto"))
    assert len(pieces) > 3 and all(isinstance(p, Roi) and p.box is not None for p in pieces)
    assert [p.index for p in pieces] == list(range(len(pieces)))
    assert all("focus" in p.meta for p in pieces)
    assert any("edge" in p.flags for p in pieces) == any(
        edge_flag(p.box, big.shape) for p in pieces
    )


def test_blurry_empty_frame_is_reported_skipped():
    flat = np.full((1200, 1600), 128, np.uint8)
    (item,) = list(rois_from_image(flat, "blank.png", "always"))
    assert isinstance(item, Skipped) and "focus" in item.reason


def test_edge_flag():
    assert edge_flag((0, 10, 5, 5), (100, 100))
    assert edge_flag((90, 10, 10, 5), (100, 100))
    assert not edge_flag((10, 10, 5, 5), (100, 100))
