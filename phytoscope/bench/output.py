"""A benchmark's output folder: timelines (CSV), ``results.json``, ``summary.csv``, plots
(PNG, when matplotlib is installed) and the report (Markdown and HTML)."""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from phytoscope.bench.findings import findings
from phytoscope.bench.report import report_blocks, to_html, to_markdown
from phytoscope.bench.results import BenchResult, PlotsInfo, Power, VariantResult

log = logging.getLogger(__name__)

Timelines = dict[str, tuple[Sequence[Any], dict[str, float]]]
"""variant key (or "idle") -> (telemetry samples, phase start times)"""

TIMELINE_FIELDS = (
    "t_s",
    "wall",
    "phase",
    "power_w",
    "power_source",
    "estimated",
    "energy_j",
    "rss_bytes",
    "ram_used_bytes",
    "ram_total_bytes",
    "cpu_percent",
    "process_cpu_percent",
)


def _phase_at(t: float, phases: dict[str, float]) -> str:
    current = ""
    for name, start in sorted(phases.items(), key=lambda kv: kv[1]):
        if t >= start:
            current = name
    return current


def _opt(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def write_timeline(path: Path, samples: Sequence[Any], phases: dict[str, float]) -> Path:
    """One row per telemetry sample, time relative to the first phase, with its phase."""
    t0 = min(phases.values()) if phases else (samples[0].t if samples else 0.0)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(TIMELINE_FIELDS)
        for s in samples:
            writer.writerow(
                [
                    f"{s.t - t0:.3f}",
                    f"{s.wall:.3f}",
                    _phase_at(s.t, phases),
                    _opt(s.power_w, ".4f"),
                    s.power_source,
                    int(bool(s.estimated)),
                    _opt(getattr(s, "energy_j", None), ".4f"),
                    s.rss_bytes,
                    s.ram_used_bytes,
                    s.ram_total_bytes,
                    f"{s.cpu_percent:.1f}",
                    _opt(getattr(s, "process_cpu_percent", None), ".1f"),
                ]
            )
    return path


def _pw(name: str) -> Callable[[VariantResult], Any]:
    return lambda v: getattr(v.power or Power(), name)


def _b1(q: str) -> Callable[[VariantResult], Any]:
    return lambda v: getattr(v.engine[1].latency_ms, q) if 1 in v.engine else None


def _phase(name: str) -> Callable[[VariantResult], Any]:
    return lambda v: getattr(v.phases_s, name)


SUMMARY_FIELDS: tuple[tuple[str, Callable[[VariantResult], Any]], ...] = (
    ("variant", lambda v: v.label),
    ("status", lambda v: v.status),
    ("reason", lambda v: v.reason),
    ("accuracy_top1", lambda v: v.accuracy.top1 if v.accuracy else None),
    ("agreement_top1", lambda v: v.agreement.top1_agreement if v.agreement else None),
    ("max_prob_diff", lambda v: v.agreement.max_prob_diff if v.agreement else None),
    ("best_batch", lambda v: v.best_batch),
    ("fps_engine_best", lambda v: v.fps),
    ("fps_engine_batch1", lambda v: v.fps_batch1),
    ("fps_e2e_best", lambda v: v.e2e_fps),
    ("latency_b1_p50_ms", _b1("p50")),
    ("latency_b1_p95_ms", _b1("p95")),
    ("latency_b1_p99_ms", _b1("p99")),
    ("load_s", _phase("load")),
    ("first_batch_s", _phase("first_batch")),
    ("warmup_s", _phase("warmup")),
    ("measured_s", _phase("measured")),
    ("measured_e2e_s", _phase("measured_e2e")),
    ("peak_rss_bytes", lambda v: v.memory.peak_rss_bytes if v.memory else None),
    ("peak_rss_pct_ram", lambda v: v.memory.peak_rss_pct_ram if v.memory else None),
    ("power_estimated", _pw("estimated")),
    ("power_source", _pw("source")),
    ("mean_power_whole_run_w", _pw("mean_w_whole_run")),
    ("mean_power_inference_w", _pw("mean_w_inference")),
    ("fps_per_w_whole_run", _pw("fps_per_w_whole_run")),
    ("fps_per_w_inference", _pw("fps_per_w_inference")),
    ("energy_per_image_engine_j", _pw("energy_per_image_engine_j")),
    ("energy_per_image_engine_net_j", _pw("energy_per_image_engine_net_j")),
    ("energy_per_image_e2e_j", _pw("energy_per_image_e2e_j")),
    ("energy_per_image_e2e_net_j", _pw("energy_per_image_e2e_net_j")),
    # added after schema 1's columns, so positional readers of older files still work
    ("fps_engine_best_iqr", lambda v: v.best.throughput_fps.iqr if v.best else None),
    ("fps_engine_best_min", lambda v: v.best.throughput_fps.min if v.best else None),
    ("fps_engine_best_max", lambda v: v.best.throughput_fps.max if v.best else None),
)


def write_summary_csv(path: Path, result: BenchResult) -> Path:
    """One row per variant; power columns are estimates when ``power_estimated`` is 1;
    ``fps_engine_best`` is the median of the rounds, with their IQR, min and max beside."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["key", *(name for name, _ in SUMMARY_FIELDS)])
        for v in result.variants:
            row: list[Any] = [v.key]
            for _, get in SUMMARY_FIELDS:
                value = get(v)
                row.append(
                    "" if value is None else (int(value) if isinstance(value, bool) else value)
                )
            writer.writerow(row)
    return path


def _write_plots(
    result: BenchResult, timelines: Timelines, out_dir: Path, plots: bool
) -> tuple[PlotsInfo, dict[str, str]]:
    if not plots:
        return PlotsInfo(False, "plots were switched off"), {}
    try:
        from phytoscope.bench.plots import write_plots  # matplotlib is optional
    except ImportError as exc:
        return PlotsInfo(False, f"plots need matplotlib ({exc}); pip install matplotlib"), {}
    images = write_plots(result, timelines, out_dir)
    return PlotsInfo(True, files=images), images


def write_report(result: BenchResult, out_dir: Path, images: dict[str, str]) -> dict[str, Path]:
    """``report.md`` and ``report.html`` from the same blocks."""
    blocks = report_blocks(result, images)
    md, page = out_dir / "report.md", out_dir / "report.html"
    md.write_text(to_markdown(blocks), encoding="utf-8")
    page.write_text(to_html(blocks, title="phytoscope benchmark"), encoding="utf-8")
    return {"report_md": md, "report_html": page}


def write_all(
    result: BenchResult, timelines: Timelines, out_dir: Path, plots: bool = True
) -> tuple[BenchResult, dict[str, Path]]:
    """Every output file; returns the result with its plots recorded, and the files."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    for key, (samples, phases) in timelines.items():
        files[f"timeline_{key}"] = write_timeline(out_dir / f"timeline_{key}.csv", samples, phases)
    files["summary_csv"] = write_summary_csv(out_dir / "summary.csv", result)
    info, images = _write_plots(result, timelines, out_dir, plots)
    result = replace(result, plots=info)
    files.update({f"plot_{k}": out_dir / v for k, v in images.items()})
    files["results"] = result.save(out_dir / "results.json")
    files.update(write_report(result, out_dir, images))
    return result, files


def rerender(out_dir: Path) -> tuple[BenchResult, dict[str, Path]]:
    """Rewrite the findings, ``results.json``, ``summary.csv``, the bar plots and the
    Markdown/HTML report of a finished run from its ``results.json`` (the timeline plots,
    which need the telemetry samples, are kept): for a report written by an older
    phytoscope, without measuring again."""
    out_dir = Path(out_dir)
    result = BenchResult.load(out_dir / "results.json")
    result = replace(result, findings=findings(result))
    images = dict(result.plots.files) if result.plots.written else {}
    if images:
        try:
            from phytoscope.bench.plots import bar_plots  # matplotlib is optional
        except ImportError:
            log.info("matplotlib missing: the bar plots of %s are kept as they were", out_dir)
        else:
            images.update(bar_plots(result, out_dir))
    files = {
        "results": result.save(out_dir / "results.json"),
        "summary_csv": write_summary_csv(out_dir / "summary.csv", result),
    }
    files.update(write_report(result, out_dir, images))
    return result, files
