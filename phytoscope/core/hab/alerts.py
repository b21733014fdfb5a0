"""Alerts: what a regulator acts on, from an assessment; stored with their sample."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from phytoscope.core.hab.assess import HabResult, assess
from phytoscope.core.hab.rules import RuleSet
from phytoscope.core.sample import (
    CELLS_UNDERESTIMATED,
    MANUAL,
    PRESENCE,
    Concentration,
    evidence_by_label,
    format_per_l,
    threshold_words,
)
from phytoscope.modelcard import ModelCard
from phytoscope.types import Alert, Prediction, Sample

if TYPE_CHECKING:
    from phytoscope.storage.store import Store


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
    ``clock`` is injected so tests and replays stamp a known time. An alert from a
    microscopist's count names "manual count" as its model and has no ROI evidence.
    """
    evidence = evidence or {}
    raised = clock().isoformat(timespec="seconds")
    alerts = []
    for a in result.alerts:
        rois: list[tuple[str, int]] = []
        for name in () if a.manual else a.classes:
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
                model=MANUAL if a.manual else model,
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


def _reached(per_l: float) -> str:
    """``">= 50,000 cells/L"``, or ``"any cell found"`` for a presence level."""
    words = threshold_words(per_l)
    return words if per_l < PRESENCE else f">= {words}"


def describe_alert(alert: Alert) -> str:
    """One line: ``RED Pseudo-nitzschia 60,000 chains/L (95 % ...) >= 50,000 [scotland ...]``."""
    level = f"at least {alert.level}" if alert.lower_bound else alert.level
    text = (
        f"{level.upper()} {alert.taxon}: {format_per_l(alert.concentration_per_l)} {alert.unit} "
        f"(95 % {format_per_l(alert.low_per_l)}-{format_per_l(alert.high_per_l)}; n={alert.count}) "
        f"{_reached(alert.threshold_per_l)} ({alert.rule_taxon}) [{alert.rule_set_version}]"
    )
    if CELLS_UNDERESTIMATED in alert.flags:
        text += " - cells underestimated"
    manual = [f for f in alert.flags if f.startswith(MANUAL)]
    if manual:
        text += f" - {manual[0]}"
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
