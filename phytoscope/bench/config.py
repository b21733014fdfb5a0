"""What a benchmark run is: the model forms (variants), the study's phases and the settings.

The bottom of the benchmark package: plain values, no I/O, imported by every other module.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from phytoscope.errors import ConfigError

SCHEMA = 1
"""Version of ``results.json``'s layout (the typed results read and write it unchanged)."""

PHASES = ("load", "first_batch", "warmup", "measured", "measured_e2e", "end")
"""Timeline marks; phase 4 of the study (inference) is ``measured`` + ``measured_e2e``."""
PHASE_TITLES = {
    "load": "1 load",
    "first_batch": "2 engine / first batch",
    "warmup": "3 warm-up",
    "measured": "4 measured (engine)",
    "measured_e2e": "4 measured (end-to-end)",
}

OK, UNAVAILABLE, FAILED = "ok", "unavailable", "failed"
"""A variant's status in the results."""


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

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchConfig:
        """The settings block of a ``results.json`` (keys this version does not know are
        ignored, missing ones take today's defaults)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for key in ("out_dir", "model", "images", "data_root"):
            if values.get(key) is not None:
                values[key] = Path(values[key])
        for key in ("variants", "batch_sizes", "notes"):
            if key in values:
                values[key] = tuple(values[key])
        values.setdefault("out_dir", Path("."))
        return cls(**values)
