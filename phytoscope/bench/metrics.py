"""Every per-variant figure, from the worker's timings and the telemetry sampled beside it."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import psutil

from phytoscope.bench.child import ChildRun
from phytoscope.bench.config import OK, PHASES, Variant
from phytoscope.bench.labelled import LabelledSet
from phytoscope.bench.results import (
    Accuracy,
    Agreement,
    BatchThroughput,
    ClassAccuracy,
    EndToEnd,
    Flip,
    Memory,
    ModelInfo,
    PhaseTimes,
    Power,
    ProcessShare,
    TimeShare,
    VariantResult,
    Warmup,
)
from phytoscope.bench.stats import (
    energy_per_image,
    fps_per_watt,
    other_load,
    process_share_samples,
    summarize,
)
from phytoscope.telemetry import energy_j, mean_power_w

Window = tuple[float, float]


def windows(phases: dict[str, float]) -> dict[str, Window]:
    """Each phase's (start, end), plus ``whole_run`` (load to end) and ``inference``
    (phase 4: engine rounds and end-to-end)."""
    present = [p for p in PHASES if p in phases]
    out = {a: (phases[a], phases[b]) for a, b in zip(present, present[1:], strict=False)}
    if "load" in phases and "end" in phases:
        out["whole_run"] = (phases["load"], phases["end"])
    if "measured" in phases and "end" in phases:
        out["inference"] = (phases["measured"], phases["end"])
    return out


def variant_result(
    variant: Variant,
    model: ModelInfo,
    run: ChildRun,
    labelled: LabelledSet,
    idle_w: float | None,
    base_probabilities: np.ndarray | None,
) -> tuple[VariantResult, np.ndarray]:
    """The typed result of a variant that ran, and its class probabilities (the base
    model's are what the others are compared with)."""
    result = run.result
    assert result is not None, "variant_result needs a finished run"
    spans = windows(run.phases)
    engine = _engine(result)
    best = int(result["best_batch"])
    e2e = _end_to_end(result)
    probabilities = np.asarray(result["probabilities"], dtype=np.float64)
    names = list(result["class_names"])
    out = VariantResult(
        **_identity(variant),
        status=OK,
        model=model,
        phases_s=PhaseTimes(**{k: b - a for k, (a, b) in spans.items()}),
        runtime=dict(result.get("runtime", {})),
        warmup=Warmup(**result["warmup"]) if result.get("warmup") else None,
        first_batch_ms=result.get("first_batch_ms"),
        engine=engine,
        best_batch=best,
        fps=engine[best].throughput_fps.median,
        fps_batch1=engine[1].throughput_fps.median if 1 in engine else None,
        e2e=e2e,
        e2e_fps=e2e["best"].fps,
        accuracy=accuracy(labelled, probabilities, names),
        agreement=None
        if base_probabilities is None
        else agreement(base_probabilities, probabilities, names, labelled),
        other_load=other_load(run.samples, spans.get("whole_run"), os.cpu_count() or 1),
        memory=_memory(result, run.samples),
    )
    return replace(out, power=_power(out, run, spans, idle_w)), probabilities


def _identity(variant: Variant) -> dict[str, Any]:
    return {
        "key": variant.key,
        "label": variant.label,
        "backend": variant.backend,
        "precision": variant.precision,
        "optimised": variant.optimised,
    }


def not_run(
    variant: Variant, status: str, reason: str, model: ModelInfo | None = None
) -> VariantResult:
    """A variant that is not available here, or whose process failed."""
    return VariantResult(**_identity(variant), status=status, reason=reason, model=model)


def _engine(result: dict[str, Any]) -> dict[int, BatchThroughput]:
    engine = {}
    for bs, rec in result["engine"].items():
        fps = summarize(rec["round_fps"])
        engine[int(bs)] = BatchThroughput(
            batch_size=int(bs),
            throughput_fps=fps,
            latency_ms=summarize(np.asarray(rec["latencies_s"]) * 1e3),
            per_image_ms=(1e3 / fps.median) if fps.median else None,
        )
    return engine


def _end_to_end(result: dict[str, Any]) -> dict[str, EndToEnd]:
    return {
        name: EndToEnd(
            batch_size=rec["batch_size"],
            images=rec["images"],
            seconds=rec["seconds"],
            fps=rec["fps"],
            latency_ms_per_call=summarize(np.asarray(rec["latencies_s"]) * 1e3),
            time_share=TimeShare(**rec["share"]),
        )
        for name, rec in result["e2e"].items()
    }


def accuracy(labelled: LabelledSet, probabilities: np.ndarray, names: Sequence[str]) -> Accuracy:
    truth = [c for _, c in labelled.items]
    predicted = [names[i] for i in probabilities.argmax(axis=1)]
    correct = sum(p == t for p, t in zip(predicted, truth, strict=True))
    per_class = {}
    for cls in sorted(set(truth)):
        idx = [i for i, t in enumerate(truth) if t == cls]
        hits = sum(predicted[i] == cls for i in idx)
        per_class[cls] = ClassAccuracy(len(idx), hits / len(idx) if idx else None)
    return Accuracy(correct / len(truth), correct, len(truth), per_class)


def agreement(
    base: np.ndarray,
    other: np.ndarray,
    names: Sequence[str],
    labelled: LabelledSet,
    max_listed: int = 50,
) -> Agreement:
    """Top-1 agreement and the largest probability difference against the base model,
    with the images whose top-1 class flips."""
    base, other = np.asarray(base, np.float64), np.asarray(other, np.float64)
    if base.shape != other.shape:
        return Agreement(False, f"output shapes differ ({base.shape} vs {other.shape})")
    b, o = base.argmax(axis=1), other.argmax(axis=1)
    flips = [
        Flip(
            image=labelled.items[i][0],
            label=labelled.items[i][1],
            base=names[b[i]],
            base_p=float(base[i, b[i]]),
            this=names[o[i]],
            this_p=float(other[i, o[i]]),
        )
        for i in np.flatnonzero(b != o)
    ]
    return Agreement(
        comparable=True,
        top1_agreement=float(np.mean(b == o)),
        max_prob_diff=float(np.abs(base - other).max()),
        mean_prob_diff=float(np.abs(base - other).mean()),
        flips=len(flips),
        flipped_images=tuple(flips[:max_listed]),
    )


def _memory(result: dict[str, Any], samples: Sequence[Any]) -> Memory:
    rss_sampled = max((s.rss_bytes for s in samples), default=0)
    peak = max(int(result.get("peak_rss_bytes") or 0), int(rss_sampled))
    ram_total = next((s.ram_total_bytes for s in samples if s.ram_total_bytes), None)
    if ram_total is None:
        ram_total = int(psutil.virtual_memory().total)
    return Memory(
        peak_rss_bytes=peak,
        peak_rss_pct_ram=100.0 * peak / ram_total,
        peak_system_ram_pct=max(
            (100.0 * s.ram_used_bytes / s.ram_total_bytes for s in samples if s.ram_total_bytes),
            default=None,
        ),
        ram_total_bytes=ram_total,
    )


def _power(
    v: VariantResult, run: ChildRun, spans: dict[str, Window], idle_w: float | None
) -> Power:
    """Mean power, FPS/W (engine-only best-batch throughput over the mean power of the
    whole run and of phase 4) and energy per image (engine rounds, end-to-end pass)."""
    samples = run.samples
    assert run.result is not None
    # images the worker classified in each measured phase (every round, every pass)
    images = {"engine": int(run.result["engine_images"]), "e2e": int(run.result["e2e_images"])}
    powered = [s for s in samples if s.power_w is not None]
    power = Power(
        source=powered[0].power_source if powered else None,
        estimated=any(s.estimated for s in powered) if powered else None,
        samples=len(samples),
    )
    if powered and "whole_run" in spans:
        power = replace(power, **_figures(v, samples, spans, idle_w, images, net=True))
    cpus = os.cpu_count() or 1
    share = process_share_samples(samples, run.tdp_w, cpus) if run.tdp_w else []
    if len(share) >= 2 and "whole_run" in spans and run.tdp_w:
        figures = _figures(v, share, spans, None, images, net=False)
        figures.pop("energy_whole_run_j")
        proc = ProcessShare(
            method=f"process CPU share x {run.tdp_w:g} W (estimated)",
            rated_w=run.tdp_w,
            **figures,
        )
        power = replace(power, process_share=proc)
    return power


def _figures(
    v: VariantResult,
    samples: Sequence[Any],
    spans: dict[str, Window],
    idle_w: float | None,
    images: dict[str, int],
    net: bool,
) -> dict[str, Any]:
    w0, w1 = spans["whole_run"]
    i0, i1 = spans.get("inference", (w0, w1))
    out: dict[str, Any] = {
        "mean_w_whole_run": mean_power_w(samples, w0, w1),
        "mean_w_inference": mean_power_w(samples, i0, i1),
        "energy_whole_run_j": energy_j(samples, w0, w1),
    }
    out["fps_per_w_whole_run"] = fps_per_watt(v.fps, out["mean_w_whole_run"])
    out["fps_per_w_inference"] = fps_per_watt(v.fps, out["mean_w_inference"])
    for name, window, count in (
        ("engine", spans.get("measured"), images["engine"]),
        ("e2e", spans.get("measured_e2e"), images["e2e"]),
    ):
        if window is None:
            continue
        gross, net_j = energy_per_image(
            energy_j(samples, *window), count, idle_w, window[1] - window[0]
        )
        out[f"energy_per_image_{name}_j"] = gross
        if net:
            out[f"energy_per_image_{name}_net_j"] = net_j
    return out
