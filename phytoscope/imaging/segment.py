"""Cut a whole microscope frame (a camera field with several organisms and debris) into ROIs.

Why these steps (tuned on the Marzidovšek et al. phase-contrast frames, 2584x1936, see
README "Segmentation"):

* work at half resolution: cells of interest are tens of pixels wide even there, and it is
  four times cheaper;
* threshold the *gradient magnitude* rather than the grey level: phase contrast draws an
  organism as bright and dark halos on a mid-grey background, so neither "darker" nor
  "lighter than the background" finds it, but its edges always stand out. The threshold is
  a multiple of the frame's median gradient, so it follows illumination and camera gain
  (this is the background correction: a smooth illumination gradient has almost no
  gradient magnitude);
* close the mask a little and keep connected components above a minimum area;
* thin needle-shaped chains (Pseudo-nitzschia, the ASP-toxin genus) are faint and break
  into pieces under any blob threshold, so long straight edges are also found with a
  probabilistic Hough transform, collinear pieces are joined, and each joined line becomes
  one ROI (unless a blob ROI already covers it);
* the pieces one object falls into (a chain's Hough line and the blobs along it, a fibre's
  edges, a clump's parts) are joined into one ROI, and a box nested in a piece it touches
  is suppressed into it (:mod:`phytoscope.imaging.merge`, on the pieces' pixels): one
  organism, one ROI, one count. ``SegmentParams(merge=False)`` gives the earlier ROIs.

The quality gate measures focus as the variance of the Laplacian over the pixels near
detected objects (an empty background would otherwise dilute it) and flags the frame
``"blurry"`` below :data:`BLUR_THRESHOLD`; ROIs touching the frame border are flagged
``"edge"`` (a cut-off organism may be misclassified and is usually counted in the next
field).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from phytoscope.imaging.merge import MergeParams, Piece, group_extent, merge_pieces
from phytoscope.imaging.preprocess import to_grey
from phytoscope.types import Box

FRAME_MIN_SIDE = 1000
"""``segment="auto"`` treats an image as a whole frame when both sides are at least this
(IFCB, FlowCam and SPC ROIs, and crops, are smaller)."""

BLUR_THRESHOLD = 100.0
"""Variance of the Laplacian (half-scale grey, near objects) below which a frame is blurry.
The 14 sharp Marzidovšek frames measure 304-536 (median 445); the same frames blurred with
a Gaussian of sigma 4 full-resolution pixels (a focus miss) measure 31-45."""


@dataclass(frozen=True)
class FrameQuality:
    """How usable a frame is.

    Attributes
    ----------
    focus
        Variance of the Laplacian near objects (higher is sharper).
    blurry
        ``focus < BLUR_THRESHOLD``: counts from this frame are unreliable.
    objects
        Number of ROIs found.
    flags
        ``("blurry",)`` and/or ``("empty",)`` (no object found), else empty.
    """

    focus: float
    blurry: bool
    objects: int
    flags: tuple[str, ...]


@dataclass(frozen=True)
class SegmentParams:
    """Tunables; the defaults are what the README's recall figures were measured with."""

    scale: float = 0.5
    smooth_sigma: float = 2.0
    gradient_factor: float = 5.0
    """threshold = factor x median gradient magnitude of the frame"""
    close_px: int = 3
    min_area: int = 1500
    """minimum object area in full-resolution pixels (about 40 x 40)"""
    padding: int = 8
    """full-resolution pixels added around each box so the crop keeps the halo"""
    min_line_px: int = 240
    """minimum length (full resolution) of a straight chain found by the Hough transform"""
    blur_threshold: float = BLUR_THRESHOLD
    merge: bool = True
    """join the pieces of one object and boxes nested in another (:mod:`.merge`); False
    gives the segmentation shipped before, one ROI per piece"""
    merge_params: MergeParams = field(default_factory=MergeParams)


def looks_like_frame(image: np.ndarray) -> bool:
    """True when an image is a whole camera field rather than one organism."""
    return min(image.shape[:2]) >= FRAME_MIN_SIDE


def focus_measure(grey: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Variance of the Laplacian (Pech-Pacheco et al. 2000), optionally within a mask."""
    lap = cv2.Laplacian(grey, cv2.CV_32F, ksize=3)
    if mask is not None and mask.any():
        values = lap[mask > 0]
    else:
        values = lap.ravel()
    return float(values.var())


def _pad_box(x: float, y: float, w: float, h: float, pad: int, shape: tuple[int, ...]) -> Box:
    height, width = shape[:2]
    x0 = max(0, int(math.floor(x)) - pad)
    y0 = max(0, int(math.floor(y)) - pad)
    x1 = min(width, int(math.ceil(x + w)) + pad)
    y1 = min(height, int(math.ceil(y + h)) + pad)
    return (x0, y0, x1 - x0, y1 - y0)


def _iou(a: Box, b: Box) -> float:
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union else 0.0


def _line_groups(edges: np.ndarray, min_len: int) -> list[np.ndarray]:
    """Long straight edge segments, joined when collinear and close: one group per chain."""
    lines = cv2.HoughLinesP(
        edges, 1, np.pi / 180, threshold=80, minLineLength=min_len, maxLineGap=15
    )
    if lines is None:
        return []
    segs = lines.reshape(-1, 4).astype(np.float64)  # OpenCV 4 gives (N,1,4), 5 gives (N,4)
    angles = np.arctan2(segs[:, 3] - segs[:, 1], segs[:, 2] - segs[:, 0]) % np.pi
    parent = list(range(len(segs)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(segs)):
        x1, y1, x2, y2 = segs[i]
        length = math.hypot(x2 - x1, y2 - y1) or 1.0
        for j in range(i + 1, len(segs)):
            da = abs(angles[i] - angles[j])
            if min(da, np.pi - da) > math.radians(6):
                continue
            mx, my = (segs[j, 0] + segs[j, 2]) / 2, (segs[j, 1] + segs[j, 3]) / 2
            off_axis = abs((y2 - y1) * mx - (x2 - x1) * my + x2 * y1 - y2 * x1) / length
            if off_axis > 12:
                continue
            gap_x = max(
                0.0,
                max(min(segs[j, 0], segs[j, 2]), min(x1, x2))
                - min(max(segs[j, 0], segs[j, 2]), max(x1, x2)),
            )
            gap_y = max(
                0.0,
                max(min(segs[j, 1], segs[j, 3]), min(y1, y2))
                - min(max(segs[j, 1], segs[j, 3]), max(y1, y2)),
            )
            if gap_x + gap_y < 60:
                parent[find(i)] = find(j)
    groups: dict[int, list[np.ndarray]] = {}
    for i, seg in enumerate(segs):
        groups.setdefault(find(i), []).append(seg)
    return [np.array(g).reshape(-1, 2, 2).reshape(-1, 2) for g in groups.values()]


def _raster(points: np.ndarray) -> np.ndarray:
    """(x, y) pixels of a line group's segments (consecutive point pairs), drawn 1 px wide."""
    ends = np.round(points).astype(np.int32)
    x0, y0 = ends.min(axis=0)
    x1, y1 = ends.max(axis=0)
    canvas = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.uint8)
    for a, b in zip(ends[0::2], ends[1::2], strict=True):
        cv2.line(canvas, (int(a[0] - x0), int(a[1] - y0)), (int(b[0] - x0), int(b[1] - y0)), 1)
    ys, xs = np.nonzero(canvas)
    return np.column_stack((xs + x0, ys + y0))


def segment_frame(
    image: np.ndarray, params: SegmentParams | None = None
) -> tuple[list[tuple[Box, np.ndarray]], FrameQuality]:
    """ROIs of a whole frame and the frame's quality.

    Parameters
    ----------
    image
        The frame as a source gives it (grey or RGB(A), 8 or 16 bit).
    params
        Tunables; defaults suit 10-40x light-microscope frames of a few megapixels.

    Returns
    -------
    rois
        ``(box, crop)`` pairs in reading order (top to bottom, left to right); ``box`` is
        (x, y, w, h) in the frame, ``crop`` a view of ``image`` (same dtype and channels).
    quality
        Focus measure and flags of the frame.
    """
    p = params or SegmentParams()
    grey_full = to_grey(image)
    small = cv2.resize(grey_full, None, fx=p.scale, fy=p.scale, interpolation=cv2.INTER_AREA)
    smooth = cv2.GaussianBlur(small.astype(np.float32), (0, 0), p.smooth_sigma)
    gradient = cv2.magnitude(
        cv2.Sobel(smooth, cv2.CV_32F, 1, 0), cv2.Sobel(smooth, cv2.CV_32F, 0, 1)
    )
    threshold = p.gradient_factor * max(float(np.median(gradient)), 0.5)
    mask: np.ndarray = (gradient > threshold).astype(np.uint8) * 255
    if p.close_px > 1:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (p.close_px, p.close_px))
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)

    inv = 1.0 / p.scale
    boxes: list[Box] = []
    blobs: list[Piece] = []
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    for i in range(1, count):
        x, y, w, h, area = (int(v) for v in stats[i])
        if area * inv * inv >= p.min_area:
            boxes.append(_pad_box(x * inv, y * inv, w * inv, h * inv, p.padding, image.shape))
            if p.merge:
                ys, xs = np.nonzero(labels[y : y + h, x : x + w] == i)
                blobs.append(Piece(np.column_stack((xs + x, ys + y))))

    lines: list[Piece] = []
    edges = cv2.Canny(cv2.GaussianBlur(small, (0, 0), p.smooth_sigma), 10, 30)
    for points in _line_groups(edges, max(10, int(p.min_line_px * p.scale))):
        x0, y0 = points.min(axis=0)
        x1, y1 = points.max(axis=0)
        box = _pad_box(
            x0 * inv, y0 * inv, (x1 - x0) * inv, (y1 - y0) * inv, p.padding + 12, image.shape
        )
        if not any(_iou(box, other) > 0.5 for other in boxes):
            boxes.append(box)
            if p.merge:
                lines.append(Piece(_raster(points), margin=12 * p.scale, line=True))

    if p.merge:
        pieces = blobs + lines
        boxes = []
        for group in merge_pieces(pieces, p.merge_params):
            gx, gy, gw, gh = group_extent(pieces, group)
            boxes.append(_pad_box(gx * inv, gy * inv, gw * inv, gh * inv, p.padding, image.shape))

    boxes.sort(key=lambda b: (b[1], b[0]))
    near = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9)))
    focus = focus_measure(small, near if boxes else None)
    blurry = focus < p.blur_threshold
    flags = (("blurry",) if blurry else ()) + (() if boxes else ("empty",))
    rois = [(box, image[box[1] : box[1] + box[3], box[0] : box[0] + box[2]]) for box in boxes]
    return rois, FrameQuality(focus=focus, blurry=blurry, objects=len(rois), flags=flags)


def edge_flag(box: Box, shape: tuple[int, ...]) -> bool:
    """True when a box touches the frame border (the organism may be cut off)."""
    x, y, w, h = box
    return x <= 0 or y <= 0 or x + w >= shape[1] or y + h >= shape[0]
