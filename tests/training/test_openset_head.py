"""The open-set head: fitted in numpy, computed identically by the exported ONNX graph."""

from __future__ import annotations

import numpy as np
import pytest

from phytoscope import backends
from phytoscope.errors import ModelError
from phytoscope.imaging.preprocess import normalise
from phytoscope.modelcard import ModelCard, card_path_for
from phytoscope.training import bank, onnx_head, openset

CLASSES = ("a", "b", "c")


def _clusters(rng, per_class=40, dim=8, spread=0.2):
    centres = np.eye(len(CLASSES), dim) * 3 + 0.5
    x = np.concatenate([centres[c] + rng.normal(0, spread, (per_class, dim)) for c in range(3)])
    return np.abs(x).astype(np.float32), np.repeat(np.arange(3), per_class)


def test_head_separates_classes_and_calls_far_points_novel():
    rng = np.random.default_rng(0)
    x, y = _clusters(rng)
    head = openset.fit_head(x, y, CLASSES, per_class=4)
    assert (openset.head_logits(head, x).argmax(axis=1) == y).mean() == 1.0
    # about `coverage` of the known classes stay below the threshold ...
    known = (openset.head_novelty(head, x) <= head.threshold).mean()
    assert known >= 0.9
    # ... while an embedding unlike every class is above it
    far = np.zeros((5, 8), np.float32)
    far[:, 6:] = 3.0
    assert (openset.head_novelty(head, far) > head.threshold).all()


def test_cross_validate_reports_every_class():
    rng = np.random.default_rng(1)
    x, y = _clusters(rng)
    report = openset.cross_validate(x, y, CLASSES, folds=4, per_class=4)
    assert set(report["per_class"]) == set(CLASSES)
    assert all(r["top1"] == 1.0 for r in report["per_class"].values())


def test_bank_round_trip_caps_each_class(tmp_path):
    rng = np.random.default_rng(2)
    x, y = _clusters(rng)
    path = bank.save_bank(tmp_path / "m.bank.npz", x, y, CLASSES, cap_per_class=10)
    features, labels, classes = bank.load_bank(path)
    assert classes == CLASSES and features.shape == (30, 8)
    assert np.bincount(labels).tolist() == [10, 10, 10]
    with pytest.raises(ModelError):
        bank.load_bank(tmp_path / "missing.bank.npz")


@pytest.mark.parametrize(("softmax_weight", "scale_quantile"), [(0.0, None), (0.25, 0.5)])
def test_exported_graph_computes_the_head(
    tiny_model_dir, tmp_path, images_for_tiny, softmax_weight, scale_quantile
):
    base = tiny_model_dir / "tiny.onnx"
    card = ModelCard.load(card_path_for(base))
    prepared = images_for_tiny(card)
    features = onnx_head.embed(base, prepared)
    labels = np.arange(len(features)) % 2
    head = openset.fit_head(
        features,
        labels,
        ("Alpha", "Delta"),
        per_class=2,
        softmax_weight=softmax_weight,
        scale_quantile=scale_quantile,
    )
    assert head.softmax_weight == softmax_weight
    assert (head.class_scale is None) == (scale_quantile is None)
    path = onnx_head.write_model(
        base, card, head, tmp_path / "m", name="t", version="1", bank=(features, labels)
    )
    new = ModelCard.load(card_path_for(path))
    assert new.novelty is not None and new.novelty.method == openset.METHOD
    assert new.class_names == ("Alpha", "Delta")
    assert bank.bank_path_for(path).exists()
    # every backend reads the two outputs by name; they equal the numpy reference
    with backends.create("onnxruntime", model=card_path_for(path)) as backend:
        out = backend.infer(normalise(prepared, new.input))
    np.testing.assert_allclose(out.logits, openset.head_logits(head, features), atol=1e-4)
    assert out.novelty is not None
    np.testing.assert_allclose(out.novelty, openset.head_novelty(head, features), atol=1e-5)


def test_class_scales_put_distances_in_units_of_each_class_spread():
    rng = np.random.default_rng(5)
    # class a tight, class b ten times as spread: on raw distances one threshold is loose
    # around a and strict around b
    x, y = _clusters(rng, per_class=60)
    x[y == 1] = x[y == 1] + rng.normal(0, 2.0, (60, 8)).astype(np.float32)
    x = np.abs(x)
    distances = openset.held_out_distances(x, y, 3, per_class=4)
    assert distances.shape == (180, 3) and np.isfinite(distances).all()
    scale = openset.class_scales(distances, y, 0.5)
    assert scale[1] > 3 * scale[0] and np.median(scale) == pytest.approx(1.0)
    head = openset.fit_head(x, y, CLASSES, per_class=4, scale_quantile=0.5)
    np.testing.assert_allclose(head.class_scale, scale, rtol=1e-5)
    assert head.details()["class_scale"]["b"] == pytest.approx(float(scale[1]), rel=1e-4)
    # without scales, the scaled form of the score is the plain one
    plain = openset.fit_head(x, y, CLASSES, per_class=4)
    np.testing.assert_allclose(
        openset.scaled_novelty(distances, None).max(), distances.min(axis=1).max()
    )
    assert plain.class_scale is None and "class_scale" not in plain.details()
    # each class keeps about the same share of its own organisms below the threshold
    novelty = openset.head_novelty(head, x)
    kept = [(novelty[y == c] <= head.threshold).mean() for c in range(3)]
    assert min(kept) >= 0.75


def test_a_model_without_a_linear_logits_layer_is_refused(tmp_path):
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["input"], ["logits"])],
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])],
    )
    with pytest.raises(ModelError, match="logits layer"):
        onnx_head.feature_tensor(helper.make_model(graph))


@pytest.fixture
def images_for_tiny():
    def make(card):
        rng = np.random.default_rng(3)
        return (rng.random((12, card.input.height, card.input.width)) * 255).astype(np.uint8)

    return make


def test_a_refitted_head_keeps_its_cards_open_set_rule(tiny_model_dir, tmp_path):
    rng = np.random.default_rng(4)
    x, y = _clusters(rng)
    head = openset.fit_head(x, y, CLASSES, per_class=4, coverage=0.87)
    base = tiny_model_dir / "tiny.onnx"
    card = ModelCard.load(card_path_for(base))
    # a card written for this head states its rule; learn refits by it
    features = onnx_head.embed(base, (rng.random((6, 32, 32)) * 255).astype(np.uint8))
    small = openset.fit_head(
        features, np.arange(6) % 3, CLASSES, per_class=4, coverage=0.87, scale_quantile=0.5
    )
    path = onnx_head.write_model(base, card, small, tmp_path / "m", name="t", version="1")
    settings = openset.novelty_settings(ModelCard.load(card_path_for(path)))
    assert settings == {"per_class": 2, "coverage": 0.87, "scale_quantile": 0.5}
    assert head.coverage == 0.87
    assert openset.novelty_settings(card) == {}  # a model without the cosine head: defaults


def test_views_of_one_image_are_held_out_together():
    labels = np.repeat([0, 1], 30)
    groups = np.arange(60) // 3  # three views of each of 20 images
    fold = openset._folds(labels, 5, seed=0, groups=groups)
    for g in np.unique(groups):
        assert len(set(fold[groups == g])) == 1
    for c in (0, 1):  # each class spread over every fold
        assert set(fold[labels == c]) == set(range(5))
    # an image's twin view in the prototypes would make its distance 0: grouped, it is not
    rng = np.random.default_rng(6)
    x = np.abs(rng.normal(1, 1, (20, 8))).astype(np.float32)
    views = np.repeat(x, 3, axis=0) + rng.normal(0, 1e-3, (60, 8)).astype(np.float32)
    loose = openset.held_out_distances(views, labels, 2, per_class=64)
    held = openset.held_out_distances(views, labels, 2, per_class=64, groups=groups)
    own = np.arange(60), labels
    assert np.median(loose[own]) < 1e-3 < np.median(held[own])
