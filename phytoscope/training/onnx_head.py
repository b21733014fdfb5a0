"""An exported classifier's backbone, and a fitted :class:`~phytoscope.training.openset.Head`
put back on it as ONNX nodes.

The head is written as plain ONNX operators (MatMul, Add, Div, TopK, Reshape) with every
opset since 11, so ONNX Runtime (FP32 and INT8: the nodes are named ``openset/...`` and
left in float) and TensorRT (which builds its engine from this graph) compute the logits and
the novelty score in the model itself, identically, as DESIGN 5b asks. The graph's outputs are
``logits`` (N, C) and ``novelty`` (N,), the names :func:`phytoscope.backends.base.pick_outputs`
looks for.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from phytoscope.errors import Cancelled, ModelError
from phytoscope.modelcard import (
    ClassInfo,
    InputSpec,
    ModelCard,
    NoveltySpec,
    card_path_for,
    sha256_of,
)
from phytoscope.training.bank import bank_path_for, save_bank
from phytoscope.training.openset import METHOD, Head

FEATURES = "features"
PREFIX = "openset/"


def _load(model: Path | Any) -> Any:
    import onnx

    if isinstance(model, (str, Path)):
        try:
            return onnx.load(str(model))
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot read ONNX model {model}: {exc}") from exc
    return model


def feature_tensor(model: Any) -> str:
    """The name of the pooled-embedding tensor that the model's logits layer multiplies.

    Follows the ``logits`` output (or the only output) back through its bias ``Add`` to the
    ``MatMul``/``Gemm`` and returns that node's data input.
    """
    graph = model.graph
    names = [o.name for o in graph.output]
    out = "logits" if "logits" in names else names[0]
    producers = {o: n for n in graph.node for o in n.output}
    node = producers.get(out)
    seen = 0
    while node is not None and seen < 4:
        if node.op_type in ("MatMul", "Gemm"):
            return str(node.input[0])
        if node.op_type in ("Add", "Identity"):
            candidates = [producers.get(i) for i in node.input]
            node = next((c for c in candidates if c is not None), None)
            seen += 1
            continue
        break
    raise ModelError(
        "cannot find the embedding that the model's logits layer multiplies (expected "
        "MatMul/Gemm [+ Add] producing the logits output): is this a phytoscope classifier?"
    )


def _opset(model: Any) -> int:
    return max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=13)


def _prune(model: Any, outputs: Sequence[str]) -> None:
    """Drop the nodes and initializers that none of ``outputs`` needs."""
    graph = model.graph
    producers = {o: n for n in graph.node for o in n.output}
    needed: set[str] = set()
    stack = list(outputs)
    while stack:
        name = stack.pop()
        if name in needed:
            continue
        needed.add(name)
        node = producers.get(name)
        if node is not None:
            stack.extend(i for i in node.input if i)
    keep = [n for n in graph.node if any(o in needed for o in n.output)]
    del graph.node[:]
    graph.node.extend(keep)
    inits = [t for t in graph.initializer if t.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(inits)


def features_model(base_onnx: Path | Any) -> Any:
    """The base model's backbone alone: one output ``features`` (N, D)."""
    from onnx import TensorProto, helper

    model = copy.deepcopy(_load(base_onnx))
    source = feature_tensor(model)
    graph = model.graph
    if source != FEATURES:
        graph.node.append(
            helper.make_node("Identity", [source], [FEATURES], name=PREFIX + "features")
        )
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(FEATURES, TensorProto.FLOAT, ["N", None]))
    _prune(model, [FEATURES])
    return model


def _session(model: Any, threads: int | None = None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def embed(
    base_onnx: Path | Any,
    prepared: np.ndarray,
    spec: InputSpec | None = None,
    *,
    batch: int = 32,
    threads: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> np.ndarray:
    """Backbone embeddings (N, D) float32 of ``prepared`` images.

    ``prepared`` is either uint8 (N, H, W) from
    :func:`phytoscope.training.dataset.prepared_arrays` (normalised here, batch by batch, with
    ``spec`` or the base model's card) or an already normalised float32 batch tensor.
    """
    from phytoscope.imaging.preprocess import normalise

    if prepared.dtype == np.uint8 and spec is None:
        if not isinstance(base_onnx, (str, Path)):
            raise ModelError("embed: give the input spec for a model that is not a file")
        spec = ModelCard.load(card_path_for(Path(base_onnx))).input
    session = _session(features_model(base_onnx), threads)
    name = session.get_inputs()[0].name
    out: list[np.ndarray] = []
    total = len(prepared)
    for start in range(0, total, batch):
        if cancel is not None and cancel():
            raise Cancelled("cancelled")
        chunk = prepared[start : start + batch]
        if chunk.dtype == np.uint8:
            assert spec is not None
            chunk = normalise(chunk, spec)
        out.append(np.asarray(session.run([FEATURES], {name: chunk})[0], np.float32))
        if progress is not None:
            progress(min(start + batch, total), total)
    if not out:
        return np.zeros((0, 0), np.float32)
    return np.concatenate(out).reshape(total, -1)


def _const(name: str, value: np.ndarray) -> Any:
    from onnx import numpy_helper

    return numpy_helper.from_array(np.ascontiguousarray(value), PREFIX + name)


def closeness_affine(head: Head) -> tuple[np.ndarray, np.ndarray | None]:
    """``(A (D, M), b (M,) or None)`` with ``unit @ A + b`` = each prototype's *closeness*
    ``1 - (1 - cos) / s``, so that ``1 - max closeness`` is the head's cosine novelty
    (:func:`openset.novelty_against`); without class scales, plain cosines (``b`` None).
    The ONNX and Keras forms both write the novelty this way."""
    prototypes_t = head.prototypes.T.astype(np.float32)
    scale = head.prototype_scale
    if scale is None:
        return prototypes_t, None
    inverse = (1.0 / scale).astype(np.float32)
    return (prototypes_t * inverse[None, :]).astype(np.float32), (1.0 - inverse).astype(np.float32)


def with_head(base_onnx: Path | Any, head: Head) -> Any:
    """The base backbone with ``head``: outputs ``logits`` (N, C) and ``novelty`` (N,)."""
    import onnx
    from onnx import TensorProto, helper

    model = features_model(base_onnx)
    graph = model.graph
    del graph.output[:]
    p = PREFIX
    f = FEATURES
    dim = head.dim
    prototypes_t, closeness_bias = closeness_affine(head)
    graph.initializer.extend(
        [
            _const("weights", head.weights.astype(np.float32)),
            _const("bias", head.bias.astype(np.float32)),
            _const("ones", np.ones((dim, 1), np.float32)),
            _const("eps", np.array([1e-12], np.float32)),
            _const("prototypes_t", prototypes_t),
            _const("k", np.array([1], np.int64)),
            _const("one", np.array([1.0], np.float32)),
            _const("flat", np.array([-1], np.int64)),
        ]
    )
    nodes = [
        helper.make_node("MatMul", [f, p + "weights"], [p + "scores"], name=p + "logits_matmul"),
        helper.make_node("Add", [p + "scores", p + "bias"], ["logits"], name=p + "logits"),
        # unit rows: x / sqrt(max(sum(x^2), eps)); the sum as a MatMul keeps it opset-neutral
        helper.make_node("Mul", [f, f], [p + "squares"], name=p + "squares"),
        helper.make_node("MatMul", [p + "squares", p + "ones"], [p + "sumsq"], name=p + "sumsq"),
        helper.make_node("Max", [p + "sumsq", p + "eps"], [p + "sumsq_safe"], name=p + "safe"),
        helper.make_node("Sqrt", [p + "sumsq_safe"], [p + "norm"], name=p + "norm"),
        helper.make_node("Div", [f, p + "norm"], [p + "unit"], name=p + "unit"),
        helper.make_node(
            "MatMul", [p + "unit", p + "prototypes_t"], [p + "cosines"], name=p + "cosines"
        ),
    ]
    closeness = p + "cosines"
    if closeness_bias is not None:  # 1 - (1 - cos) / s, so that 1 - max is the scaled novelty
        graph.initializer.append(_const("closeness_bias", closeness_bias))
        closeness = p + "closeness"
        nodes.append(
            helper.make_node(
                "Add", [p + "cosines", p + "closeness_bias"], [closeness], name=closeness
            )
        )
    nodes += [
        helper.make_node(
            "TopK",
            [closeness, p + "k"],
            [p + "best", p + "best_index"],
            axis=1,
            name=p + "best",
        ),
        helper.make_node("Reshape", [p + "best", p + "flat"], [p + "best_flat"], name=p + "flat"),
    ]
    if head.softmax_weight:
        graph.initializer.append(
            _const("softmax_weight", np.array([head.softmax_weight], np.float32))
        )
        nodes += [
            helper.make_node(
                "Sub", [p + "one", p + "best_flat"], [p + "cosine_novelty"], name=p + "cosine"
            ),
            helper.make_node("Softmax", ["logits"], [p + "probabilities"], axis=1, name=p + "sm"),
            helper.make_node(
                "TopK",
                [p + "probabilities", p + "k"],
                [p + "top_p", p + "top_index"],
                axis=1,
                name=p + "top_p",
            ),  # fmt: skip
            helper.make_node("Reshape", [p + "top_p", p + "flat"], [p + "top_flat"], name=p + "tf"),
            helper.make_node("Sub", [p + "one", p + "top_flat"], [p + "doubt"], name=p + "doubt"),
            helper.make_node(
                "Mul", [p + "doubt", p + "softmax_weight"], [p + "weighted"], name=p + "weighted"
            ),
            helper.make_node(
                "Add", [p + "cosine_novelty", p + "weighted"], ["novelty"], name=p + "novelty"
            ),
        ]
    else:
        nodes.append(
            helper.make_node("Sub", [p + "one", p + "best_flat"], ["novelty"], name=p + "novelty")
        )
    graph.node.extend(nodes)
    graph.output.extend(
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", len(head.classes)]),
            helper.make_tensor_value_info("novelty", TensorProto.FLOAT, ["N"]),
        ]
    )
    if _opset(model) < 11:
        raise ModelError("the open-set head needs ONNX opset 11 or newer")
    onnx.checker.check_model(model)
    return model


def write_model(
    base_onnx: Path,
    base_card: ModelCard,
    head: Head,
    out_dir: Path,
    *,
    name: str,
    version: str,
    file: str = "model.onnx",
    chosen: str = "",
    class_infos: tuple[ClassInfo, ...] | None = None,
    details: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    accuracy: dict[str, Any] | None = None,
    notes: str | None = None,
    bank: tuple[np.ndarray, np.ndarray] | None = None,
) -> Path:
    """Write ``out_dir/file`` (FP32 ONNX with the head), its card and, given, its bank.

    Classes keep the base card's facts (rank, HAB, group) where the name is the same; a new
    name gets ``class_infos``' entry or a plain genus entry. Returns the model path.
    """
    import onnx

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / file
    onnx.save(with_head(base_onnx, head), str(path))
    known = {c.name: c for c in (class_infos or ())}
    base = {c.name: c for c in base_card.classes}
    # a base class keeps its facts but not its confidence threshold, which was chosen on the
    # old head's softmax; thresholds for the new head come in ``class_infos``
    classes = tuple(
        known.get(c) or (replace(base[c], threshold=0.0) if c in base else ClassInfo(name=c))
        for c in head.classes
    )
    card = replace(
        base_card,
        name=name,
        version=version,
        file=path.name,
        format="onnx",
        precision="fp32",
        sha256=sha256_of(path),
        classes=classes,
        output="logits",
        novelty=NoveltySpec(
            method=METHOD,
            threshold=float(head.threshold),
            chosen=chosen or f"keeps {head.coverage:.0%} of held-out known-class embeddings",
            details={**head.details(), **(details or {})},
        ),
        training=training if training is not None else base_card.training,
        accuracy=accuracy if accuracy is not None else {},
        notes=base_card.notes if notes is None else notes,
        path=None,
    )
    card.save(card_path_for(path))
    if bank is not None:
        save_bank(bank_path_for(path), bank[0], bank[1], head.classes)
    return path
