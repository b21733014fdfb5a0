"""Model cards shared by tests (data, not fixtures: imported as ``tests.cards``)."""

from __future__ import annotations

from phytoscope.modelcard import ClassInfo, ModelCard

SAMPLE_CARD = ModelCard(
    name="t",
    version="0",
    file="t.onnx",
    format="onnx",
    precision="fp32",
    sha256="0",
    classes=(ClassInfo("Pseudo-nitzschia", chain_forming=True), ClassInfo("Dinophysis"), ClassInfo("detritus")),
)
"""For counting and alert tests: a chain-former, a HAB genus and a non-taxon."""
