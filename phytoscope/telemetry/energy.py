"""Energy and mean power from a series of samples.

Two ways, chosen per window:

- every sample carries a cumulative ``energy_j`` (RAPL, NVML energy counters): energy is the
  counter difference, interpolated linearly at the window's ends (the counter says the
  power between two reads was constant at its mean, so this is exact to the counter);
- otherwise the trapezoid rule on ``power_w``, with the power interpolated at the ends.

Means are energy / duration over the part of the window the samples cover, never an average
of power readings (which over-weights wherever the sampler happened to read more often).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from phytoscope.types import TelemetrySample


@dataclass(frozen=True)
class PowerSummary:
    """Energy over a window and what it rests on."""

    energy_j: float
    duration_s: float
    t0: float
    t1: float
    n_samples: int
    estimated: bool
    source: str
    method: str
    """``"energy counters"`` or ``"trapezoid"``"""

    @property
    def mean_w(self) -> float:
        return self.energy_j / self.duration_s if self.duration_s > 0 else math.nan

    def text(self) -> str:
        kind = "estimated" if self.estimated else "measured"
        return (
            f"{self.energy_j:.3f} J {kind} over {self.duration_s:.2f} s, mean "
            f"{self.mean_w:.3f} W {kind} ({self.source}; {self.n_samples} samples, "
            f"{self.method})"
        )


def _interp(t: float, ta: float, va: float, tb: float, vb: float) -> float:
    return va if tb == ta else va + (vb - va) * (t - ta) / (tb - ta)


def _integrate_trapezoid(points: Sequence[tuple[float, float]], lo: float, hi: float) -> float:
    total = 0.0
    for (ta, pa), (tb, pb) in zip(points, points[1:], strict=False):
        a, b = max(ta, lo), min(tb, hi)
        if b <= a:
            continue
        total += (_interp(a, ta, pa, tb, pb) + _interp(b, ta, pa, tb, pb)) / 2.0 * (b - a)
    return total


def _counter_at(points: Sequence[tuple[float, float]], t: float) -> float:
    for (ta, ea), (tb, eb) in zip(points, points[1:], strict=False):
        if ta <= t <= tb:
            return _interp(t, ta, ea, tb, eb)
    return points[0][1] if t <= points[0][0] else points[-1][1]


def integrate(
    samples: Iterable[TelemetrySample], t0: float | None = None, t1: float | None = None
) -> PowerSummary | None:
    """Energy over [t0, t1] (monotonic seconds; default: all the samples cover).

    Returns ``None`` when fewer than two samples with power fall around the window: no
    figure is better than a made-up one.
    """
    ordered = sorted(samples, key=lambda s: s.t)
    powered = [s for s in ordered if s.power_w is not None]
    counters = [s for s in ordered if s.energy_j is not None]
    use_counters = len(counters) >= 2 and all(s.energy_j is not None for s in powered)
    base = counters if use_counters else powered
    if len(base) < 2:
        return None
    lo = base[0].t if t0 is None else max(t0, base[0].t)
    hi = base[-1].t if t1 is None else min(t1, base[-1].t)
    if hi <= lo:
        return None
    if use_counters:
        points = [(s.t, float(s.energy_j or 0.0)) for s in counters]
        energy = _counter_at(points, hi) - _counter_at(points, lo)
        method = "energy counters"
    else:
        energy = _integrate_trapezoid([(s.t, float(s.power_w or 0.0)) for s in powered], lo, hi)
        method = "trapezoid"
    inside = [s for s in base if lo <= s.t <= hi]
    around = inside or base
    sources = sorted({s.power_source for s in around})
    return PowerSummary(
        energy_j=energy,
        duration_s=hi - lo,
        t0=lo,
        t1=hi,
        n_samples=len(inside),
        estimated=any(s.estimated for s in around),
        source=" / ".join(sources),
        method=method,
    )


def energy_j(
    samples: Iterable[TelemetrySample], t0: float | None = None, t1: float | None = None
) -> float | None:
    """Joules over [t0, t1]; ``None`` without two samples with power (see :func:`integrate`).

    Check ``any(s.estimated for s in samples)`` (or use :func:`integrate`, whose summary says
    so) before showing it: an energy from the estimate is an estimate.
    """
    summary = integrate(samples, t0, t1)
    return None if summary is None else summary.energy_j


def mean_power_w(
    samples: Iterable[TelemetrySample], t0: float | None = None, t1: float | None = None
) -> float | None:
    """Energy / duration over [t0, t1] (W); ``None`` where :func:`energy_j` is."""
    summary = integrate(samples, t0, t1)
    return None if summary is None else summary.mean_w


def phase_windows(
    marks: Sequence[tuple[float, str]], t_end: float
) -> list[tuple[str, float, float]]:
    """(phase, start, end) for each mark; a phase ends where the next one starts."""
    ordered = sorted(marks)
    return [
        (name, start, ordered[i + 1][0] if i + 1 < len(ordered) else t_end)
        for i, (start, name) in enumerate(ordered)
    ]


def by_phase(
    samples: Sequence[TelemetrySample],
    marks: Sequence[tuple[float, str]],
    t_end: float | None = None,
) -> dict[str, PowerSummary | None]:
    """One :class:`PowerSummary` per marked phase (a repeated phase name keeps the last)."""
    if t_end is None:
        t_end = max((s.t for s in samples), default=0.0)
    return {name: integrate(samples, a, b) for name, a, b in phase_windows(marks, t_end)}
