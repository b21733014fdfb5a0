"""Benchmark plots (matplotlib, Agg canvas: no display and no global backend switch).

Importing this module needs matplotlib; :mod:`phytoscope.bench.report` catches the
ImportError and says "plots need matplotlib" instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from phytoscope.bench.results import BenchResult, Power, VariantResult
from phytoscope.bench.stats import process_share_samples
from phytoscope.bench.table import ESTIMATED_TIP

Timelines = Mapping[str, tuple[Sequence[Any], dict[str, float]]]

PHASE_COLOURS = {
    "load": "#fde0c5",
    "first_batch": "#f9c0c0",
    "warmup": "#fff3b0",
    "measured": "#c8e6c9",
    "measured_e2e": "#b3d9f2",
}
PHASE_NAMES = {
    "load": "1 load",
    "first_batch": "2 first batch",
    "warmup": "3 warm-up",
    "measured": "4 engine",
    "measured_e2e": "4 end-to-end",
}


def _save(fig: Figure, path: Path) -> None:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=90)


def _shade(ax: Any, phases: dict[str, float], t0: float) -> None:
    ordered = sorted(phases.items(), key=lambda kv: kv[1])
    for (name, start), nxt in zip(ordered, [*ordered[1:], (None, None)], strict=True):
        if name not in PHASE_COLOURS or nxt[1] is None:
            continue
        ax.axvspan(
            start - t0,
            nxt[1] - t0,
            color=PHASE_COLOURS[name],
            alpha=0.8,
            lw=0,
            label=PHASE_NAMES[name],
        )


def timeline_plot(
    path: Path,
    title: str,
    samples: Sequence[Any],
    phases: dict[str, float],
    estimated: bool,
    idle_w: float | None,
    own: Sequence[Any] = (),
) -> Path:
    """Power and memory vs time with the phases shaded, like the study's figures 5-9;
    ``own``: samples of the process's share of an estimated power, drawn beside."""
    t0 = min(phases.values()) if phases else (samples[0].t if samples else 0.0)
    t = [s.t - t0 for s in samples]
    fig = Figure(figsize=(9, 5.2))
    ax_p, ax_m = fig.subplots(2, 1, sharex=True)
    word = " (ESTIMATED)" if estimated else ""
    _shade(ax_p, phases, t0)
    _shade(ax_m, phases, t0)
    pw = [(ti, s.power_w) for ti, s in zip(t, samples, strict=True) if s.power_w is not None]
    top = max([b for _, b in pw] + [idle_w or 0.0, 1.0])
    if pw:
        ax_p.plot([a for a, _ in pw], [b for _, b in pw], color="#b71c1c", lw=1.2, label="machine")
    if own:
        ax_p.plot(
            [s.t - t0 for s in own],
            [s.power_w for s in own],
            color="#ef6c00",
            lw=1.2,
            label="this process's CPU share",
        )
    if idle_w is not None:
        ax_p.axhline(idle_w, color="#555", ls="--", lw=1, label="idle baseline")
    ax_p.set_ylim(0, top * 1.35)
    ax_p.set_ylabel(f"power (W){word}")
    ax_p.set_title(f"{title}: power{word} and memory")
    ax_p.legend(loc="upper right", fontsize=7, ncol=4)
    ax_m.plot(
        t, [s.rss_bytes / 2**20 for s in samples], color="#0d47a1", lw=1.2, label="process RSS"
    )
    ax_m.set_ylabel("RSS (MiB)")
    ax_m.set_xlabel("time since the variant's process started (s)")
    ax2 = ax_m.twinx()
    ax2.plot(
        t,
        [100.0 * s.ram_used_bytes / s.ram_total_bytes if s.ram_total_bytes else 0 for s in samples],
        color="#6a1b9a",
        lw=0.8,
        ls=":",
        label="system RAM used",
    )
    ax2.set_ylabel("system RAM used (%)")
    lines = ax_m.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax_m.legend(lines[0][-1:] + lines2[0], lines[1][-1:] + lines2[1], loc="lower right", fontsize=7)
    fig.tight_layout()
    _save(fig, path)
    return path


def bars_plot(
    path: Path,
    title: str,
    labels: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    ylabel: str,
    spread: Sequence[tuple[float, float] | None] = (),
    hatched: bool = False,
) -> Path:
    """Grouped bars; ``spread``: min-max whiskers on the first series (its rounds);
    ``hatched``: the figures are estimates, drawn hatched and said so under the axis."""
    fig = Figure(figsize=(8, 4))
    ax = fig.subplots()
    n = max(1, len(series))
    width = 0.8 / n
    for i, (name, values) in enumerate(series.items()):
        xs = [j + (i - (n - 1) / 2) * width for j in range(len(labels))]
        heights = [v if v is not None else 0.0 for v in values]
        bars = ax.bar(xs, heights, width, label=name, hatch="//" if hatched else None)
        if i == 0 and any(spread):
            _whiskers(ax, xs, heights, spread)
        tops = [
            max(h, s[1]) if i == 0 and s is not None else h
            for h, s in zip(heights, list(spread) or [None] * len(heights), strict=False)
        ]
        for bar, v, top in zip(bars, values, tops, strict=False):
            # above the whisker, so the figure never sits on the spread line
            ax.annotate(
                _label(v),
                (bar.get_x() + bar.get_width() / 2, top),
                ha="center",
                va="bottom",
                fontsize=7,
            )
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7)
    if any(spread):
        fig.text(0.01, 0.01, "whiskers: min–max over the measured rounds", fontsize=7)
    if hatched:
        fig.text(0.99, 0.01, ESTIMATED_TIP.split(":")[0], fontsize=7, ha="right", color="#b71c1c")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    _save(fig, path)
    return path


def _whiskers(
    ax: Any,
    xs: Sequence[float],
    heights: Sequence[float],
    spread: Sequence[tuple[float, float] | None],
) -> None:
    for x, h, s in zip(xs, heights, spread, strict=False):
        if s is not None:
            ax.errorbar(
                [x], [h], yerr=[[h - s[0]], [s[1] - h]], fmt="none", ecolor="#222", capsize=3, lw=1
            )


def write_plots(result: BenchResult, timelines: Timelines, out_dir: Path) -> dict[str, str]:
    """All plots; returns name -> file name (relative to ``out_dir``)."""
    files: dict[str, str] = {}
    for v in result.ran:
        samples, phases = timelines.get(v.key, ([], {}))
        if samples:
            name = f"timeline_{v.key}.png"
            share = v.power.process_share if v.power else None
            cpus = result.machine.logical_cpus or 1
            own = process_share_samples(samples, share.rated_w, cpus) if share else []
            timeline_plot(
                out_dir / name,
                v.label,
                samples,
                phases,
                result.estimated,
                result.idle.mean_power_w,
                own,
            )
            files[f"timeline_{v.key}"] = name
    if result.ran:
        files.update(bar_plots(result, out_dir))
    return files


def _short_label(label: str) -> str:
    return label.replace(" (Keras)", "").replace("ONNX Runtime", "ORT")


def bar_plots(result: BenchResult, out_dir: Path) -> dict[str, str]:
    """Throughput (with the rounds' min-max) and energy per image (hatched when estimated):
    drawn from the results alone, so a re-rendered report gets them in today's style."""
    ok = result.ran
    labels = [_short_label(v.label) for v in ok]
    files = {}
    bars_plot(
        out_dir / "throughput.png",
        "Throughput (images/s, median of rounds)",
        labels,
        {
            "engine, best batch": [v.fps for v in ok],
            "engine, batch 1": [v.fps_batch1 for v in ok],
            "end-to-end, best batch": [v.e2e_fps for v in ok],
        },
        "images per second",
        spread=[_range(v) for v in ok],
    )
    files["throughput"] = "throughput.png"
    word = " (ESTIMATED)" if result.estimated else ""
    energy = {
        "engine, machine": [_mj(v, "energy_per_image_engine_j") for v in ok],
        "engine, machine net of idle": [_mj(v, "energy_per_image_engine_net_j") for v in ok],
        "engine, own CPU share": [_mj(v, "energy_per_image_engine_j", share=True) for v in ok],
        "end-to-end, machine": [_mj(v, "energy_per_image_e2e_j") for v in ok],
        "end-to-end, own CPU share": [_mj(v, "energy_per_image_e2e_j", share=True) for v in ok],
    }
    energy = {k: vals for k, vals in energy.items() if any(x is not None for x in vals)}
    if energy:
        bars_plot(
            out_dir / "energy.png",
            f"Energy per image{word}",
            labels,
            energy,
            f"mJ per image{word}",
            hatched=result.estimated,
        )
        files["energy"] = "energy.png"
    return files


def _range(v: VariantResult) -> tuple[float, float] | None:
    """min-max of the best batch's rounds (whiskers on the engine-only best-batch bar)."""
    s = v.best.throughput_fps if v.best else None
    if s is None or s.min is None or s.max is None:
        return None
    return s.min, s.max


def _mj(v: VariantResult, name: str, share: bool = False) -> float | None:
    power = v.power or Power()
    figures = power.process_share if share else power
    value = getattr(figures, name, None) if figures is not None else None
    return None if value is None else value * 1e3


def _label(v: float | None) -> str:
    if v is None:
        return "—"
    if abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.1f}" if abs(v) >= 0.05 else "0"
