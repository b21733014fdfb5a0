"""Box merging of frame segmentation: pieces of one object become one ROI, neighbours stay apart.

Synthetic frames (a needle chain broken in pieces, round cells near it) test the whole
``segment_frame``; point sets test each joining rule of :mod:`phytoscope.imaging.merge`
alone, including the cases that must *not* join.
"""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from phytoscope.imaging.merge import MergeParams, Piece, group_extent, merge_pieces
from phytoscope.imaging.segment import SegmentParams, segment_frame

BEFORE = SegmentParams(merge=False)


def _background(shape=(1200, 1600)) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.full(shape, 128, np.float32) + rng.normal(0, 2, shape).astype(np.float32)


def _needle(img: np.ndarray, p0, p1, gaps=()) -> None:
    """A dark thin chain from p0 to p1, with (fraction, length) gaps cut out of it."""
    a, b = np.array(p0, float), np.array(p1, float)
    cv2.line(img, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), 60, 5, cv2.LINE_AA)
    unit = (b - a) / np.linalg.norm(b - a)
    for fraction, length in gaps:
        c = a + (b - a) * fraction
        s, e = c - unit * length / 2, c + unit * length / 2
        cv2.line(img, (int(s[0]), int(s[1])), (int(e[0]), int(e[1])), 128, 9)


def _cell(img: np.ndarray, centre, radius=30) -> None:
    cv2.circle(img, centre, radius, 70, -1)


def _u8(img: np.ndarray) -> np.ndarray:
    return np.clip(img, 0, 255).astype(np.uint8)


def _covers(box, point) -> bool:
    x, y, w, h = box
    return x <= point[0] <= x + w and y <= point[1] <= y + h


@pytest.fixture(scope="module")
def chain_frame() -> np.ndarray:
    """A chain cut in three pieces, a cell under it (inside its box), two cells side by side."""
    img = _background()
    _needle(img, (200, 200), (900, 600), gaps=[(0.33, 30), (0.66, 30)])
    _cell(img, (450, 500))
    _cell(img, (1200, 900))
    _cell(img, (1290, 900))
    return _u8(img)


def test_a_chain_in_pieces_becomes_one_roi(chain_frame):
    along = [(200 + 700 * f, 200 + 400 * f) for f in (0.05, 0.5, 0.95)]
    before = [b for b, _ in segment_frame(chain_frame, BEFORE)[0]]
    after = [b for b, _ in segment_frame(chain_frame)[0]]
    # before: one box per piece, none covering the whole chain
    assert len({b for b in before for p in along if _covers(b, p)}) >= 3
    assert not any(all(_covers(b, p) for p in along) for b in before)
    on_chain = {b for b in after for p in along if _covers(b, p)}
    assert len(on_chain) == 1
    (box,) = on_chain
    assert all(_covers(box, p) for p in along)
    assert box[2] < 800 and box[3] < 500  # the chain, not the frame


def test_neighbours_of_a_chain_and_of_each_other_stay_apart(chain_frame):
    after = [b for b, _ in segment_frame(chain_frame)[0]]
    for centre in ((450, 500), (1200, 900), (1290, 900)):
        # each cell has a box of its own, about its size (the chain's box holds the first)
        own = [b for b in after if _covers(b, centre) and b[2] < 150 and b[3] < 150]
        assert len(own) == 1, centre
    assert len(after) == 4


def test_a_gap_longer_than_the_rule_keeps_pieces_apart():
    img = _background()
    _needle(img, (200, 300), (1400, 300), gaps=[(0.5, 200)])
    after = [b for b, _ in segment_frame(_u8(img))[0]]
    assert len(after) == 2
    assert max(b[2] for b in after) < 700


def test_merging_is_off_when_asked_and_costs_little(chain_frame):
    assert len(segment_frame(chain_frame, BEFORE)[0]) > len(segment_frame(chain_frame)[0])
    start = time.perf_counter()
    for _ in range(3):
        segment_frame(chain_frame, BEFORE)
    plain = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(3):
        segment_frame(chain_frame)
    merged = time.perf_counter() - start
    assert merged < 2 * plain + 0.3  # generous: a shared machine, but not a new algorithm


def _blob(x0, y0, x1, y1) -> Piece:
    ys, xs = np.mgrid[y0:y1, x0:x1]
    return Piece(np.column_stack((xs.ravel(), ys.ravel())))


def _segment(p0, p1, line=False, width=1) -> Piece:
    n = int(max(abs(p1[0] - p0[0]), abs(p1[1] - p0[1]))) + 1
    pts = [
        (round(p0[0] + (p1[0] - p0[0]) * t) + dx, round(p0[1] + (p1[1] - p0[1]) * t))
        for t in np.linspace(0, 1, n)
        for dx in range(width)
    ]
    return Piece(np.array(sorted(set(pts))), line=line, margin=6 if line else 0)


def _groups(pieces) -> list[list[int]]:
    return sorted(sorted(g) for g in merge_pieces(pieces))


def test_a_box_nested_in_a_touching_piece_is_suppressed_into_it():
    ring = Piece(np.array([(x, y) for x in range(100) for y in range(100) if x < 4 or y < 4]))
    inside = _blob(6, 6, 20, 20)  # 2 px from the ring's pixels, its box inside the ring's
    far_inside = _blob(60, 60, 70, 70)  # inside the box, but far from every ring pixel
    assert _groups([ring, inside, far_inside]) == [[0, 1], [2]]
    x, y, w, h = group_extent([ring, inside], [0, 1])
    assert (x, y, w, h) == (0, 0, 100, 100)


def test_overlapping_boxes_that_do_not_touch_stay_apart():
    a, b = _blob(0, 0, 30, 30), _blob(40, 0, 70, 30)  # 10 px apart, boxes do not overlap
    assert _groups([a, b]) == [[0], [1]]


def test_collinear_pieces_join_across_a_gap_parallel_neighbours_do_not():
    first = _segment((0, 0), (100, 50), width=3)
    second = _segment((130, 65), (230, 115), width=3)  # same axis, ~33 px gap
    beside = _segment((0, 40), (100, 90), width=3)  # parallel, 40 px off the axis
    across = _segment((120, 0), (120, 100), width=3)  # in the gap, at a right angle
    assert _groups([first, second, beside, across]) == [[0, 1], [2], [3]]
    far = _segment((170, 85), (270, 135), width=3)  # same axis, ~78 px on
    assert _groups([first, far]) == [[0], [1]]
    assert sorted(sorted(g) for g in merge_pieces([first, far], MergeParams(axis_gap_px=90))) == [
        [0, 1]
    ]


def test_a_chain_takes_its_fragments_but_is_not_swallowed_by_a_clump():
    chain = _segment((10, 10), (200, 200), line=True)
    fragment = _blob(100, 98, 106, 104)  # on the chain's axis
    beside = _blob(150, 60, 170, 80)  # inside the chain's box, off its axis
    assert _groups([chain, fragment, beside]) == [[0, 1], [2]]
    clump = _blob(0, 0, 220, 220)  # the chain touches a larger clump that holds its box
    assert _groups([chain, clump]) == [[0], [1]]
