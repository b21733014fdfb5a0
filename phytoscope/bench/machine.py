"""The machine a benchmark ran on: its facts, its software versions and its idle baseline."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from phytoscope import __version__
from phytoscope.bench import stages
from phytoscope.bench.config import BenchConfig
from phytoscope.bench.results import BusyProcess, IdleBaseline, Machine
from phytoscope.core.diagnostics import PACKAGES
from phytoscope.errors import Cancelled
from phytoscope.progress import Progress
from phytoscope.telemetry import mean_power_w


def machine_facts() -> Machine:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return Machine(
        hostname=platform.node(),
        platform=platform.platform(),
        machine=platform.machine(),
        cpu=cpu,
        logical_cpus=os.cpu_count(),
        physical_cpus=psutil.cpu_count(logical=False),
        ram_total_bytes=int(psutil.virtual_memory().total),
        load_average=load_average(),
    )


def load_average() -> tuple[float, ...] | None:
    return tuple(os.getloadavg()) if hasattr(os, "getloadavg") else None


def machine_name(facts: Machine | None = None) -> str:
    """A folder name saying what the machine is, e.g. ``x86_64-amd-epyc-2cpu``."""
    facts = facts or machine_facts()
    cpu = facts.cpu or "cpu"
    words = [
        w
        for w in "".join(c if c.isalnum() else " " for c in cpu.lower()).split()
        if w not in ("processor", "cpu", "r", "tm", "core", "with", "radeon", "graphics")
    ][:3]
    return "-".join([facts.machine or "unknown", *words, f"{facts.logical_cpus}cpu"])


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"phytoscope": __version__, "python": sys.version.split()[0]}
    for dist in PACKAGES:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out


def sampler_options(config: BenchConfig) -> dict[str, Any]:
    return {"cpu_tdp_w": config.cpu_tdp_w} if config.cpu_tdp_w else {}


def measure_idle(
    config: BenchConfig, sampler_factory: Callable[..., Any], progress: Progress
) -> tuple[IdleBaseline, list[Any], float]:
    """Sample the machine at rest for ``config.idle_s``: (baseline, samples, start time)."""
    sampler = sampler_factory(
        rate_hz=config.rate_hz, capacity=36000, csv_path=None, pid=None, **sampler_options(config)
    )
    sampler.start()
    sampler.mark("idle")
    others = busy_processes()
    t0 = time.monotonic()
    try:
        while (elapsed := time.monotonic() - t0) < config.idle_s:
            if progress.cancelled:
                raise Cancelled("benchmark cancelled during the idle baseline")
            stages.idle(progress, elapsed, config.idle_s)
            time.sleep(min(0.2, config.idle_s))
    finally:
        t1 = time.monotonic()
        sampler.close()  # the ring buffer stays readable; the power source is released
    stages.idle(progress, t1 - t0, config.idle_s, final=True)
    samples = list(sampler.snapshot())
    cpu = [s.cpu_percent for s in samples if s.cpu_percent == s.cpu_percent]
    powered = any(s.power_w is not None for s in samples)
    baseline = IdleBaseline(
        seconds=t1 - t0,
        mean_power_w=mean_power_w(samples, t0, t1) if powered else None,
        power_label=getattr(sampler, "power_label", None),
        estimated=getattr(sampler, "estimated", None),
        machine_cpu_percent_median=float(np.median(cpu)) if cpu else None,
        samples=len(samples),
        busy_processes=tuple(others()),
    )
    return baseline, samples, t0


def _short_command(proc: Any) -> str:
    """``python -m pytest``: the program's name and its first two arguments."""
    try:
        args = proc.cmdline()
    except Exception:  # noqa: BLE001 - psutil errors, permissions
        args = []
    if not args:
        return str(proc.info.get("name") or "?")
    return " ".join([Path(args[0]).name, *(a if len(a) < 40 else "…" + a[-30:] for a in args[1:3])])


def busy_processes(threshold: float = 10.0) -> Callable[[], list[BusyProcess]]:
    """Prime per-process CPU counters now; the returned function lists the processes that
    used more than ``threshold`` % of a core since (name, pid, CPU %): who else was busy
    during the idle baseline. Processes started in between count from their start."""
    me = os.getpid()
    t_start = time.time()
    primed: dict[int, Any] = {}
    for proc in psutil.process_iter(["name"]):
        try:
            proc.cpu_percent(None)
            primed[proc.pid] = proc
        except (psutil.Error, OSError):
            continue

    def cpu_since(proc: Any, now: float) -> float:
        if proc.pid in primed:
            return float(primed[proc.pid].cpu_percent(None))
        # born during the baseline: its whole CPU time over its life so far
        times = proc.cpu_times()
        life = max(now - max(proc.create_time(), t_start), 1e-3)
        return 100.0 * (times.user + times.system) / life

    def collect() -> list[BusyProcess]:
        now = time.time()
        out = []
        for proc in psutil.process_iter(["name"]):
            try:
                cpu = cpu_since(proc, now)
            except (psutil.Error, OSError):
                continue
            if cpu > threshold and proc.pid != me:
                out.append(BusyProcess(_short_command(proc), proc.pid, round(cpu, 1)))
        return sorted(out, key=lambda p: -p.cpu_percent)[:5]

    return collect
