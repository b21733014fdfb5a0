"""The report's tables, each built once from a :class:`BenchResult` (the summary that
opens the report, and that the command line and the window show, is in :mod:`.summary`).

Each power, FPS/W and energy cell is flagged ``estimated`` when the power is a model.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from phytoscope.bench.config import UNAVAILABLE
from phytoscope.bench.results import BenchResult, Power, ProcessShare, VariantResult
from phytoscope.bench.table import Cell, Table, fmt, power_cell

STUDY_COLUMNS = (("tf_base", "TF base"), ("trt_fp32", "TRT FP32"), ("trt_fp16", "TRT FP16"))


# -- the report's sections --------------------------------------------------------------


def _both(v: VariantResult, name: str, digits: int, scale: float = 1.0) -> str:
    power = v.power or Power()
    machine = fmt(getattr(power, name), digits, scale)
    share = power.process_share
    return f"{machine} / {fmt(getattr(share, name), digits, scale)}" if share else machine


def _power(v: VariantResult) -> Power:
    return v.power or Power()


def _share(v: VariantResult) -> ProcessShare | None:
    return _power(v).process_share


def _latency_b1(v: VariantResult) -> str:
    lat = v.engine[1].latency_ms if 1 in v.engine else None
    return " / ".join(fmt(getattr(lat, q) if lat else None, 2) for q in ("p50", "p95", "p99"))


def _comparison_rows(
    result: BenchResult,
) -> list[tuple[str, str | None, Callable[[VariantResult], str]]]:
    est = result.power_word
    both = " [machine / this process's CPU share]" if any(_share(v) for v in result.ran) else ""
    return [
        ("top-1 accuracy (%)", "accuracy_pct", lambda v: fmt(_top1(v), 1, 100)),
        (
            "throughput, engine, best batch (FPS)",
            "fps",
            lambda v: f"{fmt(v.fps)} (b{v.best_batch})",
        ),
        ("throughput, engine, batch 1 (FPS)", None, lambda v: fmt(v.fps_batch1)),
        ("throughput, end-to-end, best batch (FPS)", None, lambda v: fmt(v.e2e_fps)),
        ("latency batch 1 p50 / p95 / p99 (ms)", None, _latency_b1),
        (
            "peak memory (% of RAM; study: system, here: process RSS)",
            "peak_memory_pct",
            lambda v: fmt(v.memory.peak_rss_pct_ram if v.memory else None, 1),
        ),
        ("peak RSS (MiB)", None, lambda v: fmt(_rss(v), 0, 1 / 2**20)),
        (
            f"average power, whole run (mW){est}{both}",
            "avg_power_total_mw",
            lambda v: _both(v, "mean_w_whole_run", 0, 1e3),
        ),
        (
            f"average power, inference phase (mW){est}{both}",
            "avg_power_inference_mw",
            lambda v: _both(v, "mean_w_inference", 0, 1e3),
        ),
        (
            f"FPS/W, whole run{est}{both}",
            "fps_per_w_total",
            lambda v: _both(v, "fps_per_w_whole_run", 2),
        ),
        (
            f"FPS/W, inference phase{est}{both}",
            "fps_per_w_inference",
            lambda v: _both(v, "fps_per_w_inference", 2),
        ),
        (
            f"energy per image, engine (mJ; gross / net of idle){est}",
            None,
            lambda v: _pair(
                _power(v), "energy_per_image_engine_j", "energy_per_image_engine_net_j"
            ),
        ),
        (
            f"energy per image, end-to-end (mJ; gross / net of idle){est}",
            None,
            lambda v: _pair(_power(v), "energy_per_image_e2e_j", "energy_per_image_e2e_net_j"),
        ),
        (
            "energy per image, engine / end-to-end, this process's CPU share (mJ, estimated)",
            None,
            lambda v: _pair(_share(v), "energy_per_image_engine_j", "energy_per_image_e2e_j"),
        ),
    ]


def _pair(figures: Power | ProcessShare | None, a: str, b: str) -> str:
    return " / ".join(fmt(getattr(figures, k, None), 1, 1e3) for k in (a, b))


def _top1(v: VariantResult) -> float | None:
    return v.accuracy.top1 if v.accuracy else None


def _rss(v: VariantResult) -> float | None:
    return v.memory.peak_rss_bytes if v.memory else None


def _study_digits(key: str | None) -> int:
    if key and "fps_per_w" in key:
        return 2
    if key and key.endswith("_mw"):
        return 0
    return 0 if key in ("fps", "accuracy_pct") else 1


def comparison_table(result: BenchResult) -> Table:
    """The study's Table 2 beside this run (one column per variant that ran here)."""
    study = result.study.variants
    ok = result.ran
    headers = [
        "metric",
        *(f"study: {name}" for _, name in STUDY_COLUMNS),
        *(f"here: {v.label}" for v in ok),
    ]
    rows: list[list[Cell | str]] = []
    for title, key, here in _comparison_rows(result):
        study_cells = [
            fmt(getattr(study[s], key), _study_digits(key)) if key and s in study else "—"
            for s, _ in STUDY_COLUMNS
        ]
        power_row = any(w in title for w in ("power", "FPS/W", "energy"))
        here_cells = [Cell(here(v), estimated=power_row and v.estimated) for v in ok]
        rows.append([title, *study_cells, *here_cells])
    return Table.of(headers, rows)


def findings_table(result: BenchResult) -> Table:
    return Table.of(
        ["finding", "study", "here", "verdict"],
        [[f.claim, f.study, f.here, Cell(f.verdict, strong=True)] for f in result.findings],
    )


def variants_table(result: BenchResult) -> Table:
    rows: list[list[Cell | str]] = []
    for v in result.variants:
        tone = "" if v.ok else ("muted" if v.status == UNAVAILABLE else "error")
        detail = v.reason or (v.model.label if v.model else "")
        rows.append([v.label, Cell(v.status_text, tone=tone), detail])
    return Table.of(["variant", "status", "detail"], rows)


def phase_table(result: BenchResult) -> Table:
    headers = [
        "variant",
        "1 load (s)",
        "2 first batch (s)",
        "3 warm-up (s)",
        "warm-up calls (stable?)",
        "4 engine rounds (s)",
        "4 end-to-end (s)",
        "whole run (s)",
        "other processes' CPU, median / p95 (% of a core)",
    ]
    rows: list[list[Cell | str]] = []
    for v in result.ran:
        p, w, load = v.phases_s, v.warmup, v.other_load
        calls = f"{w.iterations} ({'yes' if w.stable else 'no, capped'})" if w else "— (no, capped)"
        rows.append(
            [
                v.label,
                *(fmt(x, 2) for x in (p.load, p.first_batch, p.warmup)),
                calls,
                *(fmt(x, 1) for x in (p.measured, p.measured_e2e, p.whole_run)),
                " / ".join(
                    fmt(x, 0)
                    for x in (
                        load.cpu_percent_of_a_core_median if load else None,
                        load.cpu_percent_of_a_core_p95 if load else None,
                    )
                ),
            ]
        )
    return Table.of(headers, rows)


def batch_table(result: BenchResult) -> Table:
    headers = [
        "variant",
        "batch",
        "throughput median (FPS)",
        "IQR (FPS)",
        "rounds",
        "latency/call p50 (ms)",
        "p95",
        "p99",
        "calls",
    ]
    rows: list[list[Cell | str]] = []
    for v in result.ran:
        for e in v.batches:
            t, lat = e.throughput_fps, e.latency_ms
            mark = " (best)" if e.batch_size == v.best_batch else ""
            rows.append(
                [
                    v.label,
                    f"{e.batch_size}{mark}",
                    Cell(fmt(t.median), t.median),
                    fmt(t.iqr),
                    str(t.n),
                    fmt(lat.p50, 2),
                    fmt(lat.p95, 2),
                    fmt(lat.p99, 2),
                    str(lat.n),
                ]
            )
    return Table.of(headers, rows)


def e2e_table(result: BenchResult) -> Table:
    headers = [
        "variant",
        "batch",
        "engine-only (FPS)",
        "end-to-end (FPS)",
        "images",
        "decode %",
        "pre-processing %",
        "inference + softmax %",
        "latency/call p50 / p95 (ms)",
    ]
    rows: list[list[Cell | str]] = []
    for v in result.ran:
        seen = set()
        for name in ("batch1", "best"):
            e = v.e2e.get(name)
            if e is None or e.batch_size in seen:
                continue
            seen.add(e.batch_size)
            engine = v.engine.get(e.batch_size)
            share, lat = e.time_share, e.latency_ms_per_call
            rows.append(
                [
                    v.label,
                    str(e.batch_size),
                    fmt(engine.throughput_fps.median if engine else None),
                    fmt(e.fps),
                    str(e.images),
                    fmt(share.decode, 0, 100),
                    fmt(share.preprocess, 0, 100),
                    fmt(share.inference, 0, 100),
                    f"{fmt(lat.p50, 2)} / {fmt(lat.p95, 2)}",
                ]
            )
    return Table.of(headers, rows)


def accuracy_table(result: BenchResult) -> Table:
    rows: list[list[Cell | str]] = []
    for v in result.ran:
        a, acc = v.agreement, v.accuracy
        rows.append(
            [
                v.label,
                fmt(acc.top1 if acc else None, 2, 100),
                f"{acc.correct}/{acc.n}" if acc else "—",
                fmt(a.top1_agreement, 2, 100) if a else "(base)",
                fmt(a.max_prob_diff, 4) if a else "—",
                str(a.flips) if a else "—",
            ]
        )
    headers = [
        "variant",
        "top-1 accuracy (%)",
        "correct",
        "top-1 agreement with base (%)",
        "max probability difference",
        "images that flip",
    ]
    return Table.of(headers, rows)


def flips_table(result: BenchResult, limit: int = 30) -> Table:
    flips = [(v.label, f) for v in result.ran if v.agreement for f in v.agreement.flipped_images]
    return Table.of(
        ["variant", "image", "label", "base (p)", "this (p)"],
        [
            [
                k,
                Path(f.image).name,
                f.label,
                f"{f.base} ({f.base_p:.3f})",
                f"{f.this} ({f.this_p:.3f})",
            ]
            for k, f in flips[:limit]
        ],
    )


def memory_power_table(result: BenchResult) -> Table:
    est = result.power_word
    rows: list[list[Cell | str]] = []
    for v in result.ran:
        p, m = _power(v), v.memory
        kind = "estimated" if p.estimated else ("measured" if p.estimated is False else "—")
        rows.append(
            [
                v.label,
                fmt(m.peak_rss_bytes if m else None, 0, 1 / 2**20),
                fmt(m.peak_rss_pct_ram if m else None, 1),
                fmt(m.peak_system_ram_pct if m else None, 1),
                power_cell(fmt(p.mean_w_whole_run, 2), v.estimated),
                power_cell(fmt(p.mean_w_inference, 2), v.estimated),
                power_cell(fmt(p.energy_whole_run_j, 1), v.estimated),
                kind,
            ]
        )
    headers = [
        "variant",
        "peak RSS (MiB)",
        "peak RSS (% RAM)",
        "peak system RAM used (%)",
        f"mean power whole run (W){est}",
        f"mean power inference (W){est}",
        f"energy whole run (J){est}",
        "power",
    ]
    return Table.of(headers, rows)


def classes_table(result: BenchResult) -> Table:
    return Table.of(
        ["class", "images"], [[k, str(n)] for k, n in result.labelled_set.classes.items()]
    )


def machine_table(result: BenchResult) -> Table:
    m = result.machine
    load = f"{_listed(m.load_average)} / {_listed(m.load_average_end)}"
    return Table.of(
        ["", ""],
        [
            ["CPU", f"{m.cpu} ({m.logical_cpus} logical, {m.physical_cpus} physical)"],
            ["RAM", fmt((m.ram_total_bytes or 0) / 2**30, 1) + " GiB"],
            ["platform", str(m.platform)],
            ["load average at start / end", load],
            *[[k, str(v)] for k, v in result.versions.items() if v],
        ],
    )


def _listed(values: tuple[float, ...] | None) -> str:
    """As schema 1's report printed a load average (a Python list)."""
    return str(list(values)) if values is not None else "None"


__all__ = [
    "accuracy_table",
    "batch_table",
    "classes_table",
    "comparison_table",
    "e2e_table",
    "findings_table",
    "flips_table",
    "machine_table",
    "memory_power_table",
    "phase_table",
    "variants_table",
]
