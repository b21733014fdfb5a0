"""Open-set evaluation by leaving classes and sources out, on cached backbone embeddings.

A model's own test split cannot say how it behaves on organisms it never saw: every test
image belongs to a training class and comes from a training instrument. Refitting the head
(:func:`phytoscope.training.openset.fit_head`) without a class, or without an instrument,
turns the data we have into that situation, and because the backbone is frozen the refit is
exact: the same head the shipped model would have had without that class.

Measured per held-out class and per source, never pooled (a pooled figure hides that one
class is always caught and another never):

* leave classes out: share of the held-out organisms called "unknown" (novelty above the
  threshold), share given a HAB-relevant label (the harmful failure), AUROC of the novelty
  score (held-out vs known test organisms), and on the known classes' test images the top-1
  of the organisms classified and the coverage (share classified);
* leave one source out: the head trained without an instrument, tested on its images; a class
  that only that instrument has becomes a held-out class (should be "unknown"), a class
  others have too is scored by top-1; plus the eyepiece frames, an instrument no head saw;
* the full model's behaviour on unlabelled images and the eyepiece frames.

The threshold rule never looks at held-out data: the novelty of the known classes'
*validation* images, at the :class:`Method`'s coverage.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import rankdata

from phytoscope.training import openset
from phytoscope.training.blas import one_blas_thread
from phytoscope.training.dataset import TAXONOMY
from phytoscope.training.embedcache import Embeddings

HAB_CLASSES = frozenset(c.name for c in TAXONOMY if c.hab)

CLASS_GROUPS: tuple[tuple[str, ...], ...] = (
    ("colonial cyanobacteria", "filamentous cyanobacteria", "Dolichospermum"),
    ("Tripos", "ciliate", "Mesodinium"),
)
"""Groups held out together, on top of every single class: all cyanobacteria (a new user's
lake without any of them), and all marine protists."""


@dataclass(frozen=True)
class Method:
    """How a head is fitted and its threshold chosen (the knobs the study compares)."""

    per_class: int = 16
    """prototypes per class (k-means centres of its unit-norm training features)"""
    l2: float = 1e-3
    coverage: float = 0.90
    """share of the known classes' validation organisms kept below the threshold"""
    views: tuple[str, ...] = ("original", "basic")
    """training rows: originals plus these augmented views (embedcache.VIEWS)"""
    frames: bool = False
    """also train on the training frames' segments (debris as hard negatives)"""
    softmax_weight: float = 0.0
    """weight of ``1 - max softmax`` added to the cosine novelty (openset.Head)"""
    scale_quantile: float | None = None
    """divide each class's cosine distances by this quantile of its own (openset.class_scales)"""

    @property
    def name(self) -> str:
        views = "+".join(self.views[1:])
        frames = "+frames" if self.frames else ""
        softmax = f"_sm{self.softmax_weight:g}" if self.softmax_weight else ""
        scale = "" if self.scale_quantile is None else f"_scale{self.scale_quantile:g}"
        return (
            f"k{self.per_class}_l2{self.l2:g}_cov{self.coverage:g}_{views}{frames}{softmax}{scale}"
        )


PREVIOUS = Method(per_class=64, l2=1e-2, coverage=0.87, frames=True, softmax_weight=0.25)
"""The method of model 1.2.0: raw cosine distances, one threshold for every class."""

CHOSEN = replace(PREVIOUS, scale_quantile=0.5)
"""The method the shipped model uses (chosen by measurement: models/README.md)."""

STUDY: tuple[Method, ...] = (
    Method(per_class=4),
    Method(per_class=16),
    Method(per_class=64),
    Method(per_class=64, coverage=0.85),
    Method(per_class=64, coverage=0.87, frames=True),
    Method(per_class=64, coverage=0.87, views=("original", "instrument")),
    Method(per_class=64, l2=1e-2, coverage=0.87, softmax_weight=0.25),
    PREVIOUS,
    replace(PREVIOUS, scale_quantile=0.9),
    CHOSEN,
)
"""The comparison grid of ``phytoscope evaluate --open-set --methods study``."""


def auroc(positive: np.ndarray, negative: np.ndarray) -> float | None:
    """Probability that a random positive scores above a random negative (ties half)."""
    if len(positive) == 0 or len(negative) == 0:
        return None
    ranks = rankdata(np.concatenate([positive, negative]))
    u = ranks[: len(positive)].sum() - len(positive) * (len(positive) + 1) / 2
    return float(u / (len(positive) * len(negative)))


def _train_mask(emb: Embeddings, method: Method, classes: Iterable[str]) -> np.ndarray:
    sets = ["known", "frames"] if method.frames else ["known"]
    return (
        np.isin(emb.set, sets)
        & (emb.split == "train")
        & np.isin(emb.view, method.views)
        & np.isin(emb.cls, list(classes))
    )


def originals(emb: Embeddings, set_name: str = "known", split: str | None = None) -> np.ndarray:
    mask = (emb.set == set_name) & (emb.view == "original")
    return mask if split is None else mask & (emb.split == split)


Memo = dict[tuple[Any, ...], tuple[np.ndarray, np.ndarray]]
"""Logistic weights by (training rows, classes, l2), prototypes and cross-fitted class
distances (with their labels) by (training rows, classes, per class): methods that differ in
one knob share the rest, which makes a grid of methods several times cheaper."""


def fit(
    emb: Embeddings,
    classes: Sequence[str],
    method: Method,
    train: np.ndarray | None = None,
    memo: Memo | None = None,
) -> openset.Head:
    """A head on the training rows of ``classes`` (or on ``train``), thresholded on the
    same classes' validation originals (of the sources trained on).

    Built from :func:`openset.fit_logistic` and :func:`openset.fit_prototypes` rather than
    :func:`openset.fit_head`, whose cross-fitted threshold would be replaced here anyway:
    validation images are the fairer stand-in for new organisms of known classes.
    """
    classes = tuple(classes)
    rows = _train_mask(emb, method, classes) if train is None else train
    index = {c: i for i, c in enumerate(classes)}
    labels = np.array([index[c] for c in emb.cls[rows]], dtype=np.int64)
    features = emb.features[rows]
    memo = {} if memo is None else memo
    rows_key = np.packbits(rows).tobytes()
    logistic_key = ("logistic", rows_key, classes, method.l2)
    if logistic_key not in memo:
        with one_blas_thread():  # tiny BLAS calls: threads cost more than they give
            memo[logistic_key] = openset.fit_logistic(features, labels, len(classes), l2=method.l2)
    weights, bias = memo[logistic_key]
    protos_key = ("prototypes", rows_key, classes, method.per_class)
    if protos_key not in memo:
        memo[protos_key] = openset.fit_prototypes(features, labels, len(classes), method.per_class)
    protos, owners = memo[protos_key]
    scale = None
    if method.scale_quantile is not None:
        distances_key = ("distances", rows_key, classes, method.per_class)
        if distances_key not in memo:
            distances = openset.held_out_distances(
                features, labels, len(classes), method.per_class, groups=emb.item[rows]
            )
            memo[distances_key] = (distances, labels)
        distances, _ = memo[distances_key]
        scale = openset.class_scales(distances, labels, method.scale_quantile)
    val = originals(emb, split="val") & np.isin(emb.cls, classes)
    val &= np.isin(emb.source, np.unique(emb.source[rows]))
    unthresholded = openset.Head(
        classes,
        weights,
        bias,
        protos,
        owners,
        0.0,
        method.coverage,
        method.softmax_weight,
        class_scale=scale,
        scale_quantile=method.scale_quantile,
    )
    threshold = openset.threshold_at_coverage(
        openset.head_novelty(unthresholded, emb.features[val]), method.coverage
    )
    return replace(unthresholded, threshold=threshold)


@dataclass(frozen=True)
class Calls:
    """What a head says about some rows: the predicted class and whether it is unknown."""

    predicted: np.ndarray  # (N,) str
    unknown: np.ndarray  # (N,) bool
    novelty: np.ndarray  # (N,)


def calls(head: openset.Head, features: np.ndarray) -> Calls:
    novelty = openset.head_novelty(head, features)
    predicted = np.array(head.classes)[openset.head_logits(head, features).argmax(axis=1)]
    return Calls(predicted, novelty > head.threshold, novelty)


def known_figures(head: openset.Head, emb: Embeddings, rows: np.ndarray) -> dict[str, Any]:
    """Top-1 (all, and of the classified), coverage, per class, on known-class rows."""
    c = calls(head, emb.features[rows])
    truth = emb.cls[rows]
    right = c.predicted == truth
    kept = ~c.unknown
    per_class = {}
    for cls in head.classes:
        m = truth == cls
        if m.any():
            per_class[cls] = {
                "n": int(m.sum()),
                "top1": float(right[m].mean()),
                "coverage": float(kept[m].mean()),
                "top1_of_classified": float(right[m & kept].mean()) if (m & kept).any() else None,
            }
    return {
        "n": int(rows.sum()),
        "top1": float(right.mean()),
        "coverage": float(kept.mean()),
        "top1_of_classified": float(right[kept].mean()) if kept.any() else None,
        "per_class": per_class,
    }


def novel_figures(
    head: openset.Head, features: np.ndarray, known_novelty: np.ndarray | None = None
) -> dict[str, Any]:
    """Share called unknown, share given a HAB-relevant label, AUROC against known rows."""
    c = calls(head, features)
    hab = ~c.unknown & np.isin(c.predicted, list(HAB_CLASSES))
    labels, counts = np.unique(c.predicted[~c.unknown], return_counts=True)
    out: dict[str, Any] = {
        "n": len(features),
        "unknown": float(c.unknown.mean()) if len(features) else None,
        "called_hab": float(hab.mean()) if len(features) else None,
        "called": {str(k): int(v) for k, v in zip(labels, counts, strict=True)},
    }
    if known_novelty is not None:
        out["auroc"] = auroc(c.novelty, known_novelty)
    return out


def leave_classes_out(
    emb: Embeddings,
    classes: Sequence[str],
    method: Method,
    groups: Iterable[tuple[str, ...]] | None = None,
    memo: Memo | None = None,
) -> list[dict[str, Any]]:
    """One row per held-out class or group: the head refitted without it (module doc)."""
    groups = CLASS_GROUPS if groups is None else groups
    held_sets = [(c,) for c in classes] + [g for g in groups if set(g) <= set(classes)]
    rows = []
    for held in held_sets:
        kept = [c for c in classes if c not in held]
        head = fit(emb, kept, method, memo=memo)
        test = originals(emb, split="test") & np.isin(emb.cls, kept)
        known_novelty = openset.head_novelty(head, emb.features[test])
        row: dict[str, Any] = {"held_out": list(held), "threshold": head.threshold}
        row["known_test"] = known_figures(head, emb, test)
        row["held_out_classes"] = {
            c: novel_figures(head, emb.features[originals(emb) & (emb.cls == c)], known_novelty)
            for c in held
        }
        rows.append(row)
    return rows


def leave_source_out(
    emb: Embeddings, classes: Sequence[str], method: Method, memo: Memo | None = None
) -> list[dict[str, Any]]:
    """One row per known source: trained without it, tested on all its original images;
    then the eyepiece frames (no head saw that instrument) with the full training set."""
    out = []
    known = originals(emb)
    for source in sorted(np.unique(emb.source[known])):
        # a source's frame segments (source "<source>_frames") leave with it
        train = _train_mask(emb, method, classes) & ~np.char.startswith(emb.source, source)
        trained = [c for c in classes if (train & (emb.cls == c)).any()]
        head = fit(emb, trained, method, train=train, memo=memo)
        out.append(_source_row(head, emb, known & (emb.source == source), source, trained))
    head = fit(emb, classes, method, memo=memo)
    eyepiece = originals(emb, "eyepiece")
    out.append(_source_row(head, emb, eyepiece, "eyepiece (never trained on)", list(classes)))
    return out


def _source_row(
    head: openset.Head, emb: Embeddings, rows: np.ndarray, source: str, trained: Sequence[str]
) -> dict[str, Any]:
    per_class: dict[str, Any] = {}
    for cls in sorted(np.unique(emb.cls[rows])):
        m = rows & (emb.cls == cls)
        if cls in trained:
            per_class[cls] = {"trained": True, **known_figures(head, emb, m)}
            per_class[cls].pop("per_class")
        else:
            per_class[cls] = {"trained": False, **novel_figures(head, emb.features[m])}
    return {"source": source, "threshold": head.threshold, "per_class": per_class}


def full_model(
    emb: Embeddings, classes: Sequence[str], method: Method, memo: Memo | None = None
) -> dict[str, Any]:
    """The head on all training rows: test split and unlabelled images by source."""
    head = fit(emb, classes, method, memo=memo)
    test = originals(emb, split="test")
    known_novelty = openset.head_novelty(head, emb.features[test])
    unl = originals(emb, "unlabelled")
    unlabelled = {}
    for source in sorted(np.unique(emb.source[unl])):
        m = unl & (emb.source == source)
        unlabelled[source] = novel_figures(head, emb.features[m], known_novelty)
    return {
        "threshold": head.threshold,
        "test": known_figures(head, emb, test),
        "unlabelled": unlabelled,
        "test_frames": frame_figures(head, emb),
    }


def frame_figures(head: openset.Head, emb: Embeddings) -> dict[str, Any]:
    """On the test frames' segments, per class (``detritus/other`` = no annotated cell):
    share called unknown, called a HAB-relevant class, and called its own class."""
    rows = (emb.set == "frames") & (emb.split == "test")
    out = {}
    for cls in sorted(np.unique(emb.cls[rows])):
        m = rows & (emb.cls == cls)
        c = calls(head, emb.features[m])
        named = ~c.unknown
        out[str(cls)] = {
            "n": int(m.sum()),
            "unknown": float(c.unknown.mean()),
            "called_hab": float((named & np.isin(c.predicted, list(HAB_CLASSES))).mean()),
            "called_own_class": float((named & (c.predicted == cls)).mean()),
        }
    return out


def study(
    emb: Embeddings,
    classes: Sequence[str],
    methods: Sequence[Method],
    say: Callable[[str], None] = lambda _m: None,
) -> dict[str, Any]:
    """Every evaluation for every method: the material :func:`write_results` lays out."""
    out: dict[str, Any] = {"classes": list(classes), "methods": {}}
    memo: Memo = {}
    for method in methods:
        say(f"method {method.name}")
        out["methods"][method.name] = {
            "method": asdict(method),
            "leave_classes_out": leave_classes_out(emb, classes, method, memo=memo),
            "leave_source_out": leave_source_out(emb, classes, method, memo),
            "full_model": full_model(emb, classes, method, memo),
        }
    return out


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """Per-method headline figures: held-out unknown share per held-out set (its mean
    across sets, each set weighted once, for ranking only), known top-1 of classified and
    coverage (worst and mean across refits)."""
    unknown = [
        f["unknown"]
        for row in result["leave_classes_out"]
        for f in row["held_out_classes"].values()
    ]
    kept_top1 = [
        row["known_test"]["top1_of_classified"] or 0.0 for row in result["leave_classes_out"]
    ]
    coverage = [row["known_test"]["coverage"] for row in result["leave_classes_out"]]
    auc = [
        f.get("auroc") or 0.0
        for row in result["leave_classes_out"]
        for f in row["held_out_classes"].values()
    ]
    full = result["full_model"]["test"]
    frames = result["full_model"].get("test_frames", {})
    return {
        "frames_debris_called_hab": frames.get("detritus/other", {}).get("called_hab"),
        "frames_pseudo_nitzschia_recall": frames.get("Pseudo-nitzschia", {}).get(
            "called_own_class"
        ),
        "held_out_unknown_mean": float(np.mean(unknown)),
        "held_out_unknown_min": float(np.min(unknown)),
        "auroc_mean": float(np.mean(auc)),
        "known_top1_of_classified_mean": float(np.mean(kept_top1)),
        "known_coverage_mean": float(np.mean(coverage)),
        "full_test_top1": full["top1"],
        "full_test_top1_of_classified": full["top1_of_classified"],
        "full_test_coverage": full["coverage"],
    }


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}"


def write_results(result: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """openset.json (everything), one CSV per table, and a Markdown summary."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "openset.json"}
    for res in result["methods"].values():
        res["summary"] = summary(res)
    paths["json"].write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    lco_rows, lso_rows = [], []
    for name, res in result["methods"].items():
        for row in res["leave_classes_out"]:
            k = row["known_test"]
            for cls, f in row["held_out_classes"].items():
                lco_rows.append(
                    [name, " + ".join(row["held_out"]), cls, f["n"], _pct(f["unknown"]),
                     _pct(f["called_hab"]), f"{f['auroc']:.3f}" if f.get("auroc") else "–",
                     _pct(k["top1_of_classified"]), _pct(k["coverage"]), _pct(k["top1"])]
                )  # fmt: skip
        for row in res["leave_source_out"]:
            for cls, f in row["per_class"].items():
                lso_rows.append(
                    [name, row["source"], cls, f["n"], "yes" if f["trained"] else "no",
                     _pct(f.get("top1")), _pct(f.get("top1_of_classified")),
                     _pct(f.get("coverage")), _pct(f.get("unknown")), _pct(f.get("called_hab"))]
                )  # fmt: skip
    lco_head = ["method", "held out", "class", "n", "unknown %", "called HAB %", "AUROC",
                "known top-1 of classified %", "known coverage %", "known top-1 %"]  # fmt: skip
    lso_head = ["method", "tested source", "class", "n", "class trained", "top-1 %",
                "top-1 of classified %", "coverage %", "unknown %", "called HAB %"]  # fmt: skip
    for key, head, rows in (("leave_classes_out", lco_head, lco_rows), ("leave_source_out", lso_head, lso_rows)):  # fmt: skip
        paths[key] = out_dir / f"{key}.csv"
        with open(paths[key], "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerows([head, *rows])
    lines = ["# Open-set evaluation (generated by `phytoscope evaluate --open-set`)", ""]
    lines += ["| method | held-out unknown % (mean / min) | AUROC mean | known top-1 of classified % | known coverage % | full test top-1 % (classified / coverage) | test frames: debris called HAB % / P.-n. cells found % |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, res in result["methods"].items():
        s = res["summary"]
        lines.append(
            f"| {name} | {_pct(s['held_out_unknown_mean'])} / {_pct(s['held_out_unknown_min'])} "
            f"| {s['auroc_mean']:.3f} | {_pct(s['known_top1_of_classified_mean'])} "
            f"| {_pct(s['known_coverage_mean'])} | {_pct(s['full_test_top1'])} "
            f"({_pct(s['full_test_top1_of_classified'])} / {_pct(s['full_test_coverage'])}) "
            f"| {_pct(s['frames_debris_called_hab'])} / {_pct(s['frames_pseudo_nitzschia_recall'])} |"
        )
    for key, head, rows in (("leave_classes_out", lco_head, lco_rows), ("leave_source_out", lso_head, lso_rows)):  # fmt: skip
        lines += ["", f"## {key.replace('_', ' ')}", "", "| " + " | ".join(head) + " |"]
        lines.append("|" + "---|" * len(head))
        lines += ["| " + " | ".join(str(v) for v in r) + " |" for r in rows]
    paths["md"] = out_dir / "openset.md"
    paths["md"].write_text("\n".join(lines) + "\n", encoding="utf-8")
    return paths
