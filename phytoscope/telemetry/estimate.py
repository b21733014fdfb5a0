"""The last resort: CPU power *estimated* as machine CPU utilisation x rated power.

This is a model, not a measurement (CodeCarbon's fallback is a constant 50 % of TDP; scaling
by measured utilisation at least follows the load). It knows nothing of idle floor, turbo,
memory, GPU, fans or PSU losses, so every figure it gives is labelled "estimated".

The rated power defaults to 15 W, the TDP of the common laptop U-series CPUs
(Intel Core i5/i7-1x35U/G7, AMD Ryzen 5/7 x5x0U); set ``PHYTOSCOPE_CPU_TDP_W`` or
``--cpu-tdp`` to the TDP of the machine's CPU (e.g. 65 for a desktop, 10 for a Jetson
Nano in its 10 W mode).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import psutil

from phytoscope.errors import ConfigError
from phytoscope.telemetry.base import PowerReading, PowerSource, SourceStatus

DEFAULT_CPU_TDP_W = 15.0
TDP_ENV = "PHYTOSCOPE_CPU_TDP_W"


def rated_power_w(override: float | None = None) -> float:
    """The rated CPU power to scale by: the argument, else ``$PHYTOSCOPE_CPU_TDP_W``, else 15 W."""
    if override is not None:
        value, origin = float(override), "cpu_tdp_w"
    elif os.environ.get(TDP_ENV):
        try:
            value, origin = float(os.environ[TDP_ENV]), TDP_ENV
        except ValueError as exc:
            raise ConfigError(
                f"{TDP_ENV} must be a number of watts, not {os.environ[TDP_ENV]!r}"
            ) from exc
    else:
        return DEFAULT_CPU_TDP_W
    if not 0.5 <= value <= 1000:
        raise ConfigError(f"{origin} must be between 0.5 and 1000 W, not {value}")
    return value


class CpuLoad:
    """Whole-machine CPU utilisation between two calls, from ``psutil.cpu_times()``.

    Kept per instance (unlike ``psutil.cpu_percent(interval=None)``, whose "since the last
    call" is shared by every caller in the process), so two samplers never shorten each
    other's interval.
    """

    MIN_INTERVAL_S = 0.02
    """CPU seconds (all cores) below which an interval is too short to say anything: the
    kernel counts in 10 ms ticks"""

    def __init__(self, cpu_times: Callable[[], object] = psutil.cpu_times) -> None:
        self._cpu_times = cpu_times
        self._last = self._busy_total()
        self.last_percent: float | None = None
        """None until one interval long enough has passed (the very first sample)"""

    def _busy_total(self) -> tuple[float, float]:
        fields = self._cpu_times()._asdict()  # type: ignore[attr-defined]
        # guest time is already inside user/nice on Linux: do not count it twice
        total = sum(fields.values()) - fields.get("guest", 0.0) - fields.get("guest_nice", 0.0)
        idle = fields.get("idle", 0.0) + fields.get("iowait", 0.0)
        return total - idle, total

    def update(self) -> float | None:
        """Utilisation in percent (0-100, all cores) since the previous long-enough call."""
        busy, total = self._busy_total()
        d_busy, d_total = busy - self._last[0], total - self._last[1]
        if d_total >= self.MIN_INTERVAL_S:  # else keep the baseline: the next interval grows
            self._last = (busy, total)
            self.last_percent = min(100.0, max(0.0, 100.0 * d_busy / d_total))
        return self.last_percent


class EstimatedSource(PowerSource):
    """``power = utilisation x rated power``; ``estimated`` is always True.

    Parameters
    ----------
    cpu_tdp_w
        rated power; ``None`` reads ``$PHYTOSCOPE_CPU_TDP_W`` or uses 15 W.
    utilisation_percent
        returns the machine's CPU % for the interval just ended (None: no interval yet, so
        no power either); the sampler passes the figure it already took for the sample, so
        both agree. Default: its own CpuLoad.
    """

    name = "estimate"
    estimated = True

    def __init__(
        self,
        cpu_tdp_w: float | None = None,
        utilisation_percent: Callable[[], float | None] | None = None,
    ) -> None:
        self.tdp_w = rated_power_w(cpu_tdp_w)
        self._utilisation = utilisation_percent or CpuLoad().update
        self.label = f"estimated: CPU load x {self.tdp_w:g} W"

    def read(self, t: float) -> PowerReading:
        load = self._utilisation()
        return PowerReading(None if load is None else load / 100.0 * self.tdp_w)


def probe_estimate(cpu_tdp_w: float | None = None) -> SourceStatus:
    try:
        tdp = rated_power_w(cpu_tdp_w)
    except ConfigError as exc:
        return SourceStatus("estimate", "error", str(exc), estimated=True)
    origin = (
        f"from {TDP_ENV}"
        if os.environ.get(TDP_ENV) and cpu_tdp_w is None
        else ("given" if cpu_tdp_w is not None else f"default; set {TDP_ENV} to this CPU's TDP")
    )
    return SourceStatus("estimate", "available", f"CPU load x {tdp:g} W ({origin})", estimated=True)
