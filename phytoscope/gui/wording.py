"""Plain words for alert levels, thresholds and confidences (no Qt: unit-tested alone).

A technician reads these at arm's length and signs what they say, so every sentence names
the taxon, the number with its unit and the level in the rule set's own words, and a chain
count is said as what it means ("at least"), never as a code ("chains/L: cells may be
higher"). These functions only phrase what :mod:`phytoscope.core.hab` decided; they never
decide a level themselves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from phytoscope.core.sample import (
    CELLS_UNDERESTIMATED,
    PRESENCE,
    format_per_l,
    level_words,
    threshold_words,
)


def _number(per_l: float) -> str:
    return format_per_l(per_l)


@dataclass(frozen=True)
class Ladder:
    """One level of a taxon's ladder: its name, where it starts, reached or not."""

    level: str
    min_per_l: float
    reached: bool
    current: bool


def ladder(assessment: Any, rule_set: Any) -> list[Ladder]:
    """Every band of the rule taxon that decided ``assessment``, lowest first.

    The action levels stay on show once a lower one is reached (issue #17: after yellow,
    orange and red were no longer shown)."""
    try:
        bands = rule_set.taxon(assessment.rule_taxon).bands
    except KeyError:
        return []
    out = []
    for band in bands:
        reached = assessment.threshold_per_l is not None and (
            band.min_per_l <= assessment.threshold_per_l
        )
        out.append(
            Ladder(
                level=band.level,
                min_per_l=band.min_per_l,
                reached=reached,
                current=reached and band.level == assessment.level,
            )
        )
    return out


def headline(assessment: Any, boundary: str = ">=") -> str:
    """The one sentence of an assessment, e.g.
    ``"Pseudo-nitzschia: 62,000 cells/L — above the red level (50,000)"``.

    Chain-forming classes are counted per chain; a chain holds one cell or more, so the
    concentration is said as "at least" that many cells per litre.
    """
    a = assessment
    c = a.concentration
    taxon = a.taxon
    if not c.detected:
        return (
            f"{taxon}: none found (one cell would be {_number(c.detection_limit_per_l)} per litre)"
        )
    amount = f"{_number(c.per_l)} cells/L"
    if a.lower_bound:
        amount = f"at least {amount}"
    if a.is_alert and a.threshold_per_l is not None:
        level = level_words(a.level)
        if a.threshold_per_l < PRESENCE:
            where = f"{level} level (any cell found)"
        else:
            edge = _number(a.threshold_per_l)
            word = "at" if c.per_l == a.threshold_per_l else "above"
            where = f"{word} the {level} level ({edge})"
        return f"{taxon}: {amount} — {where}"
    if a.next_threshold_per_l is not None:
        below = (
            f"below the {level_words(a.next_level or '')} level ({_number(a.next_threshold_per_l)})"
        )
        return f"{taxon}: {amount} — {below}"
    return f"{taxon}: {amount}"


def chain_note(assessment: Any) -> str:
    """What a chain count means, for chain-forming classes (empty otherwise)."""
    a = assessment
    c = a.concentration
    if not a.lower_bound or not c.detected:
        return ""
    counted = f"Counted as {_number(c.per_l)} chains per litre; each chain has one or more cells"
    if a.is_alert and a.next_level is None:
        return f"{counted}, so the cell count is this or higher."
    if a.is_alert:
        return (
            f"{counted}, so the cell count is this or higher: the {level_words(a.next_level)} "
            "level may already be reached."
        )
    return (
        f"{counted}, so the cells may already reach the next level: count the cells per chain "
        "by microscope to rule it out."
    )


def next_step(assessment: Any, boundary: str = ">=") -> str:
    """The next level and the distance to it, or that the top level is reached.

    Before anything is found the distance is said in organisms to find in this volume (a
    concentration distance would mislead: one organism jumps straight to the detection
    limit)."""
    a = assessment
    c = a.concentration
    if a.next_threshold_per_l is None:
        return "Highest level of this rule set reached." if a.is_alert else ""
    level = level_words(a.next_level or "")
    target = a.next_threshold_per_l
    if target < PRESENCE:
        return f"Next: {level} as soon as one cell is found."
    head = f"Next: {level} at {threshold_words(target, boundary)}"
    if not c.detected:
        per_organism = c.detection_limit_per_l
        if per_organism >= target:
            return f"{head}: a single organism found in this volume would reach it."
        needed = math.ceil(target / per_organism) if per_organism > 0 else 0
        return f"{head}: about {needed:,} organisms would have to be found in this volume."
    gap = max(target - c.per_l, 0.0)
    share = c.per_l / target if target > 0 else 0.0
    away = f"{_number(gap)} cells/L away" if gap > 0 else "reached"
    if a.lower_bound:
        return f"{head} — at most {away}, maybe already reached (counted as chains)."
    return f"{head} — {away} ({share * 100:.0f} % of it now)."


def flag_words(assessment: Any) -> list[str]:
    """The core's flags of an assessment, in a technician's words where they repeat or
    obscure what the card already says (unknown flags are shown as the core wrote them)."""
    a = assessment
    out = []
    for flag in a.flags:
        if flag == CELLS_UNDERESTIMATED or flag.startswith("chains/L below the per-cell"):
            continue  # said by chain_note
        if flag.startswith("not detected, but one organism"):
            level = level_words(a.next_level or "lowest")
            out.append(
                f"Too little water to rule {a.taxon} out: one cell would already reach the "
                f"{level} level. Analyse or pool more water."
            )
            continue
        out.append(flag[:1].upper() + flag[1:] + ("" if flag.endswith(".") else "."))
    return out


def interval_words(assessment: Any) -> str:
    """``"95 % interval 41,000 – 88,000 cells/L · 25 counted"``."""
    c = assessment.concentration
    if not c.detected:
        return f"95 % upper limit {_number(c.high_per_l)} per litre · 0 counted"
    unit = "chains/L" if assessment.lower_bound else "cells/L"
    return (
        f"95 % interval {_number(c.low_per_l)} – {_number(c.high_per_l)} {unit} · {c.count} counted"
    )


# -- percentages -----------------------------------------------------------------------


def percent(value: float, decimals: int = 1) -> str:
    """``0.983`` -> ``"98.3 %"``."""
    return f"{value * 100:.{decimals}f} %"


def threshold_percent(threshold: float) -> str:
    """A confidence threshold with the decimals it really has (0.983 -> "98.3 %",
    0.98249 -> "98.249 %"), so it is never shown rounded onto a confidence below it."""
    for decimals in range(1, 5):
        if abs(round(threshold * 100, decimals) - threshold * 100) < 1e-9:
            return percent(threshold, decimals)
    return percent(threshold, 4)


def confidence_percent(confidence: float, threshold: float | None = None) -> str:
    """A confidence with one decimal, or more where one decimal would put it on the wrong
    side of ``threshold`` (0.9825 under a 98.3 % threshold is "98.25 %", not "98.3 %")."""
    text = percent(confidence, 1)
    if threshold is None or threshold <= 0:
        return text
    for decimals in range(1, 5):
        shown = round(confidence * 100, decimals)
        limit = threshold * 100
        if (confidence < threshold) == (shown < limit):
            return percent(confidence, decimals)
    return percent(confidence, 4)
