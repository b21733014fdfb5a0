"""Backend contract (tier 2) and parity (tier 3) over every importable CPU engine.

The models are the checked-in tiny ONNX models of tests/data/models (and the Keras twin of
``tiny`` for TensorFlow), so ONNX Runtime's tests run without TensorFlow installed.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from phytoscope import backends
from phytoscope.core.classifier import NOVEL, UNSURE, Classifier, softmax
from phytoscope.errors import BackendError, ModelError
from phytoscope.imaging.preprocess import preprocess_batch
from phytoscope.modelcard import UNKNOWN, NoveltySpec
from phytoscope.types import Roi

CPU_BACKENDS = [
    name
    for name, reason in backends.availability().items()
    if reason is None and name != "tensorrt"
]


def _batch(card, n=4, seed=1):
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 255, size=(40 + 7 * i, 30 + 3 * i), dtype=np.uint8) for i in range(n)]
    return images, preprocess_batch(images, card.input)


@pytest.mark.parametrize("name", CPU_BACKENDS)
def test_contract(name, tiny_model_dir):
    backend = backends.create(name, model=tiny_model_dir)
    assert not backend.loaded
    with pytest.raises(BackendError):
        backend.infer(np.zeros(backend.input_spec.batch_shape(1), np.float32))
    with backend:
        images, batch = _batch(backend.card)
        outputs = backend.infer(batch)
        assert outputs.logits.shape == (4, backend.card.num_classes)
        assert outputs.logits.dtype == np.float32
        assert outputs.novelty is None  # the tiny model has no open-set output
        with pytest.raises(ValueError):
            backend.infer(batch.astype(np.float64))
        with pytest.raises(ValueError):
            backend.infer(batch[:, :-1])
        preds = Classifier(backend).predict([Roi("x.png", i, im) for i, im in enumerate(images)])
        assert [p.roi_index for p in preds] == [0, 1, 2, 3]
        assert all(p.label in backend.card.class_names for p in preds)
    assert not backend.loaded


def test_parity_tensorflow_vs_onnxruntime(tiny_model_dir):
    if "tensorflow" not in CPU_BACKENDS:
        pytest.skip("TensorFlow not installed: parity with ONNX Runtime not checked")
    with (
        backends.create("onnxruntime", model=tiny_model_dir) as ort,
        backends.create("tensorflow", model=tiny_model_dir) as tf,
    ):
        _, batch = _batch(ort.card, n=8, seed=7)
        a, b = ort.logits(batch), tf.logits(batch)
    np.testing.assert_allclose(a, b, atol=1e-4)
    assert (a.argmax(1) == b.argmax(1)).all()


def test_tampered_model_is_refused(tiny_model_dir, tmp_path):
    import shutil

    for f in tiny_model_dir.glob("tiny.onnx*"):
        shutil.copy(f, tmp_path / f.name)
    with open(tmp_path / "tiny.onnx", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ModelError, match="does not match its card"):
        backends.create("onnxruntime", model=tmp_path).load()


def test_card_with_wrong_shape_is_refused(tiny_model_dir, tmp_path):
    import shutil

    for f in tiny_model_dir.glob("tiny.onnx*"):
        shutil.copy(f, tmp_path / f.name)
    card = json.loads((tmp_path / "tiny.onnx.json").read_text())
    card["input"]["height"] = card["input"]["width"] = 64
    (tmp_path / "tiny.onnx.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="input shape"):
        backends.create("onnxruntime", model=tmp_path).load()


def test_no_model_message(tmp_path):
    with pytest.raises(ModelError, match="no model installed"):
        backends.create("onnxruntime", models_dir=tmp_path)


def test_other_json_files_in_a_model_folder_are_not_cards(tiny_model_dir, tmp_path):
    import shutil

    from phytoscope.modelcard import discover

    for f in tiny_model_dir.glob("tiny.onnx*"):
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / "size_comparison.json").write_text('{"96": 0.9}')
    assert [c.file for c in discover(tmp_path)] == ["tiny.onnx"]


@pytest.mark.parametrize("name", ["onnxruntime"])
def test_contract_with_a_novelty_output(name, tiny_novelty_model_dir):
    with backends.create(name, model=tiny_novelty_model_dir) as backend:
        assert backend.card.novelty is not None and backend.card.novelty.output == "novelty"
        images, batch = _batch(backend.card, n=6, seed=3)
        outputs = backend.infer(batch)
        assert outputs.logits.shape == (6, 3) and outputs.logits.dtype == np.float32
        assert outputs.novelty is not None
        assert outputs.novelty.shape == (6,) and outputs.novelty.dtype == np.float32
        # the graph's score is the energy: -logsumexp(logits), per organism
        logits = outputs.logits.astype(np.float64)
        top = logits.max(axis=1)
        energy = -(top + np.log(np.exp(logits - top[:, None]).sum(axis=1)))
        np.testing.assert_allclose(outputs.novelty, energy, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(backend.logits(batch), outputs.logits)
        single = backend.infer(batch[:1])
        assert single.novelty.shape == (1,)


def test_unknown_decisions_through_the_classifier(tiny_novelty_model_dir):
    """Novel above the card's threshold (checked first), unsure below a class threshold,
    identified otherwise: the card decides, the classifier applies it."""
    with backends.create("onnxruntime", model=tiny_novelty_model_dir) as backend:
        images, batch = _batch(backend.card, n=8, seed=5)
        outputs = backend.infer(batch)
        probabilities = softmax(outputs.logits.astype(np.float64))
        order = np.argsort(outputs.novelty)
        middle = float(outputs.novelty[order[3]] + outputs.novelty[order[4]]) / 2
        # among the familiar half, a class threshold that leaves some unsure, some identified
        familiar = probabilities[order[:4]]
        strict = int(np.bincount(familiar.argmax(1)).argmax())
        confidences = np.sort(familiar[familiar.argmax(1) == strict].max(1))
        assert len(confidences) >= 2, "the fixture batch needs two familiar rows of one class"
        limit = float(confidences[0] + confidences[-1]) / 2
        card = backend.card
        classes = list(card.classes)
        classes[strict] = replace(classes[strict], threshold=limit)
        backend.card = replace(card, novelty=NoveltySpec("energy", middle), classes=tuple(classes))
        rois = [Roi("x.png", i, image) for i, image in enumerate(images)]
        predictions = Classifier(backend).predict(rois)
    assert [p.novelty for p in predictions] == pytest.approx(outputs.novelty.tolist(), abs=1e-6)
    for p, score, row in zip(predictions, outputs.novelty, probabilities, strict=True):
        best = int(row.argmax())
        if score > middle:
            assert (p.label, p.unknown_reason) == (UNKNOWN, NOVEL)
        elif best == strict and row.max() < limit:
            assert (p.label, p.unknown_reason) == (UNKNOWN, UNSURE)
        else:
            assert (p.label, p.unknown_reason) == (card.class_names[best], "")
        assert p.top_k[0][0] == card.class_names[best]  # the ranking is kept for unknowns
    reasons = [p.unknown_reason for p in predictions]
    assert reasons.count(NOVEL) == 4 and reasons.count(UNSURE) >= 1 and reasons.count("") >= 1
