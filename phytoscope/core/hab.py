"""HAB rule sets, alert levels and alerts: from concentrations to what a regulator acts on.

Rule sets are data (``resources/rules/hab_thresholds.csv`` + ``rule_sets.csv``), never
code, so a site can check them against the programme's current document and override any
row (see ``resources/rules/README.md``). Public API, used by the CLI and the GUI alert panel:

- :func:`available_rule_sets` -> names; :func:`load_rule_set` (name, optional overrides CSV)
  -> :class:`RuleSet`, whose ``version`` string (dataset version + hash of the rows used)
  is recorded with every alert.
- :func:`assess` (counts per model class, volume, model card, rule set) ->
  :class:`Assessment` per monitored taxon (every level, "green" included) and the rule-set
  taxa that the model cannot recognise ("not monitored by this model").
- :func:`make_alerts` -> frozen :class:`~phytoscope.types.Alert` for every assessment above
  the rule set's lowest ("below") level.
- :func:`record_sample` does all of it and persists the sample, its counts and its alerts.

Decisions, each tested:

- **Boundaries.** A concentration exactly on a threshold is in the upper band (``>=``), as
  official control programmes write "at or above"; a rule set may say ``>`` instead
  (Florida FWC writes its categories as ">1,000-10,000 cells/L").
- **Genus-only model.** A model class that is a genus matches the genus row and every
  species row of that genus; the most severe resulting level wins, ties going to the lowest
  threshold (the most conservative species threshold, e.g. Denmark's Dinophysis acuta at
  100 cells/L for the class "Dinophysis").
- **Groups.** A ``group`` row (WHO "Cyanobacteria") applies to the *sum* of all classes
  whose card ``group`` (or name) is that group, since the guideline is about total
  cyanobacterial cells.
- **Chain-forming classes** are counted in chains/L. Chains/L are compared with the per-cell
  threshold, and because cells >= chains the level found is a *lower bound*: an alert is
  certain, a lower level may hide a higher one. The assessment and alert carry
  ``lower_bound=True`` and the flag "cells underestimated"; reports print "at least".
- **Zeros.** When nothing is found but one organism would already reach the lowest
  threshold (detection limit >= threshold), the assessment says so: the volume was too
  small to rule the taxon out.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from phytoscope.config import config_dir, resources_dir
from phytoscope.core.sample import (
    CELLS_UNDERESTIMATED,
    Concentration,
    concentration,
    evidence_by_label,
    format_per_l,
)
from phytoscope.errors import ConfigError
from phytoscope.modelcard import ClassInfo, ModelCard
from phytoscope.types import Alert, Prediction, Sample, Volume

if TYPE_CHECKING:
    from phytoscope.storage.store import Store

log = logging.getLogger(__name__)

COLUMNS = (
    "rule_set",
    "taxon",
    "rank",
    "syndrome",
    "level",
    "min_cells_per_l",
    "max_cells_per_l",
    "source",
)
RANKS = ("species", "genus", "group")
BOUNDARIES = (">=", ">")
NOT_MONITORED = "not monitored by this model"
DEFAULT_BELOW = "below_threshold"


def rules_dir() -> Path:
    return resources_dir() / "rules"


def user_overrides_path() -> Path:
    """Where a site's overrides are read from automatically, when the file exists."""
    return config_dir() / "rules" / "hab_thresholds.csv"


# -- rule sets ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Band:
    """One level of one taxon: from ``min_per_l`` (reached per the rule set's boundary) up."""

    level: str
    min_per_l: float
    max_per_l: float | None
    source: str = ""


@dataclass(frozen=True)
class RuleTaxon:
    """All bands of one taxon in one rule set, lowest threshold first."""

    taxon: str
    rank: str
    syndrome: str
    bands: tuple[Band, ...]

    @property
    def genus(self) -> str:
        return self.taxon.split()[0]

    def band_for(self, per_l: float, boundary: str = ">=") -> Band | None:
        """The highest band reached, or None below the lowest threshold."""
        reached = None
        for band in self.bands:
            if per_l > band.min_per_l or (boundary == ">=" and per_l == band.min_per_l):
                reached = band
        return reached

    def next_band(self, per_l: float, boundary: str = ">=") -> Band | None:
        current = self.band_for(per_l, boundary)
        higher = [b for b in self.bands if current is None or b.min_per_l > current.min_per_l]
        return higher[0] if higher else None


@dataclass(frozen=True)
class RuleSet:
    """A programme's thresholds. ``levels[0]`` is its word for "below every band"."""

    name: str
    title: str
    levels: tuple[str, ...]
    boundary: str
    version: str
    taxa: tuple[RuleTaxon, ...]
    reference: str = ""
    overridden: tuple[str, ...] = field(default=())
    """taxa whose rows came from a user overrides file"""

    @property
    def below_level(self) -> str:
        return self.levels[0]

    def severity(self, level: str) -> int:
        return self.levels.index(level)

    def taxon(self, name: str) -> RuleTaxon:
        for t in self.taxa:
            if t.taxon == name:
                return t
        raise KeyError(name)


def _read_csv(path: Path, what: str) -> list[dict[str, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc}") from exc
    rows = list(csv.DictReader(io.StringIO(text)))
    return rows


def _threshold_rows(path: Path, what: str) -> list[dict[str, str]]:
    rows = _read_csv(path, what)
    if rows and set(COLUMNS) - set(rows[0]):
        raise ConfigError(
            f"{what} {path} lacks the columns {sorted(set(COLUMNS) - set(rows[0]))}; "
            f"it must have the header {','.join(COLUMNS)}"
        )
    for line, row in enumerate(rows, start=2):
        try:
            float(row["min_cells_per_l"])
            if row["max_cells_per_l"].strip():
                float(row["max_cells_per_l"])
        except (ValueError, AttributeError) as exc:
            raise ConfigError(
                f"{what} {path} line {line}: thresholds must be numbers ({exc})"
            ) from exc
        if row["rank"] not in RANKS:
            raise ConfigError(
                f"{what} {path} line {line}: rank must be one of {RANKS}, not {row['rank']!r}"
            )
    return rows


def _resolve_overrides(overrides_path: Path | str | None) -> Path | None:
    if overrides_path is not None:
        path = Path(overrides_path)
        if not path.exists():
            raise ConfigError(f"rule overrides file {path} does not exist")
        return path
    default = user_overrides_path()
    return default if default.exists() else None


def _metadata() -> dict[str, dict[str, str]]:
    path = rules_dir() / "rule_sets.csv"
    return {row["rule_set"]: row for row in _read_csv(path, "rule-set list")}


def available_rule_sets(overrides_path: Path | str | None = None) -> list[str]:
    """Names of the shipped rule sets, plus any new ones a user overrides file defines."""
    names = list(_metadata())
    overrides = _resolve_overrides(overrides_path)
    if overrides is not None:
        for row in _threshold_rows(overrides, "rule overrides"):
            if row["rule_set"] not in names:
                names.append(row["rule_set"])
    return names


def _digest(rows: Iterable[dict[str, str]]) -> str:
    canonical = json.dumps([[r[c] for c in COLUMNS] for r in rows], ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:8]


def load_rule_set(name: str, overrides_path: Path | str | None = None) -> RuleSet:
    """Read one rule set, with a site's overrides applied.

    Parameters
    ----------
    name
        A name from :func:`available_rule_sets` (e.g. ``"scotland_habreports"``).
    overrides_path
        CSV in the format of ``hab_thresholds.csv``. Default: the user's
        ``<config>/rules/hab_thresholds.csv`` if it exists. Rows of a (rule set, taxon) pair
        in the overrides replace every shipped row of that pair.
    """
    meta = _metadata()
    base = [
        r
        for r in _threshold_rows(rules_dir() / "hab_thresholds.csv", "rule sets")
        if r["rule_set"] == name
    ]
    overrides = _resolve_overrides(overrides_path)
    extra: list[dict[str, str]] = []
    if overrides is not None:
        extra = [r for r in _threshold_rows(overrides, "rule overrides") if r["rule_set"] == name]
    if not base and not extra:
        raise ConfigError(
            f"unknown rule set {name!r}; available: {', '.join(available_rule_sets(overrides_path))}"
        )
    replaced = {r["taxon"] for r in extra}
    rows = [r for r in base if r["taxon"] not in replaced] + extra

    by_taxon: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_taxon.setdefault(row["taxon"], []).append(row)
    taxa = []
    for taxon, group in by_taxon.items():
        ranks = {r["rank"] for r in group}
        if len(ranks) != 1:
            raise ConfigError(
                f"rule set {name}: taxon {taxon!r} is given two ranks {sorted(ranks)}"
            )
        bands = tuple(
            sorted(
                (
                    Band(
                        level=r["level"],
                        min_per_l=float(r["min_cells_per_l"]),
                        max_per_l=float(r["max_cells_per_l"])
                        if r["max_cells_per_l"].strip()
                        else None,
                        source=r["source"],
                    )
                    for r in group
                ),
                key=lambda b: b.min_per_l,
            )
        )
        if len({b.min_per_l for b in bands}) != len(bands):
            raise ConfigError(
                f"rule set {name}: taxon {taxon!r} has two levels starting at the same threshold"
            )
        taxa.append(
            RuleTaxon(taxon=taxon, rank=ranks.pop(), syndrome=group[0]["syndrome"], bands=bands)
        )

    info = meta.get(name)
    if info is not None:
        levels = tuple(info["levels"].split(";"))
        boundary = info["boundary"]
        title, dataset, reference = info["title"], info["version"], info["reference"]
    else:  # a rule set defined only by a user's overrides file
        ordered = sorted((b for t in taxa for b in t.bands), key=lambda b: b.min_per_l)
        levels = (DEFAULT_BELOW, *dict.fromkeys(b.level for b in ordered))
        boundary, title, dataset, reference = ">=", f"{name} (user-defined)", "user", str(overrides)
    if boundary not in BOUNDARIES:
        raise ConfigError(
            f"rule set {name}: boundary must be one of {BOUNDARIES}, not {boundary!r}"
        )
    for t in taxa:
        for b in t.bands:
            if b.level not in levels[1:]:
                raise ConfigError(
                    f"rule set {name}: level {b.level!r} of {t.taxon} is not one of its levels {levels[1:]}"
                )
    version = f"{name} {dataset} [{_digest(base)}]"
    if extra:
        version += f" + overrides {overrides.name if overrides else ''} [{_digest(extra)}]"
    return RuleSet(
        name=name,
        title=title,
        levels=levels,
        boundary=boundary,
        version=version,
        taxa=tuple(taxa),
        reference=reference,
        overridden=tuple(sorted(replaced)),
    )


# -- from model classes to rule taxa -----------------------------------------------------


def _genus(name: str) -> str:
    return name.split()[0] if name.split() else name


def classes_for(rule: RuleTaxon, card: ModelCard) -> tuple[ClassInfo, ...]:
    """The model classes a rule taxon is evaluated on (empty: not monitored by this model).

    group rows: every class of that card ``group`` (or named as the group); genus rows:
    the genus class and any species class of the genus; species rows: that species class,
    or else the genus class (a genus-only model gets the species threshold conservatively).
    """
    classes = card.classes
    if rule.rank == "group":
        key = rule.taxon.casefold()
        return tuple(
            c for c in classes if (c.group or "").casefold() == key or c.name.casefold() == key
        )
    if rule.rank == "genus":
        return tuple(c for c in classes if _genus(c.name) == rule.taxon)
    exact = tuple(c for c in classes if c.name == rule.taxon)
    return exact or tuple(c for c in classes if c.name == rule.genus and c.rank != "species")


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


def assess(
    counts: Mapping[str, int], volume: Volume, card: ModelCard, rule_set: RuleSet
) -> HabResult:
    """Level of every rule-set taxon the model can see, and the taxa it cannot.

    Parameters
    ----------
    counts
        Organisms per model class label (``"unknown"`` and labels not in the card ignored).
    volume
        Water the counts stand for.
    card
        The model card: class names, ranks, ``group`` and ``chain_forming``.
    rule_set
        From :func:`load_rule_set`.
    """
    candidates: dict[tuple[str, ...], list[Assessment]] = {}
    not_monitored = []
    for rule in rule_set.taxa:
        classes = classes_for(rule, card)
        if not classes:
            not_monitored.append(rule.taxon)
            continue
        a = _assess_one(rule, classes, counts, volume, rule_set)
        candidates.setdefault(a.classes, []).append(a)
    chosen = [
        min(group, key=lambda a: _conservative_key(a, rule_set)) for group in candidates.values()
    ]
    chosen.sort(key=lambda a: (-rule_set.severity(a.level), a.taxon))
    return HabResult(
        rule_set=rule_set, assessments=tuple(chosen), not_monitored=tuple(not_monitored)
    )


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def make_alerts(
    result: HabResult,
    model: str,
    evidence: Mapping[str, Sequence[tuple[str, int]]] | None = None,
    sample_id: int | None = None,
    clock: Callable[[], datetime] = utc_now,
    max_evidence: int = 50,
) -> list[Alert]:
    """One :class:`~phytoscope.types.Alert` per assessment above the lowest level.

    ``evidence`` maps model class -> (source, roi_index) of its ROIs, most confident first;
    ``clock`` is injected so tests and replays stamp a known time.
    """
    evidence = evidence or {}
    raised = clock().isoformat(timespec="seconds")
    alerts = []
    for a in result.alerts:
        rois: list[tuple[str, int]] = []
        for name in a.classes:
            rois.extend(evidence.get(name, ()))
        c = a.concentration
        alerts.append(
            Alert(
                taxon=a.taxon,
                level=a.level,
                threshold_per_l=float(a.threshold_per_l or 0.0),
                concentration_per_l=c.per_l,
                low_per_l=c.low_per_l,
                high_per_l=c.high_per_l,
                count=c.count,
                unit=c.unit,
                rule_set=result.rule_set.name,
                rule_set_version=result.rule_set.version,
                model=model,
                rule_taxon=a.rule_taxon,
                syndrome=a.syndrome,
                lower_bound=a.lower_bound,
                flags=a.flags,
                evidence=tuple((str(s), int(i)) for s, i in rois[:max_evidence]),
                sample_id=sample_id,
                raised_at=raised,
            )
        )
    return alerts


def describe_alert(alert: Alert) -> str:
    """One line: ``RED Pseudo-nitzschia 60,000 chains/L (95 % ...) >= 50,000 [scotland ...]``."""
    level = f"at least {alert.level}" if alert.lower_bound else alert.level
    text = (
        f"{level.upper()} {alert.taxon}: {format_per_l(alert.concentration_per_l)} {alert.unit} "
        f"(95 % {format_per_l(alert.low_per_l)}-{format_per_l(alert.high_per_l)}; n={alert.count}) "
        f">= {format_per_l(alert.threshold_per_l)} cells/L ({alert.rule_taxon}) [{alert.rule_set_version}]"
    )
    if CELLS_UNDERESTIMATED in alert.flags:
        text += " - cells underestimated"
    return text


@dataclass(frozen=True)
class SampleResult:
    """What :func:`record_sample` stored: ids, concentrations, assessment and alerts."""

    sample: Sample
    concentrations: tuple[Concentration, ...]
    hab: HabResult
    alerts: tuple[Alert, ...]


def record_sample(
    store: Store,
    sample: Sample,
    predictions: Sequence[Prediction],
    card: ModelCard,
    rule_set: RuleSet,
    clock: Callable[[], datetime] = utc_now,
) -> SampleResult:
    """Count, assess and persist a sample with its alerts.

    The sample and its counts are committed first, the alerts in a second transaction, so a
    failure while raising alerts never loses the sample (and the predictions, committed per
    batch by the run, are already safe).
    """
    from phytoscope.core.sample import concentrations as concentrations_of
    from phytoscope.core.sample import count_labels

    counts = count_labels(predictions)
    concs = tuple(concentrations_of(counts, sample.volume, card))
    hab = assess(counts, sample.volume, card, rule_set)
    units = {c.taxon: c.unit for c in concs}
    stored_counts = {c.name: int(counts.get(c.name, 0)) for c in card.classes}
    for label, n in counts.items():  # "unknown" and stray labels are kept too
        stored_counts.setdefault(label, int(n))
    sample = replace(sample, model=sample.model or card.label, rule_set=rule_set.name)
    sample_id = store.save_sample(sample, stored_counts, units=units, summary=hab.to_dict())
    stored = store.sample(sample_id)
    alerts = make_alerts(
        hab, card.label, evidence_by_label(predictions), sample_id=sample_id, clock=clock
    )
    ids = store.add_alerts(sample_id, alerts)
    alerts = [replace(a, id=i) for a, i in zip(alerts, ids, strict=True)]
    return SampleResult(sample=stored, concentrations=concs, hab=hab, alerts=tuple(alerts))
