"""Which power source to use, and what ``phytoscope info`` says about each.

Order (DESIGN.md section 6): jtop (Jetson, total input rail, when its service answers);
INA3221 sysfs (hwmon, or iio on JetPack 4); RAPL package+dram; NVML GPU board power; and
last the estimate from CPU load x rated power.

On a workstation with both RAPL and an NVIDIA GPU the two are *added*: inference on the GPU
still decodes and pre-processes on the CPU, so either alone misses part of the cost. The
label names both parts, and the figure is still a component sum, not wall power.

jtop and NVML talk to the real machine (a service, a driver), not to files, so they are only
tried when ``sysfs_root`` is the real ``/sys``; a fake tree in a test never picks them up.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from phytoscope.errors import SensorError
from phytoscope.telemetry import estimate, jetson, nvml, rapl
from phytoscope.telemetry.base import NOT_READABLE, PowerSource, Reader, SourceStatus, read_text
from phytoscope.telemetry.memory import MemoryReader
from phytoscope.telemetry.meter import MeterCsvSource

log = logging.getLogger(__name__)

SOURCE_CHOICES = ("auto", "jtop", "ina3221", "rapl", "nvml", "estimate")


def _status_from_error(name: str, exc: SensorError) -> SourceStatus:
    if NOT_READABLE in str(exc):
        return SourceStatus(name, "not readable", NOT_READABLE)
    return SourceStatus(name, "not found", str(exc))


def _is_real_root(sysfs_root: str | Path) -> bool:
    try:
        return Path(sysfs_root).resolve() == Path("/sys")
    except OSError:
        return False


def select_source(
    source: str = "auto",
    *,
    sysfs_root: str | Path = "/sys",
    reader: Reader = read_text,
    cpu_tdp_w: float | None = None,
    utilisation_percent: Callable[[], float | None] | None = None,
    meter_csv: str | Path | None = None,
    meter_offset_s: float = 0.0,
    rate_hz: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[PowerSource, list[SourceStatus]]:
    """Open the power source to sample, and say what was found on the way.

    ``source`` is ``"auto"`` or one of :data:`SOURCE_CHOICES`; a named source that cannot
    be opened raises :class:`SensorError` rather than quietly falling back to another one.
    A meter log, when given, is the source.
    """
    if meter_csv is not None:
        meter = MeterCsvSource(meter_csv, offset_s=meter_offset_s)
        return meter, [SourceStatus("meter", "found", meter.label)]
    if source not in SOURCE_CHOICES:
        raise SensorError(
            f"unknown power source {source!r}; choose one of {', '.join(SOURCE_CHOICES)}"
        )
    real = _is_real_root(sysfs_root)
    openers: dict[str, Callable[[], PowerSource]] = {
        "jtop": lambda: jetson.JtopSource(interval_s=1.0 / rate_hz),
        "ina3221": lambda: jetson.Ina3221Source(sysfs_root, reader),
        "rapl": lambda: rapl.RaplSource(sysfs_root, reader, clock),
        "nvml": lambda: nvml.NvmlSource(clock=clock),
        "estimate": lambda: estimate.EstimatedSource(cpu_tdp_w, utilisation_percent),
    }
    if source != "auto":
        if source in ("jtop", "nvml") and not real:
            raise SensorError(
                f"{source} reads the real machine; it cannot use sysfs root {sysfs_root}"
            )
        opened = openers[source]()
        return opened, [SourceStatus(source, "found", opened.label, opened.estimated)]

    statuses: list[SourceStatus] = []
    found: dict[str, PowerSource] = {}
    for name in ("jtop", "ina3221", "rapl", "nvml"):
        if name in ("jtop", "nvml") and not real:
            statuses.append(
                SourceStatus(name, "not found", f"not tried with sysfs root {sysfs_root}")
            )
            continue
        if name == "jtop" and not _module_exists("jtop"):
            statuses.append(SourceStatus(name, "not found", "jetson-stats not installed"))
            continue
        if name == "nvml" and not _module_exists("pynvml"):
            statuses.append(SourceStatus(name, "not found", "nvidia-ml-py not installed"))
            continue
        if name in ("rapl", "nvml") and ("jtop" in found or "ina3221" in found):
            statuses.append(
                SourceStatus(name, "not found", "not tried: a Jetson monitor was found")
            )
            continue
        if name == "ina3221" and "jtop" in found:
            statuses.append(
                SourceStatus(name, "not found", "not tried: jtop reads the same monitors")
            )
            continue
        try:
            found[name] = openers[name]()
            statuses.append(SourceStatus(name, "found", found[name].label))
        except SensorError as exc:
            statuses.append(_status_from_error(name, exc))
            log.info("power source %s: %s", name, exc)
    chosen: PowerSource
    if "jtop" in found:
        chosen = found["jtop"]
    elif "ina3221" in found:
        chosen = found["ina3221"]
    elif "rapl" in found and "nvml" in found:
        chosen = nvml.SumSource([found["rapl"], found["nvml"]])
    elif "rapl" in found or "nvml" in found:
        chosen = found.get("rapl") or found["nvml"]
    else:
        chosen = openers["estimate"]()
    statuses.append(estimate.probe_estimate(cpu_tdp_w))
    for source_obj in found.values():
        if source_obj is not chosen and not (
            isinstance(chosen, nvml.SumSource) and source_obj in chosen.parts
        ):
            source_obj.close()
    return chosen, statuses


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def describe_sensors(
    sysfs_root: str | Path = "/sys", procfs_root: str | Path = "/proc", reader: Reader = read_text
) -> dict[str, Any]:
    """For ``phytoscope info``: each power source found / not found / not readable, which
    one the sampler would use, whether it is an estimate, and where memory figures come from.
    """

    try:
        chosen, statuses = select_source("auto", sysfs_root=sysfs_root, reader=reader)
    except SensorError as exc:  # the estimate itself failed (a bad PHYTOSCOPE_CPU_TDP_W)
        return {"power source": f"error: {exc}"}
    info: dict[str, Any] = {
        "power source": chosen.label,
        "estimated": chosen.estimated,
    }
    for status in statuses:
        info[status.name] = status.line()
    chosen.close()
    try:
        used, total, gpu = MemoryReader(procfs_root=procfs_root, reader=reader).system_ram()
        info["memory"] = (
            f"psutil process RSS/CPU; system RAM {used / 2**30:.1f} of "
            f"{total / 2**30:.1f} GiB used (MemTotal - MemAvailable)"
        )
        info["gpu memory"] = (
            f"Jetson GPU-mapped RAM (NvMapMemUsed) {gpu / 2**20:.0f} MiB"
            if gpu is not None
            else "not reported here (no NvMapMemUsed; NVML reports it for discrete GPUs)"
        )
    except SensorError as exc:
        info["memory"] = f"error: {exc}"
    info["usb meter"] = (
        "phytoscope telemetry --meter-csv LOG.csv (time, watts) to measure without sensors"
    )
    return info
