"""``phytoscope bench``: the performance-watt study (Meireles et al., SAC '23) on this machine."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

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
    from phytoscope.bench.runner import VARIANTS

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
        "--report-from",
        type=Path,
        metavar="DIR",
        help="rewrite the findings and report of a finished run in DIR from its results.json "
        "(measures nothing)",
    )


def _progress(event: object) -> None:
    from phytoscope.bench.runner import BenchProgress

    assert isinstance(event, BenchProgress)
    where = f"[{event.index + 1}/{event.total}] {event.variant}" if event.variant else "[bench]"
    stamp = time.strftime("%H:%M:%S")
    print(
        f"{stamp} {where}: {event.phase}{' - ' + event.message if event.message else ''}",
        file=sys.stderr,
        flush=True,
    )


def run(args: argparse.Namespace) -> int:
    import json

    from phytoscope.bench.runner import BenchConfig, machine_name, run_benchmark
    from phytoscope.config import data_dir
    from phytoscope.errors import ExitCode

    if args.report_from is not None:
        from phytoscope.bench.report import rerender

        files = rerender(args.report_from)
        print(f"report: {files['report_md']}")
        return ExitCode.OK
    variants = tuple(v.strip() for v in args.variants.split(",") if v.strip())
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
    common = dict(
        model=Path(args.model) if args.model else None,
        images=args.images,
        data_root=args.data_root,
        variants=variants,
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
        config = BenchConfig.quick_settings(out, **common, **overrides)
    else:
        config = BenchConfig(out_dir=Path(out), **common, **overrides)
    report = run_benchmark(config, progress=_progress)
    results = report.results
    if args.json:
        print(json.dumps(results, indent=2, default=str))
    else:
        for v in results["variants"]:
            if v["status"] == "ok":
                power = v["power"]
                word = " (estimated)" if power.get("estimated") else ""
                e = power.get("energy_per_image_engine_j")
                own = (power.get("process_share") or {}).get("energy_per_image_engine_j")
                energy = "-" if e is None else f"{1e3 * e:.1f}"
                if own is not None:
                    energy += f" (own CPU share {1e3 * own:.1f})"
                print(
                    f"{v['label']:<26} acc {100 * v['accuracy']['top1']:5.1f} %  "
                    f"{v['fps']:7.1f} img/s (batch {v['best_batch']}), e2e {v['e2e_fps']:6.1f} img/s, "
                    f"peak RSS {v['memory']['peak_rss_bytes'] / 2**20:5.0f} MiB, "
                    f"{energy} mJ/img{word}"
                )
            else:
                state = "not available here" if v["status"] == "unavailable" else "FAILED"
                print(f"{v['label']:<26} {state}: {v.get('reason')}")
        print(f"report: {report.files.get('report_md')}")
    if report.failed:
        return ExitCode.PARTIAL
    if not any(v["status"] == "ok" for v in results["variants"]):
        print("phytoscope: no variant could run here (see the reasons above)", file=sys.stderr)
        return ExitCode.UNAVAILABLE
    return ExitCode.OK
