"""The open-set head: logits and a novelty score fitted on frozen-backbone embeddings.

The shipped network is a frozen MobileNetV2 backbone with a linear head (the fine-tuned stage
never beat it, models/README.md), so everything that decides *what* an organism is, and
*whether it is like anything the model was taught*, lives in a few small matrices fitted on the
backbone's pooled embeddings. That makes two things cheap enough for a lab's own 2-core PC:

* the novelty score: the cosine distance ``1 - cosine(embedding, prototype)`` to the nearest
  of k-means prototypes of each class's training embeddings, divided by that class's own
  scale (the median distance of its organisms to their class, cross-fitted). An organism
  unlike every class is far from all prototypes, whatever its softmax says (Sun et al. 2022
  use the same normalised-feature nearest-neighbour distance; prototypes keep it to a few
  hundred vectors inside the exported graph). The per-class scale matters because classes
  differ in spread: one threshold on raw distances is loose around a tight genus (a new genus
  next to it passes as it) and strict around a varied one (its own odd members fail);
* re-fitting: teaching a new genus (``phytoscope learn``) refits the head on stored embeddings,
  with no backbone training and no TensorFlow.

Only numpy and scipy here; :mod:`phytoscope.training.onnx_head` turns a :class:`Head` into
graph nodes, so every backend computes the same numbers as :func:`head_logits` and
:func:`head_novelty`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from phytoscope.errors import Cancelled, ModelError
from phytoscope.training.blas import one_blas_thread

METHOD = "cosine-prototypes"
"""The card's ``novelty.method`` for this head."""

EPS = 1e-6


@dataclass(frozen=True)
class Head:
    """A fitted head: ``logits = features @ weights + bias``; novelty against ``prototypes``."""

    classes: tuple[str, ...]
    weights: np.ndarray
    """(D, C) float32."""
    bias: np.ndarray
    """(C,) float32."""
    prototypes: np.ndarray
    """(M, D) float32, unit-norm."""
    prototype_class: np.ndarray
    """(M,) int: the class index of each prototype."""
    threshold: float
    """Novelty above this is "unknown"."""
    coverage: float = 0.95
    """The share of held-out training embeddings of the known classes kept below
    ``threshold`` when it was chosen."""
    softmax_weight: float = 0.0
    """Weight of ``1 - max softmax`` added to the cosine novelty: an organism close to a
    prototype but torn between classes (a held-out genus between two known ones) is less
    likely to be a known class than its cosine alone says (models/README.md)."""
    class_scale: np.ndarray | None = None
    """(C,) divisor of the cosine distance to each class's prototypes (None: 1 for all);
    see :func:`class_scales`."""
    scale_quantile: float | None = None
    """The quantile of each class's cross-fitted distances ``class_scale`` was taken at."""

    @property
    def prototype_scale(self) -> np.ndarray | None:
        """(M,) the divisor of each prototype's distance (its class's scale)."""
        if self.class_scale is None:
            return None
        return np.asarray(self.class_scale, np.float32)[self.prototype_class]

    @property
    def dim(self) -> int:
        return int(self.weights.shape[0])

    def details(self) -> dict[str, Any]:
        """Facts for the model card's ``novelty.details``."""
        counts = np.bincount(self.prototype_class, minlength=len(self.classes))
        distance = "(1 - cosine similarity of the pooled backbone embedding to a prototype)"
        out: dict[str, Any] = {
            "prototypes": int(len(self.prototypes)),
            "prototypes_per_class": {c: int(n) for c, n in zip(self.classes, counts, strict=True)},
            "score": (
                f"min over prototypes of {distance} / its class's scale"
                if self.class_scale is not None
                else f"min over prototypes of {distance}"
            )
            + (f" + {self.softmax_weight:g} x (1 - max softmax)" if self.softmax_weight else ""),
            "coverage": self.coverage,
            "softmax_weight": self.softmax_weight,
        }
        if self.class_scale is not None:
            out["scale_quantile"] = self.scale_quantile
            out["class_scale"] = {
                c: round(float(v), 6) for c, v in zip(self.classes, self.class_scale, strict=True)
            }
        return out


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (an all-zero row stays zero), as the graph does."""
    x = np.asarray(x, np.float32)
    norms = np.sqrt(np.maximum((x * x).sum(axis=1, keepdims=True), EPS * EPS))
    return x / norms


def head_logits(head: Head, features: np.ndarray) -> np.ndarray:
    return np.asarray(features, np.float32) @ head.weights + head.bias


def novelty_against(
    prototypes: np.ndarray, features: np.ndarray, scale: np.ndarray | None = None
) -> np.ndarray:
    """The least ``(1 - cosine) / scale`` of each row of ``features`` to ``prototypes`` (unit
    rows; ``scale`` (M,) per prototype, None for 1)."""
    if len(prototypes) == 0:
        return np.ones(len(features), np.float32)
    distances = 1.0 - unit_rows(features) @ prototypes.T
    if scale is not None:
        distances = distances / np.asarray(scale, np.float32)[None, :]
    return distances.min(axis=1).astype(np.float32)


def max_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.asarray(logits, np.float64) - np.max(logits, axis=1, keepdims=True)
    p = np.exp(shifted)
    return (p.max(axis=1) / p.sum(axis=1)).astype(np.float32)


def head_novelty(head: Head, features: np.ndarray) -> np.ndarray:
    """The score the exported graph computes: cosine novelty (+ the softmax term)."""
    score = novelty_against(head.prototypes, features, head.prototype_scale)
    if head.softmax_weight:
        score = score + np.float32(head.softmax_weight) * (
            1.0 - max_softmax(head_logits(head, features))
        )
    return score.astype(np.float32)


def threshold_at_coverage(known_scores: np.ndarray, coverage: float) -> float:
    """The novelty below which ``coverage`` of the known organisms' scores lie."""
    if not 0.0 < coverage <= 1.0:
        raise ModelError(f"coverage must be in (0, 1], not {coverage}")
    scores = np.asarray(known_scores, np.float64)
    if scores.size == 0:
        raise ModelError("no known-class scores to choose a novelty threshold from")
    return float(np.quantile(scores, coverage))


# -- fitting ------------------------------------------------------------------------------


def _check(features: np.ndarray, labels: np.ndarray, n_classes: int) -> None:
    if features.ndim != 2 or len(features) != len(labels):
        raise ModelError(f"features {features.shape} and labels {labels.shape} do not match")
    if len(features) == 0:
        raise ModelError("no embeddings to fit a head on")
    if labels.min() < 0 or labels.max() >= n_classes:
        raise ModelError("a label is outside the class list")


def fit_logistic(
    features: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    l2: float = 1e-3,
    max_iter: int = 500,
) -> tuple[np.ndarray, np.ndarray]:
    """Class-balanced multinomial logistic regression (L-BFGS); returns ``(W (D, C), b (C,))``.

    Features are standardised for the optimiser and the scaling folded back into ``W`` and
    ``b``, so the exported graph multiplies raw embeddings. Each class weighs the same in the
    loss whatever its image count (a 16-image Mesodinium must not be drowned by 860
    zooplankton); ``l2`` is per standardised weight.
    """
    from scipy.optimize import minimize

    x = np.asarray(features, np.float64)
    y = np.asarray(labels, np.int64)
    _check(x, y, n_classes)
    mean = x.mean(axis=0)
    scale = x.std(axis=0) + 1e-3
    z = (x - mean) / scale
    n, d = z.shape
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    present = counts > 0
    sample_w = (1.0 / np.where(present, counts, 1.0))[y] / present.sum()
    onehot = np.zeros((n, n_classes))
    onehot[np.arange(n), y] = 1.0

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w = theta[: d * n_classes].reshape(d, n_classes)
        b = theta[d * n_classes :]
        logits = z @ w + b
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        nll = -(sample_w * np.log(np.maximum((p * onehot).sum(axis=1), 1e-12))).sum()
        g = (p - onehot) * sample_w[:, None]
        grad_w = z.T @ g + l2 * w
        grad_b = g.sum(axis=0)
        value = nll + 0.5 * l2 * float((w * w).sum())
        return value, np.concatenate([grad_w.ravel(), grad_b])

    theta0 = np.zeros(d * n_classes + n_classes)
    result = minimize(loss, theta0, jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
    w = result.x[: d * n_classes].reshape(d, n_classes)
    b = result.x[d * n_classes :]
    weights = w / scale[:, None]
    bias = b - mean @ weights
    return weights.astype(np.float32), bias.astype(np.float32)


def fit_prototypes(
    features: np.ndarray, labels: np.ndarray, n_classes: int, per_class: int = 16, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``per_class`` unit-norm k-means centres of each class's unit embeddings.

    A class with no more images than ``per_class`` keeps every image as a prototype.
    """
    from scipy.cluster.vq import kmeans2

    units = unit_rows(features)
    protos: list[np.ndarray] = []
    owners: list[np.ndarray] = []
    for c in range(n_classes):
        members = units[labels == c]
        if len(members) == 0:
            continue
        if len(members) <= per_class:
            centres = members
        else:
            centres, _ = kmeans2(members.astype(np.float64), per_class, minit="++", seed=seed + c)
            centres = unit_rows(centres[np.isfinite(centres).all(axis=1)])
        protos.append(centres.astype(np.float32))
        owners.append(np.full(len(centres), c, np.int64))
    return np.concatenate(protos), np.concatenate(owners)


def _folds(
    labels: np.ndarray, folds: int, seed: int, groups: np.ndarray | None = None
) -> np.ndarray:
    """A stratified fold number for each item (classes dealt round-robin after a shuffle);
    items sharing a ``groups`` value (augmented views of one image) share their fold."""
    rng = np.random.default_rng(seed)
    fold = np.zeros(len(labels), np.int64)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if groups is None:
            rng.shuffle(idx)
            fold[idx] = np.arange(len(idx)) % folds
            continue
        members, inverse = np.unique(np.asarray(groups)[idx], return_inverse=True)
        order = rng.permutation(len(members))
        fold[idx] = (np.argsort(order) % folds)[inverse]
    return fold


def held_out_distances(
    features: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    per_class: int = 16,
    folds: int = 5,
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> np.ndarray:
    """(N, C): each training embedding's cosine distance to each class's nearest prototype,
    the prototypes fitted *without* its fold (inf for a class left without prototypes).

    Distances of the embeddings the prototypes were fitted on are optimistic (an image that
    is its own prototype scores 0), so scales and thresholds are chosen on these. Rows with
    the same ``groups`` value (augmented views of one image) are held out together: a view
    whose twin is a prototype is as optimistic as the image itself, and most so for a rare
    class whose every image is a prototype.
    """
    fold = _folds(labels, folds, seed, groups)
    out = np.full((len(labels), n_classes), np.inf, np.float32)
    for k in range(folds):
        test = fold == k
        if not test.any():
            continue
        protos, owners = fit_prototypes(features[~test], labels[~test], n_classes, per_class, seed)
        distances = 1.0 - unit_rows(features[test]) @ protos.T
        for c in np.unique(owners):
            out[np.flatnonzero(test)[:, None], c] = distances[:, owners == c].min(
                axis=1, keepdims=True
            )
    return out


def class_scales(distances: np.ndarray, labels: np.ndarray, quantile: float = 0.5) -> np.ndarray:
    """(C,) each class's spread: the ``quantile`` of its own organisms' cross-fitted distance
    to their class (:func:`held_out_distances`), divided by the median over classes so that
    scaled scores stay near raw cosine distances. A class with no finite distance gets 1.

    Dividing by it makes the novelty a distance *in units of the class's own spread*, so one
    threshold means the same for a tight genus and a varied one; measured on the
    leave-classes-out study it raised the held-out unknown share by 4 points at the same
    coverage (models/README.md).
    """
    labels = np.asarray(labels, np.int64)
    n = distances.shape[1]
    own = distances[np.arange(len(labels)), labels]
    raw = np.ones(n, np.float64)
    for c in range(n):
        mine = own[(labels == c) & np.isfinite(own)]
        if len(mine):
            raw[c] = max(float(np.quantile(mine, quantile)), EPS)
    return (raw / float(np.median(raw))).astype(np.float32)


def scaled_novelty(distances: np.ndarray, scale: np.ndarray | None) -> np.ndarray:
    """The novelty :func:`novelty_against` gives, from a (N, C) class-distance matrix."""
    scaled = distances if scale is None else distances / np.asarray(scale)[None, :]
    return np.min(scaled, axis=1).astype(np.float32)


def fit_head(
    features: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    *,
    per_class: int = 16,
    l2: float = 1e-3,
    seed: int = 0,
    coverage: float = 0.95,
    softmax_weight: float = 0.0,
    scale_quantile: float | None = None,
    cancel: Callable[[], bool] | None = None,
) -> Head:
    """Fit logits, prototypes and the novelty threshold on embeddings of known classes.

    The threshold keeps ``coverage`` of the known classes' *held-out* embeddings (5-fold
    cross-fitted prototypes) below it, so about ``1 - coverage`` of real organisms of known
    classes are expected to come out "unknown": the price of calling unknown organisms so.
    """
    features = np.asarray(features, np.float32)
    labels = np.asarray(labels, np.int64)
    n = len(classes)
    _check(features, labels, n)
    if cancel is not None and cancel():
        raise Cancelled("cancelled")
    with one_blas_thread():  # tiny BLAS calls: threads cost more than they give
        weights, bias = fit_logistic(features, labels, n, l2=l2)
        if cancel is not None and cancel():
            raise Cancelled("cancelled")
        return with_novelty(
            features,
            labels,
            classes,
            weights,
            bias,
            per_class,
            seed,
            coverage,
            softmax_weight,
            scale_quantile,
        )


def with_novelty(
    features: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    weights: np.ndarray,
    bias: np.ndarray,
    per_class: int,
    seed: int,
    coverage: float,
    softmax_weight: float,
    scale_quantile: float | None = None,
) -> Head:
    """The head of fitted logits ``weights``/``bias`` with its novelty part: prototypes of
    every class, their class scales (with ``scale_quantile``) and the threshold keeping
    ``coverage`` of the cross-fitted held-out scores (the softmax term, when weighted, from
    the head's own in-sample logits)."""
    n = len(classes)
    protos, owners = fit_prototypes(features, labels, n, per_class, seed)
    distances = held_out_distances(features, labels, n, per_class, seed=seed)
    scale = None if scale_quantile is None else class_scales(distances, labels, scale_quantile)
    held = scaled_novelty(distances, scale)
    if softmax_weight:
        held = held + softmax_weight * (1.0 - max_softmax(features @ weights + bias))
    return Head(
        classes=tuple(classes),
        weights=weights,
        bias=bias,
        prototypes=protos,
        prototype_class=owners,
        threshold=threshold_at_coverage(held, coverage),
        coverage=coverage,
        softmax_weight=softmax_weight,
        class_scale=scale,
        scale_quantile=scale_quantile,
    )


def cross_validate(
    features: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    *,
    folds: int = 5,
    seed: int = 0,
    **fit_kw: Any,
) -> dict[str, Any]:
    """Stratified k-fold figures per class: top-1, coverage and top-1 of the classified.

    A class with fewer images than ``folds`` is tested in as many folds as it has images.
    """
    features = np.asarray(features, np.float32)
    labels = np.asarray(labels, np.int64)
    predicted, unknown = out_of_fold(
        features,
        labels,
        lambda x, y: fit_head(x, y, classes, seed=seed, **fit_kw),
        folds,
        seed,
    )
    per_class = per_class_figures(labels, predicted, unknown, classes)
    return {"folds": folds, "seed": seed, "per_class": per_class}


def out_of_fold(
    features: np.ndarray,
    labels: np.ndarray,
    fit: Callable[[np.ndarray, np.ndarray], Head],
    folds: int = 5,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Each embedding's predicted class and "unknown" decision by a head ``fit`` on the
    other stratified folds (-1 / False where a fold could not be held out)."""
    fold = _folds(labels, folds, seed)
    predicted = np.full(len(labels), -1, np.int64)
    unknown = np.zeros(len(labels), bool)
    for k in range(folds):
        test = fold == k
        if not test.any() or not (~test).any():
            continue
        head = fit(features[~test], labels[~test])
        predicted[test] = head_logits(head, features[test]).argmax(axis=1)
        unknown[test] = head_novelty(head, features[test]) > head.threshold
    return predicted, unknown


def per_class_figures(
    labels: np.ndarray, predicted: np.ndarray, unknown: np.ndarray, classes: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Per class: images, top-1, coverage (share not "unknown") and top-1 of the classified."""
    out: dict[str, dict[str, Any]] = {}
    for c, name in enumerate(classes):
        mine = labels == c
        if not mine.any():
            continue
        right = predicted[mine] == c
        kept = ~unknown[mine]
        out[name] = {
            "images": int(mine.sum()),
            "top1": float(right.mean()),
            "coverage": float(kept.mean()),
            "top1_classified": float(right[kept].mean()) if kept.any() else None,
        }
    return out


def novelty_settings(card: Any) -> dict[str, Any]:
    """A model's open-set choices (prototypes per class, coverage) from its card, so that a
    head refitted from it (``phytoscope learn``) says "unknown" by the same rule."""
    novelty = getattr(card, "novelty", None)
    if novelty is None or novelty.method != METHOD:
        return {}
    details = novelty.details or {}
    out: dict[str, Any] = {}
    per_class = max((details.get("prototypes_per_class") or {}).values(), default=0)
    if per_class:
        out["per_class"] = int(per_class)
    if details.get("coverage"):
        out["coverage"] = float(details["coverage"])
    if details.get("softmax_weight"):
        out["softmax_weight"] = float(details["softmax_weight"])
    if details.get("scale_quantile") is not None:
        out["scale_quantile"] = float(details["scale_quantile"])
    return out
