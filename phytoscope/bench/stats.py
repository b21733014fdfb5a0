"""The benchmark's statistics: small pure functions tested against hand-computed cases."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from phytoscope.bench.results import OtherLoad, Spread


def summarize(values: Sequence[float] | np.ndarray) -> Spread:
    """Median, quartiles, IQR, p50/p95/p99 (linear interpolation, numpy's default), mean,
    min and max of a sample; ``None`` figures (``n`` = 0) for an empty one."""
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        return Spread()
    q1, p50, q3, p95, p99 = (float(x) for x in np.percentile(data, [25, 50, 75, 95, 99]))
    return Spread(
        n=int(data.size),
        median=p50,
        q1=q1,
        q3=q3,
        iqr=q3 - q1,
        p50=p50,
        p95=p95,
        p99=p99,
        mean=float(data.mean()),
        min=float(data.min()),
        max=float(data.max()),
    )


def is_stable(latencies: Sequence[float], window: int, tolerance: float) -> bool:
    """True when the median of the last ``window`` latencies is within ``tolerance``
    (relative) of the median of the ``window`` before: warm-up is over."""
    if window < 1 or len(latencies) < 2 * window:
        return False
    last = float(np.median(latencies[-window:]))
    previous = float(np.median(latencies[-2 * window : -window]))
    if previous <= 0:
        return False
    return abs(last - previous) / previous <= tolerance


def fps_per_watt(fps: float | None, power_w: float | None) -> float | None:
    """Performance-watt as the study defines it: throughput (images/s) over a mean power
    (W) — of the whole run or of the inference phase."""
    if fps is None or power_w is None or power_w <= 0:
        return None
    return fps / power_w


def energy_per_image(
    energy_j: float | None, images: int, idle_w: float | None = None, seconds: float | None = None
) -> tuple[float | None, float | None]:
    """Joules per image, gross and net of the idle baseline (``idle_w`` × ``seconds``).

    Gross is what the machine drew while classifying; net is what classifying added on top
    of the machine merely being on, the figure to compare across machines.
    """
    if energy_j is None or images <= 0:
        return None, None
    gross = energy_j / images
    if idle_w is None or seconds is None:
        return gross, None
    return gross, (energy_j - idle_w * seconds) / images


def ratio(a: float | None, b: float | None) -> float | None:
    """``a / b``, or None when either is missing or ``b`` is zero."""
    if a is None or b is None or not b:
        return None
    return float(a) / float(b)


def process_share_samples(samples: Sequence[Any], tdp_w: float, logical_cpus: int) -> list[Any]:
    """Telemetry samples whose power is the variant process's share of an estimate:
    ``tdp_w`` × its CPU % / (100 × logical CPUs).

    Where power is estimated from whole-machine CPU load, anything else running (another
    job, a desktop) inflates every variant's figure alike; this share counts only the
    benchmarked process, so variants compare fairly on a busy machine. Still an estimate.
    """
    out = []
    for s in samples:
        cpu = getattr(s, "process_cpu_percent", None)
        if cpu is None or cpu != cpu:  # None or NaN
            continue
        share = min(max(cpu / (100.0 * max(1, logical_cpus)), 0.0), 1.0)
        out.append(
            replace(
                s,
                power_w=tdp_w * share,
                energy_j=None,
                estimated=True,
                power_source=f"estimated: process CPU share x {tdp_w:g} W",
            )
        )
    return out


def other_load(
    samples: Sequence[Any], window: tuple[float, float] | None, logical_cpus: int
) -> OtherLoad:
    """CPU used by everything but the benchmarked process, in % of one core (median and
    95th percentile over the window): machine CPU % × logical CPUs − the process's CPU %.
    Well above zero means the variant shared the machine with other work."""
    values = [
        max(0.0, s.cpu_percent * logical_cpus - s.process_cpu_percent)
        for s in samples
        if (window is None or window[0] <= s.t <= window[1])
        and s.cpu_percent == s.cpu_percent
        and getattr(s, "process_cpu_percent", None) is not None
        and s.process_cpu_percent == s.process_cpu_percent
    ]
    if not values:
        return OtherLoad()
    p50, p95 = (float(x) for x in np.percentile(values, [50, 95]))
    return OtherLoad(p50, p95, len(values))
