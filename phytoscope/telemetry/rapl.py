"""Intel/AMD RAPL energy counters through the powercap sysfs interface.

``<sys>/class/powercap/intel-rapl:N/`` (``name`` = ``package-N``) holds ``energy_uj``, a
cumulative µJ counter that restarts at 0 past ``max_energy_range_uj``; its sub-zones
``intel-rapl:N:M`` are named ``core``, ``uncore`` or ``dram``. ``core`` and ``uncore`` are
parts of the package, ``dram`` is not, so the figure here is every package plus every dram
sub-zone. ``psys`` (whole platform, on some laptops) and ``intel-rapl-mmio`` (a second view
of the same package counter) are left out so nothing is counted twice.

Since 2020 ``energy_uj`` is readable by root only on most distributions; a normal user gets
a permission error, shown as "not readable (needs root or a udev rule)", never as 0 W.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from phytoscope.errors import SensorError
from phytoscope.telemetry.base import (
    NOT_READABLE,
    EnergyCounter,
    PowerReading,
    PowerSource,
    Reader,
    SourceStatus,
    is_permission_error,
    read_int,
    read_text,
)

_ZONE = re.compile(r"intel-rapl:(\d+)(?::(\d+))?")


@dataclass(frozen=True)
class Zone:
    zone_id: str
    """``intel-rapl:0`` or ``intel-rapl:0:2``"""
    name: str
    """``package-0``, ``dram``, ..."""
    path: Path

    @property
    def rail_name(self) -> str:
        if self.name.startswith("package"):
            return self.name
        package = self.zone_id.split(":")[1]
        return f"{self.name}-{package}"


def find_zones(sysfs_root: str | Path = "/sys", reader: Reader = read_text) -> list[Zone]:
    """Package and dram zones under ``<sysfs_root>/class/powercap`` (flat links or nested)."""
    base = Path(sysfs_root) / "class" / "powercap"
    if not base.is_dir():
        return []
    candidates: dict[str, Path] = {}
    for top in sorted(base.iterdir()):
        if _ZONE.fullmatch(top.name):
            candidates.setdefault(top.name, top)
            for sub in sorted(top.iterdir()) if top.is_dir() else ():
                if _ZONE.fullmatch(sub.name):
                    candidates.setdefault(sub.name, sub)
    zones = []
    for zone_id, path in sorted(candidates.items()):
        try:
            name = reader(path / "name").strip()
        except OSError:
            continue
        is_sub = _ZONE.fullmatch(zone_id).group(2) is not None  # type: ignore[union-attr]
        if (not is_sub and name.startswith("package")) or (is_sub and name == "dram"):
            if (path / "energy_uj").exists():
                zones.append(Zone(zone_id, name, path))
    return zones


class RaplSource(PowerSource):
    """CPU package (+ dram) power from RAPL counters: ΔE/Δt, wrap-around handled."""

    name = "rapl"
    estimated = False

    def __init__(
        self,
        sysfs_root: str | Path = "/sys",
        reader: Reader = read_text,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._reader = reader
        self.zones = find_zones(sysfs_root, reader)
        if not self.zones:
            raise SensorError(f"no RAPL zone under {Path(sysfs_root) / 'class/powercap'}")
        self._counters = []
        for zone in self.zones:
            try:
                max_range = read_int(reader, zone.path / "max_energy_range_uj")
            except OSError:
                max_range = None  # only the wrap correction is lost; counters still work
            self._counters.append(EnergyCounter(1e-6, max_range))
        kinds = "package+dram" if any(z.name == "dram" for z in self.zones) else "package"
        self.label = f"RAPL {kinds} (measured)"
        self.read(clock())  # prime the counters; raises "not readable" for non-root users

    def _raw(self, zone: Zone) -> int:
        try:
            return read_int(self._reader, zone.path / "energy_uj")
        except OSError as exc:
            if is_permission_error(exc):
                raise SensorError(f"RAPL {zone.zone_id} energy_uj {NOT_READABLE}") from exc
            raise SensorError(f"RAPL {zone.zone_id}: {exc}") from exc

    def read(self, t: float) -> PowerReading:
        raws = [self._raw(zone) for zone in self.zones]  # read all before updating any
        rails = []
        total_w: float | None = 0.0
        for zone, counter, raw in zip(self.zones, self._counters, raws, strict=True):
            power = counter.update(raw, t)
            if power is None:
                total_w = None
            else:
                rails.append((zone.rail_name, power))
                if total_w is not None:
                    total_w += power
        energy = sum(c.total_j for c in self._counters)
        return PowerReading(total_w, tuple(rails), energy_j=energy)


def probe_rapl(sysfs_root: str | Path = "/sys", reader: Reader = read_text) -> SourceStatus:
    try:
        source = RaplSource(sysfs_root, reader)
    except SensorError as exc:
        if NOT_READABLE in str(exc):
            return SourceStatus("rapl", "not readable", NOT_READABLE)
        return SourceStatus("rapl", "not found", str(exc))
    zones = ", ".join(z.rail_name for z in source.zones)
    return SourceStatus("rapl", "found", f"{source.label}; zones {zones}")
