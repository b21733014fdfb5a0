"""Write the tiny test models of tests/data/models (developer tool; the files are checked in).

Run from the repository root: ``python tests/data/build_tiny_models.py``. It needs only the
``onnx`` package (a core dependency), never TensorFlow, so the core and ONNX Runtime test
tiers run on a machine without TensorFlow or Qt. ``--keras`` also writes the Keras twin of
``tiny`` (same weights, so the TensorFlow/ONNX Runtime parity test compares like with like);
that step needs TensorFlow and is only run by whoever regenerates the files.

The models are random-weight convolutional networks, not classifiers: a grey 32x32 image
(the card's ``grey3`` input: grey repeated into 3 channels, NHWC, dynamic batch) goes
through Conv 3x3/2 -> ReLU -> global average pool -> Gemm, giving ``logits`` (N, C).
``tiny_novelty`` adds the open-set score ``novelty`` (N,), the energy score
``-logsumexp(logits)`` (Liu et al. 2020), computed in the graph as phytoscope's exported
models compute theirs, with a threshold in its card.

Tests use :func:`write_tiny_model` to build the same architecture for other class lists
(the GUI's HAB classes) at test time, in milliseconds.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script: import this checkout's phytoscope
    sys.path.insert(0, str(ROOT))

from phytoscope.modelcard import (  # noqa: E402
    ClassInfo,
    InputSpec,
    ModelCard,
    NoveltySpec,
    card_path_for,
    sha256_of,
)

MODELS = Path(__file__).resolve().parent / "models"
CLASSES = ("Alpha", "Beta", "Gamma")
SIZE = 32
FILTERS = 8
NOTES = "test fixture, random weights: not a classifier"
NOVELTY_THRESHOLD = -0.6
"""Energy above which an organism is "novel": about the middle of the scores the random
model gives plankton-like images, so test batches hold both decisions."""


def weights(classes: int, seed: int = 1) -> dict[str, np.ndarray]:
    """Conv and Gemm parameters in ONNX layouts (Conv OIHW, Gemm weight (C, F))."""
    rng = np.random.default_rng(seed)
    return {
        "conv_w": rng.normal(0, 0.5, (FILTERS, 3, 3, 3)).astype(np.float32),
        "conv_b": rng.normal(0, 0.1, FILTERS).astype(np.float32),
        "fc_w": rng.normal(0, 1.5, (classes, FILTERS)).astype(np.float32),
        "fc_b": rng.normal(0, 0.2, classes).astype(np.float32),
    }


def build_graph(
    params: dict[str, np.ndarray], size: int = SIZE, novelty: bool = False
) -> onnx.ModelProto:
    """The ONNX model: NHWC float input ``input`` with a dynamic batch; named outputs."""
    classes = params["fc_w"].shape[0]
    nodes = [
        helper.make_node("Transpose", ["input"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "conv_w", "conv_b"], ["conv"], strides=[2, 2]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("GlobalAveragePool", ["relu"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["features"], axis=1),
        helper.make_node("Gemm", ["features", "fc_w", "fc_b"], ["logits"], transB=1),
    ]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes])]
    if novelty:
        nodes += [
            helper.make_node("ReduceLogSumExp", ["logits"], ["lse"], axes=[1], keepdims=0),
            helper.make_node("Neg", ["lse"], ["novelty"]),
        ]
        outputs.append(helper.make_tensor_value_info("novelty", TensorProto.FLOAT, ["N"]))
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", size, size, 3])],
        outputs,
        [numpy_helper.from_array(value, name) for name, value in params.items()],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="phytoscope-tests"
    )
    model.ir_version = 8  # readable by every ONNX Runtime and TensorRT phytoscope supports
    onnx.checker.check_model(model)
    return model


def _card(path: Path, fmt: str, classes: Sequence[str], size: int, novelty: bool) -> Path:
    ModelCard(
        name="tiny-test",
        version="0",
        file=path.name,
        format=fmt,
        precision="fp32",
        sha256=sha256_of(path),
        classes=tuple(ClassInfo(name=c, threshold=0.0) for c in classes),
        input=InputSpec(height=size, width=size),
        novelty=NoveltySpec(
            method="energy",
            threshold=NOVELTY_THRESHOLD,
            chosen="test fixture: about the median score of synthetic blobs",
        )
        if novelty
        else None,
        notes=NOTES,
    ).save(card_path_for(path))
    return card_path_for(path)


def write_tiny_model(
    folder: Path,
    classes: Sequence[str] = CLASSES,
    size: int = SIZE,
    novelty: bool = False,
    seed: int = 1,
) -> Path:
    """Write ``tiny.onnx`` and its card into ``folder``; returns the model file."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tiny.onnx"
    onnx.save(build_graph(weights(len(classes), seed), size, novelty), str(path))
    _card(path, "onnx", classes, size, novelty)
    return path


def write_keras_twin(onnx_path: Path) -> Path:
    """``tiny.keras`` beside ``onnx_path``: the same network and weights in Keras (needs TF)."""
    import keras

    model = onnx.load(str(onnx_path))
    params = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    card = ModelCard.load(card_path_for(onnx_path))
    size, classes = card.input.height, card.class_names
    inputs = keras.Input((size, size, 3), name="input")
    x = keras.layers.Conv2D(FILTERS, 3, strides=2, activation="relu", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(len(classes), name="logits")(x)
    net = keras.Model(inputs, outputs)
    net.get_layer("conv").set_weights([params["conv_w"].transpose(2, 3, 1, 0), params["conv_b"]])
    net.get_layer("logits").set_weights([params["fc_w"].T, params["fc_b"]])
    path = onnx_path.with_suffix(".keras")
    net.save(path)
    _card(path, "keras", classes, size, novelty=False)
    return path


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keras", action="store_true", help="also write the Keras twin")
    args = parser.parse_args(argv)
    for name in ("tiny", "tiny_novelty"):
        shutil.rmtree(MODELS / name, ignore_errors=True)
    plain = write_tiny_model(MODELS / "tiny")
    write_tiny_model(MODELS / "tiny_novelty", novelty=True)
    if args.keras:
        write_keras_twin(plain)
    for path in sorted(MODELS.rglob("*")):
        if path.is_file():
            print(f"{path.relative_to(ROOT)}  {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
