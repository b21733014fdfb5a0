"""NVIDIA Jetson power: the INA3221 monitors in sysfs, and jtop (jetson-stats) when its
service runs.

Layouts (read as jetson-stats reads them):

- JetPack 5/6 (Xavier, Orin; hwmon driver):
  ``<sys>/bus/i2c/devices/<bus-addr>/hwmon/hwmonN/{inK_label, inK_input (mV), currK_input (mA)}``;
  labels containing ``NC`` (not connected) and channel 7 ("sum of shunt voltages") are
  skipped.
- JetPack 4 (Nano, TX2; iio driver):
  ``<sys>/bus/i2c/devices/<bus-addr>/iio:device0/{rail_name_K, in_voltageK_input (mV),
  in_currentK_input (mA), in_powerK_input (mW)}``.

The board total is the rail ``VDD_IN`` (Orin Nano/NX, Xavier NX) or ``POM_5V_IN`` (Nano,
TX), the input of the whole module, as in the study; other rails are parts of it and are
reported beside it, never added to it. Where neither exists (AGX Orin) the total is the sum
of the rails, and the label says so.
"""

from __future__ import annotations

import importlib.util
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phytoscope.errors import SensorError
from phytoscope.telemetry.base import (
    NOT_READABLE,
    PowerReading,
    PowerSource,
    Reader,
    SourceStatus,
    is_permission_error,
    read_int,
    read_text,
)

log = logging.getLogger(__name__)

TOTAL_RAILS = ("VDD_IN", "POM_5V_IN")
SUM_OF_SHUNTS_CHANNEL = 7


@dataclass(frozen=True)
class Rail:
    """One monitored rail and the files that give its power."""

    name: str
    device: str
    """``1-0040/hwmon/hwmon3``-like, for messages"""
    volt: Path
    curr: Path
    power: Path | None = None
    """iio only: the driver's own mW figure"""

    def read_mw(self, reader: Reader) -> float:
        if self.power is not None:
            return float(read_int(reader, self.power))
        return read_int(reader, self.volt) * read_int(reader, self.curr) / 1000.0


def _channels_hwmon(folder: Path, device: str, reader: Reader) -> list[Rail]:
    rails = []
    for label_path in sorted(folder.glob("in*_label")):
        match = re.fullmatch(r"in(\d+)_label", label_path.name)
        if not match:
            continue
        channel = int(match.group(1))
        label = reader(label_path).strip()
        if channel == SUM_OF_SHUNTS_CHANNEL or "NC" in label:
            log.debug("skipping INA3221 channel %s (%r) in %s", channel, label, folder)
            continue
        volt, curr = folder / f"in{channel}_input", folder / f"curr{channel}_input"
        if volt.exists() and curr.exists():
            rails.append(Rail(label, device, volt, curr))
    return rails


def _channels_iio(folder: Path, device: str, reader: Reader) -> list[Rail]:
    rails = []
    for label_path in sorted(folder.glob("rail_name_*")):
        match = re.fullmatch(r"rail_name_(\d+)", label_path.name)
        if not match:
            continue
        k = int(match.group(1))
        label = reader(label_path).strip()
        power = folder / f"in_power{k}_input"
        rails.append(
            Rail(
                label,
                device,
                folder / f"in_voltage{k}_input",
                folder / f"in_current{k}_input",
                power if power.exists() else None,
            )
        )
    return rails


def find_rails(sysfs_root: str | Path = "/sys", reader: Reader = read_text) -> list[Rail]:
    """Every INA3221 rail under ``<sysfs_root>/bus/i2c/devices`` (hwmon and iio drivers)."""
    devices = Path(sysfs_root) / "bus" / "i2c" / "devices"
    if not devices.is_dir():
        return []
    rails: list[Rail] = []
    for dev in sorted(devices.iterdir()):
        name_file = dev / "name"
        try:
            if not name_file.is_file() or "ina3221" not in reader(name_file):
                continue
        except OSError:
            continue
        for hwmon in sorted((dev / "hwmon").glob("hwmon*")):
            rails += _channels_hwmon(hwmon, f"{dev.name}/hwmon/{hwmon.name}", reader)
        for iio in sorted(dev.glob("iio:device*")):
            rails += _channels_iio(iio, f"{dev.name}/{iio.name}", reader)
    return rails


def total_rail(rails: list[Rail]) -> Rail | None:
    for wanted in TOTAL_RAILS:
        for rail in rails:
            if rail.name == wanted:
                return rail
    return None


class Ina3221Source(PowerSource):
    """Board power from the INA3221 rails; instantaneous, so the sampler integrates it."""

    name = "ina3221"
    estimated = False

    def __init__(self, sysfs_root: str | Path = "/sys", reader: Reader = read_text) -> None:
        self._reader = reader
        self.rails = find_rails(sysfs_root, reader)
        if not self.rails:
            raise SensorError(
                f"no INA3221 power monitor under {Path(sysfs_root) / 'bus/i2c/devices'}"
            )
        self.total = total_rail(self.rails)
        if self.total is not None:
            self.label = f"Jetson INA3221 {self.total.name} (measured)"
        else:
            names = "+".join(r.name for r in self.rails)
            self.label = f"Jetson INA3221 sum of rails {names} (measured)"
        self.read(0.0)  # prove it can be read now, not at the first sample

    def read(self, t: float) -> PowerReading:
        rails: list[tuple[str, float]] = []
        for rail in self.rails:
            try:
                rails.append((rail.name, rail.read_mw(self._reader) / 1000.0))
            except OSError as exc:
                if is_permission_error(exc):
                    raise SensorError(f"INA3221 {rail.device} {rail.name}: {NOT_READABLE}") from exc
                raise SensorError(f"INA3221 {rail.device} {rail.name}: {exc}") from exc
        if self.total is not None:
            total = dict(rails)[self.total.name]
        else:
            total = sum(w for _, w in rails)
        return PowerReading(total, tuple(rails))


def probe_ina3221(sysfs_root: str | Path = "/sys", reader: Reader = read_text) -> SourceStatus:
    try:
        source = Ina3221Source(sysfs_root, reader)
    except SensorError as exc:
        state = "not readable" if NOT_READABLE in str(exc) else "not found"
        return SourceStatus("ina3221", state, NOT_READABLE if state == "not readable" else str(exc))
    rails = ", ".join(r.name for r in source.rails)
    return SourceStatus("ina3221", "found", f"{source.label}; rails {rails}")


# --- jtop (jetson-stats) ------------------------------------------------------------------


def parse_jtop_power(power: dict[str, Any]) -> tuple[float | None, tuple[tuple[str, float], ...]]:
    """Total and per-rail watts from jtop's ``jetson.power``.

    jtop gives ``{'rail': {name: {'power': mW, 'avg': mW, ...}}, 'tot': {'power': mW, ...}}``.
    Only the instantaneous ``power`` is used: ``avg`` is a two-tap moving average
    (``(power + old_avg) // 2``), not a mean, so integrating it would smear every step.
    """
    rails = tuple(
        (str(name), float(values["power"]) / 1000.0)
        for name, values in (power.get("rail") or {}).items()
        if isinstance(values, dict) and values.get("power") is not None
    )
    total = (power.get("tot") or {}).get("power")
    return (float(total) / 1000.0 if total is not None else None), rails


def parse_jtop_shared_kb(memory: dict[str, Any]) -> int | None:
    """GPU-shared RAM in bytes from jtop's ``jetson.memory['RAM']['shared']`` (kB)."""
    shared = (memory.get("RAM") or {}).get("shared")
    return int(shared) * 1024 if shared is not None else None


class JtopSource(PowerSource):
    """Total input power through the jtop service (needs jetson-stats and the jtop group)."""

    name = "jtop"
    estimated = False

    def __init__(self, interval_s: float = 0.5) -> None:
        try:
            from jtop import jtop  # type: ignore[import-not-found]
        except ImportError as exc:
            raise SensorError(
                "jetson-stats is not installed (pip install 'phytoscope[jetson]')"
            ) from exc
        self._jetson = jtop(interval=max(0.1, interval_s))
        try:
            self._jetson.start()  # raises JtopException when the service is not reachable
        except Exception as exc:  # noqa: BLE001 - jtop raises its own exception types
            raise SensorError(
                f"jtop service not reachable ({exc}); is jtop.service running "
                "and is this user in the 'jtop' group?"
            ) from exc
        total, _ = parse_jtop_power(self._jetson.power or {})
        if total is None:
            self._jetson.close()
            raise SensorError("jtop reports no power rails on this board")
        name = (self._jetson.power.get("tot") or {}).get("name") or "total"
        self.label = f"jtop {name} (measured)"

    def read(self, t: float) -> PowerReading:
        try:
            total, rails = parse_jtop_power(self._jetson.power or {})
            gpu = parse_jtop_shared_kb(self._jetson.memory or {})
        except Exception as exc:  # noqa: BLE001
            raise SensorError(f"jtop read failed: {exc}") from exc
        return PowerReading(total, rails, gpu_mem_used_bytes=gpu)

    def close(self) -> None:
        try:
            self._jetson.close()
        except Exception:  # noqa: BLE001 - closing a dead connection must not raise
            log.debug("jtop close failed", exc_info=True)


def probe_jtop() -> SourceStatus:
    if importlib.util.find_spec("jtop") is None:
        return SourceStatus("jtop", "not found", "jetson-stats not installed")
    try:
        source = JtopSource()
    except SensorError as exc:
        return SourceStatus("jtop", "not found", str(exc))
    label = source.label
    source.close()
    return SourceStatus("jtop", "found", label)
