"""Organisms the model did not identify: counted by reason, and those whose best guess is a
HAB taxon, in the words every front end and report uses.

An unknown is in no concentration and no alert (alerts come from identified organisms
only), so these counts are what keeps it in plain view.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from phytoscope.modelcard import UNKNOWN, ModelCard
from phytoscope.types import Prediction


def unidentified(predictions: Iterable[Prediction]) -> dict[str, int]:
    """Organisms labelled "unknown", by reason (``novel``, ``unsure``; ``other`` if none)."""
    reasons: Counter[str] = Counter()
    for p in predictions:
        if p.label == UNKNOWN:
            reasons[p.unknown_reason or "other"] += 1
    return dict(reasons)


def closest_hab(predictions: Iterable[Prediction], card: ModelCard | None) -> dict[str, int]:
    """Unknown organisms whose best class is a HAB-relevant one, by that class.

    An unknown is in no count and no alert; when the model's best guess for it is still a
    harmful taxon (a chain fragment on a frame, a cell from another instrument), the
    technician must know that a threshold may be hiding among the unknowns.
    """
    harmful = {c.name for c in card.classes if c.hab} if card is not None else set()
    found: Counter[str] = Counter()
    for p in predictions:
        if p.label == UNKNOWN and p.top_k and p.top_k[0][0] in harmful:
            found[p.top_k[0][0]] += 1
    return dict(found)


def describe_closest_hab(closest: Mapping[str, int] | None) -> str:
    """``"9 of them are closest to Pseudo-nitzschia, a HAB taxon: a threshold may be
    hidden among them"``; empty when none is."""
    if not closest:
        return ""
    parts = [f"{n} closest to {taxon}" for taxon, n in sorted(closest.items())]
    return (
        f"of them {', '.join(parts)} (HAB-relevant): a threshold may be hidden among them, "
        "count these first"
    )


REASON_WORDS = {
    "novel": "unlike any class the model knows",
    "unsure": "too uncertain",
    "other": "without a reason recorded",
}
"""How each ``unknown_reason`` is said, in every front end (CLI, reports, window)."""


def describe_unidentified(
    reasons: int | Mapping[str, int], closest: Mapping[str, int] | None = None
) -> str:
    """``3 organisms not identified: check by microscope (2 unlike any class the model
    knows, 1 too uncertain)``, and how many of them look most like a HAB taxon
    (:func:`closest_hab`); empty when there are none. ``reasons``: counts by
    ``unknown_reason`` (:func:`unidentified`), or a bare count when no reasons were kept.
    The one wording of the unidentified count, so the summary, the report and the alert
    panel say the same thing in the same words."""
    counts = {"other": int(reasons)} if isinstance(reasons, int) else dict(reasons)
    n = sum(int(v) for v in counts.values())
    if n <= 0:
        return ""
    order = [*REASON_WORDS, *sorted(set(counts) - set(REASON_WORDS))]
    parts = [f"{counts[r]:,} {REASON_WORDS.get(r, r)}" for r in order if counts.get(r)]
    detail = "" if isinstance(reasons, int) else f" ({', '.join(parts)})"
    noun = "organism" if n == 1 else "organisms"
    text = f"{n:,} {noun} not identified: check by microscope{detail}"
    hab = describe_closest_hab(closest)
    return f"{text}; {hab}" if hab else text
