"""The window's row list: an organism added again replaces its row and its picture."""

from __future__ import annotations

import numpy as np

from phytoscope.gui.session import Session
from phytoscope.types import Prediction


def _prediction(label: str) -> Prediction:
    return Prediction("bin/1.png", 0, label, 0.9, ((label, 0.9),))


def test_adding_an_organism_again_with_a_picture_replaces_row_and_bytes():
    session = Session()
    first = np.zeros((10, 10), np.uint8)
    second = np.ones((20, 20), np.uint8)
    session.add((_prediction("Tripos"),), (first,))
    session.add((_prediction("ciliate"),), (second,))  # numpy arrays: no truth-value test
    assert len(session.records) == 1
    record = session.records[0]
    assert record.label == "ciliate" and record.thumbnail is second
    assert session.thumbnail_bytes == second.nbytes
    session.add((_prediction("ciliate"),), (None,))  # no new picture: the old one stays
    assert session.records[0].thumbnail is second
