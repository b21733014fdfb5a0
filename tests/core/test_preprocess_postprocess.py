from __future__ import annotations

import numpy as np
import pytest

from phytoscope.core.classifier import decide, softmax
from phytoscope.core.preprocess import letterbox, preprocess, to_grey, to_uint8
from phytoscope.modelcard import ClassInfo, InputSpec, ModelCard


def test_to_uint8_stretches_12_bit_data_in_16_bit_files():
    img = np.linspace(0, 4095, 10000).reshape(100, 100).astype(np.uint16)
    out = to_uint8(img)
    assert out.dtype == np.uint8 and out.min() == 0 and out.max() == 255


@pytest.mark.parametrize("shape", [(20, 30), (20, 30, 1), (20, 30, 3), (20, 30, 4)])
def test_to_grey_accepts_grey_rgb_rgba(shape):
    assert to_grey(np.full(shape, 100, np.uint8)).shape == (20, 30)


def test_letterbox_keeps_aspect_and_pads_with_background():
    chain = np.full((10, 100), 250, np.uint8)  # bright background (brightfield)
    chain[4:6, 10:90] = 20
    out = letterbox(chain, 64, 64)
    assert out.shape == (64, 64)
    assert out[0, 0] == 250 and out[-1, -1] == 250  # padding is background, not black
    assert out.min() < 150  # the organism survived the resize (area-averaged)


def test_preprocess_range_and_channels():
    spec = InputSpec(height=16, width=16)
    x = preprocess(np.array([[0, 255], [255, 0]], np.uint8), spec)
    assert x.shape == (16, 16, 3) and x.dtype == np.float32
    assert x.min() >= -1.0 and x.max() <= 1.0
    assert np.array_equal(x[..., 0], x[..., 2])
    nchw = preprocess(np.zeros((5, 5), np.uint8), InputSpec(height=8, width=8, layout="NCHW"))
    assert nchw.shape == (3, 8, 8)


def test_softmax_is_stable_and_normalised():
    p = softmax(np.array([[1000.0, 1000.0, -1000.0]]))
    np.testing.assert_allclose(p, [[0.5, 0.5, 0.0]], atol=1e-12)


def test_decide_applies_per_class_threshold():
    card = ModelCard(
        name="t",
        version="0",
        file="t.onnx",
        format="onnx",
        precision="fp32",
        sha256="",
        classes=(ClassInfo("A", threshold=0.9), ClassInfo("B", threshold=0.0)),
    )
    (label_a, conf_a, top_a), (label_b, _, _) = decide(
        np.array([[0.8, 0.2], [0.3, 0.7]]), card, k=3
    )
    assert label_a == "unknown" and conf_a == pytest.approx(0.8)
    assert top_a == (("A", 0.8), ("B", 0.2))
    assert label_b == "B"
