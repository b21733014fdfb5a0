"""Teach the model a lab's own genera on the lab's machine: new head columns on frozen embeddings.

The base model's backbone is kept as it is, and so are its head's weight columns for the
classes the lab does not touch (:mod:`phytoscope.training.extend` says why); the columns of
new classes (and of base classes given more examples) and the open-set novelty
(:mod:`phytoscope.training.openset`) are fitted on the embeddings of the lab's images plus
the base model's *embedding bank* (a capped sample of its own training embeddings stored
beside it), so the base classes are kept without their training images. Embedding a few
hundred images and fitting a few logistic regressions takes well under a minute on two CPU
cores; no TensorFlow is involved.

What a run writes into ``--out`` (never over the base model): the FP32 ONNX model with the
head and its novelty score in the graph (so "unknown" works for the new classes too), its
card (classes, which were learnt here and from how many images, thresholds, cross-validated
per-class accuracy, the base classes' accuracy before and after), its bank (so the next run
can build on it) and, when asked, the INT8 form. Everything is written to a hidden sibling
folder first and moved in at the end, so a cancelled or failed run leaves nothing half-made.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from phytoscope.config import models_dir
from phytoscope.core import hab
from phytoscope.errors import Cancelled, ConfigError, ModelError
from phytoscope.modelcard import (
    ClassInfo,
    ModelCard,
    card_path_for,
    resolve,
    select,
)
from phytoscope.progress import Progress
from phytoscope.training import bank, extend, learn_data, onnx_head, openset, openset_forms
from phytoscope.training.blas import one_blas_thread
from phytoscope.training.cardnotes import card_notes
from phytoscope.training.learn_data import ROUGH_BELOW, Skipped, TeachingSet

log = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"
INT8_FILE = "model_int8.onnx"
CANCELLED = "learning cancelled; nothing was written"


@dataclass(frozen=True)
class LearnRequest:
    """One learning run, as the command line and the window ask for it."""

    folders: tuple[Path, ...]
    out_dir: Path
    model: Path | None = None
    """the base model: a folder, card or ``.onnx`` (None: the installed model)"""
    int8: bool = False
    corrections_db: Path | None = None
    """also learn from the corrections stored in this results database"""
    folds: int = 5
    seed: int = 0


@dataclass(frozen=True)
class ClassResult:
    """What the new model knows of one class, and how well (cross-validated)."""

    name: str
    origin: str
    """"base", "learnt" (new here) or "base + learnt" (base class given more examples)"""
    local_images: int
    bank_images: int
    top1: float | None
    coverage: float | None
    """share of its held-out images not called "unknown\""""
    rough: bool
    monitored: bool
    """a HAB rule set watches it"""


@dataclass(frozen=True)
class LearnResult:
    model_path: Path
    card_path: Path
    int8_path: Path | None
    classes: tuple[ClassResult, ...]
    skipped: tuple[Skipped, ...]
    base_top1_before: float | None
    """cross-validated top-1 of the base classes with the base classes alone"""
    base_top1_after: float | None
    """the same classes' cross-validated top-1 with the new classes added"""
    seconds: float
    newly_monitored: tuple[str, ...]
    """rule-set taxa the base model could not see and the new one can"""

    @property
    def base_drop_points(self) -> float | None:
        if self.base_top1_before is None or self.base_top1_after is None:
            return None
        return round(100 * (self.base_top1_before - self.base_top1_after), 2)


# -- the base model ---------------------------------------------------------------------


def base_card(model: Path | None) -> ModelCard:
    """The FP32 ONNX card learning starts from (a folder, card, model file or installed)."""
    card = resolve(model, "onnx", "fp32", models_dir())
    if (card.format, card.precision) != ("onnx", "fp32") and card.path is not None:
        card = select(card.path.parent, "onnx", "fp32")  # an INT8 card: its FP32 sibling
    card.verify_file()
    return card


def check_out_dir(out_dir: Path, card: ModelCard) -> Path:
    """Refuse an output folder that is (or holds) the base model: it is never overwritten."""
    out = Path(out_dir).resolve()
    base_dir = card.model_path.resolve().parent
    if out == base_dir:
        raise ConfigError(
            f"--out {out_dir} is the base model's folder: the base model is never "
            "overwritten; choose a new folder (e.g. models-local/)"
        )
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out_dir} is a file, not a folder")
    return out


def load_base_bank(card: ModelCard) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """The base model's embedding bank, restricted to the classes its card names."""
    path = bank.bank_path_for(card.model_path)
    if not path.exists():
        raise ModelError(
            f"the base model {card.model_path.name} has no embedding bank ({path.name} beside "
            "it): learning keeps the base classes through it. Use a model written by "
            "`phytoscope learn` or one shipped with its bank"
        )
    features, labels, classes = bank.load_bank(path)
    keep = [i for i, c in enumerate(classes) if c in card.class_names and (labels == i).any()]
    remap = np.full(len(classes), -1, np.int64)
    remap[keep] = np.arange(len(keep))
    mask = remap[labels] >= 0
    return features[mask], remap[labels[mask]], tuple(classes[i] for i in keep)


# -- the run -----------------------------------------------------------------------------


@contextlib.contextmanager
def stopping(progress: Progress) -> Iterator[None]:
    """A cancel inside the head code is said in learn's words (what is kept, what is not)."""
    try:
        yield
    except Cancelled as exc:
        if str(exc) == CANCELLED:
            raise
        raise Cancelled(CANCELLED) from exc
    progress.check(CANCELLED)


def embed(card: ModelCard, data: TeachingSet, progress: Progress) -> np.ndarray:
    """The backbone's embeddings of the lab's images (stage "embed")."""
    with stopping(progress):
        return onnx_head.embed(
            card.model_path,
            data.prepared,
            card.input,
            threads=os.cpu_count(),
            progress=lambda done, total: progress.update("embed", done, total),
            cancel=progress.cancel,
        )


def _top1(report: dict[str, Any], names: Sequence[str], key: str, weight: str) -> float | None:
    """``key`` of some classes of a cross-validation report, weighted by ``weight``."""
    rows = [report["per_class"][n] for n in names if key in report["per_class"].get(n, {})]
    total = sum(r[weight] for r in rows)
    return sum(r[key] * r[weight] for r in rows) / total if total else None


BANK_AGREEMENT = 0.5
"""Below this share of its own bank embeddings classified right by the base head, the bank
is taken to belong to another model (a retrained backbone gives other embeddings)."""


def kept_columns(
    card: ModelCard, base_classes: Sequence[str], bank_x: np.ndarray, bank_y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The base head's weight columns of the bank's classes, in the bank's order, after
    checking that the bank belongs to this model: the bank is (a sample of) the base head's
    training embeddings, so the head must classify most of them right."""
    weights, bias = extend.base_head(card.model_path)
    dim = bank_x.shape[1]
    if weights.shape != (dim, card.num_classes):
        raise ModelError(
            f"the base model's logits layer is {weights.shape}, but its bank holds {dim}-long "
            f"embeddings of {card.num_classes} classes: the bank belongs to another model"
        )
    columns = [card.class_names.index(c) for c in base_classes]
    weights, bias = weights[:, columns], bias[columns]
    agreement = float(((bank_x @ weights + bias).argmax(axis=1) == bank_y).mean())
    if agreement < BANK_AGREEMENT:
        raise ModelError(
            f"the base model classifies only {agreement:.0%} of its own embedding bank "
            f"({bank.bank_path_for(card.model_path).name}) right: the bank was made with "
            "another version of the model; rebuild it or use the model it came with"
        )
    return weights, bias


def new_class_info(name: str, taxa: Sequence[tuple[str, str]]) -> ClassInfo:
    """A learnt class's card entry: rank and HAB flag from the rule sets when they name it."""
    info = ClassInfo(name=name)
    rule = hab.rule_taxon_named(name, taxa)
    if rule is not None and rule[1] in ("genus", "species"):
        info = replace(info, rank=rule[1])
    monitored = any(hab.matching(hab.RuleTaxon(t, r, "", ()), [info]) for t, r in taxa)
    return replace(info, hab=monitored)


def learn(request: LearnRequest, progress: Progress | None = None) -> LearnResult:
    """Run one learning (see the module docstring); stages "read", "embed", "fit", "write"."""
    progress = Progress.of(progress)
    started = time.perf_counter()
    card = base_card(request.model)
    out_dir = check_out_dir(request.out_dir, card)
    bank_x, bank_y, base_classes = load_base_bank(card)
    if len(base_classes) < card.num_classes:
        log.warning(
            "the base bank holds no embeddings of %s: the new model leaves them out",
            ", ".join(c for c in card.class_names if c not in base_classes),
        )
    kept_weights, kept_bias = kept_columns(card, base_classes, bank_x, bank_y)
    if request.folds < 2:
        raise ConfigError("cross-validation needs at least 2 folds")
    data = learn_data.load(
        request.folders, card.input, base_classes, request.corrections_db, progress
    )
    counts = data.counts
    new = tuple(c for c in counts if c not in base_classes)
    classes = base_classes + new
    index = {c: i for i, c in enumerate(classes)}
    local_x = embed(card, data, progress)
    x = np.concatenate([bank_x, local_x]) if len(bank_x) else local_x
    y = np.concatenate([bank_y, np.array([index[c] for c in data.labels], np.int64)])

    weights, bias = extend.widen(kept_weights, kept_bias, len(classes))
    free = sorted(index[c] for c in counts)
    # "unknown" by the base model's own rule (its prototypes per class and coverage)
    novelty = openset.novelty_settings(card)
    progress.update("fit", 0, 2, "cross-validating")
    with stopping(progress), one_blas_thread():
        report = extend.cross_validate(
            x, y, classes, weights, bias, free, len(base_classes), bank_rows=len(bank_x),
            folds=request.folds, seed=request.seed, cancel=progress.cancel, **novelty,
        )  # fmt: skip
        progress.update("fit", 1, 2, "fitting the head")
        head = extend.extended_head(
            x, y, classes, weights, bias, free,
            seed=request.seed, cancel=progress.cancel, **novelty,
        )  # fmt: skip
    progress.update("fit", 2, 2)

    taxa = hab.all_taxa()
    # base classes keep their facts but not their confidence thresholds, chosen on the old
    # head's softmax: the new head's "unknown" is its novelty threshold
    base_infos = tuple(replace(c, threshold=0.0) for c in card.classes if c.name in base_classes)
    infos = base_infos + tuple(new_class_info(c, taxa) for c in new)
    results = _class_results(infos, counts, bank_y, base_classes, report)
    rough = tuple(r.name for r in results if r.rough)
    learnt = {c: {"images": n, "rough": c in rough, "new": c in new} for c, n in counts.items()}
    before_top1 = _top1(report, base_classes, "top1_before", "bank_images")
    after_top1 = _top1(report, base_classes, "top1_bank", "bank_images")
    missing = hab.unrecognised(infos, taxa)
    seen_before = hab.unrecognised(base_infos, taxa)
    newly = tuple(t for t in seen_before if t not in missing)
    accuracy = {
        "method": f"stratified {request.folds}-fold cross-validation of the head on "
        f"embeddings (base bank + local images), seed {request.seed}; coverage = share not "
        "called unknown. Base classes: the base head's columns are kept, so their figures "
        "include its own training embeddings (optimistic); on those bank embeddings, "
        "top1_before - top1_bank is what learning cost them",
        "per_class": {
            r.name: {**report["per_class"][r.name], "rough": r.rough}
            for r in results
            if r.name in report["per_class"]
        },
        "base_classes_top1_before": _round(before_top1),
        "base_classes_top1_after": _round(after_top1),
        "rough_below_images": ROUGH_BELOW,
    }
    training = {
        "method": "phytoscope learn: frozen backbone; the base head's columns kept, new and "
        "extended classes' columns and the open-set novelty fitted on embeddings",
        "base_model": {"name": card.name, "version": card.version, "sha256": card.sha256},
        "learnt_locally": learnt,
        "sources": list(data.sources),
        "bank_images_per_class": {c: int((bank_y == i).sum()) for i, c in enumerate(base_classes)},
        "base_classes_dropped": [c for c in card.class_names if c not in base_classes],
        "skipped_images": [f"{s.path}: {s.reason}" for s in data.skipped[:50]],
        "skipped_count": len(data.skipped),
        "machine": f"{platform.machine()} {os.cpu_count()} CPU(s)",
        "learnt_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d%H%M")
    notes = _notes(card, counts, new, rough, missing)
    progress.update("write", 0, 2 if request.int8 else 1)
    with _staging(out_dir) as stage:
        with stopping(progress):
            path = onnx_head.write_model(
                card.model_path,
                card,
                head,
                stage,
                name=card.name if card.name.endswith("-local") else f"{card.name}-local",
                version=f"{card.version}+learn.{stamp}",
                file=MODEL_FILE,
                class_infos=infos,
                training=training,
                accuracy=accuracy,
                notes=notes,
                bank=(x, y),
            )
        written = replace(ModelCard.load(card_path_for(path)), not_recognised=missing)
        written = replace(
            written, novelty=openset_forms.frame_novelty(written.novelty, card.novelty)
        )
        written.save(card_path_for(path))
        int8 = None
        if request.int8:
            progress.update("write", 1, 2, "INT8")
            int8 = write_int8(path, data, progress)
        seconds = time.perf_counter() - started
        for written_card in stage.glob("*.json"):  # the time is known only now
            c = ModelCard.load(written_card)
            replace(c, training={**c.training, "seconds": round(seconds, 1)}).save(written_card)
    progress.update("write", 2 if request.int8 else 1, 2 if request.int8 else 1)
    model_path = out_dir / MODEL_FILE
    return LearnResult(
        model_path=model_path,
        card_path=card_path_for(model_path),
        int8_path=out_dir / INT8_FILE if int8 is not None else None,
        classes=results,
        skipped=data.skipped,
        base_top1_before=before_top1,
        base_top1_after=after_top1,
        seconds=seconds,
        newly_monitored=newly,
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _class_results(
    infos: Sequence[ClassInfo],
    counts: dict[str, int],
    bank_y: np.ndarray,
    base_classes: Sequence[str],
    report: dict[str, Any],
) -> tuple[ClassResult, ...]:
    rows = []
    for info in infos:
        in_base = info.name in base_classes
        banked = int((bank_y == base_classes.index(info.name)).sum()) if in_base else 0
        local = counts.get(info.name, 0)
        origin = "base + learnt" if in_base and local else "base" if in_base else "learnt"
        cv = report["per_class"].get(info.name, {})
        rows.append(
            ClassResult(
                name=info.name,
                origin=origin,
                local_images=local,
                bank_images=banked,
                top1=cv.get("top1"),
                coverage=cv.get("coverage"),
                rough=not in_base and local < ROUGH_BELOW,
                monitored=info.hab,
            )
        )
    return tuple(rows)


def _notes(
    card: ModelCard,
    counts: dict[str, int],
    new: Sequence[str],
    rough: Sequence[str],
    missing: tuple[str, ...],
) -> str:
    """The card's notes: what was learnt here, what is rough, and (in the trainer's words)
    which HAB taxa the new model still cannot see (the base card's list no longer holds)."""
    parts = [f"Built by `phytoscope learn` on {card.name} {card.version} (backbone unchanged)."]
    if counts:
        shown = ", ".join(
            f"{c} ({n} image{'s' if n != 1 else ''}{', new' if c in new else ''})"
            for c, n in counts.items()
        )
        parts.append(f"Learnt locally: {shown}.")
    if rough:
        parts.append(
            f"Accuracy of {', '.join(rough)} is rough: fewer than {ROUGH_BELOW} images; "
            "add more and learn again before trusting counts."
        )
    parts.append(
        "Each learnt class comes from the lab's own instrument; accuracy is cross-validated "
        "on the same images, not on an independent set."
    )
    missing_text = card_notes([], missing)
    return " ".join([*parts, missing_text] if missing_text else parts)


def write_int8(fp32_path: Path, data: TeachingSet, progress: Progress) -> Path:
    """The INT8 form beside the FP32 one, calibrated on the lab's own images (the head's
    ``openset/`` nodes stay in float); its card says how it agrees with FP32 on them.

    Its novelty threshold is its own: INT8 activations move every embedding a little, which
    raises every novelty score, so with the FP32 threshold the INT8 form called more organisms
    "unknown" (14.9 % against 12.8 % measured on a model taught three eyepiece genera). The
    shipped model re-chooses it on validation images (:func:`openset_forms.rethreshold`); a
    lab has none set apart, so the INT8 threshold is the one that keeps the same share of the
    lab's images below it as the FP32 threshold does (quantile matching: the same rule,
    coverage measured on the images at hand).
    """
    from phytoscope.training.openset import threshold_at_coverage

    card = ModelCard.load(card_path_for(fp32_path))
    out = fp32_path.with_name(INT8_FILE)
    rng = np.random.default_rng(0)
    chosen = np.sort(rng.choice(len(data.prepared), min(300, len(data.prepared)), replace=False))
    with stopping(progress):
        openset_forms.write_int8(
            fp32_path, card, data.prepared[chosen], out, "minmax", "of the lab's images"
        )
    int8 = ModelCard.load(card_path_for(out))
    fp32_logits, fp32_novelty = openset_forms.backend_outputs(card, data.prepared)
    int8_logits, int8_novelty = openset_forms.backend_outputs(int8, data.prepared)
    agreement = float((fp32_logits.argmax(axis=1) == int8_logits.argmax(axis=1)).mean())
    calibration = int8.training["int8_calibration"]
    training = {
        **int8.training,
        "int8_calibration": f"{calibration}; top-1 agrees with FP32 on {agreement:.1%} of "
        "the lab's images",
    }
    novelty = int8.novelty
    if novelty is not None:
        kept = float((fp32_novelty <= novelty.threshold).mean())
        threshold = threshold_at_coverage(int8_novelty, max(kept, 1.0 / len(int8_novelty)))
        frame = novelty.frame_threshold
        novelty = replace(
            novelty,
            threshold=threshold,
            frame_threshold=None if frame is None else frame + threshold - novelty.threshold,
            chosen=f"{novelty.chosen}; this INT8 form's own threshold keeps the same share of "
            f"the lab's {len(int8_novelty)} images below it as the FP32 one ({kept:.1%})",
        )
    replace(int8, training=training, novelty=novelty, path=None).save(card_path_for(out))
    return out


@contextlib.contextmanager
def _staging(out_dir: Path) -> Iterator[Path]:
    """A hidden folder beside ``out_dir``; on success its files replace those in ``out_dir``
    (other files there are left alone), on any failure it is removed."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.learning-", dir=out_dir.parent))
    try:
        yield stage
        out_dir.mkdir(parents=True, exist_ok=True)
        for item in sorted(stage.iterdir(), key=lambda p: p.suffix == ".json"):
            os.replace(item, out_dir / item.name)  # models first, cards last
    finally:
        shutil.rmtree(stage, ignore_errors=True)
