"""Hand-made benchmark results for the findings, tables and report tests (tier 1)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from phytoscope.bench.config import VARIANTS, BenchConfig
from phytoscope.bench.findings import study_table
from phytoscope.bench.results import (
    Accuracy,
    Agreement,
    BatchThroughput,
    BenchResult,
    IdleBaseline,
    LabelledSummary,
    Machine,
    Memory,
    Power,
    PowerSummary,
    VariantResult,
)
from phytoscope.bench.stats import summarize


def ran(
    key: str,
    fps: float,
    acc: float,
    power_whole: float,
    power_inf: float,
    rss_mib: int,
    agree: Agreement | None = None,
    rounds: tuple[float, ...] | None = None,
) -> VariantResult:
    """A variant that ran: ``fps`` at best batch 8 (its rounds: ``rounds``, default a
    tight spread around ``fps``), half of it at batch 1, a third end-to-end."""
    v = VARIANTS[key]
    rounds = rounds or (0.98 * fps, fps, 1.02 * fps)
    latency = summarize([1.0, 2.0, 3.0])
    return VariantResult(
        key=key,
        label=v.label,
        backend=v.backend,
        precision=v.precision,
        optimised=v.optimised,
        status="ok",
        engine={
            1: BatchThroughput(1, summarize([fps / 2]), latency),
            8: BatchThroughput(8, summarize(rounds), latency),
        },
        best_batch=8,
        fps=summarize(rounds).median,
        fps_batch1=fps / 2,
        e2e_fps=fps / 3,
        accuracy=Accuracy(acc, int(acc * 100), 100),
        agreement=agree,
        memory=Memory(rss_mib * 2**20, 1.0),
        power=Power(
            source="estimated: CPU load x 10 W",
            estimated=True,
            mean_w_whole_run=power_whole,
            mean_w_inference=power_inf,
            fps_per_w_whole_run=fps / power_whole,
            fps_per_w_inference=fps / power_inf,
            energy_per_image_engine_j=power_inf / fps,
            energy_per_image_e2e_j=3 * power_inf / fps,
        ),
    )


def unavailable(key: str, reason: str) -> VariantResult:
    v = VARIANTS[key]
    return VariantResult(
        key, v.label, v.backend, v.precision, v.optimised, "unavailable", reason=reason
    )


def result(
    variants: tuple[VariantResult, ...] | None = None,
    idle_cpu: float = 0.0,
    kind: str = "estimated",
) -> BenchResult:
    """Base 40 FPS, ONNX Runtime FP32 100 FPS (same accuracy), INT8 150 FPS (2 points
    less), TensorRT not installed; power estimated unless ``kind`` says otherwise."""
    if variants is None:
        variants = (
            ran("tf_base", 40.0, 0.90, 8.0, 9.0, 900),
            ran(
                "ort_fp32",
                100.0,
                0.90,
                7.0,
                8.5,
                300,
                Agreement(True, top1_agreement=1.0, max_prob_diff=1e-6, flips=0),
            ),
            ran(
                "ort_int8",
                150.0,
                0.88,
                7.0,
                8.0,
                250,
                Agreement(True, top1_agreement=0.97, max_prob_diff=0.2, flips=3),
            ),
            unavailable("trt_fp32", "TensorRT is not installed; pip install tensorrt"),
        )
    if kind != "estimated":
        variants = tuple(
            replace(v, power=replace(v.power, estimated=False)) if v.power else v for v in variants
        )
    sources = ("estimated: CPU load x 10 W",) if kind == "estimated" else ("rapl",)
    return BenchResult(
        started_utc="2026-01-01T00:00:00Z",
        duration_s=60.0,
        settings=BenchConfig(out_dir=Path("out")),
        machine=Machine(cpu="Test CPU", machine="x86_64", logical_cpus=2),
        machine_name="x86_64-test-2cpu",
        labelled_set=LabelledSummary("test", 100, {"A": 50, "B": 50}),
        idle=IdleBaseline(seconds=5.0, mean_power_w=1.0, machine_cpu_percent_median=idle_cpu),
        power=PowerSummary(sources[0], sources, kind == "estimated", kind),
        variants=variants,
        study=study_table(),
    )
