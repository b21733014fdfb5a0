"""Training ROIs cut from whole microscope frames, labelled by polygon annotations.

Crops of single cells teach the classifier what a cell looks like, but not what the rest of a
frame looks like: on a whole phase-contrast frame segmentation also yields debris, empty
halos and small round cells, and a model that only ever saw "detritus" from other
instruments calls them whatever class shares their look (colonial cyanobacteria). The
frames' COCO polygon annotations say where the annotated cells are, so every segment the
field pipeline produces (:func:`phytoscope.sources.rois_from_image`, the same call
``phytoscope classify`` makes) can be labelled:

* a segment containing no annotated-cell pixel is ``detritus/other`` (a hard negative from
  the same instrument);
* a segment whose box overlaps an annotated cell's box at IoU >= :data:`POSITIVE_IOU`, or
  that holds at least :data:`POSITIVE_PIECE` of a cell's polygon, is that cell's class (the
  annotation's category through the class map);
* anything in between (part of a cell, a cell beside debris) is left out.

The crops are not written anywhere: an item's path is the frame's path with
``#roi=x,y,w,h`` appended, and :func:`phytoscope.training.dataset.read_image` cuts the box
out of the frame, so the split file stays relative to the data root and reproducible.

Split: all segments of one frame share a group. A frame follows the split of the crops of
its own cells (crop file names start with the frame's name): test if any of them is a test
crop, else val if any is a val crop, else train, so no cell is seen in one split as a crop
and in a more privileged one as a frame segment.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from phytoscope.errors import SourceError
from phytoscope.training import dataset as ds

log = logging.getLogger(__name__)

POSITIVE_IOU = 0.3
"""Box IoU with an annotated cell above which a segment is that cell (README: segmentation
recall is measured at the same IoU)."""

POSITIVE_PIECE = 0.25
"""...or holding at least this fraction of an annotated cell's polygon (a piece of a chain
that segmentation cut apart is still that cell, and must not be learnt as debris)."""

NEGATIVE_LABEL = "no_annotated_cell"
NEGATIVE_CLASS = "detritus/other"


def read_annotations(
    coco_dir: Path,
) -> dict[str, list[tuple[str, tuple[float, float, float, float], list]]]:
    """file name -> [(category name, bbox, polygons)] of every COCO JSON under ``coco_dir``."""
    out: dict[str, list] = {}
    files = sorted(Path(coco_dir).rglob("*.json"))
    if not files:
        raise SourceError(f"no COCO annotation file (*.json) under {coco_dir}")
    for path in files:
        data = json.loads(path.read_text(encoding="utf-8"))
        categories = {c["id"]: c["name"] for c in data.get("categories", [])}
        names = {im["id"]: im["file_name"] for im in data.get("images", [])}
        for ann in data.get("annotations", []):
            name = Path(names[ann["image_id"]]).name
            polygons = ann.get("segmentation") if isinstance(ann.get("segmentation"), list) else []
            out.setdefault(name, []).append(
                (categories.get(ann["category_id"], ""), tuple(ann["bbox"]), polygons)
            )
    return out


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def roi_path(frame: Path, box: Sequence[int]) -> Path:
    """The item path of one segment of ``frame``."""
    return frame.with_name(frame.name + "#roi=" + ",".join(str(int(v)) for v in box))


def match_segments(
    shape: tuple[int, ...], annotations: list, boxes: Sequence[Sequence[int]]
) -> list[tuple[tuple[int, ...], bool]]:
    """Per box: the annotated cells it *is* (best first), and whether it holds any cell pixel.

    A box is a cell when its IoU with the cell's box is at least :data:`POSITIVE_IOU` or it
    holds at least :data:`POSITIVE_PIECE` of the cell's polygon; one rule for the training
    labels and for the frame evaluation (:mod:`phytoscope.training.frames_eval`).
    """
    import cv2

    masks = []
    for _, _, polygons in annotations:
        cell = np.zeros(shape[:2], np.uint8)
        for poly in polygons:
            pts = np.round(np.asarray(poly, np.float64).reshape(-1, 2)).astype(np.int32)
            cv2.fillPoly(cell, [pts], 1)
        masks.append((cell, max(int(cell.sum()), 1)))
    out = []
    for box in boxes:
        x, y, w, h = (int(v) for v in box)
        inside = [int(cell[y : y + h, x : x + w].sum()) / total for cell, total in masks]
        score = [
            max(box_iou((x, y, w, h), a[1]) / POSITIVE_IOU, f / POSITIVE_PIECE)
            for a, f in zip(annotations, inside, strict=True)
        ]
        cells = sorted((k for k, v in enumerate(score) if v >= 1.0), key=lambda k: -score[k])
        out.append((tuple(cells), any(inside)))
    return out


def label_segments(
    image: np.ndarray, annotations: list, source: str = "frame"
) -> list[tuple[tuple[int, int, int, int], str | None]]:
    """(box, category name, or :data:`NEGATIVE_LABEL`, or None for ambiguous) per segment of
    one frame, segmented exactly as ``phytoscope classify`` segments it."""
    from phytoscope.sources import rois_from_image
    from phytoscope.types import Roi

    boxes = [
        tuple(int(v) for v in roi.box)
        for roi in rois_from_image(image, source, "always")
        if isinstance(roi, Roi) and roi.box is not None
    ]
    out: list[tuple[tuple[int, int, int, int], str | None]] = []
    for box, (cells, touches) in zip(
        boxes, match_segments(image.shape, annotations, boxes), strict=True
    ):
        label = annotations[cells[0]][0] if cells else None if touches else NEGATIVE_LABEL
        out.append((box, label))  # type: ignore[arg-type]
    return out


def frame_split(frame: Path, crops: Sequence[ds.Item]) -> str:
    """The split of a frame: the most held-out split of its own cells' crops (train if none)."""
    prefix = frame.stem + "_a"
    splits = {i.split for i in crops if i.path.name.startswith(prefix)}
    return next((s for s in ("test", "val") if s in splits), "train")


def frame_items(
    frames_dir: Path,
    coco_dir: Path,
    crops: Sequence[ds.Item],
    rules: Sequence[tuple[str, str, str | None]] = ds.DEFAULT_CLASS_MAP,
    source: str | None = None,
    positives: bool = True,
) -> list[ds.Item]:
    """Labelled, split segments of every annotated frame under ``frames_dir``.

    ``crops`` are the already split items (their splits decide each frame's); ``positives``
    False keeps only the negatives.
    """
    frames_dir = Path(frames_dir).resolve()
    source = source or f"{frames_dir.parent.name}_frames"
    annotations = read_annotations(coco_dir)
    items: list[ds.Item] = []
    counts: Counter[tuple[str, str]] = Counter()
    frames = sorted(p for p in frames_dir.rglob("*") if p.suffix.lower() in ds.IMAGE_SUFFIXES)
    for frame in frames:
        if frame.name not in annotations:
            log.warning(
                "%s has no annotation: left out (its debris could hide unlabelled cells)", frame
            )
            continue
        split = frame_split(frame, crops)
        image = ds.read_image(frame)
        for box, label in label_segments(image, annotations[frame.name], str(frame)):
            if label is None or (label != NEGATIVE_LABEL and not positives):
                continue
            cls = NEGATIVE_CLASS if label == NEGATIVE_LABEL else ds.map_label(source, label, rules)
            if cls is None:
                continue
            items.append(
                ds.Item(
                    roi_path(frame, box),
                    label,
                    cls,
                    source,
                    group=f"{source}|{frame.name}",
                    split=split,
                )
            )
            counts[(cls, split)] += 1
    if not items:
        raise SourceError(f"no labelled segment in the frames under {frames_dir}")
    log.info("frame segments (class, split): %s", dict(counts))
    return items
