"""What a trained model's card says about what it cannot see and how far its sources reach.

Kept apart from the trainer so the commands that write cards without training (``learn``)
say the same things in the same words.
"""

from __future__ import annotations

from pathlib import Path

from phytoscope.core.hab import unrecognised
from phytoscope.modelcard import ClassInfo
from phytoscope.training import dataset as ds

# HAB taxa named by the rule sets of ../shared/domain/hab_thresholds.csv (and the domain
# notes); used when no rule file is given, to say plainly what the model cannot see.
KNOWN_HAB_TAXA = (
    "Alexandrium",
    "Dinophysis",
    "Prorocentrum",
    "Pseudo-nitzschia",
    "Karenia",
    "Gymnodinium",
    "Protoceratium",
    "Lingulodinium",
    "Chaetoceros",
    "Heterosigma",
    "Pseudochattonella",
    "Phaeocystis",
    "Cyanobacteria",
)


def not_recognised(classes: tuple[ClassInfo, ...], rules: Path | None = None) -> tuple[str, ...]:
    """HAB taxa of the rule sets (genus level) that no class of the model stands for,
    matched as the alerts match them (:func:`phytoscope.core.hab.unrecognised`)."""
    taxa: list[tuple[str, str]] = []
    if rules is not None and Path(rules).exists():
        import csv

        with open(rules, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                taxa.append(((row.get("taxon") or "").strip(), (row.get("rank") or "").strip()))
    else:
        taxa = [(t, "genus") for t in KNOWN_HAB_TAXA]
    return unrecognised(classes, [(t, r) for t, r in taxa if t])


def card_notes(items: list[ds.Item], missing: tuple[str, ...]) -> str:
    """Plain words for the card: what the model cannot see, and how far its sources reach."""
    by_class: dict[str, set[str]] = {}
    for item in items:
        by_class.setdefault(item.cls, set()).add(item.source)
    single = sorted(c for c, s in by_class.items() if len(s) == 1)
    parts = []
    if missing:
        parts.append(
            "Cannot recognise these HAB taxa (no training images): "
            + ", ".join(missing)
            + "; a run of this model never shows they are absent."
        )
    if single:
        parts.append(
            f"{len(single)} of {len(by_class)} classes come from a single data source "
            "(one instrument each), so the model partly learns the instrument; accuracy "
            "is reported per source, and counts from another instrument need re-training "
            "or at least re-evaluation on its labelled images."
        )
    return " ".join(parts)
