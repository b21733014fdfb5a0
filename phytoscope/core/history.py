"""The store's samples over time: by site and date, and each monitored taxon as a series.

What the IFCB dashboard shows first, a taxon's concentration at a site over time with the
thresholds that apply, read from what each saved sample recorded: its assessment of every
monitored taxon (model and manual counts alike) under its rule set. No Qt here: the
window's Samples tab draws these values, and a script could too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from phytoscope.core.hab import load_rule_set
from phytoscope.errors import PhytoscopeError
from phytoscope.types import Sample


@dataclass(frozen=True)
class Point:
    """One sample's assessment of one taxon (``per_l`` 0: not detected, below
    ``detection_limit_per_l``)."""

    sample_id: int
    sampled_at: datetime
    per_l: float
    low_per_l: float
    high_per_l: float
    detection_limit_per_l: float
    count: int
    unit: str
    level: str
    is_alert: bool
    manual: bool
    rule_set: str
    rule_taxon: str

    @property
    def detected(self) -> bool:
        return self.count > 0


def by_site_and_date(samples: list[Sample]) -> list[Sample]:
    """Samples sorted by site, then sampling time (newest first), then id."""
    ordered = sorted(samples, key=lambda s: s.id or 0, reverse=True)
    ordered.sort(key=lambda s: s.sampled_at or "", reverse=True)
    return sorted(ordered, key=lambda s: s.site.casefold())


def sites(samples: list[Sample]) -> list[str]:
    return sorted({s.site for s in samples}, key=str.casefold)


def _when(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def series(store: Any, site: str) -> dict[str, list[Point]]:
    """Every taxon assessed at ``site``, with one point per saved sample, oldest first."""
    out: dict[str, list[Point]] = {}
    for s in store.samples():
        when = _when(s.sampled_at)
        if s.site != site or when is None or s.id is None:
            continue
        summary = store.sample_summary(s.id)
        for a in summary.get("assessments", []):
            out.setdefault(a["taxon"], []).append(
                Point(
                    s.id,
                    when,
                    float(a["per_l"]),
                    float(a["low_per_l"]),
                    float(a["high_per_l"]),
                    float(a["detection_limit_per_l"]),
                    int(a["count"]),
                    a["unit"],
                    a["level"],
                    bool(a["is_alert"]),
                    bool(a.get("manual", False)),
                    summary.get("rule_set", s.rule_set),
                    a["rule_taxon"],
                )
            )
    for points in out.values():
        points.sort(key=lambda p: (p.sampled_at, p.sample_id))
    return dict(sorted(out.items(), key=lambda kv: kv[0].casefold()))


@lru_cache(maxsize=32)
def thresholds(rule_set: str, rule_taxon: str) -> tuple[tuple[str, float], ...]:
    """(level, lower edge in cells/L) of a rule taxon, lowest first; () when the rule set or
    taxon cannot be read (a renamed rule set, a site's removed override)."""
    try:
        taxon = load_rule_set(rule_set).taxon(rule_taxon)
    except (PhytoscopeError, KeyError, OSError):
        return ()
    return tuple((b.level, b.min_per_l) for b in taxon.bands)
