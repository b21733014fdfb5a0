"""The Keras form of an open-set head computes what the ONNX graph computes.

Runs on the tiny test model (tests/data/models/tiny: the same random weights as Keras and
ONNX), with a random head: logits and novelty of both forms must agree to float precision.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from phytoscope.training import onnx_head, openset

pytestmark = pytest.mark.slow
tf = pytest.importorskip("tensorflow")
TINY = Path(__file__).resolve().parents[1] / "data" / "models" / "tiny"


@pytest.mark.parametrize(("softmax_weight", "scaled"), [(0.0, False), (0.25, True)])
def test_keras_head_matches_the_onnx_head(softmax_weight, scaled):
    import onnxruntime as ort

    from phytoscope.modelcard import ModelCard
    from phytoscope.training import openset_forms

    card = ModelCard.load(TINY / "tiny.onnx.json")
    dim = onnx_head.embed(TINY / "tiny.onnx", np.zeros((1, 32, 32), np.uint8), card.input).shape[1]
    rng = np.random.default_rng(0)
    protos = openset.unit_rows(np.abs(rng.normal(size=(7, dim))))
    head = openset.Head(
        tuple(f"c{i}" for i in range(card.num_classes)),
        rng.normal(size=(dim, card.num_classes)).astype(np.float32),
        rng.normal(size=card.num_classes).astype(np.float32),
        protos,
        np.arange(7) % card.num_classes,
        0.2,
        softmax_weight=softmax_weight,
        class_scale=rng.uniform(0.5, 2.0, card.num_classes).astype(np.float32) if scaled else None,
    )
    x = rng.uniform(-1, 1, (5, 32, 32, 3)).astype(np.float32)
    model = onnx_head.with_head(TINY / "tiny.onnx", head)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    logits, novelty = session.run(["logits", "novelty"], {session.get_inputs()[0].name: x})
    keras_model = openset_forms.keras_with_head(TINY / "tiny.keras", head)
    out = keras_model(x, training=False)
    np.testing.assert_allclose(np.asarray(out["logits"]), logits, atol=1e-4)
    np.testing.assert_allclose(np.asarray(out["novelty"]), novelty, atol=1e-5)
    assert not any(type(layer).__name__ == "Lambda" for layer in keras_model.layers)
