"""Model cards shared by tests (data, not fixtures: imported as ``tests.cards``)."""

from __future__ import annotations

from phytoscope.modelcard import ClassInfo, ModelCard


def card_of(*classes: ClassInfo) -> ModelCard:
    """A card that only names classes: for counting, concentration and alert logic."""
    return ModelCard(
        name="test-card",
        version="0",
        file="none.onnx",
        format="onnx",
        precision="fp32",
        sha256="0",
        classes=classes,
    )


SAMPLE_CARD = card_of(
    ClassInfo("Pseudo-nitzschia", chain_forming=True),
    ClassInfo("Dinophysis"),
    ClassInfo("detritus"),
)
"""A chain-former, a HAB genus and a non-taxon."""
