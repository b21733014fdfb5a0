"""How many images does a class need? Accuracy at 5, 10, 20 and 50 images per class.

``phytoscope learn --evaluate FOLDER``: the classes of FOLDER are first taken out of the base
model's embedding bank (so the figure measures *learning* them, not remembering them), then,
for each size k and each of ``rounds`` seeded random splits, the head is fitted on the bank
plus k images of every class of FOLDER that has more than k, and tested on that class's
remaining images (repeated random sub-sampling: every image is tested in some rounds and
never in a round that trained on it). A class with k images or fewer is left out at that
size and shown as "—".
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from phytoscope.progress import Progress
from phytoscope.training import learn_data, openset
from phytoscope.training.blas import one_blas_thread
from phytoscope.training.learn import base_card, embed, load_base_bank, stopping

CURVE_SIZES = (5, 10, 20, 50)


def examples_curve(
    folders: Sequence[Path],
    model: Path | None = None,
    *,
    sizes: Sequence[int] = CURVE_SIZES,
    folds: int = 5,
    seed: int = 0,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Per class and size: mean top-1, coverage (not "unknown") and top-1 of the kept."""
    progress = Progress.of(progress)
    started = time.perf_counter()
    card = base_card(model)
    bank_x, bank_y, bank_classes = load_base_bank(card)
    found = learn_data.collect(folders, bank_classes, ())
    data = learn_data.read(found, card.input, [str(f) for f in folders], progress)
    learn_data.check_counts(data, ())
    taught = data.classes
    kept = [i for i, c in enumerate(bank_classes) if c not in taught]
    mask = np.isin(bank_y, kept)
    remap = np.full(len(bank_classes), -1, np.int64)
    remap[kept] = np.arange(len(kept))
    base_x, base_y = bank_x[mask], remap[bank_y[mask]]
    classes = tuple(bank_classes[i] for i in kept) + taught
    x = embed(card, data, progress)
    labels = np.array([classes.index(c) for c in data.labels], np.int64)
    rng = np.random.default_rng(seed)
    rows: dict[str, dict[str, Any]] = {c: {"images": n} for c, n in data.counts.items()}
    total = len(sizes) * folds
    for s_index, k in enumerate(sizes):
        hits: dict[str, list[np.ndarray]] = {c: [] for c in taught}
        known: dict[str, list[np.ndarray]] = {c: [] for c in taught}
        for round_ in range(folds):
            progress.update("curve", s_index * folds + round_, total, f"{k} per class")
            train_idx, test_idx = [], []
            for c in taught:
                idx = np.flatnonzero(labels == classes.index(c))
                if len(idx) <= k:
                    continue
                order = rng.permutation(idx)
                train_idx.append(order[:k])
                test_idx.append(order[k:])
            if not train_idx:
                break
            tr, te = np.concatenate(train_idx), np.concatenate(test_idx)
            with stopping(progress), one_blas_thread():
                head = openset.fit_head(
                    np.concatenate([base_x, x[tr]]),
                    np.concatenate([base_y, labels[tr]]),
                    classes,
                    seed=seed,
                    cancel=progress.cancel,
                    **openset.novelty_settings(card),
                )
            predicted = openset.head_logits(head, x[te]).argmax(axis=1)
            novel = openset.head_novelty(head, x[te]) > head.threshold
            for c in taught:
                mine = labels[te] == classes.index(c)
                if mine.any():
                    hits[c].append(predicted[mine] == labels[te][mine])
                    known[c].append(~novel[mine])
        for c in taught:
            if not hits[c]:
                rows[c][str(k)] = None
                continue
            right, kept_ = np.concatenate(hits[c]), np.concatenate(known[c])
            rows[c][str(k)] = {
                "top1": round(float(right.mean()), 4),
                "coverage": round(float(kept_.mean()), 4),
                "top1_classified": round(float(right[kept_].mean()), 4) if kept_.any() else None,
                "tested": int(len(right)),
            }
    progress.update("curve", total, total)
    return {
        "model": f"{card.name} {card.version}",
        "sizes": list(sizes),
        "rounds": folds,
        "seed": seed,
        "method": "repeated random sub-sampling: per round, k images of each class train the "
        "head (with the base bank, these classes removed from it), the rest are tested",
        "bank_classes_kept": [bank_classes[i] for i in kept],
        "classes": rows,
        "skipped_images": len(data.skipped),
        "seconds": round(time.perf_counter() - started, 1),
    }


def curve_markdown(curve: dict[str, Any]) -> str:
    """The curve as a Markdown table: top-1 (and coverage) per class and size."""
    sizes = [str(k) for k in curve["sizes"]]
    head = "| class | images | " + " | ".join(f"{k} per class" for k in sizes) + " |"
    lines = [head, "|---|---:|" + "---:|" * len(sizes)]
    for name, row in curve["classes"].items():
        cells = []
        for k in sizes:
            cell = row.get(k)
            cells.append(
                "—"
                if cell is None
                else f"{100 * cell['top1']:.1f} % ({100 * cell['coverage']:.0f} % kept)"
            )
        lines.append(f"| {name} | {row['images']} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        f"top-1 over {curve['rounds']} random splits per size (kept: share not called unknown); "
        f"{curve['method']}; {curve['seconds']} s"
    )
    return "\n".join(lines)
