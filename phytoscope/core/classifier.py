"""Shared post-processing and the classifier that ties a backend to its model card.

Every backend returns raw logits; softmax, top-k and the per-class "unknown" threshold
live here once, so parity tests compare engines on identical post-processing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from phytoscope.backends.base import Backend
from phytoscope.core.preprocess import preprocess_batch
from phytoscope.modelcard import UNKNOWN, ModelCard
from phytoscope.types import Prediction, Roi


def softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def decide(
    probabilities: np.ndarray, card: ModelCard, k: int = 3
) -> list[tuple[str, float, tuple[tuple[str, float], ...]]]:
    """(label, confidence, top-k) per row; label is "unknown" below the class threshold."""
    names = card.class_names
    thresholds = np.array([c.threshold for c in card.classes], dtype=np.float32)
    k = min(k, len(names))
    order = np.argsort(-probabilities, axis=1)[:, :k]
    out = []
    for row, ranked in zip(probabilities, order, strict=True):
        best = int(ranked[0])
        confidence = float(row[best])
        label = names[best] if confidence >= thresholds[best] else UNKNOWN
        out.append((label, confidence, tuple((names[int(i)], float(row[int(i)])) for i in ranked)))
    return out


class Classifier:
    """Pre-process, infer through an already-loaded backend, post-process.

    The backend's lifecycle belongs to the caller (a CLI ``with`` block, or the GUI's
    inference thread), so the classifier holds no resources of its own.
    """

    def __init__(self, backend: Backend, top_k: int = 3):
        self.backend = backend
        self.card = backend.card
        self.top_k = top_k

    def predict_tensor(self, batch: np.ndarray, rois: Sequence[Roi]) -> list[Prediction]:
        """Classify an already pre-processed batch (lets decoding run in other threads)."""
        if len(rois) == 0:
            return []
        probabilities = softmax(self.backend.infer(batch).astype(np.float64))
        return [
            Prediction(
                source=roi.source,
                roi_index=roi.index,
                label=label,
                confidence=confidence,
                top_k=top,
                box=roi.box,
                flags=roi.flags,
            )
            for roi, (label, confidence, top) in zip(
                rois, decide(probabilities, self.card, self.top_k), strict=True
            )
        ]

    def predict(self, rois: Sequence[Roi]) -> list[Prediction]:
        batch = preprocess_batch([roi.image for roi in rois], self.card.input)
        return self.predict_tensor(batch, rois)
