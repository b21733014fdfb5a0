"""Samples in words: what ``phytoscope classify`` and ``phytoscope report --list`` print."""

from __future__ import annotations

from typing import Any

from phytoscope.core.hab import describe_alert
from phytoscope.core.sample import (
    CHAINS,
    Concentration,
    ManualCount,
    concentration,
    describe_volume,
    format_per_l,
)
from phytoscope.core.samples import SampleDraft
from phytoscope.core.session import Saved
from phytoscope.core.unidentified import describe_unidentified
from phytoscope.modelcard import UNKNOWN


def describe(d: SampleDraft, saved: Saved | None = None) -> str:
    """The sample in words: volume, time, flags and warnings, concentrations, unknowns and
    alerts, as ``phytoscope classify`` prints them."""
    name = f"sample {saved.sample_id}" if saved and saved.sample_id else f"sample {d.key}"
    if saved and saved.revision > 1:
        name += f" (revision {saved.revision})"
    volume = describe_volume(d.volume) if d.volume else "no volume"
    lines = [f"{name}: {d.kind}, {volume}"]
    origin = {"bins": " (from the IFCB bin names)", "user": ""}.get(d.time_source, "")
    facts = [f"sampled at {d.sampled_at or 'not given'}{origin}"]
    if d.site:
        facts.append(f"site {d.site}")
    if d.hab is not None:
        facts.append(f"rule set {d.hab.rule_set.version}")
    lines.append("  " + "; ".join(facts))
    lines += [f"  {w}" for w in d.warnings]
    for c in d.concentrations:
        if c.detected:
            lines.append(f"  {c.taxon:<28} {c.describe()}")
    missing = [c.taxon for c in d.concentrations if not c.detected]
    if missing:
        limit = format_per_l(d.concentrations[0].detection_limit_per_l)
        lines.append(f"  not detected (< {limit} per L): {', '.join(missing)}")
    for m in d.manual:
        lines.append(f"  {m.taxon + ' (manual)':<28} {m.concentration().describe()}")
    if d.n_unidentified:
        lines.append(f"  {describe_unidentified(d.unidentified, d.unidentified_hab)}")
    alerts = saved.alerts if saved and saved.alerts else ()
    if d.hab is not None:
        tail = f"; {d.n_unidentified} not identified" if d.n_unidentified else ""
        shown = [a for a in alerts if a.withdrawn_at is None]
        if shown:
            lines.append(f"ALERTS ({len(shown)}, from identified organisms only{tail}):")
            lines += [f"  [{a.id}] {describe_alert(a)}" for a in shown]
        elif d.hab.alerts:
            lines.append(f"ALERTS ({len(d.hab.alerts)}, not saved{tail}):")
            lines += [
                f"  {a.taxon}: {a.describe_level()}" + (" (manual count)" if a.manual else "")
                for a in d.hab.alerts
            ]
        else:
            lines.append(f"  no taxon at or above a threshold of this rule set{tail}")
        if d.hab.not_monitored:
            lines.append("  not monitored by this model: " + ", ".join(d.hab.not_monitored))
            sid = saved.sample_id if saved and saved.sample_id else d.sample_id or "SAMPLE"
            lines.append(
                "  count these by microscope, then: "
                f"phytoscope report {sid} --manual-count TAXON N --volume-ml ML --by NAME"
            )
    if saved and saved.problems:
        lines.append("NOT SAVED: " + "; ".join(saved.problems))
    return "\n".join(lines)


def stored_concentrations(store: Any, sample_id: int) -> list[Concentration]:
    """Concentrations recomputed from a stored sample's counts and volume ("unknown" left
    out: it is in no concentration)."""
    sample = store.sample(sample_id)
    return [
        concentration(taxon, n, sample.volume, chain_forming=unit == CHAINS)
        for taxon, (n, unit) in store.sample_counts(sample_id).items()
        if taxon != UNKNOWN
    ]


def stored_manual(store: Any, sample_id: int) -> list[tuple[ManualCount, Concentration]]:
    """A stored sample's manual counts, each with its concentration (over its own volume)."""
    counts = [ManualCount.from_dict(m) for m in store.manual_counts(sample_id)]
    return [(m, m.concentration()) for m in counts]


def stored_unidentified(store: Any, sample_id: int) -> dict[str, int]:
    """Organisms a stored sample did not identify, by reason (``other``: a record from
    before reasons were kept); what its report states, in :func:`describe_unidentified`."""
    reasons = store.sample_summary(sample_id).get("unidentified_reasons")
    n = (
        store.sample(sample_id).unidentified
        or store.sample_counts(sample_id).get(UNKNOWN, (0, ""))[0]
    )
    return dict(reasons) if reasons else ({"other": n} if n else {})


def stored_closest_hab(store: Any, sample_id: int) -> dict[str, int]:
    """A stored sample's unknown organisms closest to a HAB taxon (empty for samples saved
    before this was recorded)."""
    return dict(store.sample_summary(sample_id).get("unidentified_hab") or {})


def overview(store: Any) -> str:
    """The stored samples (revision, time, site, volume, open alerts, flags) and every open
    alert, as ``phytoscope report --list`` prints them."""
    lines = []
    for s in store.samples():
        n_open = sum(1 for a in store.alerts(s.id) if a.open)
        marks = [*s.flags, *(["manual counts"] if store.manual_counts(s.id) else [])]
        if s.unidentified:
            marks.append(f"{s.unidentified} not identified")
        flags = f"  [{', '.join(marks)}]" if marks else ""
        lines.append(
            f"{s.id:>5}  rev {s.revision:<3} {s.sampled_at or 'no time':<25} {s.site or '-':<20} "
            f"{s.volume.ml_analyzed:>9.4g} mL  {s.rule_set:<30} {n_open} open alert(s){flags}"
        )
    opened = store.open_alerts()
    lines.append(f"open alerts: {len(opened)}")
    lines += [f"  [{a.id}] sample {a.sample_id}: {describe_alert(a)}" for a in opened]
    return "\n".join(lines)
