"""IFCB Dashboard class scores ("v3"): one HDF5 file per bin, ``<bin>_class.h5``.

The IFCB Dashboard (WHOI's ``ifcbdb``, through pyifcb's ``ClassScoresFile``) and the
MATLAB ``ifcb-analysis`` tools read a classifier's output per bin from this file; WHOI's
``ifcb_classifier`` and iRfcb write it. What the readers need, and what is written here:

========================  ===================================================================
``output_scores``         float32, N x C: every ROI's full softmax vector (pyifcb builds its
                          table from it with ``class_labels`` as columns)
``class_labels``          C strings (variable length, ASCII: pyifcb decodes them as ASCII)
``roi_numbers``           N int32, the IFCB ROI numbers, 1-based as in the ADC file (the
                          Dashboard names ROIs ``<bin>_<roi:05d>`` from them)
``output_classes``        N int32, 0-based index of each ROI's top class (MATLAB's
                          ``load_class_scores`` reads it)
``metadata``              an empty dataset whose attributes ``version`` ("v3"), ``model_id``,
                          ``timestamp`` (UTC, ISO 8601) and ``bin_id`` MATLAB reads
``classifier_name``       the model (iRfcb's name for it)
``thresholds``            C float32: the model card's per-class confidence thresholds
``class_name``            N strings: phytoscope's decision after the thresholds and the
                          novelty rule ("unknown" when neither lets a class stand)
``class_name_auto``       N strings: the top class, before any threshold
``novelty``               N float32, only for a model with an open-set score; attributes
                          ``method``, ``threshold``, ``output`` from the card
``unknown_reason``        N strings: "novel", "unsure" or "" (see ``Prediction``)
========================  ===================================================================

Each file is written under a temporary name and renamed, so a reader never sees half a
file and a crash never leaves one.
"""

from __future__ import annotations

import logging
import os
import unicodedata
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np

from phytoscope import __version__
from phytoscope.errors import ConfigError, StorageError
from phytoscope.modelcard import ModelCard
from phytoscope.sources.ifcb import is_bin_name
from phytoscope.types import Prediction

log = logging.getLogger(__name__)

VERSION = "v3"
SUFFIX = "_class.h5"
_TEXT = h5py.string_dtype("utf-8")


def class_scores_path(folder: Path | str, bin_id: str) -> Path:
    """Where the Dashboard looks for a bin's scores: ``<folder>/<bin>_class.h5``."""
    return Path(folder) / f"{bin_id}{SUFFIX}"


def bin_of(prediction: Prediction) -> str | None:
    """The IFCB bin id a prediction came from (its source is the bin's path without
    suffix), or None for any other image."""
    name = Path(prediction.source).name
    return name if is_bin_name(name) else None


def _ascii(label: str) -> str:
    return unicodedata.normalize("NFKD", label).encode("ascii", "ignore").decode("ascii")


def write_class_scores(
    path: Path | str,
    bin_id: str,
    predictions: Sequence[Prediction],
    card: ModelCard,
    timestamp: datetime | None = None,
) -> Path:
    """Write one bin's class scores file.

    Parameters
    ----------
    path
        The file to write (see :func:`class_scores_path`).
    bin_id
        The bin's id, e.g. ``D20220522T003051_IFCB134``.
    predictions
        Every classified ROI of the bin, with their full ``scores`` (any order: rows are
        written by ROI number).
    card
        The model card the predictions were made with (class order, thresholds, novelty).
    timestamp
        When the classification ran (default now), in UTC.

    Raises
    ------
    ConfigError
        A prediction lacks its score vector or its length differs from the card's classes.
    StorageError
        The file cannot be written (path, permissions, disk full).
    """
    rows = sorted(predictions, key=lambda p: p.roi_index)
    classes = card.class_names
    missing = [p for p in rows if p.scores is None or len(p.scores) != len(classes)]
    if missing:
        raise ConfigError(
            f"{bin_id}: {len(missing)} of {len(rows)} ROIs have no score vector over the "
            f"model's {len(classes)} classes (predictions read back from the store keep only "
            "the top classes): classify the bin again to write its class scores"
        )
    scores = (
        np.stack([np.asarray(p.scores, dtype=np.float32) for p in rows])
        if rows
        else np.zeros((0, len(classes)), np.float32)
    )
    labels = [_ascii(name) for name in classes]
    if labels != list(classes):
        log.warning(
            "%s: class names written as ASCII for the Dashboard (%s)",
            bin_id,
            ", ".join(f"{a} -> {b}" for a, b in zip(classes, labels, strict=True) if a != b),
        )
    when = (timestamp or datetime.now(timezone.utc)).astimezone(timezone.utc)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with h5py.File(tmp, "w") as f:
            f.attrs["software"] = f"phytoscope {__version__}"
            f.attrs["model_sha256"] = card.sha256
            f.attrs["scores"] = (
                "softmax probabilities over class_labels; class_name applies the model "
                "card's per-class thresholds and its novelty rule"
            )
            meta = f.create_dataset("metadata", data=h5py.Empty("f"))
            meta.attrs["version"] = VERSION
            meta.attrs["model_id"] = card.label
            meta.attrs["timestamp"] = when.isoformat(timespec="seconds")
            meta.attrs["bin_id"] = bin_id
            f.create_dataset("output_scores", data=scores, compression="gzip")
            f.create_dataset("class_labels", data=labels, dtype=_TEXT)
            if labels != list(classes):
                f.create_dataset("class_labels_utf8", data=list(classes), dtype=_TEXT)
            f.create_dataset("roi_numbers", data=np.array([p.roi_index for p in rows], np.int32))
            f.create_dataset(
                "output_classes",
                data=np.argmax(scores, axis=1).astype(np.int32)
                if len(rows)
                else np.zeros(0, np.int32),
            )
            f.create_dataset("classifier_name", data=card.label, dtype=_TEXT)
            f.create_dataset(
                "thresholds", data=np.array([c.threshold for c in card.classes], np.float32)
            )
            f.create_dataset("class_name", data=[p.label for p in rows], dtype=_TEXT)
            f.create_dataset(
                "class_name_auto",
                data=[classes[int(i)] for i in np.argmax(scores, axis=1)] if len(rows) else [],
                dtype=_TEXT,
            )
            f.create_dataset("unknown_reason", data=[p.unknown_reason for p in rows], dtype=_TEXT)
            novelty = [p.novelty for p in rows]
            if card.novelty is not None and rows and all(v is not None for v in novelty):
                ds = f.create_dataset("novelty", data=np.array(novelty, np.float32))
                ds.attrs["method"] = card.novelty.method
                ds.attrs["threshold"] = card.novelty.threshold
                ds.attrs["output"] = card.novelty.output
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StorageError(
            f"cannot write the class scores of {bin_id} to {path}: {exc.strerror or exc} "
            "(check the folder exists, is writable and has space)"
        ) from exc
    return path


def write_bins(
    folder: Path | str,
    predictions: Iterable[Prediction],
    card: ModelCard,
    timestamp: datetime | None = None,
) -> tuple[list[Path], int]:
    """One class scores file per IFCB bin among ``predictions``.

    Returns the files written and the number of predictions that came from no IFCB bin
    (plain images, video frames: the Dashboard format is per bin, so they have none).
    """
    by_bin: dict[str, list[Prediction]] = {}
    sources: dict[str, str] = {}
    other = 0
    for p in predictions:
        bin_id = bin_of(p)
        if bin_id is None:
            other += 1
            continue
        if sources.setdefault(bin_id, p.source) != p.source:
            raise ConfigError(
                f"two IFCB bins named {bin_id} in this run ({sources[bin_id]} and {p.source}): "
                "their class scores would overwrite each other; classify them separately"
            )
        by_bin.setdefault(bin_id, []).append(p)
    written = [
        write_class_scores(class_scores_path(folder, bin_id), bin_id, rows, card, timestamp)
        for bin_id, rows in by_bin.items()
    ]
    return written, other
