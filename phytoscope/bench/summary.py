"""The summary table: one row per variant, the table the command line prints, the
window's Benchmark page shows and the report opens with.

Each throughput and energy column says whether it is engine-only or end-to-end; the spread
of the measured rounds sits beside the median; power, FPS/W and energy cells are flagged
``estimated`` (with the reason) when the power is a model rather than a sensor.
"""

from __future__ import annotations

from dataclasses import replace

from phytoscope.bench.config import UNAVAILABLE
from phytoscope.bench.results import BenchResult, Power, VariantResult
from phytoscope.bench.table import (
    E2E,
    ENGINE,
    ESTIMATED_TIP,
    WHOLE_RUN,
    Cell,
    Column,
    Table,
    fmt,
    power_cell,
)


def _est(text: str, v: VariantResult, value: float | None = None) -> Cell:
    return power_cell(text, v.estimated, value)


def _with_share(
    v: VariantResult, name: str, digits: int, scale: float = 1.0, label: str = "own CPU share"
) -> Cell:
    power = v.power or Power()
    value = getattr(power, name)
    text = fmt(value, digits, scale)
    share = power.process_share
    if share is not None and getattr(share, name, None) is not None:
        text += f" ({label} {fmt(getattr(share, name), digits, scale)})"
    return _est(text, v, value)


def _spread_cell(v: VariantResult) -> Cell:
    best = v.best
    if best is None or best.throughput_fps.n == 0:
        return Cell("—")
    s = best.throughput_fps
    return Cell(
        f"IQR {fmt(s.iqr)}; {fmt(s.min)}–{fmt(s.max)}",
        s.relative_iqr,
        tooltip=f"over {s.n} rounds of the best batch size ({v.best_batch}): "
        f"quartiles {fmt(s.q1)}–{fmt(s.q3)} img/s, range {fmt(s.min)}–{fmt(s.max)} img/s",
    )


SUMMARY_COLUMNS = (
    Column("variant"),
    Column("status"),
    Column("top-1 accuracy (%)", "top-1\n(%)"),
    Column(
        "throughput, engine-only, best batch (img/s, median of rounds)",
        "engine-only\nbest batch\n(img/s, median)",
        ENGINE,
    ),
    Column(
        "spread over rounds, engine-only best batch (IQR; min–max img/s)",
        "spread over rounds\n(IQR; min–max)",
        ENGINE,
    ),
    Column("throughput, engine-only, batch 1 (img/s)", "engine-only\nbatch 1\n(img/s)", ENGINE),
    Column(
        "throughput, end-to-end, best batch (img/s, one pass)",
        "end-to-end\nbest batch\n(img/s, 1 pass)",
        E2E,
    ),
    Column(
        "latency, engine-only, batch 1, p50 / p95 / p99 (ms)",
        "latency batch 1\np50 / p95 / p99 (ms)",
        ENGINE,
    ),
    Column("peak RSS (MiB)", "peak RSS\n(MiB)"),
    Column(
        "mean power, whole run / phase 4 (W)", "power (W)\nwhole run /\nphase 4", WHOLE_RUN, True
    ),
    Column(
        "FPS/W, engine-only best-batch throughput ÷ phase-4 power",
        "FPS/W\nengine-only ÷\nphase-4 power",
        ENGINE,
        True,
    ),
    Column("energy per image, engine-only (mJ)", "energy/image\nengine-only\n(mJ)", ENGINE, True),
    Column("energy per image, end-to-end (mJ)", "energy/image\nend-to-end\n(mJ)", E2E, True),
)


def _summary_row(v: VariantResult) -> list[Cell]:
    tone = "" if v.ok else ("muted" if v.status == UNAVAILABLE else "error")
    head = [Cell(v.label, tone=tone, tooltip=v.reason or ""), Cell(v.status_text, tone=tone)]
    if not v.ok:
        # the first clause (what is missing); the install hints are in the tooltip and report
        reason = Cell((v.reason or "").split(";")[0], tone=tone, tooltip=v.reason or "")
        return [*head, reason, *(Cell("", tone=tone) for _ in SUMMARY_COLUMNS[3:])]
    lat = v.engine[1].latency_ms if 1 in v.engine else None
    power = v.power or Power()
    return [
        *head,
        Cell(fmt(v.accuracy.top1 if v.accuracy else None, 1, 100)),
        Cell(f"{fmt(v.fps)} (b{v.best_batch})", v.fps),
        _spread_cell(v),
        Cell(fmt(v.fps_batch1), v.fps_batch1),
        Cell(fmt(v.e2e_fps), v.e2e_fps),
        Cell(" / ".join(fmt(getattr(lat, q) if lat else None, 2) for q in ("p50", "p95", "p99"))),
        Cell(fmt(v.memory.peak_rss_bytes / 2**20 if v.memory else None, 0)),
        _est(f"{fmt(power.mean_w_whole_run, 2)} / {fmt(power.mean_w_inference, 2)}", v),
        _with_share(v, "fps_per_w_inference", 2, label="own"),
        _with_share(v, "energy_per_image_engine_j", 1, 1e3),
        _with_share(v, "energy_per_image_e2e_j", 1, 1e3),
    ]


def summary_table(result: BenchResult) -> Table:
    """One row per variant: accuracy, throughput with its spread over rounds, latency,
    memory, power, FPS/W and energy — each figure's scope in its column."""
    caption = (
        "Engine-only: inference on pre-processed tensors, median of the measured rounds. "
        "End-to-end: decoding + pre-processing + inference over the labelled images, one pass."
    )
    if result.estimated:
        caption += " Power, FPS/W and energy are ESTIMATED (CPU load × rated power)."
    columns = [_power_column(c, result.estimated) if c.estimated else c for c in SUMMARY_COLUMNS]
    return Table.of(columns, [_summary_row(v) for v in result.variants], caption)


def _power_column(column: Column, estimated: bool) -> Column:
    """A power-derived column says "estimated" in its header when the power is a model."""
    if not estimated:
        return replace(column, estimated=False)
    return replace(
        column,
        title=column.title + " (estimated)",
        short=column.short + "\n(estimated)",
        tooltip=ESTIMATED_TIP,
    )
