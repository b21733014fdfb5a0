"""Join the pieces segmentation cuts one object into, and drop boxes nested in another.

Why: the gradient threshold of :mod:`phytoscope.imaging.segment` breaks faint objects into
pieces (a Pseudo-nitzschia needle into a Hough line plus blobs along it, a fibre into its two
edges and clumps along them), and each piece used to become an ROI of its own: one chain gave
several overlapping boxes, each classified and counted. Two rules join pieces, both on the
*pixels* of the pieces, never on boxes alone, because the box of a diagonal chain or fibre
holds other organisms that must stay separate:

* **nested or overlapping, and touching**: two pieces whose boxes overlap by at least
  ``overlap`` of the smaller box, and whose pixels come within ``touch_px`` of each other,
  are one object (a box mostly inside another is suppressed into it). A straight chain
  (a Hough line) takes in only pieces lying along its axis, and is never swallowed by a
  larger clump: a chain touching debris keeps its own tight box;
* **collinear along an axis**: two elongated pieces (length >= :data:`ELONGATION` x width)
  with parallel axes (within ``angle_deg``), each one's centre within the other's band,
  separated along the axis by at most ``axis_gap_px``, are pieces of one chain.

All distances are in the pixels the pieces were found in (segmentation's half scale); the
defaults were chosen on the annotated frames of the training and validation splits
(models/evaluation/frames/README.md), never on the held-out ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

ON_AXIS_SHARE = 0.8
"""share of a piece's pixels in a chain's band for it to be a fragment of the chain"""

ELONGATION = 3.0
"""length / width above which a piece has an axis to be continued along"""


@dataclass(frozen=True)
class MergeParams:
    """Thresholds of the two joining rules (segmentation-scale pixels)."""

    overlap: float = 0.6
    touch_px: float = 6.0
    angle_deg: float = 10.0
    axis_gap_px: float = 40.0
    band_px: float = 8.0
    """a centre within this of the other piece's axis (or within its half-width) is on it"""


@dataclass
class Piece:
    """One object found by segmentation, in segmentation-scale pixels.

    ``points`` are (x, y) pixel coordinates (a blob's pixels, or a line's rasterised
    segments); ``margin`` widens the box (lines are padded more, their halo is wider).
    """

    points: np.ndarray
    margin: float = 0.0
    line: bool = False

    def __post_init__(self) -> None:
        low, high = self.points.min(axis=0), self.points.max(axis=0)
        self.x0, self.y0 = (float(v) - self.margin for v in low)
        self.x1, self.y1 = (float(v) + self.margin + 1 for v in high)

    @cached_property
    def _shape(self) -> tuple[np.ndarray, np.ndarray, float, float]:
        """Centre, unit major axis, length and width (only pieces near another need it)."""
        pts = self.points.astype(np.float64)
        centre = pts.mean(axis=0)
        centred = pts - centre
        axis = np.array([1.0, 0.0])
        if len(pts) > 1:
            axis = np.linalg.eigh(centred.T @ centred / len(pts))[1][:, 1]
        along = centred @ axis
        across = centred @ np.array([-axis[1], axis[0]])
        return (
            centre,
            axis,
            float(along.max() - along.min()) + 1.0,
            float(across.max() - across.min()) + 1.0,
        )

    @property
    def centre(self) -> np.ndarray:
        return self._shape[0]

    @property
    def axis(self) -> np.ndarray:
        return self._shape[1]

    @property
    def length(self) -> float:
        return self._shape[2]

    @property
    def width(self) -> float:
        return self._shape[3]

    @property
    def elongated(self) -> bool:
        return self.length >= ELONGATION * self.width

    @property
    def area(self) -> float:
        return float((self.x1 - self.x0) * (self.y1 - self.y0))


def _overlap_of_smaller(a: Piece, b: Piece) -> float:
    iw = min(a.x1, b.x1) - max(a.x0, b.x0)
    ih = min(a.y1, b.y1) - max(a.y0, b.y0)
    if iw <= 0 or ih <= 0:
        return 0.0
    return float(iw * ih / max(min(a.area, b.area), 1.0))


def _pixel_gap(a: Piece, b: Piece, limit: float) -> float:
    """Smallest distance between a pixel of ``a`` and one of ``b`` (``inf`` beyond ``limit``).

    Only the pixels within ``limit`` of both boxes can be that close, so the distance map
    covers that window alone (a fibre's box is large; the window where it meets a piece
    is not).
    """
    reach = int(math.ceil(limit)) + 1
    x0 = int(max(a.points[:, 0].min(), b.points[:, 0].min())) - reach
    y0 = int(max(a.points[:, 1].min(), b.points[:, 1].min())) - reach
    x1 = int(min(a.points[:, 0].max(), b.points[:, 0].max())) + reach + 1
    y1 = int(min(a.points[:, 1].max(), b.points[:, 1].max())) + reach + 1
    if x1 <= x0 or y1 <= y0:
        return math.inf

    def window(piece: Piece) -> np.ndarray:
        pts = piece.points
        keep = (pts[:, 0] >= x0) & (pts[:, 0] < x1) & (pts[:, 1] >= y0) & (pts[:, 1] < y1)
        return pts[keep] - (x0, y0)

    first, second = window(a), window(b)
    if not len(first) or not len(second):
        return math.inf
    mask = np.full((y1 - y0, x1 - x0), 255, np.uint8)
    mask[second[:, 1], second[:, 0]] = 0
    distance = cv2.distanceTransform(mask, cv2.DIST_L2, 3)
    gap = float(distance[first[:, 1], first[:, 0]].min())
    return gap if gap <= limit else math.inf


def _collinear(a: Piece, b: Piece, p: MergeParams) -> bool:
    if not (a.elongated and b.elongated):
        return False
    cos = abs(float(a.axis @ b.axis))
    if cos < math.cos(math.radians(p.angle_deg)):
        return False
    for one, other in ((a, b), (b, a)):
        normal = np.array([-one.axis[1], one.axis[0]])
        if abs(float((other.centre - one.centre) @ normal)) > max(p.band_px, one.width / 2):
            return False
    # gap along a's axis between the two pieces' extents
    pa = (a.points - a.centre) @ a.axis
    pb = (b.points - a.centre) @ a.axis
    gap = max(float(pa.min()), float(pb.min())) - min(float(pa.max()), float(pb.max()))
    return gap <= p.axis_gap_px


def _on_axis(line: Piece, piece: Piece, p: MergeParams) -> bool:
    """Whether most of ``piece`` lies in the band along ``line`` (a fragment of that chain)."""
    normal = np.array([-line.axis[1], line.axis[0]])
    across = np.abs((piece.points - line.centre) @ normal)
    return float(np.mean(across <= max(p.band_px, line.width / 2))) >= ON_AXIS_SHARE


def _nested(a: Piece, b: Piece, p: MergeParams) -> bool:
    """Overlapping/nested pieces that touch; a chain is joined only by its own fragments."""
    if _overlap_of_smaller(a, b) < p.overlap:
        return False
    if a.line != b.line:
        line, other = (a, b) if a.line else (b, a)
        if other.area > line.area or not _on_axis(line, other, p):
            return False  # a chain inside a clump stays its own ROI; a cell beside it too
    return _pixel_gap(a, b, p.touch_px) <= p.touch_px


def merge_pieces(pieces: list[Piece], params: MergeParams | None = None) -> list[list[int]]:
    """Groups of piece indices that are one object (every piece is in exactly one group)."""
    p = params or MergeParams()
    parent = list(range(len(pieces)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    if pieces:
        boxes = np.array([(q.x0, q.y0, q.x1, q.y1) for q in pieces])
        reach = p.axis_gap_px + p.touch_px
        for i, a in enumerate(pieces):
            # candidates: boxes within reach of a's box (cheap, vectorised)
            near = (
                (boxes[:, 0] <= a.x1 + reach)
                & (boxes[:, 2] >= a.x0 - reach)
                & (boxes[:, 1] <= a.y1 + reach)
                & (boxes[:, 3] >= a.y0 - reach)
            )
            near[: i + 1] = False
            for j in np.flatnonzero(near):
                b = pieces[int(j)]
                if find(i) == find(int(j)):
                    continue
                if _collinear(a, b, p) or _nested(a, b, p):
                    parent[find(i)] = find(int(j))
    groups: dict[int, list[int]] = {}
    for i in range(len(pieces)):
        groups.setdefault(find(i), []).append(i)
    return list(groups.values())


def group_extent(pieces: list[Piece], group: list[int]) -> tuple[float, float, float, float]:
    """(x, y, w, h) of the union of the pieces' boxes (segmentation scale)."""
    x0 = min(pieces[i].x0 for i in group)
    y0 = min(pieces[i].y0 for i in group)
    x1 = max(pieces[i].x1 for i in group)
    y1 = max(pieces[i].y1 for i in group)
    return float(x0), float(y0), float(x1 - x0), float(y1 - y0)
