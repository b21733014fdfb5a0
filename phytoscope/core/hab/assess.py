"""Where each monitored taxon of a rule set stands, from counts and a volume."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from phytoscope.core.hab.rules import RuleSet, RuleTaxon
from phytoscope.core.sample import (
    Concentration,
    ManualCount,
    concentration,
    format_per_l,
)
from phytoscope.modelcard import UNKNOWN, ClassInfo, ModelCard
from phytoscope.types import Volume

# -- from model classes to rule taxa -----------------------------------------------------


def taxon_key(name: str) -> str:
    """How a class name and a rule-set taxon are compared: case-insensitive, ``_`` as a
    space, runs of spaces as one. A lab's folder ``alexandrium`` or the corrections export's
    ``Dinophysis_acuminata`` (a folder name cannot hold a space) is then the rule sets'
    ``Alexandrium`` / ``Dinophysis acuminata``: the one place where names are matched."""
    return " ".join(name.replace("_", " ").split()).casefold()


def genus_key(name: str) -> str:
    """The :func:`taxon_key` of a name's first word (its genus, for a binomial)."""
    key = taxon_key(name)
    return key.split(" ")[0] if key else key


def classes_for(rule: RuleTaxon, card: ModelCard) -> tuple[ClassInfo, ...]:
    """The model classes a rule taxon is evaluated on (empty: not monitored by this model)."""
    return matching(rule, card.classes)


def matching(rule: RuleTaxon, classes: Sequence[ClassInfo]) -> tuple[ClassInfo, ...]:
    """The classes a rule taxon is evaluated on.

    group rows: every class of that card ``group`` (or named as the group); genus rows:
    the genus class and any species class of the genus; species rows: that species class,
    or else the genus class (a genus-only model gets the species threshold conservatively).
    Names are compared by :func:`taxon_key`, so a class a lab taught under its own spelling
    (``phytoscope learn``) is monitored at once.
    """
    key = taxon_key(rule.taxon)
    if rule.rank == "group":
        return tuple(
            c for c in classes if taxon_key(c.group or "") == key or taxon_key(c.name) == key
        )
    if rule.rank == "genus":
        return tuple(c for c in classes if genus_key(c.name) == key)
    exact = tuple(c for c in classes if taxon_key(c.name) == key)
    genus = taxon_key(rule.genus)
    return exact or tuple(c for c in classes if taxon_key(c.name) == genus and c.rank != "species")


def rule_taxon_named(name: str, taxa: Iterable[tuple[str, str]]) -> tuple[str, str] | None:
    """The ``(taxon, rank)`` of the rule sets a class name stands for (by :func:`taxon_key`),
    or None: how a class a lab names ``karenia_brevis`` gets the rule sets' spelling."""
    key = taxon_key(name)
    return next(((t, r) for t, r in taxa if taxon_key(t) == key), None)


def unrecognised(classes: Sequence[ClassInfo], taxa: Iterable[tuple[str, str]]) -> tuple[str, ...]:
    """Rule-set taxa, named by genus (groups as they are), that no class of a model stands
    for: the card's ``not_recognised`` and what reports call "not monitored by this model".
    A genus counts as seen when a class is that genus, one of its species, or that group."""
    missing: list[str] = []
    for taxon, rank in taxa:
        name = taxon if rank == "group" else taxon.split()[0]
        if name in missing:
            continue
        as_genus = RuleTaxon(name, "genus", "", ())
        as_group = RuleTaxon(name, "group", "", ())
        if not matching(as_genus, classes) and not matching(as_group, classes):
            missing.append(name)
    return tuple(missing)


def manual_taxon(name: str) -> ClassInfo:
    """A taxon counted by hand, as a class: a species when it has two words, else a genus
    (a genus count is compared with its species' thresholds, conservatively)."""
    words = name.split()
    return ClassInfo(name=" ".join(words), rank="species" if len(words) > 1 else "genus")


def manual_candidates(rule_set: RuleSet, card: ModelCard | None) -> list[str]:
    """The rule set's taxa this model cannot see: what to count by microscope."""
    if card is None:
        return [r.taxon for r in rule_set.taxa]
    return [r.taxon for r in rule_set.taxa if not classes_for(r, card)]


@dataclass(frozen=True)
class Assessment:
    """Where one monitored taxon stands in a rule set (every level, the lowest included).

    ``taxon`` is what the model can say (a class, classes joined by " + ", or the group);
    ``rule_taxon`` the rule row that decided the level; ``threshold_per_l`` the lower edge
    of the level reached (None at the lowest level); ``next_threshold_per_l`` the next one.
    """

    taxon: str
    classes: tuple[str, ...]
    rule_taxon: str
    rank: str
    syndrome: str
    level: str
    threshold_per_l: float | None
    next_threshold_per_l: float | None
    next_level: str | None
    concentration: Concentration
    is_alert: bool
    lower_bound: bool
    flags: tuple[str, ...] = ()
    manual: bool = False
    """from a microscopist's count (its own volume), not from the model"""

    def describe_level(self) -> str:
        """The level, saying when a chain count makes it a lower bound."""
        if not self.lower_bound:
            return self.level
        return (
            f"at least {self.level}"
            if self.is_alert
            else f"{self.level} (chains/L: cells may be higher)"
        )

    def to_dict(self) -> dict[str, object]:
        c = self.concentration
        return {
            "taxon": self.taxon,
            "classes": list(self.classes),
            "rule_taxon": self.rule_taxon,
            "rank": self.rank,
            "syndrome": self.syndrome,
            "level": self.level,
            "threshold_per_l": self.threshold_per_l,
            "next_threshold_per_l": self.next_threshold_per_l,
            "next_level": self.next_level,
            "is_alert": self.is_alert,
            "lower_bound": self.lower_bound,
            "flags": list(self.flags),
            "manual": self.manual,
            "count": c.count,
            "per_l": c.per_l,
            "low_per_l": c.low_per_l,
            "high_per_l": c.high_per_l,
            "detection_limit_per_l": c.detection_limit_per_l,
            "unit": c.unit,
        }


@dataclass(frozen=True)
class HabResult:
    """Everything :func:`assess` found for one sample under one rule set."""

    rule_set: RuleSet
    assessments: tuple[Assessment, ...]
    not_monitored: tuple[str, ...]
    unidentified: int = 0
    """organisms labelled "unknown": in no concentration and no alert, but said with them"""
    manual: tuple[ManualCount, ...] = ()
    """the microscopist's counts assessed (their assessments are marked ``manual``)"""

    @property
    def alerts(self) -> tuple[Assessment, ...]:
        return tuple(a for a in self.assessments if a.is_alert)

    def to_dict(self) -> dict[str, object]:
        return {
            "rule_set": self.rule_set.name,
            "rule_set_title": self.rule_set.title,
            "rule_set_version": self.rule_set.version,
            "boundary": self.rule_set.boundary,
            "levels": list(self.rule_set.levels),
            "assessments": [a.to_dict() for a in self.assessments],
            "not_monitored": list(self.not_monitored),
            "unidentified": self.unidentified,
            "manual": [m.to_dict() for m in self.manual],
        }


def _assess_one(
    rule: RuleTaxon,
    classes: tuple[ClassInfo, ...],
    counts: Mapping[str, int],
    volume: Volume,
    rule_set: RuleSet,
) -> Assessment:
    names = tuple(c.name for c in classes)
    chain = any(c.chain_forming for c in classes)
    total = sum(int(counts.get(n, 0)) for n in names)
    taxon = rule.taxon if rule.rank == "group" else " + ".join(names)
    conc = concentration(taxon, total, volume, chain_forming=chain)
    band = rule.band_for(conc.per_l, rule_set.boundary)
    nxt = rule.next_band(conc.per_l, rule_set.boundary)
    flags = list(conc.flags)
    if rule.rank == "species" and rule.taxon not in names:
        flags.append(
            f"genus counted against the species threshold of {rule.taxon} (most conservative)"
        )
    if band is not None and conc.low_per_l < band.min_per_l:
        flags.append(f"95 % interval reaches below {format_per_l(band.min_per_l)} cells/L")
    if nxt is not None and conc.detected and conc.high_per_l >= nxt.min_per_l:
        flags.append(f"95 % interval reaches {nxt.level} ({format_per_l(nxt.min_per_l)} cells/L)")
    lowest = rule.bands[0].min_per_l
    if total == 0 and rule.band_for(conc.detection_limit_per_l, rule_set.boundary) is not None:
        flags.append(
            f"not detected, but one organism ({format_per_l(conc.detection_limit_per_l)} per L) would "
            f"already reach {format_per_l(lowest)} cells/L: analyse or pool more water to rule it out"
        )
    if chain and band is None and conc.detected:
        flags.append("chains/L below the per-cell threshold: count cells per chain to rule it out")
    return Assessment(
        taxon=taxon,
        classes=names,
        rule_taxon=rule.taxon,
        rank=rule.rank,
        syndrome=rule.syndrome,
        level=band.level if band else rule_set.below_level,
        threshold_per_l=band.min_per_l if band else None,
        next_threshold_per_l=nxt.min_per_l if nxt else None,
        next_level=nxt.level if nxt else None,
        concentration=conc,
        is_alert=band is not None,
        lower_bound=chain,
        flags=tuple(flags),
    )


def _conservative_key(a: Assessment, rule_set: RuleSet) -> tuple[float, float]:
    # most severe level first; then the lowest threshold (reached, or next to reach)
    threshold = (
        a.threshold_per_l if a.threshold_per_l is not None else (a.next_threshold_per_l or math.inf)
    )
    return (-rule_set.severity(a.level), threshold)


def _assess_manual(m: ManualCount, rule_set: RuleSet, model_taxa: set[str]) -> Assessment | None:
    """A manual count against the most conservative rule row it falls under (None: the
    rule set has no threshold for it)."""
    cls = manual_taxon(m.taxon)
    found = [
        _assess_one(r, (cls,), {cls.name: m.count}, Volume(m.volume_ml, "manual"), rule_set)
        for r in rule_set.taxa
        if matching(r, (cls,))
    ]
    if not found:
        return None
    a = min(found, key=lambda a: _conservative_key(a, rule_set))
    taxon = f"{a.taxon} (manual)" if a.taxon in model_taxa else a.taxon
    return replace(a, taxon=taxon, manual=True, flags=(m.describe(), *a.flags))


def assess(
    counts: Mapping[str, int],
    volume: Volume,
    card: ModelCard,
    rule_set: RuleSet,
    manual: Sequence[ManualCount] = (),
) -> HabResult:
    """Level of every rule-set taxon the model can see, and the taxa it cannot.

    Parameters
    ----------
    counts
        Organisms per model class label. Alerts come from identified organisms only:
        ``"unknown"`` (and labels not in the card) never count towards a taxon; the number
        of unknowns is kept in :attr:`HabResult.unidentified` so every alert can say it.
    volume
        Water the counts stand for.
    card
        The model card: class names, ranks, ``group`` and ``chain_forming``.
    rule_set
        From :func:`load_rule_set`.
    manual
        A microscopist's counts, each over its own volume: assessed like model counts
        against the rows they fall under, marked ``manual`` (a rule taxon so counted is no
        longer "not monitored").
    """
    identified = {k: n for k, n in counts.items() if k != UNKNOWN}
    candidates: dict[tuple[str, ...], list[Assessment]] = {}
    not_monitored = []
    for rule in rule_set.taxa:
        classes = classes_for(rule, card)
        if not classes:
            not_monitored.append(rule.taxon)
            continue
        a = _assess_one(rule, classes, identified, volume, rule_set)
        candidates.setdefault(a.classes, []).append(a)
    chosen = [
        min(group, key=lambda a: _conservative_key(a, rule_set)) for group in candidates.values()
    ]
    model_taxa = {a.taxon for a in chosen}
    counted = tuple(manual_taxon(m.taxon) for m in manual)
    for m in manual:
        found = _assess_manual(m, rule_set, model_taxa)
        if found is not None:
            chosen.append(found)
    not_monitored = [t for t in not_monitored if not matching(rule_set.taxon(t), counted)]
    chosen.sort(key=lambda a: (-rule_set.severity(a.level), a.taxon))
    return HabResult(
        rule_set=rule_set,
        assessments=tuple(chosen),
        not_monitored=tuple(not_monitored),
        unidentified=int(counts.get(UNKNOWN, 0)),
        manual=tuple(manual),
    )
