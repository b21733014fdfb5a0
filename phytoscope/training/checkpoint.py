"""Checkpoints of a training run: ``state.json`` and weights, written atomically.

After every epoch the trainer writes both, so ``--resume`` continues an interrupted run
from the last finished epoch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


def save_state(folder: Path, state: dict[str, Any]) -> None:
    tmp = folder / "state.json.tmp"
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(folder / "state.json")


def load_state(folder: Path) -> dict[str, Any]:
    path = folder / "state.json"
    return json.loads(path.read_text()) if path.exists() else {}


def save_weights(model: Any, path: Path) -> None:
    """Weights only, as a plain .npz (atomic). Optimizer moments are not kept: a resumed
    epoch restarts Adam's averages, which costs far less than Keras' optimizer-mismatch
    pitfalls when a checkpoint is loaded into a differently compiled model."""
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, *model.get_weights())
    tmp.replace(path)


def load_weights(model: Any, path: Path) -> None:
    with np.load(path) as data:
        model.set_weights([data[f"arr_{i}"] for i in range(len(data.files))])
