"""The shipped forms of an open-set head: ONNX FP32, ONNX INT8 and Keras, each with its card.

:mod:`phytoscope.training.onnx_head` writes the FP32 graph (backbone + ``openset/`` nodes).
This module adds the two other forms the project ships, so that every backend computes the
same logits and novelty score from the same numbers:

* INT8: the FP32 graph statically quantised as before (:func:`export.quantise_int8`: real
  training images for calibration), with every ``openset/`` node left in float: the
  prototypes' cosines differ by hundredths near the threshold, and an 8-bit cosine would move
  "unknown" decisions for a negligible gain in speed;
* Keras: the backbone of the base Keras model with the head rebuilt from standard layers
  (``Dense`` with the fitted weights, ``UnitNormalization``, a ``Dense`` holding the
  prototypes, ``Reshape`` + ``GlobalMaxPooling1D`` for the best cosine, a ``Dense`` for
  ``1 - x``), no ``Lambda``, so the file loads anywhere Keras 3 does without custom code.

Each form is then evaluated through the backend that runs it in the field and its card gets
its own accuracy and novelty figures (:func:`measure`).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from phytoscope.modelcard import ModelCard, NoveltySpec, card_path_for, sha256_of
from phytoscope.training import export, onnx_head
from phytoscope.training.openset import Head


def keras_with_head(base_keras: Path, head: Head) -> Any:
    """The base Keras model's backbone with ``head``: outputs ``{"logits", "novelty"}``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    base = keras.models.load_model(base_keras, compile=False)
    # everything up to what the old logits layer multiplies (dropout is identity here)
    backbone = keras.Model(base.inputs, base.get_layer("logits").input)
    inputs = keras.Input(base.input_shape[1:], name="input")
    features = backbone(inputs, training=False)
    n_classes, n_protos = len(head.classes), len(head.prototypes)
    logits_layer = keras.layers.Dense(n_classes, name="logits")
    unit = keras.layers.UnitNormalization(axis=-1, name="openset_unit")(features)
    prototypes_t, closeness_bias = onnx_head.closeness_affine(head)
    cosine_layer = keras.layers.Dense(
        n_protos, use_bias=closeness_bias is not None, name="openset_cosines"
    )
    cosines = cosine_layer(unit)
    best = keras.layers.GlobalMaxPooling1D(name="openset_best")(
        keras.layers.Reshape((n_protos, 1), name="openset_column")(cosines)
    )
    novelty_layer = keras.layers.Dense(1, name="openset_novelty")
    logits = logits_layer(features)
    cosine_novelty = novelty_layer(best)
    doubt_layer = None
    if head.softmax_weight:  # + w x (1 - max softmax), as onnx_head writes it
        probabilities = keras.layers.Softmax(axis=-1, name="openset_softmax")(logits)
        top = keras.layers.GlobalMaxPooling1D(name="openset_top_p")(
            keras.layers.Reshape((n_classes, 1), name="openset_p_column")(probabilities)
        )
        doubt_layer = keras.layers.Dense(1, name="openset_doubt")
        cosine_novelty = keras.layers.Add(name="openset_sum")([cosine_novelty, doubt_layer(top)])
    novelty = keras.layers.Reshape((), name="novelty")(cosine_novelty)
    model = keras.Model(inputs, {"logits": logits, "novelty": novelty}, name="phytoscope_openset")
    logits_layer.set_weights([head.weights, head.bias])
    cosine_layer.set_weights(
        [prototypes_t] if closeness_bias is None else [prototypes_t, closeness_bias]
    )
    novelty_layer.set_weights([np.array([[-1.0]], np.float32), np.array([1.0], np.float32)])
    if doubt_layer is not None:
        w = np.float32(head.softmax_weight)
        doubt_layer.set_weights([np.array([[-w]], np.float32), np.array([w], np.float32)])
    return model


def write_keras(base_keras: Path, head: Head, fp32_card: ModelCard, out_path: Path) -> Path:
    """Save the Keras form and its card (the FP32 card's facts, the Keras file's hash)."""
    model = keras_with_head(base_keras, head)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    model.save(out_path)
    card = replace(
        fp32_card, file=out_path.name, format="keras", precision="fp32", sha256=sha256_of(out_path)
    )
    card.save(card_path_for(out_path))
    return out_path


def write_int8(
    fp32_path: Path,
    fp32_card: ModelCard,
    calibration: np.ndarray,
    out_path: Path,
    method: str,
    calibrated_on: str = "training-split images",
) -> Path:
    """Quantise the FP32 form (``openset/`` nodes kept in float) and write its card; the
    novelty threshold is the FP32 one until the caller re-chooses it (:func:`rethreshold`)."""
    batches = export.calibration_batches(calibration, fp32_card)
    export.quantise_int8(fp32_path, out_path, batches, method=method)
    training = dict(fp32_card.training)
    training["int8_calibration"] = (
        f"{len(calibration)} {calibrated_on}; ONNX Runtime static QDQ, per-channel "
        f"int8 weights, uint8 activations; {method} ranges; kept in float: "
        f"{', '.join(export.INT8_KEEP_FLOAT)} and every open-set head node"
    )
    card = replace(
        fp32_card,
        file=out_path.name,
        precision="int8",
        sha256=sha256_of(out_path),
        training=training,
    )
    card.save(card_path_for(out_path))
    return out_path


def own_threshold(card: ModelCard, prepared: np.ndarray, coverage: float) -> float:
    """The novelty below which ``coverage`` of ``prepared`` (known organisms) lie, scored by
    this form through its own backend: the coverage rule every re-chosen threshold uses."""
    from phytoscope.training.openset import threshold_at_coverage

    _, novelty = backend_outputs(card, prepared)
    return threshold_at_coverage(novelty, coverage)


def rethreshold(card: ModelCard, val_prepared: np.ndarray, coverage: float) -> ModelCard:
    """The same coverage rule on this form's own novelty of the validation images.

    INT8 activations perturb the pooled embedding a little, and every perturbation lowers
    the cosine to the nearest prototype, so with the FP32 threshold the INT8 form called a
    quarter of the known test organisms unknown (models/README.md); its own threshold keeps
    the coverage the card promises.
    """
    assert card.novelty is not None
    threshold = own_threshold(card, val_prepared, coverage)
    chosen = card.novelty.chosen + "; re-chosen on this form's own validation novelty"
    card = replace(card, novelty=replace(card.novelty, threshold=threshold, chosen=chosen))
    card.save(card_path_for(card.model_path))
    return card


def frame_rethreshold(
    card: ModelCard, frame_prepared: np.ndarray, coverage: float, same_as: ModelCard | None = None
) -> ModelCard:
    """The card with a threshold of its own for pieces cut out of whole frames.

    A piece the segmentation cuts from a frame carries the frame's background, halos and
    neighbours, so every score runs higher than on an instrument's single-organism crops:
    with the crops' threshold only about half of the validation frames' segments (debris and
    cells of known classes) were classified, and annotated Pseudo-nitzschia cells were
    "unknown" (models/evaluation/frames/). The same coverage rule on the validation frames'
    own segments (this form's scores) gives frames their threshold; the crops' is unchanged.
    ``same_as``: a form computing the same numbers (Keras beside FP32 ONNX) whose frame
    threshold this one shares, as it shares the crops' one.
    """
    assert card.novelty is not None
    if same_as is not None and same_as.novelty is not None:
        assert same_as.novelty.frame_threshold is not None
        threshold = same_as.novelty.frame_threshold
    else:
        threshold = own_threshold(card, frame_prepared, coverage)
    chosen = (
        f"{card.novelty.chosen}; pieces cut out of whole frames: {threshold:.4f}, keeping "
        f"{coverage:.0%} of the {len(frame_prepared)} segments of the validation frames"
    )
    novelty_spec = replace(card.novelty, frame_threshold=threshold, chosen=chosen)
    card = replace(card, novelty=novelty_spec)
    card.save(card_path_for(card.model_path))
    return card


def frame_novelty(new: NoveltySpec | None, base: NoveltySpec | None) -> NoveltySpec | None:
    """``new`` with a threshold for pieces cut out of whole frames: the base model's margin
    between its frame and crop thresholds, added to the new crop threshold. A lab has no
    annotated validation frames to choose it on, and without one its frames would fall back
    to the crops' threshold, under which whole-frame cells come out "unknown" far more
    often (models/evaluation/frames/); the card says it is carried over, not measured."""
    if new is None or base is None or base.frame_threshold is None:
        return new
    margin = base.frame_threshold - base.threshold
    threshold = new.threshold + margin
    return replace(
        new,
        frame_threshold=threshold,
        chosen=f"{new.chosen}; pieces cut out of whole frames: {threshold:.4f}, the base "
        f"model's margin of {margin:+.4f} over its crop threshold carried over (not measured "
        "on this model)",
    )


def backend_outputs(card: ModelCard, prepared: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(logits, novelty) of prepared images through the backend that runs ``card``."""
    from phytoscope import backends
    from phytoscope.imaging.preprocess import normalise

    name = "tensorflow" if card.format == "keras" else "onnxruntime"
    logits, novelty = [], []
    with backends.backend_class(name)(card) as backend:
        for start in range(0, len(prepared), 64):
            out = backend.infer(normalise(prepared[start : start + 64], card.input))
            logits.append(out.logits)
            assert out.novelty is not None, "the card has a novelty section"
            novelty.append(out.novelty)
    return np.concatenate(logits), np.concatenate(novelty)


def measure(
    card: ModelCard,
    test_prepared: np.ndarray,
    test_items: list[Any],
    novel: dict[str, np.ndarray],
) -> dict[str, Any]:
    """The card's ``accuracy`` for one form, measured through its own backend: closed-set
    top-1 per class and source (as before), then with the novelty rule the coverage and the
    top-1 of the classified organisms, and the share of each ``novel`` set called unknown."""
    from phytoscope.training import evaluate as ev

    assert card.novelty is not None
    logits, novelty = backend_outputs(card, test_prepared)
    classes = card.class_names
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[i.cls] for i in test_items], dtype=np.int64)
    report = ev.evaluate_probabilities(
        y, ev.probabilities_of(logits), classes, [i.source for i in test_items], {}
    )
    accuracy = ev.card_accuracy(report)
    kept = novelty <= card.novelty.threshold
    right = logits.argmax(axis=1) == y
    accuracy["test_open_set"] = {
        "coverage": round(float(kept.mean()), 4),
        "top1_of_classified": round(float(right[kept].mean()), 4),
        "per_class_coverage": {
            c: round(float(kept[y == k].mean()), 4) for k, c in enumerate(classes) if (y == k).any()
        },
    }
    accuracy["novel_called_unknown"] = {}
    for name, prepared in novel.items():
        _, scores = backend_outputs(card, prepared)
        accuracy["novel_called_unknown"][name] = {
            "n": int(len(scores)),
            "unknown": round(float((scores > card.novelty.threshold).mean()), 4),
        }
    backend = "tensorflow" if card.format == "keras" else "onnxruntime"
    accuracy["measured_with"] = f"phytoscope {backend} backend, {card.format}/{card.precision}"
    return accuracy


FORM_FILES = {"onnx": "genus.onnx", "int8": "genus_int8.onnx", "keras": "genus.keras"}


def ship(
    base_onnx: Path,
    base_keras: Path,
    emb: Any,
    split_items: list[Any],
    novel_items: dict[str, list[Any]],
    out_dir: Path,
    method: Any,
    *,
    version: str,
    cache_dir: Path | None = None,
    calibration_images: int = 300,
    int8_method: str = "minmax-average",
    details: dict[str, Any] | None = None,
    frame_val_items: list[Any] | None = None,
    say: Any = lambda _m: None,
) -> list[ModelCard]:
    """Fit ``method``'s head on all training embeddings and write the three forms with cards
    (and the embedding bank beside the FP32 model) into ``out_dir``; every form is then
    measured through its backend on the test split and on ``novel_items`` (name -> items of
    organisms no class covers). ``frame_val_items``: the validation frames' segments, on
    which each form gets its threshold for whole frames (:func:`frame_rethreshold`)."""
    import shutil
    import tempfile

    from phytoscope.training import dataset as ds
    from phytoscope.training import heldout, onnx_head

    base_card = ModelCard.load(card_path_for(base_onnx))
    classes = base_card.class_names
    head = heldout.fit(emb, classes, method)
    bank_rows = heldout.originals(emb, split="train")
    index = {c: i for i, c in enumerate(classes)}
    bank = (emb.features[bank_rows], np.array([index[c] for c in emb.cls[bank_rows]]))
    training = {
        **base_card.training,
        "open_set_head": (
            f"logistic head refitted on the frozen backbone's embeddings of the training split "
            f"({' + '.join(method.views)} views"
            f"{', and the training frames segments' if method.frames else ''}), "
            f"{method.per_class} cosine prototypes per "
            f"class, l2 {method.l2:g} (phytoscope.training.heldout.fit)"
        ),
    }
    chosen = (
        f"keeps {method.coverage:.0%} of the validation split's known organisms; method and "
        "coverage chosen by the leave-classes-out study (models/evaluation/openset/)"
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        # the bases may be the very files being replaced
        onnx_copy, keras_copy = Path(tmp) / "base.onnx", Path(tmp) / "base.keras"
        shutil.copyfile(base_onnx, onnx_copy)
        shutil.copyfile(base_keras, keras_copy)
        say("writing the FP32 model")
        fp32 = onnx_head.write_model(
            onnx_copy,
            base_card,
            head,
            out_dir,
            name=base_card.name,
            version=version,
            file=FORM_FILES["onnx"],
            chosen=chosen,
            details={"views": list(method.views), **(details or {})},
            training=training,
            notes=base_card.notes,
            bank=bank,
        )
        fp32_card = ModelCard.load(card_path_for(fp32))
        train_items = [i for i in split_items if i.split == "train"]
        rng = np.random.default_rng(0)
        chosen_rows = sorted(
            rng.choice(len(train_items), min(calibration_images, len(train_items)), replace=False)
        )
        calibration = ds.prepared_arrays(
            [train_items[i] for i in chosen_rows], fp32_card.input, cache_dir
        )
        say("quantising INT8")
        paths = [
            fp32,
            write_int8(fp32, fp32_card, calibration, out_dir / FORM_FILES["int8"], int8_method),
        ]
        say("writing the Keras model")
        paths.append(write_keras(keras_copy, head, fp32_card, out_dir / FORM_FILES["keras"]))
    test_items = [i for i in split_items if i.split == "test"]
    test_prepared = ds.prepared_arrays(test_items, fp32_card.input, cache_dir)
    novel = {k: ds.prepared_arrays(v, fp32_card.input, cache_dir) for k, v in novel_items.items()}
    val_items = [i for i in split_items if i.split == "val"]
    val_prepared = ds.prepared_arrays(val_items, fp32_card.input, cache_dir)
    frame_prepared = (
        ds.prepared_arrays(frame_val_items, fp32_card.input, cache_dir) if frame_val_items else None
    )
    cards: list[ModelCard] = []
    for path in paths:
        card = ModelCard.load(card_path_for(path))
        if card.precision == "int8":
            say("choosing the INT8 form's own novelty threshold")
            card = rethreshold(card, val_prepared, method.coverage)
        if frame_prepared is not None:
            say(f"choosing {path.name}'s threshold for whole frames")
            fp32_twin = cards[0] if card.format == "keras" and cards else None
            card = frame_rethreshold(card, frame_prepared, method.coverage, same_as=fp32_twin)
        say(f"measuring {path.name}")
        card = replace(card, accuracy=measure(card, test_prepared, test_items, novel))
        card.save(card_path_for(path))
        cards.append(ModelCard.load(card_path_for(path)))
    return cards
