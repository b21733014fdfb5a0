"""How a benchmark reports progress through :class:`phytoscope.progress.Progress`.

Stages are what a user sees as one bar: the idle baseline (``done`` = seconds), then one
stage per variant, named by its label, whose units are the study's phases (load, first
batch, warm-up, engine rounds, end-to-end: ``done`` counts the phases begun before the
current one, and reaches ``total`` when the variant's process ends), then the report.
:func:`read` turns an event back into (variant, phase) for the window's live timeline, so
the encoding lives in this one module.
"""

from __future__ import annotations

from dataclasses import dataclass

from phytoscope.bench.config import PHASE_TITLES, PHASES, VARIANTS, Variant
from phytoscope.progress import Progress, ProgressEvent

IDLE = "idle baseline"
REPORT = "report"
VARIANT_PHASES = PHASES[:-1]
"""The phases a variant's bar counts; ``end`` completes it."""
UNAVAILABLE_PREFIX = "not available here: "
FAILED_PREFIX = "FAILED: "

UNITS: dict[str, str] = {
    IDLE: "s",
    REPORT: "files",
    **{v.label: "phases" for v in VARIANTS.values()},
}
"""tqdm units per stage (``terminal_progress(units=UNITS)``)."""


def idle(progress: Progress, elapsed_s: float, total_s: float, final: bool = False) -> None:
    """The idle baseline has run ``elapsed_s`` of its ``total_s`` seconds."""
    total = max(1, round(total_s))
    done = total if final else min(int(elapsed_s), total - 1)
    progress.update(IDLE, done, total, "the machine at rest, before any variant")


def phase(progress: Progress, variant: Variant, name: str, message: str = "") -> None:
    """Variant ``variant`` began phase ``name`` (or reports within it: ``message``)."""
    total = len(VARIANT_PHASES)
    done = total if name == "end" else VARIANT_PHASES.index(name)
    text = PHASE_TITLES.get(name, "measured; the process exits")
    progress.update(variant.label, done, total, f"{text}: {message}" if message else text)


def unavailable(progress: Progress, variant: Variant, reason: str) -> None:
    # the first clause only: the whole reason (install hints) is in the report and results
    short = reason.split(";")[0]
    progress.update(
        variant.label, len(VARIANT_PHASES), len(VARIANT_PHASES), UNAVAILABLE_PREFIX + short
    )


def failed(progress: Progress, variant: Variant, error: str) -> None:
    progress.update(variant.label, len(VARIANT_PHASES), len(VARIANT_PHASES), FAILED_PREFIX + error)


def report(progress: Progress, done: int, message: str) -> None:
    progress.update(REPORT, done, 1, message)


@dataclass(frozen=True)
class Step:
    """What one progress event says: ``variant`` is a key of :data:`VARIANTS`, "idle" or
    None (the report); ``phase`` one of :data:`PHASES`, "idle", "unavailable", "failed",
    "report" or "done"."""

    variant: str | None
    phase: str
    message: str
    finished: bool


_BY_LABEL = {v.label: v.key for v in VARIANTS.values()}


def read(event: ProgressEvent) -> Step | None:
    """The benchmark step an event reports, or None for an event of something else."""
    if event.stage == IDLE:
        return Step("idle", "idle", event.message, event.fraction == 1.0)
    if event.stage == REPORT:
        done = event.total is not None and event.done >= event.total
        return Step(None, "done" if done else "report", event.message, done)
    key = _BY_LABEL.get(event.stage)
    if key is None:
        return None
    if event.message.startswith(UNAVAILABLE_PREFIX):
        name = "unavailable"
    elif event.message.startswith(FAILED_PREFIX):
        name = "failed"
    else:
        name = PHASES[min(event.done, len(PHASES) - 1)]
    return Step(key, name, event.message, name in ("end", "unavailable", "failed"))
