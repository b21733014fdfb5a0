"""From the trained Keras model to the forms phytoscope ships, each checked on the test split.

* ONNX FP32 (``genus.onnx``): what ``phytoscope classify`` runs with ONNX Runtime on any CPU,
  and what TensorRT builds its engines from.
* ONNX INT8 (``genus_int8.onnx``): static QDQ quantisation, calibrated on real training
  images (never random tensors: activation ranges of noise are not those of plankton).
* Keras (``genus.keras``): the study's "base model", run by the TensorFlow backend.

Every form is evaluated on the same held-out test images through the phytoscope backend that
runs it in the field, so the study's claim that accuracy survives optimisation is checked,
not assumed; each card records its own figures.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from phytoscope.errors import ModelError
from phytoscope.modelcard import ModelCard, card_path_for, sha256_of
from phytoscope.training import dataset as ds

log = logging.getLogger(__name__)

FORMS = ("onnx", "int8", "keras")


@dataclass
class ExportedForm:
    form: str
    card: ModelCard
    test_top1: float | None
    per_source: dict[str, Any]


def export_onnx(keras_model_path: Path, out_path: Path, size: int) -> Path:
    """Keras -> ONNX FP32 with a dynamic batch dimension.

    Keras 3's own exporter (tf2onnx underneath) needs the model called once so its input
    signature is known.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    model = keras.models.load_model(keras_model_path, compile=False)
    model(np.zeros((1, size, size, 3), np.float32), training=False)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    model.export(str(out_path), format="onnx", verbose=False)
    return out_path


class _Calibration:
    """Feeds prepared training images to ONNX Runtime's calibrator, one batch at a time."""

    def __init__(self, input_name: str, batches: list[np.ndarray]):
        self.input_name = input_name
        self._batches = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {self.input_name: batch}

    def rewind(self) -> None:  # pragma: no cover - not used by the MinMax calibrator
        pass


def calibration_batches(prepared: np.ndarray, card: ModelCard, batch: int = 20) -> list[np.ndarray]:
    from phytoscope.imaging.preprocess import normalise

    return [normalise(prepared[i : i + batch], card.input) for i in range(0, len(prepared), batch)]


INT8_KEEP_FLOAT = ("first_conv", "logits")
"""Layers left in float: the first convolution sees raw pixels with a few near-zero
batch-norm-folded filters, and the logits layer decides the answer; both are a tiny share
of the compute. Measured on the shipped model's test split, quantising them too cost more
than the 1-point INT8 budget (see models/README.md)."""


def quantise_int8(
    fp32_path: Path,
    out_path: Path,
    batches: list[np.ndarray],
    method: str = "minmax",
    keep_float: tuple[str, ...] = INT8_KEEP_FLOAT,
    keep_float_prefixes: tuple[str, ...] = (),
) -> Path:
    """Static INT8 quantisation: QDQ, per-channel int8 weights, uint8 activations.

    QDQ is the format TensorRT and ONNX Runtime's CPU kernels both understand; per-channel
    weights matter for MobileNetV2, whose depthwise filters have very different ranges.
    ``method`` is the activation-range calibration ("minmax", "minmax-average",
    "percentile", "entropy"). Nodes whose names start with one of ``keep_float_prefixes``
    stay in float too (the open-set head, ``openset/``: its cosine to prototypes decides
    "unknown" and costs next to nothing).
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not batches:
        raise ModelError("INT8 calibration needs training images; none were given")
    methods = {
        "minmax": CalibrationMethod.MinMax,
        "minmax-average": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
        "entropy": CalibrationMethod.Entropy,
    }
    if method not in methods:
        raise ModelError(f"calibration method must be one of {', '.join(methods)}, not {method!r}")
    # the histogram calibrators stack batches: give them equal sizes
    size = batches[0].shape[0]
    batches = [b for b in batches if b.shape[0] == size] or batches[:1]

    class Reader(_Calibration, CalibrationDataReader):
        pass

    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        graph = onnx.load(str(pre)).graph
        input_name = graph.input[0].name
        exclude: list[str] = []
        convs = [n.name for n in graph.node if n.op_type == "Conv"]
        if "first_conv" in keep_float and convs:
            exclude.append(convs[0])
        if "logits" in keep_float:
            exclude += [n.name for n in graph.node if n.op_type in ("MatMul", "Gemm")]
        if keep_float_prefixes:
            exclude += [n.name for n in graph.node if n.name.startswith(keep_float_prefixes)]
        exclude += _open_set_nodes(graph)
        quantize_static(
            str(pre),
            str(out_path),
            Reader(input_name, batches),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=methods[method],
            nodes_to_exclude=exclude,
            # minmax-average: mean of per-batch extremes, so one odd image cannot stretch a
            # layer's range over the values every other image uses
            extra_options={"CalibMovingAverage": method == "minmax-average"},
        )
    return out_path


POOLING_OPS = ("GlobalAveragePool", "Squeeze", "Reshape", "Flatten", "Identity")


def _open_set_nodes(graph: Any) -> list[str]:
    """An open-set head (:mod:`phytoscope.training.onnx_head`, nodes ``openset/...``) and the
    pooling that feeds it stay float: the head's cosines decide "unknown", and pooling in
    float averages the last layer's 8-bit activations instead of rounding the result to
    256 levels again. Both are a negligible share of the work."""
    head = [n for n in graph.node if n.name.startswith("openset/")]
    producers = {o: n for n in graph.node for o in n.output}
    names = [n.name for n in head]
    stack = [i for n in head for i in n.input]
    while stack:
        node = producers.get(stack.pop())
        if node is not None and node.op_type in POOLING_OPS and node.name not in names:
            names.append(node.name)
            stack.extend(node.input)
    return names


def _onnx_top1(
    path: Path, prepared: np.ndarray, y: np.ndarray, card: ModelCard
) -> tuple[float, np.ndarray]:
    import onnxruntime as ort

    from phytoscope.training import evaluate as ev

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    logits = ev.predict_logits(lambda b: session.run(None, {name: b})[0], prepared, card.input)
    predicted = logits.argmax(axis=1)
    return float((predicted == y).mean()), predicted


def _quantise_choosing(
    fp32_path: Path,
    out_path: Path,
    batches: list[np.ndarray],
    method: str,
    val_items: list[ds.Item],
    card: ModelCard,
    cache_dir: Path | None,
    say: Callable[[str], None],
) -> str:
    """Quantise with one calibration method, or with ``auto`` try MinMax, averaged MinMax and
    Percentile and keep the one closest to FP32 on the *validation* split (choosing on test would flatter
    the reported INT8 accuracy). Returns a note for the card."""
    if method != "auto":
        quantise_int8(fp32_path, out_path, batches, method=method)
        return f"{method} ranges"
    if not val_items:
        quantise_int8(fp32_path, out_path, batches, method="minmax")
        return "minmax ranges (auto: no validation split to choose with)"
    index = {c: i for i, c in enumerate(card.class_names)}
    prepared = ds.prepared_arrays(val_items, card.input, cache_dir)
    y = np.array([index[i.cls] for i in val_items], dtype=np.int64)
    fp32_top1, fp32_pred = _onnx_top1(fp32_path, prepared, y, card)
    scores = {}
    with tempfile.TemporaryDirectory() as tmp:
        for candidate in ("minmax", "minmax-average", "percentile"):
            say(f"INT8 calibration candidate: {candidate}")
            path = Path(tmp) / f"{candidate}.onnx"
            quantise_int8(fp32_path, path, batches, method=candidate)
            top1, predicted = _onnx_top1(path, prepared, y, card)
            scores[candidate] = (top1, float((predicted == fp32_pred).mean()))
            log.info(
                "INT8 %s: val top-1 %.4f (FP32 %.4f), agreement %.4f",
                candidate,
                top1,
                fp32_top1,
                scores[candidate][1],
            )
        best = max(scores, key=lambda k: scores[k])
        shutil.copyfile(Path(tmp) / f"{best}.onnx", out_path)
    shown = ", ".join(f"{k} {v[0]:.4f} (agrees with FP32 on {v[1]:.1%})" for k, v in scores.items())
    return f"{best} ranges, chosen on the validation split (FP32 {fp32_top1:.4f}; {shown})"


def evaluate_card(
    card: ModelCard,
    backend_name: str,
    items: list[ds.Item],
    prepared: np.ndarray,
    classes: tuple[str, ...],
) -> tuple[Any, np.ndarray]:
    """Evaluate a model through its phytoscope backend on prepared images."""
    from phytoscope import backends
    from phytoscope.training import evaluate as ev

    backend = backends.backend_class(backend_name)(card)
    with backend:
        logits = ev.predict_logits(backend.logits, prepared, card.input)
    probs = ev.probabilities_of(logits)
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[i.cls] for i in items], dtype=np.int64)
    thresholds = {c.name: c.threshold for c in card.classes}
    report = ev.evaluate_probabilities(y, probs, classes, [i.source for i in items], thresholds)
    return report, probs


def export_all(
    keras_card_path: Path,
    out_dir: Path,
    dataset_root: Path | None = None,
    split_file: Path | None = None,
    forms: tuple[str, ...] = FORMS,
    calibration_images: int = 300,
    cache_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
    int8_method: str = "minmax",
) -> list[ExportedForm]:
    """Write every form with its card into ``out_dir``, evaluated on the recorded test split.

    ``split_file`` defaults to the one named in the Keras card (beside it); image paths in it
    are relative to ``dataset_root``. Without a readable split the forms are exported with
    the Keras card's accuracy figures marked as not re-measured.
    """
    from phytoscope.training import evaluate as ev

    say = progress or (lambda _m: None)
    source = ModelCard.load(keras_card_path)
    if source.format != "keras":
        raise ModelError(
            f"{keras_card_path} is a {source.format} card; export starts from the Keras model"
        )
    source.verify_file()
    out_dir.mkdir(parents=True, exist_ok=True)
    classes = source.class_names

    split_path = split_file or (
        keras_card_path.parent / str(source.training.get("split_file", "split.csv"))
    )
    items: list[ds.Item] = []
    if split_path.exists():
        items = ds.read_split(split_path, dataset_root)
        missing = [i.path for i in items[:50] if not ds.image_file(i.path).exists()]
        if missing:
            log.warning(
                "split images not found (e.g. %s): pass the dataset root; forms will not be re-measured",
                missing[0],
            )
            items = []
    test_items = [i for i in items if i.split == "test"]
    train_items = [i for i in items if i.split == "train"]
    val_items = [i for i in items if i.split == "val"]
    test_prepared = ds.prepared_arrays(test_items, source.input, cache_dir) if test_items else None
    calib = np.zeros((0, source.input.height, source.input.width), np.uint8)
    if train_items:
        rng = np.random.default_rng(0)
        chosen = sorted(
            rng.choice(len(train_items), min(calibration_images, len(train_items)), replace=False)
        )
        calib = ds.prepared_arrays([train_items[i] for i in chosen], source.input, cache_dir)

    # shipped split: paths relative to the dataset root, beside the models
    split_name = "genus_split.csv"
    if items:
        ds.write_split(items, out_dir / split_name, dataset_root)

    results: list[ExportedForm] = []
    fp32_onnx = out_dir / "genus.onnx"
    plan = [f for f in ("onnx", "int8", "keras") if f in forms]
    for form in plan:
        say(f"exporting {form}")
        if form == "onnx":
            path = export_onnx(source.model_path, fp32_onnx, source.input.height)
            fmt, precision, backend = "onnx", "fp32", "onnxruntime"
        elif form == "int8":
            if not fp32_onnx.exists():
                export_onnx(source.model_path, fp32_onnx, source.input.height)
            if len(calib) == 0:
                raise ModelError(
                    "INT8 export needs the training split's images for calibration "
                    "(pass --data-root so the split's paths resolve)"
                )
            path = out_dir / "genus_int8.onnx"
            int8_note = _quantise_choosing(
                fp32_onnx,
                path,
                calibration_batches(calib, source),
                int8_method,
                val_items,
                source,
                cache_dir,
                say,
            )
            fmt, precision, backend = "onnx", "int8", "onnxruntime"
        else:
            path = out_dir / "genus.keras"
            if path.resolve() != source.model_path.resolve():
                shutil.copyfile(source.model_path, path)
            fmt, precision, backend = "keras", "fp32", "tensorflow"
        training = dict(source.training)
        training["split_file"] = split_name if items else training.get("split_file")
        if form == "int8":
            training["int8_calibration"] = (
                f"{len(calib)} training-split images; ONNX Runtime static QDQ, per-channel int8 "
                f"weights, uint8 activations; kept in float: {', '.join(INT8_KEEP_FLOAT)}; {int8_note}"
            )
        card = replace(
            source,
            file=path.name,
            format=fmt,
            precision=precision,
            sha256=sha256_of(path),
            training=training,
            path=card_path_for(path),
        )
        test_top1, per_source = None, {}
        if test_prepared is not None:
            card.save(card_path_for(path))  # evaluate through the backend, which reads the card
            report, _ = evaluate_card(
                ModelCard.load(card_path_for(path)), backend, test_items, test_prepared, classes
            )
            accuracy = dict(source.accuracy)
            accuracy.update(ev.card_accuracy(report))
            accuracy["val_top1"] = source.accuracy.get("val_top1")
            accuracy["threshold_target_precision"] = source.accuracy.get(
                "threshold_target_precision"
            )
            accuracy["measured_with"] = f"phytoscope {backend} backend, {fmt}/{precision}"
            card = replace(card, accuracy=accuracy)
            test_top1, per_source = report.top1, accuracy["per_source"]
        else:
            card = replace(
                card,
                accuracy={
                    **source.accuracy,
                    "measured_with": "copied from the Keras card (not re-measured)",
                },
            )
        card.save(card_path_for(path))
        results.append(
            ExportedForm(form, ModelCard.load(card_path_for(path)), test_top1, per_source)
        )
    return results
