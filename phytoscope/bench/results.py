"""The benchmark's results as frozen dataclasses: one :class:`BenchResult` per run.

Field names are the keys of ``results.json`` (schema 1), so files written before the
results were typed load as they are and files written now read the same to older tools.
Every figure that depends on an estimated power says so through ``Power.estimated`` and
``PowerSummary.kind``; the tables, report, CLI and window read them from here only.
"""

from __future__ import annotations

import functools
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phytoscope.bench.config import FAILED, OK, SCHEMA, UNAVAILABLE, BenchConfig
from phytoscope.bench.jsonable import SchemaError, from_jsonable, to_jsonable
from phytoscope.errors import ConfigError

NOT_IDLE_CPU_PERCENT = 20.0
"""Median CPU % above which a baseline or a variant's neighbours count as "not idle"."""


@dataclass(frozen=True)
class Spread:
    """Median, quartiles, percentiles and range of repeated measurements (``n`` = 0: none)."""

    n: int = 0
    median: float | None = None
    q1: float | None = None
    q3: float | None = None
    iqr: float | None = None
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    mean: float | None = None
    min: float | None = None
    max: float | None = None

    @property
    def relative_iqr(self) -> float | None:
        """IQR / median: how much the rounds disagree (0.1 = 10 %)."""
        if self.iqr is None or not self.median:
            return None
        return self.iqr / self.median


@dataclass(frozen=True)
class Warmup:
    iterations: int = 0
    stable: bool = False
    seconds: float | None = None
    last_window_median_ms: float | None = None


@dataclass(frozen=True)
class BatchThroughput:
    """Engine-only figures of one batch size: throughput per round, latency per call."""

    batch_size: int
    throughput_fps: Spread
    latency_ms: Spread
    per_image_ms: float | None = None


@dataclass(frozen=True)
class TimeShare:
    decode: float
    preprocess: float
    inference: float


@dataclass(frozen=True)
class EndToEnd:
    """One pass over the labelled images: decode + pre-processing + inference + softmax."""

    batch_size: int
    images: int
    seconds: float
    fps: float
    latency_ms_per_call: Spread
    time_share: TimeShare


@dataclass(frozen=True)
class ClassAccuracy:
    n: int
    top1: float | None


@dataclass(frozen=True)
class Accuracy:
    top1: float
    correct: int
    n: int
    per_class: dict[str, ClassAccuracy] = field(default_factory=dict)


@dataclass(frozen=True)
class Flip:
    """An image whose top-1 class differs from the base model's."""

    image: str
    label: str
    base: str
    base_p: float
    this: str
    this_p: float


@dataclass(frozen=True)
class Agreement:
    comparable: bool
    reason: str | None = None
    top1_agreement: float | None = None
    max_prob_diff: float | None = None
    mean_prob_diff: float | None = None
    flips: int = 0
    flipped_images: tuple[Flip, ...] = ()


@dataclass(frozen=True)
class OtherLoad:
    """CPU used by everything but the variant's process, in % of one core."""

    cpu_percent_of_a_core_median: float | None = None
    cpu_percent_of_a_core_p95: float | None = None
    n: int = 0

    @property
    def busy(self) -> bool:
        return (self.cpu_percent_of_a_core_median or 0.0) > NOT_IDLE_CPU_PERCENT


@dataclass(frozen=True)
class Memory:
    peak_rss_bytes: int
    peak_rss_pct_ram: float
    peak_system_ram_pct: float | None = None
    ram_total_bytes: int | None = None


@dataclass(frozen=True)
class ProcessShare:
    """Power figures of the variant's own share of an estimated power (rated power × its
    process's CPU %), which other work on the machine cannot inflate. Always estimated."""

    method: str
    rated_w: float
    mean_w_whole_run: float | None = None
    mean_w_inference: float | None = None
    fps_per_w_whole_run: float | None = None
    fps_per_w_inference: float | None = None
    energy_per_image_engine_j: float | None = None
    energy_per_image_e2e_j: float | None = None


@dataclass(frozen=True)
class Power:
    """Power and energy of one variant. FPS/W is engine-only throughput (best batch) over a
    mean power; energy per image is given for the engine-only rounds and the end-to-end
    pass separately."""

    source: str | None = None
    estimated: bool | None = None
    samples: int = 0
    mean_w_whole_run: float | None = None
    mean_w_inference: float | None = None
    fps_per_w_whole_run: float | None = None
    fps_per_w_inference: float | None = None
    energy_whole_run_j: float | None = None
    energy_per_image_engine_j: float | None = None
    energy_per_image_engine_net_j: float | None = None
    energy_per_image_e2e_j: float | None = None
    energy_per_image_e2e_net_j: float | None = None
    process_share: ProcessShare | None = None

    @property
    def for_findings(self) -> Power | ProcessShare:
        """The process's share where power is estimated from whole-machine CPU load
        (another job inflates the machine figure), else the machine's own figures."""
        return self.process_share or self


@dataclass(frozen=True)
class ModelInfo:
    card: str
    label: str
    file: str
    sha256: str
    size_bytes: int


@dataclass(frozen=True)
class PhaseTimes:
    """Seconds per phase; ``inference`` is phase 4 (engine rounds + end-to-end)."""

    load: float | None = None
    first_batch: float | None = None
    warmup: float | None = None
    measured: float | None = None
    measured_e2e: float | None = None
    whole_run: float | None = None
    inference: float | None = None


@dataclass(frozen=True)
class VariantResult:
    """One model form: ran (``status`` ok, every figure), not available here or failed
    (``reason``, no figures)."""

    key: str
    label: str
    backend: str
    precision: str
    optimised: bool
    status: str
    reason: str | None = None
    model: ModelInfo | None = None
    phases_s: PhaseTimes = field(default_factory=PhaseTimes)
    runtime: dict[str, Any] = field(default_factory=dict)
    warmup: Warmup | None = None
    first_batch_ms: float | None = None
    engine: dict[int, BatchThroughput] = field(default_factory=dict)
    best_batch: int | None = None
    fps: float | None = None
    """engine-only throughput at the best batch size (median of the rounds)"""
    fps_batch1: float | None = None
    e2e: dict[str, EndToEnd] = field(default_factory=dict)
    """``batch1`` and ``best``"""
    e2e_fps: float | None = None
    accuracy: Accuracy | None = None
    agreement: Agreement | None = None
    other_load: OtherLoad | None = None
    memory: Memory | None = None
    power: Power | None = None

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def status_text(self) -> str:
        """ran / not available here / FAILED, as every table words it."""
        if self.ok:
            return "ran"
        return "not available here" if self.status == UNAVAILABLE else "FAILED"

    @property
    def best(self) -> BatchThroughput | None:
        """The engine-only figures at the best batch size (their spread over rounds)."""
        return self.engine.get(self.best_batch) if self.best_batch is not None else None

    @property
    def batches(self) -> list[BatchThroughput]:
        return [self.engine[b] for b in sorted(self.engine)]

    @property
    def estimated(self) -> bool:
        return bool(self.power is not None and self.power.estimated)

    def to_dict(self) -> dict[str, Any]:
        """A variant that did not run keeps only who it is and why (as schema 1 wrote it)."""
        if self.ok:
            names = list(self.__dataclass_fields__)
        else:
            names = [f for f in _NOT_RUN_FIELDS if getattr(self, f) is not None]
        return {name: to_jsonable(getattr(self, name)) for name in names}


_NOT_RUN_FIELDS = ("key", "label", "backend", "precision", "optimised", "status", "reason", "model")


@dataclass(frozen=True)
class BusyProcess:
    name: str
    pid: int
    cpu_percent: float


@dataclass(frozen=True)
class IdleBaseline:
    seconds: float
    mean_power_w: float | None = None
    power_label: str | None = None
    estimated: bool | None = None
    machine_cpu_percent_median: float | None = None
    samples: int = 0
    busy_processes: tuple[BusyProcess, ...] = ()

    @property
    def not_idle(self) -> bool:
        return (self.machine_cpu_percent_median or 0.0) > NOT_IDLE_CPU_PERCENT


@dataclass(frozen=True)
class PowerSummary:
    """Where the run's power came from: ``kind`` is measured, estimated or none."""

    label: str | None = None
    sources: tuple[str, ...] = ()
    estimated: bool | None = None
    kind: str = "none"


@dataclass(frozen=True)
class Machine:
    hostname: str = ""
    platform: str = ""
    machine: str = ""
    cpu: str = ""
    logical_cpus: int | None = None
    physical_cpus: int | None = None
    ram_total_bytes: int | None = None
    load_average: tuple[float, ...] | None = None
    load_average_end: tuple[float, ...] | None = None


@dataclass(frozen=True)
class LabelledSummary:
    source: str
    images: int
    classes: dict[str, int] = field(default_factory=dict)
    note: str = ""


@dataclass(frozen=True)
class StudyFigures:
    """One column of the study's Table 2 (Jetson Nano, measured)."""

    accuracy_pct: float | None = None
    fps: float | None = None
    peak_memory_pct: float | None = None
    avg_power_total_mw: float | None = None
    avg_power_inference_mw: float | None = None
    fps_per_w_total: float | None = None
    fps_per_w_inference: float | None = None


@dataclass(frozen=True)
class Study:
    source: str
    device: str = ""
    model: str = ""
    variants: dict[str, StudyFigures] = field(default_factory=dict)


@dataclass(frozen=True)
class Finding:
    """One of the study's claims, what this run shows and whether the claim holds here."""

    claim: str
    study: str
    here: str
    verdict: str


@dataclass(frozen=True)
class PlotsInfo:
    written: bool = False
    note: str = ""
    files: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BenchResult:
    """Everything a run measured, with what is needed to repeat it."""

    started_utc: str
    duration_s: float
    settings: BenchConfig
    machine: Machine
    machine_name: str
    labelled_set: LabelledSummary
    idle: IdleBaseline
    power: PowerSummary
    variants: tuple[VariantResult, ...]
    study: Study
    schema: int = SCHEMA
    tool: str = "phytoscope bench"
    command_line: str = ""
    versions: dict[str, str | None] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    findings: tuple[Finding, ...] = ()
    plots: PlotsInfo = field(default_factory=PlotsInfo)

    @property
    def ran(self) -> list[VariantResult]:
        return [v for v in self.variants if v.ok]

    @property
    def failed(self) -> list[str]:
        return [v.key for v in self.variants if v.status == FAILED]

    @property
    def estimated(self) -> bool:
        return self.power.kind == "estimated"

    @property
    def power_word(self) -> str:
        """``" (estimated)"`` when power comes from a model, ``""`` from a sensor."""
        kind = self.power.kind
        if kind == "estimated":
            return " (estimated)"
        return "" if kind == "measured" else " (no power source)"

    def variant(self, key: str) -> VariantResult:
        for v in self.variants:
            if v.key == key:
                return v
        raise KeyError(key)

    def to_dict(self) -> dict[str, Any]:
        """The ``results.json`` object, keys in the order schema 1 wrote them."""
        return {name: to_jsonable(getattr(self, name)) for name in _JSON_ORDER}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchResult:
        hints = _hints()
        values = {
            name: from_jsonable(hints[name], data[name], name)
            for name in cls.__dataclass_fields__
            if name in data
        }
        try:
            return cls(**values)
        except TypeError as exc:  # a required section is missing
            raise SchemaError(str(exc)) from exc

    def save(self, path: Path) -> Path:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: Path) -> BenchResult:
        """A run's ``results.json`` (any schema up to this one), or a :class:`ConfigError`
        saying why it cannot be read."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path} is not a benchmark's results file: {exc}") from exc
        if not isinstance(data, dict) or "variants" not in data:
            raise ConfigError(f"{path} is not a benchmark's results file (no variants)")
        if int(data.get("schema", 1)) > SCHEMA:
            raise ConfigError(
                f"{path} was written by a newer phytoscope (results schema {data['schema']}, "
                f"this one reads up to {SCHEMA}); upgrade phytoscope to re-render it"
            )
        try:
            return cls.from_dict(data)
        except (SchemaError, TypeError) as exc:
            raise ConfigError(f"{path} cannot be read as benchmark results: {exc}") from exc


_JSON_ORDER = (
    "schema",
    "tool",
    "started_utc",
    "duration_s",
    "command_line",
    "settings",
    "machine",
    "machine_name",
    "versions",
    "labelled_set",
    "idle",
    "power",
    "variants",
    "study",
    "notes",
    "findings",
    "plots",
)


@functools.cache
def _hints() -> dict[str, Any]:
    return typing.get_type_hints(BenchResult)
