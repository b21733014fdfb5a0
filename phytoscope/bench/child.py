"""The parent side of one variant's run: spawn :mod:`phytoscope.bench.worker` in a fresh
process, sample its telemetry from outside, and stamp the phases it announces."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phytoscope.bench.config import BenchConfig, Variant
from phytoscope.bench.labelled import LabelledSet
from phytoscope.bench.machine import sampler_options
from phytoscope.bench.worker import PREFIX
from phytoscope.config import SOURCE_ROOT
from phytoscope.errors import Cancelled
from phytoscope.progress import Progress

PhaseCallback = Callable[[str, str], None]
"""``(phase, message)``: the variant's process began a phase or reported within one."""


@dataclass
class ChildRun:
    """What one variant's process left: the worker's raw figures (None when it failed),
    the phase start times (monotonic clock), the telemetry samples, the error, and the
    rated power of the estimating power source (None where power is measured)."""

    result: dict[str, Any] | None
    phases: dict[str, float] = field(default_factory=dict)
    samples: list[Any] = field(default_factory=list)
    error: str | None = None
    tdp_w: float | None = None


def worker_spec(variant: Variant, model: Path, labelled: LabelledSet, config: BenchConfig) -> dict:
    return {
        "backend": variant.backend,
        "precision": variant.precision,
        "model": str(model),
        "images": list(labelled.items),
        "batch_sizes": list(config.batch_sizes),
        "rounds": config.rounds,
        "round_s": config.round_s,
        "min_calls": config.min_calls,
        "warmup_cap_s": config.warmup_cap_s,
        "warmup_window": config.warmup_window,
        "warmup_tolerance": config.warmup_tolerance,
        "threads": config.threads,
    }


def _spawn(spec_path: Path, out_path: Path, log_path: Path) -> subprocess.Popen[str]:
    env = dict(os.environ)
    # A source checkout run as `python -m phytoscope` must be importable in the child too.
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(SOURCE_ROOT), env.get("PYTHONPATH", "")) if p
    )
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with open(log_path, "w", encoding="utf-8") as log_file:
        return subprocess.Popen(
            [sys.executable, "-m", "phytoscope.bench.worker", str(spec_path), str(out_path)],
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
            env=env,
        )


def _reader(stream: Iterable[str], sink: queue.Queue[str | None]) -> None:
    for line in stream:
        sink.put(line)
    sink.put(None)


def run_variant(
    variant: Variant,
    model: Path,
    labelled: LabelledSet,
    config: BenchConfig,
    work: Path,
    sampler_factory: Callable[..., Any],
    on_phase: PhaseCallback,
    progress: Progress,
) -> ChildRun:
    """Run one variant's worker process to its end (or its time limit, or a cancel)."""
    spec_path, out_path = work / f"{variant.key}.spec.json", work / f"{variant.key}.result.json"
    spec_path.write_text(json.dumps(worker_spec(variant, model, labelled, config)), "utf-8")
    out_path.unlink(missing_ok=True)
    run = ChildRun(None, phases={"load": time.monotonic()})
    proc = _spawn(spec_path, out_path, work / f"{variant.key}.log")
    sampler = sampler_factory(
        rate_hz=config.rate_hz,
        capacity=36000,
        csv_path=None,
        pid=proc.pid,
        **sampler_options(config),
    )
    sampler.start()
    sampler.mark("load")
    on_phase("load", "loading the model in a fresh process")
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True)
    reader.start()
    try:
        run.error = _follow(proc, lines, sampler, run.phases, config, variant, on_phase, progress)
        if run.error is None:
            proc.wait(timeout=60)
    finally:
        sampler.close()  # stops if the worker never reported "end"; releases jtop/NVML handles
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=5)  # EOF once the child is gone
        if proc.stdout is not None:
            proc.stdout.close()
    run.samples = list(sampler.snapshot())
    tdp = getattr(getattr(sampler, "source", None), "tdp_w", None)
    if getattr(sampler, "estimated", False) and isinstance(tdp, (int, float)):
        run.tdp_w = float(tdp)
    _read_result(run, out_path, proc.returncode, variant.key)
    return run


def _follow(
    proc: subprocess.Popen[str],
    lines: queue.Queue[str | None],
    sampler: Any,
    phases: dict[str, float],
    config: BenchConfig,
    variant: Variant,
    on_phase: PhaseCallback,
    progress: Progress,
) -> str | None:
    """Read the worker's protocol lines until it closes stdout; stamp each phase on the
    sampler. Returns an error when the variant ran past its time limit."""
    deadline = time.monotonic() + config.variant_timeout_s
    while True:
        if progress.cancelled:
            proc.kill()
            raise Cancelled(f"benchmark cancelled during {variant.label}")
        if time.monotonic() > deadline:
            proc.kill()
            return f"took longer than {config.variant_timeout_s:.0f} s; stopped"
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            continue
        if line is None:
            return None
        if not line.startswith(PREFIX):
            continue  # a runtime printing to stdout cannot break the protocol
        event = json.loads(line[len(PREFIX) :])
        if event["event"] == "phase":
            phases[event["phase"]] = float(event["t"])
            sampler.mark(event["phase"])
            if event["phase"] == "end":
                sampler.stop()
            on_phase(event["phase"], "")
        elif event["event"] == "progress":
            on_phase("measured", event.get("message", ""))


def _read_result(run: ChildRun, out_path: Path, returncode: int | None, key: str) -> None:
    if out_path.exists():
        result = json.loads(out_path.read_text(encoding="utf-8"))
        if "error" in result:
            run.error = result["error"]
        elif run.error is None:
            run.result = result
    if run.result is None and run.error is None:
        run.error = f"the worker process ended with exit code {returncode} (see {key}.log)"
