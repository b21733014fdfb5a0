"""Which findings of the study (Meireles et al., SAC '23, Table 2) hold on this machine.

One function per claim, each returning a :class:`~phytoscope.bench.results.Finding` with
the study's figure, this run's figures and a verdict; a claim this run cannot test (no base
model, no power figure) says "not testable here" rather than guessing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from phytoscope.bench.config import BASE
from phytoscope.bench.jsonable import SchemaError, from_jsonable
from phytoscope.bench.results import (
    BenchResult,
    Finding,
    Power,
    Study,
    StudyFigures,
    VariantResult,
)
from phytoscope.bench.stats import ratio
from phytoscope.bench.table import fmt
from phytoscope.config import resources_dir

log = logging.getLogger(__name__)

NOT_TESTABLE = "not testable here"


def study_table() -> Study:
    """Table 2 of Meireles et al. (SAC '23), from ``resources/paper/table2.json``."""
    path = resources_dir() / "paper" / "table2.json"
    try:
        return from_jsonable(Study, json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, SchemaError) as exc:
        log.warning("study table unavailable: %s", exc)
        return Study(source=f"not available ({path}: {exc})")


class _Context:
    """What every claim reads: the variants that ran, the base, the study's figures."""

    def __init__(self, result: BenchResult):
        self.ok = {v.key: v for v in result.ran}
        self.base = self.ok.get(BASE)
        self.optimised = [v for v in self.ok.values() if v.optimised]
        self.fp32 = [v for v in self.optimised if v.precision == "fp32"]
        self.study = result.study.variants
        share = any(v.power and v.power.process_share for v in self.ok.values())
        self.pest = " (estimated, process CPU share)" if share else result.power_word

    def st(self, key: str) -> StudyFigures:
        return self.study.get(key) or StudyFigures()


def findings(result: BenchResult) -> tuple[Finding, ...]:
    """Each of the study's findings with the figures behind it and whether it holds here."""
    ctx = _Context(result)
    claims: Sequence[Callable[[_Context], Finding]] = (
        _throughput,
        _accuracy,
        _reduced_precision,
        _whole_run_power,
        _fps_per_watt,
        _inference_power,
        _memory,
    )
    return tuple(claim(ctx) for claim in claims)


def _ratio_text(items: Sequence[tuple[str, float | None]], unit: str = "×") -> str:
    return "; ".join(f"{k}: {fmt(r, 2)}{unit}" for k, r in items) or "—"


def _speedup_verdict(value: float) -> str:
    """For "≈ 2×" claims: 1.7-3× holds; ≥ 3× is the study's direction but much more than it
    saw; 1.2-1.7× is part of the way."""
    if value >= 3.0:
        return "holds, and more (≥ 3×)"
    if value >= 1.7:
        return "holds"
    return "partly" if value >= 1.2 else "does not hold"


def _precision_verdict(value: float) -> str:
    """For "reduced precision adds little" (study: FP16 +2 %): the best reduced/FP32 ratio."""
    if value >= 1.15:
        return "does not hold"
    if value < 0.9:
        return "holds, but worse: reduced precision is slower here"
    return "holds"


def _throughput(c: _Context) -> Finding:
    claim = "Optimised ≈ 2× base throughput"
    s_fp32, s_base = c.st("trt_fp32").fps, c.st("tf_base").fps
    study = (
        f"TRT FP32 / TF base = {fmt(ratio(s_fp32, s_base), 2)}× ({_n(s_fp32)} vs {_n(s_base)} FPS)"
    )
    if not (c.base and c.fp32):
        return Finding(claim, study, "needs the base and an optimised FP32 variant", NOT_TESTABLE)
    ratios = [(v.label, ratio(v.fps, c.base.fps)) for v in c.optimised]
    best = max((ratio(v.fps, c.base.fps) or 0.0) for v in c.fp32)
    here = _ratio_text(ratios) + " (engine-only, best batch)"
    return Finding(claim, study, here, _speedup_verdict(best))


def _top1(v: VariantResult) -> float:
    return v.accuracy.top1 if v.accuracy else 0.0


def _accuracy(c: _Context) -> Finding:
    claim = "Accuracy unchanged after optimisation"
    study = "97 % for TF base, TRT FP32 and TRT FP16"
    if not (c.base and c.optimised):
        return Finding(claim, study, "needs the base and an optimised variant", NOT_TESTABLE)
    base = c.base
    diffs = [(v, 100 * (_top1(v) - _top1(base))) for v in c.optimised]
    worst = max(abs(d) for _, d in diffs)
    worst_fp32 = max((abs(d) for v, d in diffs if v.precision == "fp32"), default=None)
    if worst <= 1.0:
        verdict = "holds"
    elif worst_fp32 is not None and worst_fp32 <= 1.0:
        verdict = f"partly: FP32 forms unchanged, reduced precision differs by up to {worst:.1f} pp"
    else:
        verdict = "does not hold"
    agree = [(v.label, v.agreement.top1_agreement if v.agreement else None) for v in c.optimised]
    here = (
        f"base {fmt(100 * _top1(base))} %; change: "
        + "; ".join(f"{v.label} {d:+.1f} pp" for v, d in diffs)
        + "; top-1 agreement with base: "
        + "; ".join(f"{k} {fmt(a, 1, 100)} %" for k, a in agree)
    )
    return Finding(claim, study, here, verdict)


def _reduced_precision(c: _Context) -> Finding:
    claim = "Reduced precision adds little throughput over optimised FP32"
    s16, s32 = c.st("trt_fp16").fps, c.st("trt_fp32").fps
    study = f"TRT FP16 / FP32 = {fmt(ratio(s16, s32), 2)}× ({_n(s16)} vs {_n(s32)} FPS)"
    pairs = [
        (c.ok[lo], c.ok[hi])
        for lo, hi in (("ort_int8", "ort_fp32"), ("trt_fp16", "trt_fp32"), ("trt_int8", "trt_fp32"))
        if lo in c.ok and hi in c.ok
    ]
    if not pairs:
        return Finding(
            claim, study, "needs a reduced-precision variant and its FP32 form", NOT_TESTABLE
        )
    ratios = [(f"{lo.label} / {hi.label}", ratio(lo.fps, hi.fps)) for lo, hi in pairs]
    worst = max(r or 0.0 for _, r in ratios)
    return Finding(claim, study, _ratio_text(ratios), _precision_verdict(worst))


def _whole_run_power(c: _Context) -> Finding:
    claim = "Optimised variants draw less mean power over the whole run"
    study = (
        f"TF base {_n(c.st('tf_base').avg_power_total_mw)} mW vs "
        f"TRT FP32 {_n(c.st('trt_fp32').avg_power_total_mw)} mW"
    )
    b = _pw(c.base).mean_w_whole_run if c.base else None
    if not (c.base and c.optimised) or b is None:
        return Finding(claim, study, "no power figures", NOT_TESTABLE)
    pw = [(v.label, _pw(v).mean_w_whole_run) for v in c.optimised]
    lower = all(p is not None and p < b for _, p in pw)
    here = (
        f"base {fmt(b * 1e3, 0)} mW; "
        + "; ".join(f"{k} {fmt(p, 0, 1e3)} mW" for k, p in pw)
        + c.pest
    )
    return Finding(claim + c.pest, study, here, "holds" if lower else "does not hold")


def _fps_per_watt(c: _Context) -> Finding:
    claim = "Performance-watt roughly doubles with optimisation"
    s = ratio(c.st("trt_fp32").fps_per_w_total, c.st("tf_base").fps_per_w_total)
    study = f"FPS/W whole run: TRT FP32 / TF base = {fmt(s, 2)}×"
    base = _pw(c.base).fps_per_w_whole_run if c.base else None
    if not (c.base and c.optimised and base):
        return Finding(claim, study, "no power figures", NOT_TESTABLE)
    ratios = [(v, ratio(_pw(v).fps_per_w_whole_run, base)) for v in c.optimised]
    # judged on the FP32 forms, like the throughput claim (reduced precision is its own row)
    fp32 = [r for v, r in ratios if v.precision == "fp32"]
    best = max((r or 0.0 for r in fp32 or [r for _, r in ratios]), default=0.0)
    here = _ratio_text([(v.label, r) for v, r in ratios]) + (
        " (verdict on the FP32 forms)" if fp32 else ""
    )
    return Finding(claim + c.pest, study, here, _speedup_verdict(best))


def _inference_power(c: _Context) -> Finding:
    claim = "The inference phase draws more power than the whole-run mean"
    s = c.st("tf_base")
    study = (
        f"TF base: inference {_n(s.avg_power_inference_mw)} mW vs whole run "
        f"{_n(s.avg_power_total_mw)} mW"
    )
    with_power = [v for v in c.ok.values() if _pw(v).mean_w_inference is not None]
    if not with_power:
        return Finding(claim, study, "no power figures", NOT_TESTABLE)
    here = (
        "; ".join(
            f"{v.label}: {fmt(_pw(v).mean_w_inference, 0, 1e3)} vs "
            f"{fmt(_pw(v).mean_w_whole_run, 0, 1e3)} mW"
            for v in with_power
        )
        + c.pest
    )
    holds = all(
        (_pw(v).mean_w_inference or 0.0) > (_pw(v).mean_w_whole_run or 0.0) for v in with_power
    )
    return Finding(claim + c.pest, study, here, "holds" if holds else "does not hold")


def _memory(c: _Context) -> Finding:
    claim = "Optimised variants need more peak memory than the base"
    study = (
        f"peak memory TF base {_n(c.st('tf_base').peak_memory_pct)} % vs TRT FP32 "
        f"{_n(c.st('trt_fp32').peak_memory_pct)} % of 4 GB"
    )
    if not (c.base and c.optimised):
        return Finding(claim, study, "needs the base and an optimised variant", NOT_TESTABLE)
    b = _rss(c.base)
    here = f"peak RSS base {fmt(b / 2**20, 0)} MiB; " + "; ".join(
        f"{v.label} {fmt(_rss(v) / 2**20, 0)} MiB" for v in c.optimised
    )
    more = all(_rss(v) > b for v in c.optimised)
    return Finding(claim, study, here, "holds" if more else "does not hold")


def _rss(v: VariantResult) -> int:
    return v.memory.peak_rss_bytes if v.memory else 0


class _PowerFigures(Protocol):
    @property
    def mean_w_whole_run(self) -> float | None: ...
    @property
    def mean_w_inference(self) -> float | None: ...
    @property
    def fps_per_w_whole_run(self) -> float | None: ...
    @property
    def fps_per_w_inference(self) -> float | None: ...


def _pw(v: VariantResult | None) -> _PowerFigures:
    """The power figures findings use (see :attr:`Power.for_findings`)."""
    if v is None or v.power is None:
        return Power()
    return v.power.for_findings


def _n(value: float | None) -> str:
    """A study figure as the paper prints it (41, 3386, 93.2)."""
    if value is None:
        return "None"
    return f"{value:g}" if value != int(value) else str(int(value))
