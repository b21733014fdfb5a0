"""Benchmark mode: the performance-watt study of Meireles et al. (SAC '23), on any machine.

:func:`run_benchmark` is a plain function taking a progress callback and a cancel object,
so the CLI calls it directly and the GUI's benchmark page runs the same function in a
worker thread. Each variant (TensorFlow base, ONNX Runtime FP32/INT8, TensorRT
FP32/FP16/INT8) runs in a fresh process (:mod:`phytoscope.bench.worker`) while this
process samples that child's telemetry and stamps the study's four phases on the timeline:

1. ``load``: process start, runtime import, model read, session/engine creation;
2. ``first_batch``: engine extraction, the first real image decoded, pre-processed, inferred;
3. ``warmup``: batch-1 calls until latency is stable (with a time cap);
4. ``measured`` (engine-only rounds, every batch size, repeated) then ``measured_e2e``
   (decode + pre-processing + inference + softmax over the labelled images).

A variant whose runtime or model is missing is recorded as "not available here" with the
reason, never as a failure of the run. The statistics (percentiles, IQR, FPS/W, energy per
image) are small pure functions tested against hand-computed cases; the report is written
by :mod:`phytoscope.bench.report`.
"""

from __future__ import annotations

import csv
import functools
import json
import logging
import os
import platform
import queue
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from phytoscope.errors import Cancelled, ConfigError, PhytoscopeError
from phytoscope.imaging.decode import IMAGE_SUFFIXES

log = logging.getLogger(__name__)

SCHEMA = 1
PHASES = ("load", "first_batch", "warmup", "measured", "measured_e2e", "end")
"""Timeline marks; phase 4 of the study (inference) is ``measured`` + ``measured_e2e``."""
PHASE_TITLES = {
    "load": "1 load",
    "first_batch": "2 engine / first batch",
    "warmup": "3 warm-up",
    "measured": "4 measured (engine)",
    "measured_e2e": "4 measured (end-to-end)",
}


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    backend: str
    precision: str
    optimised: bool
    """a deployment form derived from the base model (the study's TensorRT role)"""


VARIANTS: dict[str, Variant] = {
    v.key: v
    for v in (
        Variant("tf_base", "TensorFlow base (Keras)", "tensorflow", "fp32", False),
        Variant("ort_fp32", "ONNX Runtime FP32", "onnxruntime", "fp32", True),
        Variant("ort_int8", "ONNX Runtime INT8", "onnxruntime", "int8", True),
        Variant("trt_fp32", "TensorRT FP32", "tensorrt", "fp32", True),
        Variant("trt_fp16", "TensorRT FP16", "tensorrt", "fp16", True),
        Variant("trt_int8", "TensorRT INT8", "tensorrt", "int8", True),
    )
}
BASE = "tf_base"


# -- statistics ---------------------------------------------------------------------------


def summarize(values: Sequence[float] | np.ndarray) -> dict[str, float | int | None]:
    """Median, quartiles, IQR, p50/p95/p99 (linear interpolation, numpy's default), mean,
    min and max of a sample; ``None`` figures for an empty one."""
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        return {
            k: None
            for k in ("median", "q1", "q3", "iqr", "p50", "p95", "p99", "mean", "min", "max")
        } | {"n": 0}
    q1, p50, q3, p95, p99 = (float(x) for x in np.percentile(data, [25, 50, 75, 95, 99]))
    return {
        "n": int(data.size),
        "median": p50,
        "q1": q1,
        "q3": q3,
        "iqr": q3 - q1,
        "p50": p50,
        "p95": p95,
        "p99": p99,
        "mean": float(data.mean()),
        "min": float(data.min()),
        "max": float(data.max()),
    }


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
) -> dict[str, Any]:
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
        return {"cpu_percent_of_a_core_median": None, "cpu_percent_of_a_core_p95": None, "n": 0}
    p50, p95 = (float(x) for x in np.percentile(values, [50, 95]))
    return {"cpu_percent_of_a_core_median": p50, "cpu_percent_of_a_core_p95": p95, "n": len(values)}


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


# -- configuration and progress -----------------------------------------------------------


@dataclass(frozen=True)
class BenchConfig:
    """Everything that decides a run's figures; recorded in the report so it can be repeated."""

    out_dir: Path
    model: Path | None = None
    """card, model file or folder; None: the installed model folder"""
    images: Path | None = None
    """folder with one sub-folder per class; None: the model's recorded test split"""
    data_root: Path | None = None
    """where the recorded split's image paths resolve (default: the dataset the card names)"""
    variants: tuple[str, ...] = tuple(VARIANTS)
    batch_sizes: tuple[int, ...] = (1, 8, 32)
    rounds: int = 5
    round_s: float = 3.0
    """seconds per batch size per round (engine-only)"""
    min_calls: int = 3
    warmup_cap_s: float = 30.0
    warmup_window: int = 10
    warmup_tolerance: float = 0.05
    idle_s: float = 20.0
    limit: int | None = None
    """at most this many labelled images (a stratified, seeded subset)"""
    rate_hz: float = 4.0
    threads: int = 0
    """intra-op threads for ONNX Runtime (0: its default, one per physical core)"""
    plots: bool = True
    cpu_tdp_w: float | None = None
    """rated CPU power for the telemetry estimate where no sensor exists"""
    variant_timeout_s: float = 1800.0
    quick: bool = False
    command_line: str = ""
    notes: tuple[str, ...] = ()

    @classmethod
    def quick_settings(cls, out_dir: Path, **overrides: Any) -> BenchConfig:
        """A fast look (minutes on a 2-core laptop): fewer, shorter rounds, 100 images."""
        base: dict[str, Any] = dict(
            batch_sizes=(1, 16),
            rounds=3,
            round_s=1.0,
            warmup_cap_s=5.0,
            warmup_window=5,
            idle_s=5.0,
            limit=100,
            quick=True,
        )
        base.update(overrides)
        return cls(out_dir=Path(out_dir), **base)

    def validate(self) -> BenchConfig:
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown:
            raise ConfigError(
                f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}"
            )
        if not self.variants:
            raise ConfigError("no variant to benchmark")
        if not self.batch_sizes or any(b < 1 for b in self.batch_sizes):
            raise ConfigError(f"batch sizes must be >= 1, not {self.batch_sizes}")
        if self.rounds < 1 or self.round_s <= 0:
            raise ConfigError("need at least one round of positive length")
        if self.limit is not None and self.limit < 1:
            raise ConfigError("--limit must be at least 1")
        return self

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("out_dir", "model", "images", "data_root"):
            out[key] = None if out[key] is None else str(out[key])
        return out


@dataclass(frozen=True)
class BenchProgress:
    """What a run is doing now (the GUI shows it; the CLI prints it)."""

    variant: str | None
    phase: str
    index: int
    total: int
    message: str = ""


ProgressCallback = Callable[[BenchProgress], None]


@dataclass(frozen=True)
class BenchReport:
    """The outcome of a run: the results dict written to ``results.json`` and the files."""

    results: dict[str, Any]
    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)

    def variant(self, key: str) -> dict[str, Any]:
        for entry in self.results["variants"]:
            if entry["key"] == key:
                return dict(entry)
        raise KeyError(key)

    @property
    def failed(self) -> list[str]:
        return [v["key"] for v in self.results["variants"] if v["status"] == "failed"]


def _is_cancelled(cancel: Any) -> bool:
    if cancel is None:
        return False
    if hasattr(cancel, "is_set"):
        return bool(cancel.is_set())
    return bool(cancel())


# -- the labelled set ---------------------------------------------------------------------


@dataclass(frozen=True)
class LabelledSet:
    items: tuple[tuple[str, str], ...]
    """(image path, class name)"""
    source: str
    note: str = ""

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(c for _, c in self.items).items()))


def _norm(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def labelled_from_folder(folder: Path, class_names: Sequence[str]) -> LabelledSet:
    """Images in ``folder/<class>/``; a sub-folder matches a class ignoring case and
    punctuation (``detritus_other`` is ``detritus/other``, which a folder cannot spell)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"--images {folder} is not a folder")
    by_norm = {_norm(c): c for c in class_names}
    items: list[tuple[str, str]] = []
    ignored: list[str] = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        cls = by_norm.get(_norm(sub.name))
        if cls is None:
            ignored.append(sub.name)
            continue
        items.extend(
            (str(p), cls)
            for p in sorted(sub.rglob("*"))
            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        )
    if not items:
        raise ConfigError(
            f"--images {folder} holds no images in sub-folders named after the model's classes "
            f"({', '.join(class_names)})"
        )
    note = f"sub-folders matching no class were ignored: {', '.join(ignored)}" if ignored else ""
    return LabelledSet(tuple(items), f"folder {folder}", note)


def labelled_from_card(card: Any, data_root: Path | None = None) -> LabelledSet:
    """The test split recorded by training in the model card (``training["split_file"]``,
    beside the card); its image paths resolve under ``data_root`` if given, else under the
    dataset the card names (``training["dataset"]``: a folder, or a manifest in one)."""
    from phytoscope.config import SOURCE_ROOT

    training = card.training or {}
    split_name = training.get("split_file")
    hint = (
        "pass --data-root DIR where the split's image paths resolve, or --images FOLDER with "
        "one sub-folder of labelled images per class"
    )
    if not split_name:
        raise ConfigError(f"the model card {card.path} records no test split; {hint}")
    base = card.path.parent if card.path else Path.cwd()
    split_file = Path(split_name) if Path(split_name).is_absolute() else base / split_name
    if not split_file.exists():
        raise ConfigError(f"the model's split file {split_file} is not on this machine; {hint}")
    with open(split_file, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("split") == "test"]
    # "frame.jpg#roi=x,y,w,h": a segment cut from a whole frame, not a file of its own; the
    # benchmark times files as the analyser reads them, so it keeps the image files
    segments = [r for r in rows if "#" in r["path"]]
    rows = [r for r in rows if "#" not in r["path"]]
    if not rows:
        raise ConfigError(f"the split file {split_file} lists no test images; {hint}")
    roots: list[Path] = [Path(data_root)] if data_root is not None else []
    for key in ("dataset_root", "data_root", "dataset"):
        value = training.get(key)
        if not isinstance(value, str) or not value:
            continue
        # relative paths were written from wherever training ran: try the likely places
        for anchor in (Path(),) if Path(value).is_absolute() else (base, SOURCE_ROOT, Path.cwd()):
            p = anchor / value
            roots.append(p if p.is_dir() or not p.suffix else p.parent)
    roots.append(split_file.parent)
    first = Path(rows[0]["path"])
    root = next((r for r in roots if (first if first.is_absolute() else r / first).exists()), None)
    if root is None:
        raise ConfigError(
            f"the model's test images (e.g. {first}, listed in {split_file}) are not on this "
            f"machine (looked under {', '.join(map(str, roots))}); {hint}"
        )
    items = tuple(
        (str(Path(r["path"]) if Path(r["path"]).is_absolute() else root / r["path"]), r["class"])
        for r in rows
    )
    missing = [p for p, _ in items if not Path(p).exists()]
    items = tuple(i for i in items if Path(i[0]).exists())
    notes = (
        [f"{len(missing)} test image(s) listed in the split file are missing"] if missing else []
    )
    if segments:
        notes.append(f"{len(segments)} test segment(s) of whole frames (path#roi=...) are left out")
    note = "; ".join(notes)
    return LabelledSet(
        items, f"test split of the model ({split_file}, images under {root.resolve()})", note
    )


def stratified_subset(
    items: Sequence[tuple[str, str]], limit: int, seed: int = 0
) -> tuple[tuple[str, str], ...]:
    """At most ``limit`` items taking classes in turn (seeded), so every class is present."""
    if len(items) <= limit:
        return tuple(items)
    rng = random.Random(seed)
    by_class: dict[str, list[tuple[str, str]]] = {}
    for item in items:
        by_class.setdefault(item[1], []).append(item)
    for members in by_class.values():
        rng.shuffle(members)
    out: list[tuple[str, str]] = []
    while len(out) < limit:
        for cls in sorted(by_class):
            if by_class[cls] and len(out) < limit:
                out.append(by_class[cls].pop())
    return tuple(sorted(out, key=lambda i: (i[1], i[0])))


# -- machine and versions -----------------------------------------------------------------


def machine_facts() -> dict[str, Any]:
    import psutil

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "physical_cpus": psutil.cpu_count(logical=False),
        "ram_total_bytes": int(psutil.virtual_memory().total),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def machine_name(facts: dict[str, Any] | None = None) -> str:
    """A folder name saying what the machine is, e.g. ``x86_64-amd-epyc-2cpu``."""
    facts = facts or machine_facts()
    cpu = facts.get("cpu") or "cpu"
    words = [
        w
        for w in "".join(c if c.isalnum() else " " for c in cpu.lower()).split()
        if w not in ("processor", "cpu", "r", "tm", "core", "with", "radeon", "graphics")
    ][:3]
    return "-".join([facts.get("machine") or "unknown", *words, f"{facts.get('logical_cpus')}cpu"])


def versions() -> dict[str, str | None]:
    import importlib.metadata

    from phytoscope import __version__

    out: dict[str, str | None] = {"phytoscope": __version__, "python": sys.version.split()[0]}
    for dist in (
        "numpy",
        "opencv-python-headless",
        "onnxruntime",
        "tensorflow",
        "tensorflow-cpu",
        "keras",
        "tensorrt",
        "psutil",
        "matplotlib",
    ):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out


# -- running ------------------------------------------------------------------------------


def _default_sampler_factory(**kwargs: Any) -> Any:
    from phytoscope.telemetry import Sampler

    return Sampler(**kwargs)


def _sampler_options(config: BenchConfig) -> dict[str, Any]:
    return {"cpu_tdp_w": config.cpu_tdp_w} if config.cpu_tdp_w else {}


def _telemetry_functions() -> tuple[Callable[..., float | None], Callable[..., float | None]]:
    from phytoscope.telemetry import energy_j, mean_power_w

    return energy_j, mean_power_w


def _plan(config: BenchConfig) -> list[dict[str, Any]]:
    """Each variant with its model card, or the reason it cannot run here."""
    from phytoscope import backends
    from phytoscope.config import models_dir

    reasons = backends.availability()
    folder = models_dir()
    plan = []
    for key in config.variants:
        variant = VARIANTS[key]
        entry: dict[str, Any] = {
            "key": key,
            "label": variant.label,
            "backend": variant.backend,
            "precision": variant.precision,
            "optimised": variant.optimised,
        }
        reason = reasons.get(variant.backend)
        if reason:
            entry.update(status="unavailable", reason=reason)
            plan.append(entry)
            continue
        try:
            card = backends.backend_class(variant.backend).select_card(
                config.model, variant.precision, folder
            )
        except PhytoscopeError as exc:
            entry.update(status="unavailable", reason=f"no model for it: {exc}")
            plan.append(entry)
            continue
        entry.update(status="planned", card=card)
        plan.append(entry)
    return plan


def _spawn(spec_path: Path, out_path: Path, log_path: Path) -> subprocess.Popen[str]:
    from phytoscope.config import SOURCE_ROOT

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


def _run_child(
    entry: dict[str, Any],
    labelled: LabelledSet,
    config: BenchConfig,
    work: Path,
    sampler_factory: Callable[..., Any],
    report: Callable[[str, str], None],
    cancel: Any,
) -> tuple[dict[str, Any] | None, dict[str, float], list[Any], str | None, float | None]:
    """Run one variant's worker: (worker result, phase start times, samples, error, rated
    power of the telemetry's estimating source or None where power is measured)."""
    from phytoscope.bench.worker import PREFIX

    key = entry["key"]
    spec = {
        "backend": entry["backend"],
        "precision": entry["precision"],
        "model": str(entry["card"].path),
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
    spec_path, out_path = work / f"{key}.spec.json", work / f"{key}.result.json"
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    out_path.unlink(missing_ok=True)
    phases: dict[str, float] = {"load": time.monotonic()}
    proc = _spawn(spec_path, out_path, work / f"{key}.log")
    sampler = sampler_factory(
        rate_hz=config.rate_hz,
        capacity=36000,
        csv_path=None,
        pid=proc.pid,
        **_sampler_options(config),
    )
    sampler.start()
    sampler.mark("load")
    report("load", "loading the model in a fresh process")
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True)
    reader.start()
    error: str | None = None
    deadline = time.monotonic() + config.variant_timeout_s
    try:
        while True:
            if _is_cancelled(cancel):
                proc.kill()
                raise Cancelled(f"benchmark cancelled during {entry['label']}")
            if time.monotonic() > deadline:
                proc.kill()
                error = f"took longer than {config.variant_timeout_s:.0f} s; stopped"
                break
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                break
            if not line.startswith(PREFIX):
                continue
            event = json.loads(line[len(PREFIX) :])
            if event["event"] == "phase":
                phases[event["phase"]] = float(event["t"])
                sampler.mark(event["phase"])
                if event["phase"] == "end":
                    sampler.stop()
                    report("end", "measured; the process exits")
                else:
                    report(event["phase"], PHASE_TITLES.get(event["phase"], event["phase"]))
            elif event["event"] == "progress":
                report("measured", event.get("message", ""))
        proc.wait(timeout=60)
    finally:
        sampler.close()  # stops if the worker never reported "end"; releases jtop/NVML handles
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=5)  # EOF once the child is gone
        if proc.stdout is not None:
            proc.stdout.close()
    samples = list(sampler.snapshot())
    tdp = getattr(getattr(sampler, "source", None), "tdp_w", None)
    tdp_w = (
        float(tdp)
        if getattr(sampler, "estimated", False) and isinstance(tdp, (int, float))
        else None
    )
    result = None
    if out_path.exists():
        result = json.loads(out_path.read_text(encoding="utf-8"))
        if "error" in result:
            error, result = result["error"], None
    if result is None and error is None:
        error = f"the worker process ended with exit code {proc.returncode} (see {key}.log)"
    return result, phases, samples, error, tdp_w


def _windows(phases: dict[str, float]) -> dict[str, tuple[float, float]]:
    present = [p for p in PHASES if p in phases]
    out = {}
    for a, b in zip(present, present[1:], strict=False):
        out[a] = (phases[a], phases[b])
    if "load" in phases and "end" in phases:
        out["whole_run"] = (phases["load"], phases["end"])
    if "measured" in phases and "end" in phases:
        out["inference"] = (phases["measured"], phases["end"])
    return out


def _metrics(
    entry: dict[str, Any],
    result: dict[str, Any],
    phases: dict[str, float],
    samples: list[Any],
    labelled: LabelledSet,
    idle_w: float | None,
    base: dict[str, Any] | None,
    tdp: float | None = None,
) -> dict[str, Any]:
    """Every per-variant figure, from the worker's timings and the sampled telemetry."""
    energy_j, mean_power_w = _telemetry_functions()
    windows = _windows(phases)
    out: dict[str, Any] = {"phases_s": {k: b - a for k, (a, b) in windows.items()}}
    out["runtime"] = result.get("runtime", {})
    out["warmup"] = result.get("warmup", {})
    out["first_batch_ms"] = result.get("first_batch_ms")

    engine: dict[str, dict[str, Any]] = {}
    for bs, rec in result["engine"].items():
        fps = summarize(rec["round_fps"])
        engine[bs] = {
            "batch_size": int(bs),
            "throughput_fps": fps,
            "latency_ms": summarize(np.asarray(rec["latencies_s"]) * 1e3),
            "per_image_ms": (1e3 / fps["median"]) if fps["median"] else None,
        }
    best = str(result["best_batch"])
    out["engine"] = engine
    out["best_batch"] = int(best)
    fps_best = engine[best]["throughput_fps"]["median"]
    fps_b1 = engine["1"]["throughput_fps"]["median"] if "1" in engine else None
    out["fps"] = fps_best
    out["fps_batch1"] = fps_b1

    e2e = {}
    for name, rec in result["e2e"].items():
        e2e[name] = {
            "batch_size": rec["batch_size"],
            "images": rec["images"],
            "seconds": rec["seconds"],
            "fps": rec["fps"],
            "latency_ms_per_call": summarize(np.asarray(rec["latencies_s"]) * 1e3),
            "time_share": rec["share"],
        }
    out["e2e"] = e2e
    out["e2e_fps"] = e2e["best"]["fps"]

    # accuracy and agreement
    names = result["class_names"]
    probs = np.asarray(result["probabilities"], dtype=np.float64)
    truth = [c for _, c in labelled.items]
    predicted = [names[i] for i in probs.argmax(axis=1)]
    correct = sum(p == t for p, t in zip(predicted, truth, strict=True))
    out["accuracy"] = {
        "top1": correct / len(truth),
        "correct": correct,
        "n": len(truth),
        "per_class": {c: _class_acc(truth, predicted, c) for c in sorted(set(truth))},
    }
    out["_probabilities"] = probs
    out["_predicted"] = predicted
    if base is not None and base is not out:
        out["agreement"] = agreement(base["_probabilities"], probs, names, labelled)

    out["other_load"] = other_load(samples, windows.get("whole_run"), os.cpu_count() or 1)

    # memory
    rss_sampled = max((s.rss_bytes for s in samples), default=0)
    peak = max(int(result.get("peak_rss_bytes") or 0), int(rss_sampled))
    ram_total = next((s.ram_total_bytes for s in samples if s.ram_total_bytes), None)
    if ram_total is None:
        import psutil

        ram_total = int(psutil.virtual_memory().total)
    out["memory"] = {
        "peak_rss_bytes": peak,
        "peak_rss_pct_ram": 100.0 * peak / ram_total,
        "peak_system_ram_pct": max(
            (100.0 * s.ram_used_bytes / s.ram_total_bytes for s in samples if s.ram_total_bytes),
            default=None,
        ),
        "ram_total_bytes": ram_total,
    }

    # power and energy
    powered = [s for s in samples if s.power_w is not None]
    power: dict[str, Any] = {
        "source": powered[0].power_source if powered else None,
        "estimated": any(s.estimated for s in powered) if powered else None,
        "samples": len(samples),
    }
    if powered and "whole_run" in windows:
        w0, w1 = windows["whole_run"]
        i0, i1 = windows.get("inference", (w0, w1))
        power["mean_w_whole_run"] = mean_power_w(samples, w0, w1)
        power["mean_w_inference"] = mean_power_w(samples, i0, i1)
        power["fps_per_w_whole_run"] = fps_per_watt(fps_best, power["mean_w_whole_run"])
        power["fps_per_w_inference"] = fps_per_watt(fps_best, power["mean_w_inference"])
        power["energy_whole_run_j"] = energy_j(samples, w0, w1)
        for name, window, images in (
            ("engine", windows.get("measured"), result["engine_images"]),
            ("e2e", windows.get("measured_e2e"), result["e2e_images"]),
        ):
            if window is None:
                continue
            joules = energy_j(samples, *window)
            gross, net = energy_per_image(joules, images, idle_w, window[1] - window[0])
            power[f"energy_per_image_{name}_j"] = gross
            power[f"energy_per_image_{name}_net_j"] = net
    share = process_share_samples(samples, tdp, os.cpu_count() or 1) if tdp else []
    if len(share) >= 2 and "whole_run" in windows:
        w0, w1 = windows["whole_run"]
        i0, i1 = windows.get("inference", (w0, w1))
        proc: dict[str, Any] = {
            "method": f"process CPU share x {tdp:g} W (estimated)",
            "rated_w": tdp,
            "mean_w_whole_run": mean_power_w(share, w0, w1),
            "mean_w_inference": mean_power_w(share, i0, i1),
        }
        proc["fps_per_w_whole_run"] = fps_per_watt(fps_best, proc["mean_w_whole_run"])
        proc["fps_per_w_inference"] = fps_per_watt(fps_best, proc["mean_w_inference"])
        for name, window, images in (
            ("engine", windows.get("measured"), result["engine_images"]),
            ("e2e", windows.get("measured_e2e"), result["e2e_images"]),
        ):
            if window is not None:
                proc[f"energy_per_image_{name}_j"] = energy_per_image(
                    energy_j(share, *window), images
                )[0]
        power["process_share"] = proc
    out["power"] = power
    return out


def _class_acc(truth: Sequence[str], predicted: Sequence[str], cls: str) -> dict[str, Any]:
    idx = [i for i, t in enumerate(truth) if t == cls]
    hits = sum(predicted[i] == cls for i in idx)
    return {"n": len(idx), "top1": hits / len(idx) if idx else None}


def agreement(
    base: np.ndarray,
    other: np.ndarray,
    names: Sequence[str],
    labelled: LabelledSet,
    max_listed: int = 50,
) -> dict[str, Any]:
    """Top-1 agreement and the largest probability difference against the base model,
    with the images whose top-1 class flips."""
    base, other = np.asarray(base, np.float64), np.asarray(other, np.float64)
    if base.shape != other.shape:
        return {
            "comparable": False,
            "reason": f"output shapes differ ({base.shape} vs {other.shape})",
        }
    b, o = base.argmax(axis=1), other.argmax(axis=1)
    flips = [
        {
            "image": labelled.items[i][0],
            "label": labelled.items[i][1],
            "base": names[b[i]],
            "base_p": float(base[i, b[i]]),
            "this": names[o[i]],
            "this_p": float(other[i, o[i]]),
        }
        for i in np.flatnonzero(b != o)
    ]
    return {
        "comparable": True,
        "top1_agreement": float(np.mean(b == o)),
        "max_prob_diff": float(np.abs(base - other).max()),
        "mean_prob_diff": float(np.abs(base - other).mean()),
        "flips": len(flips),
        "flipped_images": flips[:max_listed],
    }


def _idle_baseline(
    config: BenchConfig, sampler_factory: Callable[..., Any], cancel: Any
) -> tuple[dict[str, Any], list[Any]]:
    _, mean_power_w = _telemetry_functions()
    sampler = sampler_factory(
        rate_hz=config.rate_hz, capacity=36000, csv_path=None, pid=None, **_sampler_options(config)
    )
    sampler.start()
    sampler.mark("idle")
    others = _busy_processes()
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < config.idle_s:
            if _is_cancelled(cancel):
                raise Cancelled("benchmark cancelled during the idle baseline")
            time.sleep(min(0.2, config.idle_s))
    finally:
        t1 = time.monotonic()
        sampler.close()  # the ring buffer stays readable; the power source is released
    samples = list(sampler.snapshot())
    cpu = [
        s.cpu_percent
        for s in samples
        if s.cpu_percent is not None and s.cpu_percent == s.cpu_percent
    ]
    return {
        "seconds": t1 - t0,
        "mean_power_w": mean_power_w(samples, t0, t1)
        if any(s.power_w is not None for s in samples)
        else None,
        "power_label": getattr(sampler, "power_label", None),
        "estimated": getattr(sampler, "estimated", None),
        "machine_cpu_percent_median": float(np.median(cpu)) if cpu else None,
        "samples": len(samples),
        "busy_processes": others(),
        "t0": t0,
    }, samples


def _short_command(proc: Any) -> str:
    """``python -m pytest``: the program's name and its first two arguments."""
    try:
        args = proc.cmdline()
    except Exception:  # noqa: BLE001 - psutil errors, permissions
        args = []
    if not args:
        return str(proc.info.get("name") or "?")
    return " ".join([Path(args[0]).name, *(a if len(a) < 40 else "…" + a[-30:] for a in args[1:3])])


def _busy_processes(threshold: float = 10.0) -> Callable[[], list[dict[str, Any]]]:
    """Prime per-process CPU counters now; the returned function lists the processes that
    used more than ``threshold`` % of a core since (name, pid, CPU %): who else was busy
    during the idle baseline. Processes started in between count from their start."""
    import psutil

    me = os.getpid()
    t_start = time.time()
    primed: dict[int, Any] = {}
    for proc in psutil.process_iter(["name"]):
        try:
            proc.cpu_percent(None)
            primed[proc.pid] = proc
        except (psutil.Error, OSError):
            continue

    def collect() -> list[dict[str, Any]]:
        now = time.time()
        out = []
        for proc in psutil.process_iter(["name"]):
            try:
                if proc.pid in primed:
                    cpu = primed[proc.pid].cpu_percent(None)
                else:  # born during the baseline: its whole CPU time over its life so far
                    times = proc.cpu_times()
                    life = max(now - max(proc.create_time(), t_start), 1e-3)
                    cpu = 100.0 * (times.user + times.system) / life
            except (psutil.Error, OSError):
                continue
            if cpu > threshold and proc.pid != me:
                out.append(
                    {"name": _short_command(proc), "pid": proc.pid, "cpu_percent": round(cpu, 1)}
                )
        return sorted(out, key=lambda d: -d["cpu_percent"])[:5]

    return collect


def run_benchmark(
    config: BenchConfig,
    progress: ProgressCallback | None = None,
    cancel: Any = None,
    sampler_factory: Callable[..., Any] | None = None,
) -> BenchReport:
    """Run every variant of ``config`` through the study's phases and write the report.

    Parameters
    ----------
    config
        What to run and where to write (see :class:`BenchConfig`).
    progress
        Called with a :class:`BenchProgress` at every phase change (from this thread).
    cancel
        A ``threading.Event`` (or a callable returning True) that stops the run: the
        running variant's process is killed and :class:`~phytoscope.errors.Cancelled` raised.
    sampler_factory
        Builds the telemetry sampler (default :class:`phytoscope.telemetry.Sampler`).
    """
    from phytoscope.bench import report as bench_report

    config = config.validate()
    sampler_factory = sampler_factory or _default_sampler_factory
    out_dir = Path(config.out_dir)
    work = out_dir / "work"
    work.mkdir(parents=True, exist_ok=True)
    started_wall, started = time.time(), time.monotonic()
    facts = machine_facts()
    total = len(config.variants)

    def report(variant: str | None, phase: str, index: int, message: str = "") -> None:
        if progress is not None:
            progress(BenchProgress(variant, phase, index, total, message))

    plan = _plan(config)
    cards = [e["card"] for e in plan if e["status"] == "planned"]
    if not cards:
        report(None, "done", total, "nothing can run here")
    labelled = _labelled_set(config, cards)
    if config.limit is not None and len(labelled.items) > config.limit:
        labelled = replace(
            labelled,
            items=stratified_subset(labelled.items, config.limit),
            note=(labelled.note + "; " if labelled.note else "")
            + f"a stratified subset of {config.limit} images (--limit)",
        )

    report(None, "idle", 0, f"measuring the idle baseline ({config.idle_s:.0f} s)")
    idle, idle_samples = _idle_baseline(config, sampler_factory, cancel)
    idle_w = idle["mean_power_w"]

    variants: list[dict[str, Any]] = []
    timelines: dict[str, tuple[Sequence[Any], dict[str, float]]] = {
        "idle": (idle_samples, {"idle": idle["t0"]})
    }
    base_metrics: dict[str, Any] | None = None
    # The base model runs first so every other variant can be compared with it.
    order = sorted(plan, key=lambda e: e["key"] != BASE)
    for index, entry in enumerate(order):
        key = entry["key"]
        card = entry.pop("card", None)
        if entry["status"] == "unavailable":
            log.info("%s not available here: %s", key, entry["reason"])
            report(key, "unavailable", index, entry["reason"])
            variants.append(entry)
            continue
        entry["model"] = {
            "card": str(card.path),
            "label": card.label,
            "file": card.file,
            "sha256": card.sha256,
            "size_bytes": card.model_path.stat().st_size,
        }
        result, phases, samples, error, tdp = _run_child(
            {**entry, "card": card},
            labelled,
            config,
            work,
            sampler_factory,
            functools.partial(_report_variant, report, key, index),
            cancel,
        )
        timelines[key] = (samples, phases)
        if error is not None:
            entry.update(status="failed", reason=error)
            report(key, "failed", index, error)
            variants.append(entry)
            continue
        assert result is not None
        metrics = _metrics(entry, result, phases, samples, labelled, idle_w, base_metrics, tdp)
        entry.update(status="ok", **metrics)
        if key == BASE:
            base_metrics = entry
        variants.append(entry)
    report(None, "report", total, "writing the report")

    results: dict[str, Any] = {
        "schema": SCHEMA,
        "tool": "phytoscope bench",
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started_wall)),
        "duration_s": time.monotonic() - started,
        "command_line": config.command_line,
        "settings": config.to_dict(),
        "machine": facts
        | {"load_average_end": list(os.getloadavg()) if hasattr(os, "getloadavg") else None},
        "machine_name": machine_name(facts),
        "versions": versions(),
        "labelled_set": {
            "source": labelled.source,
            "images": len(labelled.items),
            "classes": labelled.counts(),
            "note": labelled.note,
        },
        "idle": {k: v for k, v in idle.items() if k != "t0"},
        "power": _power_summary(idle, variants),
        "variants": [{k: v for k, v in e.items() if not k.startswith("_")} for e in variants],
        "study": study_table(),
        "notes": list(config.notes),
    }
    results["findings"] = bench_report.findings(results)
    files = bench_report.write_all(results, timelines, out_dir, plots=config.plots)
    report(None, "done", total, f"report written to {out_dir}")
    return BenchReport(results=results, out_dir=out_dir, files=files)


def _report_variant(
    report: Callable[[str | None, str, int, str], None],
    key: str,
    index: int,
    phase: str,
    message: str,
) -> None:
    report(key, phase, index, message)


def _labelled_set(config: BenchConfig, cards: Sequence[Any]) -> LabelledSet:
    if not cards:
        return LabelledSet((), "none (no variant can run here)")
    if config.images is not None:
        return labelled_from_folder(config.images, cards[0].class_names)
    errors = []
    for card in cards:
        try:
            return labelled_from_card(card, config.data_root)
        except ConfigError as exc:
            errors.append(str(exc))
    raise ConfigError(errors[0])


def _power_summary(idle: dict[str, Any], variants: Sequence[dict[str, Any]]) -> dict[str, Any]:
    estimated = [
        v["power"]["estimated"]
        for v in variants
        if v.get("status") == "ok" and v["power"].get("estimated") is not None
    ]
    sources = sorted(
        {
            v["power"]["source"]
            for v in variants
            if v.get("status") == "ok" and v["power"].get("source")
        }
    )
    is_estimated = any(estimated) or bool(idle.get("estimated"))
    measured_any = bool(sources) or idle.get("mean_power_w") is not None
    return {
        "label": idle.get("power_label"),
        "sources": sources,
        "estimated": is_estimated if measured_any else None,
        "kind": ("estimated" if is_estimated else "measured") if measured_any else "none",
    }


def study_table() -> dict[str, Any]:
    """Table 2 of Meireles et al. (SAC '23), from ``resources/paper/table2.json``."""
    from phytoscope.config import resources_dir

    path = resources_dir() / "paper" / "table2.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("study table unavailable: %s", exc)
        return {"source": f"not available ({path}: {exc})", "variants": {}}


__all__ = [
    "BASE",
    "PHASES",
    "VARIANTS",
    "BenchConfig",
    "BenchProgress",
    "BenchReport",
    "LabelledSet",
    "Variant",
    "agreement",
    "energy_per_image",
    "fps_per_watt",
    "is_stable",
    "labelled_from_card",
    "labelled_from_folder",
    "machine_facts",
    "machine_name",
    "ratio",
    "run_benchmark",
    "stratified_subset",
    "study_table",
    "summarize",
]
