"""Benchmark mode: the performance-watt study of Meireles et al. (SAC '23), on any machine.

:func:`run_benchmark` is a plain function taking one :class:`~phytoscope.progress.Progress`
(stages = the idle baseline, then one per variant whose units are its phases, then the
report; cancel = its token), so the CLI calls it directly and the window's Benchmark page
runs the same function in a worker thread. Each variant (TensorFlow base, ONNX Runtime
FP32/INT8, TensorRT FP32/FP16/INT8) runs in a fresh process (:mod:`.worker`, driven by
:mod:`.child`) while this process samples that child's telemetry and stamps the study's
four phases on the timeline:

1. ``load``: process start, runtime import, model read, session/engine creation;
2. ``first_batch``: engine extraction, the first real image decoded, pre-processed, inferred;
3. ``warmup``: batch-1 calls until latency is stable (with a time cap);
4. ``measured`` (engine-only rounds, every batch size, repeated) then ``measured_e2e``
   (decode + pre-processing + inference + softmax over the labelled images).

A variant whose runtime or model is missing is recorded as "not available here" with the
reason, never as a failure of the run. The figures are typed
(:class:`~phytoscope.bench.results.BenchResult`); :mod:`.output` writes them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from phytoscope import backends
from phytoscope.bench import stages
from phytoscope.bench.child import run_variant
from phytoscope.bench.config import BASE, FAILED, UNAVAILABLE, VARIANTS, BenchConfig, Variant
from phytoscope.bench.findings import findings, study_table
from phytoscope.bench.labelled import (
    LabelledSet,
    labelled_from_card,
    labelled_from_folder,
    stratified_subset,
)
from phytoscope.bench.machine import load_average, machine_facts, machine_name, measure_idle
from phytoscope.bench.machine import versions as runtime_versions
from phytoscope.bench.metrics import not_run, variant_result
from phytoscope.bench.output import Timelines, write_all
from phytoscope.bench.results import (
    BenchResult,
    IdleBaseline,
    LabelledSummary,
    ModelInfo,
    PowerSummary,
    VariantResult,
)
from phytoscope.config import models_dir
from phytoscope.errors import ConfigError, PhytoscopeError
from phytoscope.progress import Progress
from phytoscope.telemetry import Sampler

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Planned:
    """A variant and the model card it would run, or the reason it cannot run here."""

    variant: Variant
    card: Any = None
    reason: str | None = None

    @property
    def available(self) -> bool:
        return self.card is not None


@dataclass(frozen=True)
class BenchReport:
    """The outcome of a run: the typed results and the files written."""

    result: BenchResult
    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)

    def variant(self, key: str) -> VariantResult:
        return self.result.variant(key)

    @property
    def failed(self) -> list[str]:
        return self.result.failed


def plan_variants(model: Path | None, keys: Sequence[str] = tuple(VARIANTS)) -> list[Planned]:
    """Each variant with its model card, or the reason it cannot run here (runtime not
    installed, no model of that form). Cheap: imports no runtime, reads only model cards."""
    reasons = backends.availability()
    folder = models_dir()
    plan = []
    for key in keys:
        variant = VARIANTS[key]
        reason = reasons.get(variant.backend)
        if reason:
            plan.append(Planned(variant, reason=reason))
            continue
        try:
            card = backends.backend_class(variant.backend).select_card(
                model, variant.precision, folder
            )
        except PhytoscopeError as exc:
            plan.append(Planned(variant, reason=f"no model for it: {exc}"))
            continue
        plan.append(Planned(variant, card=card))
    return plan


def _labelled_set(config: BenchConfig, cards: Sequence[Any]) -> LabelledSet:
    if not cards:
        return LabelledSet((), "none (no variant can run here)")
    if config.images is not None:
        labelled = labelled_from_folder(config.images, cards[0].class_names)
    else:
        errors = []
        for card in cards:
            try:
                labelled = labelled_from_card(card, config.data_root)
                break
            except ConfigError as exc:
                errors.append(str(exc))
        else:
            raise ConfigError(errors[0])
    if config.limit is not None and len(labelled.items) > config.limit:
        labelled = replace(
            labelled,
            items=stratified_subset(labelled.items, config.limit),
            note=(labelled.note + "; " if labelled.note else "")
            + f"a stratified subset of {config.limit} images (--limit)",
        )
    return labelled


def _model_info(card: Any) -> ModelInfo:
    return ModelInfo(
        card=str(card.path),
        label=card.label,
        file=card.file,
        sha256=card.sha256,
        size_bytes=card.model_path.stat().st_size,
    )


class _Run:
    """One benchmark in progress: what it has measured so far."""

    def __init__(self, config: BenchConfig, progress: Progress, sampler_factory: Any):
        self.config = config
        self.progress = progress
        self.sampler_factory = sampler_factory
        self.work = Path(config.out_dir) / "work"
        self.variants: list[VariantResult] = []
        self.timelines: Timelines = {}
        self.base_probabilities: np.ndarray | None = None

    def one(self, planned: Planned, labelled: LabelledSet, idle_w: float | None) -> None:
        """Run (or record as not available) one variant."""
        v = planned.variant
        if not planned.available:
            log.info("%s not available here: %s", v.key, planned.reason)
            stages.unavailable(self.progress, v, planned.reason or "")
            self.variants.append(not_run(v, UNAVAILABLE, planned.reason or ""))
            return
        model = _model_info(planned.card)
        run = run_variant(
            v,
            planned.card.path,
            labelled,
            self.config,
            self.work,
            self.sampler_factory,
            lambda phase, message: stages.phase(self.progress, v, phase, message),
            self.progress,
        )
        self.timelines[v.key] = (run.samples, run.phases)
        if run.error is not None:
            stages.failed(self.progress, v, run.error)
            self.variants.append(not_run(v, FAILED, run.error, model))
            return
        result, probabilities = variant_result(
            v, model, run, labelled, idle_w, self.base_probabilities
        )
        if v.key == BASE:
            self.base_probabilities = probabilities
        self.variants.append(result)


def run_benchmark(
    config: BenchConfig,
    progress: Progress | None = None,
    sampler_factory: Callable[..., Any] | None = None,
) -> BenchReport:
    """Run every variant of ``config`` through the study's phases and write the report.

    Parameters
    ----------
    config
        What to run and where to write (see :class:`BenchConfig`).
    progress
        Receives the stages (see :mod:`phytoscope.bench.stages`) from this thread; its
        cancel token stops the run: the running variant's process is killed and
        :class:`~phytoscope.errors.Cancelled` raised (files of a cancelled run are partial).
    sampler_factory
        Builds the telemetry sampler (default :class:`phytoscope.telemetry.Sampler`).
    """
    config = config.validate()
    progress = Progress.of(progress)
    run = _Run(config, progress, sampler_factory or Sampler)
    run.work.mkdir(parents=True, exist_ok=True)
    started_wall, started = time.time(), time.monotonic()
    facts = machine_facts()
    plan = plan_variants(config.model, config.variants)
    labelled = _labelled_set(config, [p.card for p in plan if p.available])

    idle, idle_samples, idle_t0 = measure_idle(config, run.sampler_factory, progress)
    run.timelines["idle"] = (idle_samples, {"idle": idle_t0})
    # The base model runs first so every other variant can be compared with it.
    for planned in sorted(plan, key=lambda p: p.variant.key != BASE):
        run.one(planned, labelled, idle.mean_power_w)

    stages.report(progress, 0, "writing the report")
    result = BenchResult(
        started_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started_wall)),
        duration_s=time.monotonic() - started,
        command_line=config.command_line,
        settings=config,
        machine=replace(facts, load_average_end=load_average()),
        machine_name=machine_name(facts),
        versions=runtime_versions(),
        labelled_set=LabelledSummary(
            labelled.source, len(labelled.items), labelled.counts(), labelled.note
        ),
        idle=idle,
        power=_power_summary(idle, run.variants),
        variants=tuple(run.variants),
        study=study_table(),
        notes=config.notes,
    )
    result = replace(result, findings=findings(result))
    result, files = write_all(result, run.timelines, config.out_dir, plots=config.plots)
    stages.report(progress, 1, f"report written to {config.out_dir}")
    return BenchReport(result, Path(config.out_dir), files)


def _power_summary(idle: IdleBaseline, variants: Sequence[VariantResult]) -> PowerSummary:
    ran = [v for v in variants if v.ok and v.power is not None]
    estimated = [v.power.estimated for v in ran if v.power and v.power.estimated is not None]
    sources = tuple(sorted({v.power.source for v in ran if v.power and v.power.source}))
    is_estimated = any(estimated) or bool(idle.estimated)
    measured_any = bool(sources) or idle.mean_power_w is not None
    if not measured_any:
        return PowerSummary(idle.power_label, sources, None, "none")
    kind = "estimated" if is_estimated else "measured"
    return PowerSummary(idle.power_label, sources, is_estimated, kind)


__all__ = [
    "BenchConfig",
    "BenchReport",
    "Planned",
    "plan_variants",
    "run_benchmark",
]
