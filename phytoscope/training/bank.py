"""The embedding bank: a capped sample of a model's training embeddings stored beside it.

With it a head can be refitted later (``phytoscope learn``: new genera, more examples) without
the training images, which a lab receiving the model does not have. Only numpy here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from phytoscope.errors import ModelError

BANK_SUFFIX = ".bank.npz"


def bank_path_for(model_path: Path) -> Path:
    """``genus.onnx`` -> ``genus.bank.npz``, beside the model."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.stem + BANK_SUFFIX)


def save_bank(
    path: Path,
    features: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    cap_per_class: int = 200,
    seed: int = 0,
) -> Path:
    """Keep a capped, seeded sample of each class's embeddings (float16) beside a model.

    With it a head can be refitted later (new genera, more examples) without the training
    images, which a lab receiving the model does not have.
    """
    rng = np.random.default_rng(seed)
    keep: list[np.ndarray] = []
    for c in range(len(classes)):
        idx = np.flatnonzero(labels == c)
        if len(idx) > cap_per_class:
            idx = np.sort(rng.choice(idx, cap_per_class, replace=False))
        keep.append(idx)
    chosen = np.concatenate(keep) if keep else np.zeros(0, np.int64)
    path = Path(path)
    with path.open("wb") as f:
        np.savez_compressed(
            f,
            features=np.asarray(features, np.float32)[chosen].astype(np.float16),
            labels=np.asarray(labels, np.int64)[chosen],
            classes=np.asarray(list(classes), dtype=str),
        )
    return path


def load_bank(path: Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """``(features float32 (N, D), labels (N,), classes)`` of a stored bank."""
    try:
        with np.load(Path(path), allow_pickle=False) as data:
            return (
                data["features"].astype(np.float32),
                data["labels"].astype(np.int64),
                tuple(str(c) for c in data["classes"]),
            )
    except FileNotFoundError as exc:
        raise ModelError(f"embedding bank {path} does not exist") from exc
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"cannot read embedding bank {path}: {exc}") from exc
