"""How a whole-frame analysis fares on annotated frames: cells found, debris called HAB.

A frame analysis is segmentation followed by classification of every segment, so neither a
segmentation recall nor a crop top-1 says what a technician sees. This evaluation runs both
on frames whose cells are annotated (COCO polygons, e.g. the Marzidovšek frames held out by
the split) and counts, per frame and in total:

* **cell recall**: annotated cells that some segment matches (the same rule that labels
  training segments, :func:`phytoscope.training.frames.match_segments`), and those whose
  matching segment the model calls the cell's class (Pseudo-nitzschia): a chain cut into
  pieces is found if one piece is called right;
* **false HAB-relevant share**: of the segments holding no annotated-cell pixel (debris,
  halos, other organisms: the annotations mark only Pseudo-nitzschia), the share given a
  class the card marks ``hab``. "unknown" (novel or unsure) is not HAB: it raises no alert;
* segments that hold part of a cell without matching it are counted apart and in neither.

Each segmentation variant (the previous one, without box merging, and the current one) is
run on the same frames with the same model, so the effect of merging is measured, not
assumed.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from phytoscope.core.classifier import NOVEL, Classifier
from phytoscope.errors import SourceError
from phytoscope.imaging import segment as seg
from phytoscope.modelcard import UNKNOWN
from phytoscope.training import dataset as ds
from phytoscope.training import frames as fr
from phytoscope.types import SEGMENTED, Roi

VARIANTS: dict[str, seg.SegmentParams] = {
    "before (no box merging)": seg.SegmentParams(merge=False),
    "after (merged boxes)": seg.SegmentParams(),
}
"""The segmentations compared: the one shipped before box merging, and today's default."""


@dataclass
class FrameResult:
    """Counts of one frame under one segmentation."""

    frame: str
    segments: int = 0
    cells: int = 0
    cells_found: int = 0
    """annotated cells matched by at least one segment"""
    cells_called: int = 0
    """...by at least one segment the model calls the cell's class"""
    cells_whole: int = 0
    """...by such a segment whose box also matches the cell's box (IoU >= 0.3)"""
    cell_segments: int = 0
    partial_segments: int = 0
    non_cell: int = 0
    non_cell_hab: int = 0
    non_cell_unknown: int = 0
    non_cell_novel: int = 0
    """...of which "unknown" because the novelty score says unlike every class"""
    non_cell_labels: dict[str, int] = field(default_factory=dict)
    cell_labels: dict[str, int] = field(default_factory=dict)
    """labels of the segments that match a cell (what a missed cell was called instead)"""
    seconds_segment: float = 0.0

    def add(self, other: FrameResult) -> None:
        """Accumulate ``other`` into this total."""
        for name in (
            "segments",
            "cells",
            "cells_found",
            "cells_called",
            "cells_whole",
            "cell_segments",
            "partial_segments",
            "non_cell",
            "non_cell_hab",
            "non_cell_unknown",
            "non_cell_novel",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.seconds_segment += other.seconds_segment
        for name in ("non_cell_labels", "cell_labels"):
            labels = Counter(getattr(self, name))
            labels.update(getattr(other, name))
            setattr(self, name, dict(labels.most_common()))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["cell_recall"] = _share(self.cells_called, self.cells)
        out["whole_cell_recall"] = _share(self.cells_whole, self.cells)
        out["segmentation_recall"] = _share(self.cells_found, self.cells)
        out["false_hab_share"] = _share(self.non_cell_hab, self.non_cell)
        out["seconds_segment"] = round(self.seconds_segment, 3)
        return out


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def held_out_frames(frames_dir: Path, crops: Sequence[ds.Item], subset: str = "test") -> list[Path]:
    """Frames under ``frames_dir`` that the split puts in ``subset`` (the rule of training)."""
    frames = sorted(p for p in Path(frames_dir).rglob("*") if p.suffix.lower() in ds.IMAGE_SUFFIXES)
    return [f for f in frames if subset == "all" or fr.frame_split(f, crops) == subset]


def evaluate_frame(
    image: np.ndarray,
    annotations: list,
    classifier: Classifier,
    params: seg.SegmentParams,
    name: str = "frame",
    cell_class: str = "Pseudo-nitzschia",
) -> FrameResult:
    """Segment one frame with ``params``, classify every segment, count against the cells."""
    start = time.perf_counter()
    pieces, _ = seg.segment_frame(image, params)
    elapsed = time.perf_counter() - start
    boxes = [box for box, _ in pieces]
    rois = [
        Roi(source=name, index=k, image=crop, box=box, meta={SEGMENTED: True})
        for k, (box, crop) in enumerate(pieces)
    ]
    predictions = classifier.predict(rois) if rois else []
    hab = {c.name for c in classifier.card.classes if c.hab}
    matches = fr.match_segments(image.shape, annotations, boxes)
    result = FrameResult(
        frame=name, segments=len(boxes), cells=len(annotations), seconds_segment=elapsed
    )
    found: set[int] = set()
    called: set[int] = set()
    whole: set[int] = set()
    labels: Counter[str] = Counter()
    cell_labels: Counter[str] = Counter()
    for box, prediction, (cells, touches) in zip(boxes, predictions, matches, strict=True):
        if cells:
            result.cell_segments += 1
            cell_labels[prediction.label] += 1
            found.update(cells)
            if prediction.label == cell_class:
                called.update(cells)
                whole.update(
                    c for c in cells if fr.box_iou(box, annotations[c][1]) >= fr.POSITIVE_IOU
                )
        elif touches:
            result.partial_segments += 1
        else:
            result.non_cell += 1
            labels[prediction.label] += 1
            result.non_cell_hab += prediction.label in hab
            result.non_cell_unknown += prediction.label == UNKNOWN
            result.non_cell_novel += prediction.unknown_reason == NOVEL
    result.cells_found, result.cells_called, result.cells_whole = (
        len(found),
        len(called),
        len(whole),
    )
    result.non_cell_labels = dict(labels.most_common())
    result.cell_labels = dict(cell_labels.most_common())
    return result


def evaluate_frames(
    frames: Sequence[Path],
    annotations: Mapping[str, list],
    classifier: Classifier,
    variants: Mapping[str, seg.SegmentParams] = VARIANTS,
) -> dict[str, dict[str, Any]]:
    """Per variant: per-frame and total counts over ``frames`` (each read once)."""
    per: dict[str, list[FrameResult]] = {v: [] for v in variants}
    for frame in frames:
        image = ds.read_image(frame)
        for variant, params in variants.items():
            per[variant].append(
                evaluate_frame(
                    image, annotations.get(frame.name, []), classifier, params, frame.name
                )
            )
    out: dict[str, dict[str, Any]] = {}
    for variant, results in per.items():
        total = FrameResult(frame="total")
        for r in results:
            total.add(r)
        out[variant] = {
            "frames": [r.to_dict() for r in results],
            "total": total.to_dict(),
        }
    return out


def frames_report(
    frames_dir: Path,
    coco_dir: Path,
    split: Sequence[ds.Item],
    classifier: Classifier,
    subset: str = "test",
    variants: Mapping[str, seg.SegmentParams] = VARIANTS,
    **facts: Any,
) -> dict[str, Any]:
    """The whole evaluation of the ``subset`` frames as one JSON-ready dict.

    ``split`` holds the crops whose splits decide each frame's (as in training); ``facts``
    (command, backend, precision, split file) are recorded as given.
    """
    frames = held_out_frames(frames_dir, split, subset)
    if not frames:
        raise SourceError(f"no {subset} frame under {frames_dir}")
    annotations = fr.read_annotations(coco_dir)
    card = classifier.card
    return {
        **facts,
        "model": card.label,
        "novelty_threshold": card.novelty.threshold if card.novelty is not None else None,
        "hab_classes": [c.name for c in card.classes if c.hab],
        "subset": subset,
        "frames": [f.name for f in frames],
        "cells": sum(len(annotations.get(f.name, [])) for f in frames),
        "variants": evaluate_frames(frames, annotations, classifier, variants),
    }


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def markdown(report: Mapping[str, Any]) -> str:
    """The report as Markdown tables: one per segmentation variant, a row per frame."""
    lines = [
        f"# Whole-frame evaluation: {report['model']}",
        "",
        f"Frames: {len(report['frames'])} ({report['subset']} split of {report.get('split_file', 'the split')}), "
        f"cells annotated: {report['cells']}. Engine: {report['backend']} {report['precision']}"
        + (
            f", novelty threshold {report['novelty_threshold']}"
            if report.get("novelty_threshold") is not None
            else ", no novelty output"
        )
        + ".",
        "",
        "Reproduce: `" + report["command"] + "`",
        "",
        "A segment *is* a cell when its box has IoU >= 0.3 with the cell's box or it holds >= 25 %"
        " of the cell's polygon (the rule that labels training segments); a *non-cell* segment"
        " holds no annotated-cell pixel; the rest (part of a cell) count in neither. *Recall*:"
        " cells matched by a segment called Pseudo-nitzschia (*cell segments*: segments matching"
        " a cell, more than one per cell when it comes out in pieces); *whole*: by such a segment at box"
        " IoU >= 0.3. *False HAB*: non-cell segments given a class the card marks HAB-relevant"
        ' ("unknown" is not).',
        "",
    ]
    header = (
        "| frame | segments | cells | found | cell segments | recall | whole | partial "
        "| non-cell | false HAB | unknown | most frequent non-cell labels | cell segments called |"
    )
    for variant, result in report["variants"].items():
        lines += [f"## {variant}", "", header, "|" + "---|" * 13]
        for row in [*result["frames"], result["total"]]:
            labels = ", ".join(f"{k} {v}" for k, v in list(row["non_cell_labels"].items())[:3])
            name = "**total**" if row["frame"] == "total" else row["frame"]
            lines.append(
                f"| {name} | {row['segments']} | {row['cells']} | {row['cells_found']} "
                f"| {row['cell_segments']} "
                f"| {row['cells_called']} ({_pct(row['cell_recall'])}) "
                f"| {row['cells_whole']} | {row['partial_segments']} | {row['non_cell']} "
                f"| {row['non_cell_hab']} ({_pct(row['false_hab_share'])}) "
                f"| {row['non_cell_unknown']} ({row['non_cell_novel']} novel) | {labels} "
                f"| {', '.join(f'{k} {v}' for k, v in row['cell_labels'].items())} |"
            )
        lines.append("")
    return "\n".join(lines)


def write_report(report: Mapping[str, Any], folder: Path, stem: str = "frames") -> dict[str, Path]:
    """``<stem>.json`` and ``<stem>.md`` under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": folder / f"{stem}.json", "md": folder / f"{stem}.md"}
    paths["json"].write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    paths["md"].write_text(markdown(report), encoding="utf-8")
    return paths
