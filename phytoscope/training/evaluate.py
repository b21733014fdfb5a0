"""How good is a model, and how sure must it be: metrics, per-source accuracy, thresholds.

Accuracy is reported per data source as well as overall because each class here comes from
one instrument: a model can score well by recognising the instrument rather than the
organism, and per-source figures make that visible. The per-class confidence threshold is
the lowest probability at which the predictions of that class still reach a target precision
on the validation split; below it the classifier says "unknown" instead of a wrong genus,
which matters more for an alert than a few more counted cells.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from phytoscope.core.classifier import softmax
from phytoscope.imaging.preprocess import normalise
from phytoscope.modelcard import InputSpec

log = logging.getLogger(__name__)

LogitsFn = Callable[[np.ndarray], np.ndarray]
"""float32 batch -> logits (N, classes)."""


def predict_logits(
    logits_fn: LogitsFn, prepared: np.ndarray, spec: InputSpec, batch: int = 64
) -> np.ndarray:
    """Logits of prepared uint8 (N, H, W) images, normalised exactly as in the field."""
    out = [
        logits_fn(normalise(prepared[i : i + batch], spec)) for i in range(0, len(prepared), batch)
    ]
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 0), np.float32)


def backend_logits_fn(backend: Any) -> LogitsFn:
    """Inference through a loaded :class:`phytoscope.backends.base.Backend`, i.e. the very code
    path ``phytoscope classify`` uses."""
    return backend.logits


@dataclass
class Report:
    """Evaluation of one model on one set of images."""

    classes: list[str]
    n: int
    top1: float
    per_class: dict[str, dict[str, float]]
    per_source: dict[str, dict[str, Any]]
    confusion: list[list[int]]
    thresholds: dict[str, float] = field(default_factory=dict)
    with_thresholds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "top1": self.top1,
            "per_class": self.per_class,
            "per_source": self.per_source,
            "confusion": {"classes": self.classes, "matrix": self.confusion},
            "thresholds": self.thresholds,
            "with_thresholds": self.with_thresholds,
        }


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n: int) -> np.ndarray:
    matrix = np.zeros((n, n), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def metrics(
    y_true: np.ndarray, probabilities: np.ndarray, classes: Sequence[str], sources: Sequence[str]
) -> Report:
    """Top-1, per-class precision/recall/F1 and per-source accuracy."""
    y_pred = probabilities.argmax(axis=1) if len(probabilities) else np.zeros(0, int)
    matrix = confusion_matrix(y_true, y_pred, len(classes))
    per_class = {}
    for index, name in enumerate(classes):
        tp = int(matrix[index, index])
        predicted, actual = int(matrix[:, index].sum()), int(matrix[index, :].sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": precision, "recall": recall, "f1": f1, "support": actual}
    per_source: dict[str, dict[str, Any]] = {}
    src = np.asarray(sources)
    for source in sorted(set(sources)):
        mask = src == source
        per_source[source] = {
            "top1": float((y_pred[mask] == y_true[mask]).mean()),
            "n": int(mask.sum()),
            "classes": sorted({classes[i] for i in y_true[mask]}),
        }
    return Report(
        classes=list(classes),
        n=len(y_true),
        top1=float((y_pred == y_true).mean()) if len(y_true) else 0.0,
        per_class=per_class,
        per_source=per_source,
        confusion=matrix.tolist(),
    )


MIN_PREDICTIONS = 20
"""Fewer validation predictions of a class than this give no threshold (0): with 8 images one
confident mistake would send nearly every real cell of that class to "unknown", which for a
harmful genus is the worse error."""


def precision_thresholds(
    y_true: np.ndarray,
    probabilities: np.ndarray,
    classes: Sequence[str],
    target: float,
    min_predictions: int = MIN_PREDICTIONS,
) -> dict[str, float]:
    """Per class, the lowest confidence at which precision of that class is >= ``target``.

    Candidates are the confidences of the predictions themselves, scanned from high to low;
    the answer is the lowest one whose precision (of predictions at or above it) still meets
    the target. A class that never reaches it gets the highest confidence seen (nearly
    everything becomes "unknown": the honest answer); a class predicted fewer than
    ``min_predictions`` times gets 0 (see :data:`MIN_PREDICTIONS`).
    """
    y_pred = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    out: dict[str, float] = {}
    for index, name in enumerate(classes):
        mask = y_pred == index
        if mask.sum() < max(1, min_predictions):
            out[name] = 0.0
            continue
        conf = confidence[mask]
        correct = (y_true[mask] == index).astype(np.float64)
        order = np.argsort(-conf)
        conf, correct = conf[order], correct[order]
        precision = np.cumsum(correct) / np.arange(1, len(correct) + 1)
        ok = np.nonzero(precision >= target)[0]
        if len(ok) == 0:
            out[name] = float(conf[0])
            continue
        # lowest threshold: the last position where the running precision still meets target
        last = int(ok[-1])
        out[name] = 0.0 if last == len(conf) - 1 and precision[-1] >= target else float(conf[last])
    return out


def apply_thresholds(
    y_true: np.ndarray,
    probabilities: np.ndarray,
    classes: Sequence[str],
    thresholds: dict[str, float],
) -> dict[str, float]:
    """Coverage (share not sent to "unknown") and accuracy of the rest."""
    y_pred = probabilities.argmax(axis=1)
    limits = np.array([thresholds.get(c, 0.0) for c in classes])
    kept = probabilities.max(axis=1) >= limits[y_pred]
    coverage = float(kept.mean()) if len(kept) else 0.0
    accuracy = float((y_pred[kept] == y_true[kept]).mean()) if kept.any() else 0.0
    return {"coverage": coverage, "top1_of_kept": accuracy}


def evaluate_probabilities(
    y_true: np.ndarray,
    probabilities: np.ndarray,
    classes: Sequence[str],
    sources: Sequence[str],
    thresholds: dict[str, float] | None = None,
) -> Report:
    report = metrics(y_true, probabilities, classes, sources)
    if thresholds:
        report.thresholds = dict(thresholds)
        report.with_thresholds = apply_thresholds(y_true, probabilities, classes, thresholds)
    return report


def probabilities_of(logits: np.ndarray) -> np.ndarray:
    return softmax(logits.astype(np.float64))


# -- files -----------------------------------------------------------------------------------


def write_confusion_csv(report: Report, path: Path) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["true \\ predicted", *report.classes])
        for name, row in zip(report.classes, report.confusion, strict=True):
            writer.writerow([name, *row])
    return path


def write_confusion_png(report: Report, path: Path, title: str = "") -> Path:
    """Row-normalised confusion matrix with counts, readable at a glance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(report.confusion, dtype=np.float64)
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    n = len(report.classes)
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * n, 1.0 + 0.65 * n), dpi=100)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), report.classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), report.classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(n):
        for j in range(n):
            if matrix[i, j]:
                ax.text(
                    j,
                    i,
                    str(int(matrix[i, j])),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if share[i, j] > 0.5 else "black",
                )
    ax.set_title(title or f"top-1 {report.top1:.1%} on {report.n} images", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(
    report: Report, folder: Path, stem: str = "evaluation", title: str = ""
) -> dict[str, Path]:
    """JSON report, confusion CSV and PNG under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": folder / f"{stem}.json",
        "confusion_csv": folder / f"{stem}_confusion.csv",
        "confusion_png": folder / f"{stem}_confusion.png",
    }
    paths["json"].write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    write_confusion_csv(report, paths["confusion_csv"])
    write_confusion_png(report, paths["confusion_png"], title)
    return paths


def card_accuracy(
    test: Report, val: Report | None = None, target_precision: float | None = None
) -> dict[str, Any]:
    """The ``accuracy`` dict of a model card (compact: no full matrix)."""
    out: dict[str, Any] = {
        "split": "test",
        "n_test": test.n,
        "test_top1": round(test.top1, 4),
        "per_source": {
            k: {"top1": round(v["top1"], 4), "n": v["n"], "classes": v["classes"]}
            for k, v in test.per_source.items()
        },
        "per_class": {
            k: {m: (round(x, 4) if isinstance(x, float) else x) for m, x in v.items()}
            for k, v in test.per_class.items()
        },
    }
    if val is not None:
        out["val_top1"] = round(val.top1, 4)
    if target_precision is not None:
        out["threshold_target_precision"] = target_precision
        out["threshold_min_predictions"] = MIN_PREDICTIONS
    if test.with_thresholds:
        out["test_with_thresholds"] = {k: round(v, 4) for k, v in test.with_thresholds.items()}
    return out
