"""Shared post-processing and the classifier that ties a backend to its model card.

Every backend returns raw logits and, where the model has one, its novelty score; softmax,
top-k and both "unknown" rules (novelty above the card's threshold, or the top probability
below its class's threshold) live here once, so every engine, the command line and the
window decide alike and parity tests compare like with like.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from phytoscope.backends.base import Backend
from phytoscope.imaging.preprocess import preprocess_batch
from phytoscope.modelcard import UNKNOWN, ModelCard
from phytoscope.types import Prediction, Roi


def softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


NOVEL = "novel"
"""``unknown_reason`` of an organism unlike every class the model was trained on."""
UNSURE = "unsure"
"""``unknown_reason`` of an organism whose top class is below that class's threshold."""

Decision = tuple[str, float, tuple[tuple[str, float], ...], str]
"""(label, confidence, top-k, unknown reason)"""


def decide(
    probabilities: np.ndarray,
    card: ModelCard,
    k: int = 3,
    novelty: np.ndarray | None = None,
    from_frame: Sequence[bool] | None = None,
) -> list[Decision]:
    """(label, confidence, top-k, reason) per row.

    The label is "unknown" with reason :data:`NOVEL` when ``novelty`` is above the card's
    novelty threshold (checked first: a confident softmax over the wrong set of classes is
    exactly what it guards against; rows ``from_frame``, cut out of a whole frame, are held
    to the card's frame threshold where it has one), or :data:`UNSURE` below the class's
    confidence threshold; the reason is "" for an identified organism.
    """
    names = card.class_names
    thresholds = np.array([c.threshold for c in card.classes], dtype=np.float32)
    limits: list[float] | None = None
    if card.novelty is not None and novelty is not None:
        framed = [False] * len(probabilities) if from_frame is None else list(from_frame)
        limits = [card.novelty.threshold_for(f) for f in framed]
    k = min(k, len(names))
    order = np.argsort(-probabilities, axis=1)[:, :k]
    out: list[Decision] = []
    for n, (row, ranked) in enumerate(zip(probabilities, order, strict=True)):
        best = int(ranked[0])
        confidence = float(row[best])
        reason = ""
        if limits is not None and float(novelty[n]) > limits[n]:  # type: ignore[index]
            reason = NOVEL
        elif confidence < thresholds[best]:
            reason = UNSURE
        label = UNKNOWN if reason else names[best]
        top = tuple((names[int(i)], float(row[int(i)])) for i in ranked)
        out.append((label, confidence, top, reason))
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
        outputs = self.backend.infer(batch)
        probabilities = softmax(outputs.logits.astype(np.float64))
        decisions = decide(
            probabilities,
            self.card,
            self.top_k,
            outputs.novelty,
            from_frame=[roi.segmented for roi in rois],
        )
        novelty = outputs.novelty
        # one small float32 row per organism (20 classes: 80 bytes) keeps every class's score
        scores = probabilities.astype(np.float32)
        return [
            Prediction(
                source=roi.source,
                roi_index=roi.index,
                label=label,
                confidence=confidence,
                top_k=top,
                box=roi.box,
                flags=roi.flags,
                novelty=None if novelty is None else float(novelty[n]),
                unknown_reason=reason,
                scores=scores[n],
            )
            for n, (roi, (label, confidence, top, reason)) in enumerate(
                zip(rois, decisions, strict=True)
            )
        ]

    def predict(self, rois: Sequence[Roi]) -> list[Prediction]:
        batch = preprocess_batch([roi.image for roi in rois], self.card.input)
        return self.predict_tensor(batch, rois)
