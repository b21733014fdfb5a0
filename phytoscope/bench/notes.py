"""What a reader must know beside the figures: the method before a run, the warnings after.

Written once here and shown alike by the report, the command line and the window, so a
"the machine was not idle" or "power is estimated" never appears in one and not the other.
"""

from __future__ import annotations

from dataclasses import dataclass

from phytoscope.bench.config import VARIANTS, BenchConfig
from phytoscope.bench.results import BenchResult
from phytoscope.bench.table import fmt

NOISY_ROUNDS = 0.25
"""Relative IQR (IQR / median) of the best batch's rounds above which the spread is shown
as a warning: the middle half of the rounds spans more than a quarter of the median."""


@dataclass(frozen=True)
class Notice:
    """A warning about a run's figures: ``title`` is the bold lead, ``text`` follows it."""

    kind: str
    """"estimated", "not_idle", "other_load", "noisy" or "failed\""""
    title: str
    text: str

    @property
    def markdown(self) -> str:
        return f"**{self.title}**{self.text}"


def method(config: BenchConfig) -> list[str]:
    """What a run with ``config`` measures and how, in plain sentences (shown before a run)."""
    labels = ", ".join(VARIANTS[k].label for k in config.variants if k in VARIANTS)
    batches = ", ".join(str(b) for b in config.batch_sizes)
    engine_s = config.rounds * len(config.batch_sizes) * config.round_s
    images = f"at most {config.limit}" if config.limit else "all the"
    return [
        f"Each variant ({labels or 'none chosen'}) runs in a fresh process, one after the "
        f"other, after an idle baseline of {config.idle_s:g} s (the machine at rest).",
        "Phases, as in Meireles et al., SAC '23: 1 load (process start, runtime import, "
        "model and engine creation); 2 engine extraction / first batch; 3 warm-up until "
        f"latency is stable (at most {config.warmup_cap_s:g} s); 4 measured.",
        f"Engine-only (phase 4a): inference alone on pre-processed tensors, {config.rounds} "
        f"rounds, each running batch sizes {batches} in turn for {config.round_s:g} s apiece "
        f"(about {engine_s:.0f} s per variant). Throughput is the median over the rounds, "
        "shown with its interquartile range and min–max.",
        f"End-to-end (phase 4b): {images} labelled images decoded, pre-processed and "
        "classified, one pass at batch 1 and one at the best batch: the speed a technician "
        "sees, and the top-1 accuracy.",
        "FPS/W is engine-only throughput ÷ the mean power of a phase (as the study); energy "
        "per image is given for the engine-only rounds and the end-to-end pass separately. "
        "Without a power sensor, power is ESTIMATED from CPU load × rated power and marked so.",
    ]


def notices(result: BenchResult) -> list[Notice]:
    """The warnings a run's figures need, most important first."""
    out: list[Notice] = []
    if result.estimated:
        source = ", ".join(result.power.sources) or result.power.label
        out.append(
            Notice(
                "estimated",
                "Power on this machine is ESTIMATED, not measured",
                f" (source: {source}): no power sensor is readable here, so every power, "
                "energy and FPS/W figure below is a model of CPU load × rated power, good for "
                "comparing variants on this machine only.",
            )
        )
    if result.idle.not_idle:
        out.append(_not_idle(result))
    busy = [
        (v.label, v.other_load.cpu_percent_of_a_core_median)
        for v in result.ran
        if v.other_load is not None and v.other_load.busy
    ]
    if busy:
        out.append(
            Notice(
                "other_load",
                "Other work ran beside the variants",
                ": other processes used a median of "
                + ", ".join(f"{x:.0f} % of a core during {k}" for k, x in busy)
                + ". Throughput is lower and noisier than on a quiet machine.",
            )
        )
    noisy = _noisy(result)
    if noisy:
        out.append(noisy)
    failed = [v for v in result.variants if v.key in result.failed]
    if failed:
        out.append(
            Notice(
                "failed",
                "A variant failed",
                ": "
                + "; ".join(f"{v.label}: {v.reason}" for v in failed)
                + ". Its log is in work/<variant>.log.",
            )
        )
    return out


def _not_idle(result: BenchResult) -> Notice:
    idle = result.idle
    who = ", ".join(
        f"{p.name} (pid {p.pid}, {p.cpu_percent:.0f} % of a core)" for p in idle.busy_processes
    )
    return Notice(
        "not_idle",
        "The machine was not idle",
        f": its CPU was {fmt(idle.machine_cpu_percent_median, 0)} % busy during the idle "
        "baseline, so other work ran beside the benchmark; machine-wide power and "
        "net-of-idle energies are distorted, and throughput may be lower than on a "
        f"quiet machine. Busiest other processes then: {who or '—'}.",
    )


def _noisy(result: BenchResult) -> Notice | None:
    parts = []
    for v in result.ran:
        s = v.best.throughput_fps if v.best else None
        if s is not None and (s.relative_iqr or 0.0) > NOISY_ROUNDS:
            parts.append(
                f"{v.label} {fmt(s.median)} img/s median, IQR {fmt(s.iqr)} "
                f"({100 * (s.relative_iqr or 0):.0f} %), range {fmt(s.min)}–{fmt(s.max)}"
            )
    if not parts:
        return None
    return Notice(
        "noisy",
        "The measured rounds disagree",
        ": "
        + "; ".join(parts)
        + ". One run this spread is not a figure to quote (two such runs can differ "
        "several-fold): repeat it on a quiet machine, or with more and longer rounds, before "
        "comparing.",
    )
