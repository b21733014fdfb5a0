"""Add classes to a trained head without refitting the classes the lab did not touch.

Refitting every column of the head on the embedding bank (a capped sample of the training
embeddings, without augmentation) loses what the base model's head learnt from all its
training images: measured on the shipped model's test split, a head refitted on its bank
reaches 91.9 % on the ten classes where the shipped head reaches 94.7 %
(models/evaluation/learn/). So learning keeps the base head's weight columns as they are and
fits only the columns of new classes and of base classes the lab gave more examples: the
same class-balanced multinomial logistic loss as :func:`phytoscope.training.openset.fit_logistic`
over *all* classes (so a new column is calibrated against the kept ones), with the kept
logits held constant. A base class then changes only where a new class now looks more like
an organism than it does, which :func:`cross_validate` measures on the bank.

The novelty part of the head (prototypes, threshold) is refitted on every class by the
open-set module's own functions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from phytoscope.errors import Cancelled, ModelError
from phytoscope.training import onnx_head, openset


def base_head(base_onnx: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(W (D, C), b (C,))`` of the linear logits layer of an exported classifier.

    Reads the initializers of the ``MatMul`` [+ ``Add``] or ``Gemm`` that multiplies the
    pooled embedding (:func:`phytoscope.training.onnx_head.feature_tensor`).
    """
    from onnx import numpy_helper

    model = onnx_head._load(base_onnx)
    source = onnx_head.feature_tensor(model)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    consumers = [n for n in model.graph.node if source in n.input]
    node = next((n for n in consumers if n.op_type in ("MatMul", "Gemm")), None)
    if node is None or node.input[1] not in inits:
        raise ModelError("the base model's logits layer has no constant weight matrix")
    w = np.asarray(inits[node.input[1]], np.float32)
    if node.op_type == "Gemm":
        attrs = {a.name: a for a in node.attribute}
        if "transB" in attrs and attrs["transB"].i:
            w = w.T
        bias = inits.get(node.input[2]) if len(node.input) > 2 else None
    else:
        adds = [n for n in model.graph.node if n.op_type == "Add" and node.output[0] in n.input]
        other = [i for n in adds for i in n.input if i != node.output[0]]
        bias = inits.get(other[0]) if other else None
    b = np.zeros(w.shape[1], np.float32) if bias is None else np.asarray(bias, np.float32)
    return w, b.reshape(-1)


def fit_columns(
    features: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray,
    bias: np.ndarray,
    free: Sequence[int],
    l2: float = 1e-3,
    max_iter: int = 500,
) -> tuple[np.ndarray, np.ndarray]:
    """``weights``/``bias`` (D, C)/(C,) with only the ``free`` columns refitted.

    Columns not in ``free`` are kept exactly (their values in ``weights`` are used); the
    free ones are fitted on standardised features and folded back to raw ones, as
    :func:`openset.fit_logistic` does, starting from and L2-pulled towards their values in
    ``weights`` (zero for a new class): a base class given a few more examples moves from
    its trained column instead of being refitted from the bank alone (measured with the
    eyepiece frames' debris and filaments taught into detritus/other and filamentous
    cyanobacteria: the other base classes lost 2.3 points on their bank instead of 3.7).
    """
    from scipy.optimize import minimize

    x = np.asarray(features, np.float64)
    y = np.asarray(labels, np.int64)
    n, d = x.shape
    c = weights.shape[1]
    free = list(free)
    if not free:
        return weights.astype(np.float32), bias.astype(np.float32)
    mean = x.mean(axis=0)
    scale = x.std(axis=0) + 1e-3
    z = (x - mean) / scale
    fixed = x @ weights.astype(np.float64) + bias.astype(np.float64)
    counts = np.bincount(y, minlength=c).astype(np.float64)
    present = counts > 0
    sample_w = (1.0 / np.where(present, counts, 1.0))[y] / present.sum()
    onehot = np.zeros((n, c))
    onehot[np.arange(n), y] = 1.0
    k = len(free)

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w = theta[: d * k].reshape(d, k)
        logits = fixed.copy()
        logits[:, free] = z @ w + theta[d * k :]
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        nll = -(sample_w * np.log(np.maximum((p * onehot).sum(axis=1), 1e-12))).sum()
        g = ((p - onehot) * sample_w[:, None])[:, free]
        shift = w - prior
        value = nll + 0.5 * l2 * float((shift * shift).sum())
        return value, np.concatenate([(z.T @ g + l2 * shift).ravel(), g.sum(axis=0)])

    # a base class given more examples starts from, and is pulled towards, its trained
    # column (in standardised units); a new class starts from zero
    prior = weights.astype(np.float64)[:, free] * scale[:, None]
    prior_b = bias.astype(np.float64)[free] + mean @ weights.astype(np.float64)[:, free]
    theta0 = np.concatenate([prior.ravel(), prior_b])
    result = minimize(loss, theta0, jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
    w_std = result.x[: d * k].reshape(d, k)
    w_raw = w_std / scale[:, None]
    out_w = weights.astype(np.float64).copy()
    out_b = bias.astype(np.float64).copy()
    out_w[:, free] = w_raw
    out_b[free] = result.x[d * k :] - mean @ w_raw
    return out_w.astype(np.float32), out_b.astype(np.float32)


def _check(cancel: Callable[[], bool] | None) -> None:
    if cancel is not None and cancel():
        raise Cancelled("learning cancelled; nothing was written")


def extended_head(
    features: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    weights: np.ndarray,
    bias: np.ndarray,
    free: Sequence[int],
    *,
    seed: int = 0,
    per_class: int = 16,
    coverage: float = 0.95,
    softmax_weight: float = 0.0,
    scale_quantile: float | None = None,
    cancel: Callable[[], bool] | None = None,
) -> openset.Head:
    """A :class:`openset.Head` whose kept columns are the base head's and whose novelty
    (prototypes, threshold) is fitted on every class's embeddings."""
    features = np.asarray(features, np.float32)
    labels = np.asarray(labels, np.int64)
    _check(cancel)
    w, b = fit_columns(features, labels, weights, bias, free)
    _check(cancel)
    return openset.with_novelty(
        features, labels, classes, w, b, per_class, seed, coverage, softmax_weight, scale_quantile
    )


def widen(weights: np.ndarray, bias: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The base head with zero columns appended for new classes (to be fitted)."""
    extra = n_classes - weights.shape[1]
    return (
        np.concatenate([weights, np.zeros((weights.shape[0], extra), np.float32)], axis=1),
        np.concatenate([bias, np.zeros(extra, np.float32)]),
    )


def cross_validate(
    features: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    weights: np.ndarray,
    bias: np.ndarray,
    free: Sequence[int],
    n_base: int,
    *,
    bank_rows: int | None = None,
    folds: int = 5,
    seed: int = 0,
    cancel: Callable[[], bool] | None = None,
    **novelty: Any,
) -> dict[str, Any]:
    """Stratified k-fold figures per class, as :func:`openset.cross_validate` reports them,
    for heads built by :func:`extended_head`. Each of the first ``n_base`` classes (the base
    head's) also gets, on its bank embeddings only (the first ``bank_rows`` rows; default
    all), ``top1_before`` (the base head's own top-1), ``top1_bank`` (the cross-validated
    new head's) and ``bank_images``: the bank is the base head's training data, so both
    figures are optimistic, but their difference is what learning cost that class
    (organisms a new column now takes). ``novelty``: ``per_class`` and ``coverage`` for
    :func:`extended_head` (:func:`openset.novelty_settings` of the base card).
    """
    features = np.asarray(features, np.float32)
    labels = np.asarray(labels, np.int64)
    predicted, unknown = openset.out_of_fold(
        features,
        labels,
        lambda x, y: extended_head(
            x, y, classes, weights, bias, free, seed=seed, cancel=cancel, **novelty
        ),
        folds,
        seed,
    )
    base_pred = (features @ weights[:, :n_base] + bias[:n_base]).argmax(axis=1)
    in_bank = np.arange(len(labels)) < (len(labels) if bank_rows is None else bank_rows)
    per_class = openset.per_class_figures(labels, predicted, unknown, classes)
    for c, name in enumerate(classes):
        mine = labels == c
        banked = mine & in_bank
        if name in per_class and c < n_base and banked.any():
            per_class[name]["bank_images"] = int(banked.sum())
            per_class[name]["top1_before"] = float((base_pred[banked] == c).mean())
            per_class[name]["top1_bank"] = float((predicted[banked] == c).mean())
    return {"folds": folds, "seed": seed, "per_class": per_class}
