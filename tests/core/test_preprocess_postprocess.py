from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from phytoscope.core.classifier import decide, softmax
from phytoscope.imaging.preprocess import letterbox, preprocess, to_grey, to_uint8
from phytoscope.modelcard import ClassInfo, InputSpec, ModelCard, NoveltySpec


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


def _card(novelty=None):
    return ModelCard(
        name="t",
        version="0",
        file="t.onnx",
        format="onnx",
        precision="fp32",
        sha256="",
        classes=(ClassInfo("A", threshold=0.9), ClassInfo("B", threshold=0.0)),
        novelty=novelty,
    )


def test_decide_applies_per_class_threshold():
    (label_a, conf_a, top_a, why_a), (label_b, _, _, why_b) = decide(
        np.array([[0.8, 0.2], [0.3, 0.7]]), _card(), k=3
    )
    assert label_a == "unknown" and conf_a == pytest.approx(0.8) and why_a == "unsure"
    assert top_a == (("A", 0.8), ("B", 0.2))
    assert label_b == "B" and why_b == ""


def test_decide_calls_novel_organisms_unknown_whatever_the_softmax_says():
    card = _card(NoveltySpec(method="test", threshold=5.0))
    probabilities = np.array([[0.01, 0.99], [0.01, 0.99], [0.95, 0.05]])
    novelty = np.array([5.5, 5.0, 9.0], np.float32)  # exactly on the threshold is not novel
    decisions = decide(probabilities, card, novelty=novelty)
    assert [(d[0], d[3]) for d in decisions] == [
        ("unknown", "novel"),
        ("B", ""),
        ("unknown", "novel"),
    ]
    assert decisions[0][2][0] == ("B", 0.99)  # the ranking is kept for review
    # no novelty output (an older model): only the confidence rule applies
    assert [d[0] for d in decide(probabilities, card)] == ["B", "B", "A"]


def test_pieces_cut_from_whole_frames_are_held_to_the_frame_threshold():
    card = _card(NoveltySpec(method="test", threshold=5.0, frame_threshold=7.0))
    probabilities = np.array([[0.01, 0.99]] * 4)
    novelty = np.array([6.0, 6.0, 8.0, 4.0], np.float32)
    decisions = decide(probabilities, card, novelty=novelty, from_frame=[False, True, True, True])
    assert [d[0] for d in decisions] == ["unknown", "B", "unknown", "B"]
    # a card without a frame threshold holds frame pieces to the crops' threshold
    plain = _card(NoveltySpec(method="test", threshold=5.0))
    assert decide(probabilities[:1], plain, novelty=novelty[:1], from_frame=[True])[0][0] == (
        "unknown"
    )
    assert card.novelty is not None and card.novelty.threshold_for(True) == 7.0
    assert card.novelty.threshold_for(False) == 5.0


def test_card_with_novelty_round_trips_as_schema_2_and_without_as_schema_1(tmp_path):
    spec = NoveltySpec(method="mahalanobis", threshold=12.5, chosen="val 95 %", details={"k": 1})
    with_novelty = _card(spec)
    raw = with_novelty.to_dict()
    assert raw["schema"] == 2 and raw["novelty"]["threshold"] == 12.5
    assert ModelCard.from_dict(raw).novelty == spec
    # a frame threshold needs schema 3: a schema-2 reader must refuse it, not drop it
    framed = replace(spec, frame_threshold=14.0)
    raw = _card(framed).to_dict()
    assert raw["schema"] == 3 and raw["novelty"]["frame_threshold"] == 14.0
    assert ModelCard.from_dict(raw).novelty == framed
    from phytoscope.errors import ModelError

    with pytest.raises(ModelError, match="upgrade phytoscope"):
        ModelCard.from_dict({**raw, "schema": raw["schema"] + 1})
    # a hand-edited threshold that is not a finite number is refused on loading, not at the
    # first organism
    for key, bad in (("threshold", "0.2"), ("frame_threshold", float("nan")), ("threshold", True)):
        broken = {**raw, "novelty": {**raw["novelty"], key: bad}}
        with pytest.raises(ModelError, match=f"novelty.{key} must be"):
            ModelCard.from_dict(broken)
    plain = _card().to_dict()
    assert plain["schema"] == 1 and "novelty" not in plain
    assert ModelCard.from_dict(plain).novelty is None


def test_outputs_are_picked_by_name():
    from phytoscope.backends.base import pick_outputs
    from phytoscope.errors import ModelError

    logits, novelty = np.zeros((2, 2), np.float32), np.ones((2,), np.float32)
    plain = pick_outputs(_card(), {"Identity:0": logits})  # one output: the logits
    assert plain.logits is logits and plain.novelty is None
    card = _card(NoveltySpec(method="test", threshold=1.0))
    both = pick_outputs(card, {"novelty:0": novelty, "logits:0": logits})
    assert both.logits is logits and both.novelty is novelty
    with pytest.raises(ModelError, match="novelty"):
        pick_outputs(card, {"logits": logits})
