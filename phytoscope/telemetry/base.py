"""What every power source shares: the reading it returns, its status, counter maths.

A power source is opened once (which proves it can be read: a source that cannot is never
selected), then read at timestamps the sampler chooses. Sources with energy counters (RAPL,
NVML) report power as ΔE/Δt between two reads and carry the cumulative energy, so an
integral over a run is a counter difference, not an average of averages.
"""

from __future__ import annotations

import errno
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from phytoscope.errors import SensorError

NOT_READABLE = "not readable (needs root or a udev rule)"
"""What an existing sensor file we may not read shows as: never as zero watts."""

Reader = Callable[[Path], str]
"""Reads one sysfs/procfs file as text; tests inject one to simulate permission errors
(they run as root, where ``chmod 000`` does not stop a read)."""


def read_text(path: Path) -> str:
    with open(path, encoding="ascii", errors="replace") as handle:
        return handle.read()


def read_int(reader: Reader, path: Path) -> int:
    """First whitespace-separated token of a sysfs file as an int (``"32760 ma"`` -> 32760)."""
    text = reader(path).split()
    if not text:
        raise SensorError(f"{path} is empty")
    try:
        return int(text[0])
    except ValueError as exc:
        raise SensorError(f"{path} does not hold a number: {text[0]!r}") from exc


def is_permission_error(exc: BaseException) -> bool:
    return isinstance(exc, PermissionError) or (
        isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM)
    )


@dataclass(frozen=True)
class PowerReading:
    """One power figure from one source at one timestamp.

    ``power_w`` is ``None`` when the source has nothing yet (a counter read twice in the same
    instant, a meter log that has not reached this time).
    """

    power_w: float | None
    rails_w: tuple[tuple[str, float], ...] = ()
    energy_j: float | None = None
    gpu_mem_used_bytes: int | None = None


@dataclass(frozen=True)
class SourceStatus:
    """What ``describe_sensors`` shows for one kind of source."""

    name: str
    state: str
    """"found", "not found", "not readable" or "error" """
    detail: str
    estimated: bool = False

    def line(self) -> str:
        if not self.detail:
            text = self.state
        elif self.detail.startswith(self.state):  # "not readable (needs root ...)" as is
            text = self.detail
        else:
            text = f"{self.state}: {self.detail}"
        return text + (" (estimated)" if self.estimated and "estimated" not in text else "")


class PowerSource(ABC):
    """A power source: ``read(t)`` at monotonic timestamps chosen by the caller."""

    name: str = "source"
    label: str = "unknown"
    """shown beside every figure: ``"RAPL package+dram (measured)"``, ``"estimated: ..."``"""
    estimated: bool = False

    @abstractmethod
    def read(self, t: float) -> PowerReading:
        """Power at monotonic time ``t`` (seconds); raises SensorError when it fails."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the source holds (sockets, library handles)."""


class EnergyCounter:
    """Turns a cumulative counter with wrap-around into energy (J) and power (W).

    Parameters
    ----------
    scale_j
        joules per counter unit (RAPL µJ: 1e-6; NVML mJ: 1e-3).
    max_range
        value past which the counter restarts at 0 (RAPL ``max_energy_range_uj``); ``None``
        for counters that never wrap in practice.
    """

    STALE_AFTER_S = 1.0
    """An unchanged counter means "not refreshed yet" below this interval (NVML on an H100
    refreshes its energy counter every few tens of ms: read 5 ms apart it looks like 0 W,
    then the next read looks like a spike); past it, an unchanged counter is a real 0 W."""

    def __init__(self, scale_j: float, max_range: int | None = None) -> None:
        self.scale_j = scale_j
        self.max_range = max_range
        self._last_raw: int | None = None
        self._last_t: float | None = None
        self.total_j = 0.0
        self.last_power_w: float | None = None

    def update(self, raw: int, t: float) -> float | None:
        """Feed one counter value read at ``t``; returns the power since the previous value."""
        if self._last_raw is None or self._last_t is None:
            self._last_raw, self._last_t = raw, t
            return None
        delta = raw - self._last_raw
        if delta < 0:  # wrapped (or the driver reloaded: then the best we can do is restart)
            delta = delta + self.max_range if self.max_range else raw
        dt = t - self._last_t
        if dt <= 0 or (delta == 0 and dt < self.STALE_AFTER_S):
            # no new information: keep the baseline, so the energy lands in the interval in
            # which the counter does move, at its true rate
            return self.last_power_w
        self.total_j += delta * self.scale_j
        self._last_raw, self._last_t = raw, t
        self.last_power_w = delta * self.scale_j / dt
        return self.last_power_w
