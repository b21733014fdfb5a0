"""Unknown organisms that look most like a HAB taxon are said, never silently left out."""

from __future__ import annotations

from phytoscope.core.unidentified import closest_hab, describe_unidentified
from phytoscope.modelcard import ClassInfo
from phytoscope.types import Prediction
from tests.cards import card_of

CARD = card_of(ClassInfo("Pseudo-nitzschia", hab=True), ClassInfo("detritus/other"))


def _unknown(i: int, best: str, reason: str = "novel") -> Prediction:
    return Prediction("f", i, "unknown", 0.6, ((best, 0.6),), unknown_reason=reason)


def test_unknowns_closest_to_a_hab_class_are_counted_by_that_class():
    predictions = [
        _unknown(0, "Pseudo-nitzschia"),
        _unknown(1, "Pseudo-nitzschia", "unsure"),
        _unknown(2, "detritus/other"),
        Prediction("f", 3, "Pseudo-nitzschia", 0.99, (("Pseudo-nitzschia", 0.99),)),
        Prediction("f", 4, "unknown", 0.5, ()),  # restored from an old store: no ranking
    ]
    assert closest_hab(predictions, CARD) == {"Pseudo-nitzschia": 2}
    assert closest_hab(predictions, None) == {}


def test_the_summary_line_names_the_possible_hidden_threshold():
    text = describe_unidentified({"novel": 2, "unsure": 1}, {"Pseudo-nitzschia": 2})
    assert text.startswith("3 organisms not identified: check by microscope")
    assert "2 closest to Pseudo-nitzschia (HAB-relevant)" in text
    assert "a threshold may be hidden" in text
    assert "HAB" not in describe_unidentified({"novel": 2})
