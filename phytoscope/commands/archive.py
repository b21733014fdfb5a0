"""``phytoscope archive``: re-classify trees of IFCB bins and image folders at scale."""

from __future__ import annotations

import argparse
import sys

from phytoscope.commands.progressbar import add_progress_option

HELP = "re-classify an archive of IFCB bins / image folders to Parquet (Ray, resumable)"


def configure(parser: argparse.ArgumentParser) -> None:
    from phytoscope.commands.exports import writable_folder

    parser.add_argument("paths", nargs="+", help="folders, IFCB bins or image files")
    parser.add_argument("--out", required=True, help="output folder (re-running it resumes)")
    parser.add_argument(
        "--runner",
        choices=("auto", "ray", "local"),
        default="auto",
        help="ray: Ray Data actors; local: process pool (default: ray if installed)",
    )
    parser.add_argument(
        "--address", help="existing Ray cluster, e.g. ray://head:10001 (default: local Ray)"
    )
    parser.add_argument("--workers", type=int, help="actors / processes (default: CPU count)")
    parser.add_argument(
        "--backend", default="onnxruntime", help="inference backend for every worker"
    )
    parser.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "int8"))
    parser.add_argument(
        "--model", help="model card, model file or folder (default: installed model)"
    )
    parser.add_argument(
        "--rules", default="scotland_habreports", help="rule set for the alert levels"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--threads-per-worker",
        type=int,
        default=1,
        help="engine threads per worker (workers x threads should not exceed the cores)",
    )
    parser.add_argument(
        "--class-scores",
        type=writable_folder,
        metavar="DIR",
        help="also write <bin>_class.h5 per IFCB bin (IFCB Dashboard class scores v3)",
    )
    add_progress_option(parser)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from phytoscope.commands.progressbar import terminal_progress
    from phytoscope.core.archive import STAGE, ArchiveConfig, run_archive
    from phytoscope.errors import ExitCode

    config = ArchiveConfig(
        out_dir=str(Path(args.out).resolve()),
        backend=args.backend,
        precision=args.precision,
        model=str(Path(args.model).resolve()) if args.model else None,
        rule_set=args.rules,
        batch_size=args.batch_size,
        threads_per_worker=args.threads_per_worker,
        class_scores=str(Path(args.class_scores).resolve()) if args.class_scores else None,
    )
    with terminal_progress(args.progress, units={STAGE: "units"}) as progress:
        summary = run_archive(
            args.paths,
            config,
            runner=args.runner,
            workers=args.workers,
            address=args.address,
            progress=progress,
        )
    for result in summary.failed:
        print(f"failed: {result.key}: {result.error}", file=sys.stderr)
    print(
        f"{summary.planned} units: {summary.skipped_done} already done, {len(summary.results)} processed "
        f"({len(summary.failed)} failed) by {summary.workers} {summary.runner} worker(s); "
        f"{summary.rois} ROIs in {summary.seconds:.1f} s = {summary.rois_per_s:.1f} ROIs/s"
    )
    print(f"results: {summary.out_dir}/rois/bin=*/part-0.parquet, {summary.out_dir}/bins.csv")
    if config.class_scores:
        print(f"class scores: {config.class_scores}/<bin>_class.h5")
    if summary.failed:
        print(f"failures recorded in {summary.out_dir}/failures.jsonl", file=sys.stderr)
        return ExitCode.PARTIAL
    return ExitCode.OK
