"""Shared fixtures. Everything a test writes goes under tmp_path; nothing reads ../shared."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory, monkeypatch):
    """Keep settings, caches and databases of tests out of the user's home."""
    home = tmp_path_factory.mktemp("home")
    for var, sub in (
        ("PHYTOSCOPE_DATA", "data"),
        ("PHYTOSCOPE_CACHE", "cache"),
        ("PHYTOSCOPE_CONFIG", "config"),
    ):
        monkeypatch.setenv(var, str(home / sub))


def make_tiny_model(folder: Path, classes=("Alpha", "Beta", "Gamma"), size: int = 32) -> Path:
    """A tiny but real Keras CNN saved as .keras and exported to ONNX, each with its card.

    Test-only: it exercises the backend contract and parity on real runtimes, and is never
    shipped or presented as a classifier.
    """
    import keras
    import numpy as np

    from phytoscope.modelcard import ClassInfo, InputSpec, ModelCard, card_path_for, sha256_of

    keras.utils.set_random_seed(0)
    inputs = keras.Input((size, size, 3), name="input")
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(len(classes), name="logits")(x)
    model = keras.Model(inputs, outputs)
    model.predict(np.zeros((1, size, size, 3), "float32"), verbose=0)
    folder.mkdir(parents=True, exist_ok=True)
    keras_path, onnx_path = folder / "tiny.keras", folder / "tiny.onnx"
    model.save(keras_path)
    model.export(str(onnx_path), format="onnx", verbose=False)
    spec = InputSpec(height=size, width=size)
    infos = tuple(ClassInfo(name=c, threshold=0.0) for c in classes)
    for path in (keras_path, onnx_path):
        ModelCard(
            name="tiny-test",
            version="0",
            file=path.name,
            format="keras" if path.suffix == ".keras" else "onnx",
            precision="fp32",
            sha256=sha256_of(path),
            classes=infos,
            input=spec,
            notes="test fixture, random weights: not a classifier",
        ).save(card_path_for(path))
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    pytest.importorskip(
        "keras", reason="TensorFlow/Keras not installed (pip install 'phytoscope[tensorflow]')"
    )
    return make_tiny_model(tmp_path_factory.mktemp("tiny_model"))
