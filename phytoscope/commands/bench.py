"""``phytoscope bench``: the performance-watt study (Meireles et al., SAC '23) on this machine."""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from phytoscope.bench.config import VARIANTS

HELP = "benchmark every model form (TensorFlow, ONNX Runtime FP32/INT8, TensorRT) for speed, memory and energy"


def _csv_ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, not {text!r}"
        ) from exc
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError("batch sizes must be integers >= 1")
    return values


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a fast look: 3 short rounds, batch 1 and 16, 100 labelled images, 5 s idle",
    )
    parser.add_argument(
        "--model", help="model card, model file or folder (default: the installed models)"
    )
    parser.add_argument(
        "--images",
        type=Path,
        help="labelled images, one sub-folder per class (default: the model's recorded test split)",
    )
    parser.add_argument(
        "--data-root",
        type=Path,
        help="where the model's recorded test split's image paths resolve (default: the dataset named in its card)",
    )
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help=f"comma-separated, from {', '.join(VARIANTS)} (default: all; missing ones are "
        "reported as not available here)",
    )
    parser.add_argument(
        "--out", type=Path, help="output folder (default: <data dir>/bench/<machine>-<time>)"
    )
    parser.add_argument(
        "--batch-sizes", type=_csv_ints, help="engine-only batch sizes (default 1,8,32; quick 1,16)"
    )
    parser.add_argument("--rounds", type=int, help="measured rounds (default 5; quick 3)")
    parser.add_argument(
        "--round-seconds", type=float, help="seconds per batch size per round (default 3; quick 1)"
    )
    parser.add_argument(
        "--warmup-cap", type=float, help="longest warm-up in seconds (default 30; quick 5)"
    )
    parser.add_argument(
        "--idle", type=float, help="idle-baseline seconds before the variants (default 20; quick 5)"
    )
    parser.add_argument(
        "--limit", type=int, help="at most this many labelled images (stratified; quick: 100)"
    )
    parser.add_argument(
        "--rate", type=float, default=4.0, help="telemetry samples per second (default 4)"
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: its default)"
    )
    parser.add_argument(
        "--cpu-tdp",
        type=float,
        help="rated CPU power (W) for the power estimate where no sensor exists (default: telemetry's)",
    )
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument(
        "--note",
        action="append",
        default=[],
        help="a note for the report, e.g. 'machine shared with a training job' (repeatable)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print results.json to stdout at the end"
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bars on stderr (default: when stderr is a terminal; otherwise one "
        "line per phase)",
    )
    parser.add_argument(
        "--report-from",
        type=Path,
        metavar="DIR",
        help="rewrite the findings and report of a finished run in DIR from its results.json "
        "(measures nothing; reads results of earlier phytoscope versions)",
    )


class _PhaseLines:
    """Progress as one timestamped line per phase, for logs and pipes (no bars there)."""

    def __init__(self) -> None:
        self._last: tuple[str, int, str] | None = None

    def __call__(self, event: Any) -> None:
        key = (event.stage, event.done, event.message)
        if key == self._last or (event.stage == "idle baseline" and 0 < event.done < event.total):
            return
        self._last = key
        stamp = time.strftime("%H:%M:%S")
        print(f"{stamp} [{event.stage}] {event.message}", file=sys.stderr, flush=True)


def _config(args: argparse.Namespace) -> Any:
    from phytoscope.bench.config import BenchConfig
    from phytoscope.bench.machine import machine_name
    from phytoscope.config import data_dir

    overrides = {
        key: value
        for key, value in (
            ("batch_sizes", args.batch_sizes),
            ("rounds", args.rounds),
            ("round_s", args.round_seconds),
            ("warmup_cap_s", args.warmup_cap),
            ("idle_s", args.idle),
            ("limit", args.limit),
        )
        if value is not None
    }
    out = args.out or data_dir() / "bench" / f"{machine_name()}-{time.strftime('%Y%m%d-%H%M%S')}"
    common: dict[str, Any] = dict(
        model=Path(args.model) if args.model else None,
        images=args.images,
        data_root=args.data_root,
        variants=tuple(v.strip() for v in args.variants.split(",") if v.strip()),
        rate_hz=args.rate,
        threads=args.threads,
        cpu_tdp_w=args.cpu_tdp,
        plots=not args.no_plots,
        notes=tuple(args.note),
        command_line="phytoscope " + shlex.join(sys.argv[1:])
        if sys.argv[1:]
        else "phytoscope bench",
    )
    if args.quick:
        return BenchConfig.quick_settings(out, **common, **overrides)
    return BenchConfig(out_dir=Path(out), **common, **overrides)


def print_summary(result: Any) -> None:
    """The warnings, the summary table (variants side by side) and what did not run."""
    from phytoscope.bench.notes import notices
    from phytoscope.bench.summary import summary_table
    from phytoscope.bench.table import render_text

    for notice in notices(result):
        print(textwrap.fill(f"! {notice.title}{notice.text}", 100, subsequent_indent="  "))
        print()
    table = summary_table(result)
    ran = [v.ok for v in result.variants]
    if any(ran):
        width = max(100, shutil.get_terminal_size((100, 24)).columns)
        print(render_text(table.where(ran).transposed(), width=width))
    for v in result.variants:
        if not v.ok:
            print(f"{v.label}: {v.status_text}: {v.reason}")


def run(args: argparse.Namespace) -> int:
    from phytoscope.bench import stages
    from phytoscope.bench.output import rerender
    from phytoscope.bench.runner import run_benchmark
    from phytoscope.commands.progressbar import terminal_progress
    from phytoscope.errors import ExitCode
    from phytoscope.progress import Progress

    if args.report_from is not None:
        _, files = rerender(args.report_from)
        print(f"report: {files['report_md']}")
        return ExitCode.OK
    config = _config(args)
    bars = sys.stderr.isatty() if args.progress is None else args.progress
    if bars:
        with terminal_progress(True, units=stages.UNITS) as progress:
            report = run_benchmark(config, progress)
    else:
        report = run_benchmark(config, Progress(_PhaseLines()))
    result = report.result
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print_summary(result)
        print(f"report: {report.files.get('report_md')}")
    if report.failed:
        return ExitCode.PARTIAL
    if not result.ran:
        print("phytoscope: no variant could run here (see the reasons above)", file=sys.stderr)
        return ExitCode.UNAVAILABLE
    return ExitCode.OK
