"""The shipped model folder: every card loads and matches its file, and the figures the README
quotes are the ones in the cards (guards against a stray JSON in models/ or a swapped file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from phytoscope.modelcard import discover, select

MODELS = Path(__file__).resolve().parents[2] / "models"

pytestmark = pytest.mark.skipif(
    not (MODELS / "genus.onnx.json").exists(), reason="no shipped model in this checkout"
)


def test_every_json_in_models_is_a_valid_card_with_its_file():
    cards = discover(MODELS)  # a JSON that is not a card raises here
    assert {(c.format, c.precision) for c in cards} == {
        ("onnx", "fp32"),
        ("onnx", "int8"),
        ("keras", "fp32"),
    }
    for card in cards:
        card.verify_file()
        assert card.output == "logits" and card.input.height == card.input.width == 128
        for key in ("test_top1", "per_source", "per_class"):
            assert key in card.accuracy, (card.file, key)
        assert card.training["split_file"] == "genus_split.csv"
        assert "Alexandrium" in card.not_recognised and "Dinophysis" in card.not_recognised
    assert len({c.class_names for c in cards}) == 1


def test_accuracy_targets_of_the_shipped_model():
    fp32 = select(MODELS, "onnx", "fp32")
    int8 = select(MODELS, "onnx", "int8")
    assert fp32.accuracy["test_top1"] >= 0.90
    assert fp32.accuracy["test_top1"] - int8.accuracy["test_top1"] <= 0.01
    assert fp32.accuracy["n_test"] == int8.accuracy["n_test"]  # same test split
    names = fp32.class_names
    assert "Pseudo-nitzschia" in names and "detritus/other" in names
    pn = fp32.classes[names.index("Pseudo-nitzschia")]
    assert pn.hab and pn.chain_forming and pn.rank == "genus"
