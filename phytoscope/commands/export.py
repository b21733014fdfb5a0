"""``phytoscope export MODEL``: ONNX FP32, ONNX INT8 and Keras forms, each with its card."""

from __future__ import annotations

import argparse
from pathlib import Path

from phytoscope import config as cfg
from phytoscope.errors import ExitCode
from phytoscope.modelcard import card_path_for
from phytoscope.training.export import FORMS, export_all

HELP = "export a trained Keras model to ONNX FP32, ONNX INT8 (calibrated) and Keras, each with its card"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model", type=Path, help="the trained Keras model (genus.keras) or its card"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("models"), help="output folder (default models/)"
    )
    parser.add_argument(
        "--forms",
        default="onnx,int8,keras",
        help="comma-separated forms to write: onnx, int8, keras (default all)",
    )
    parser.add_argument(
        "--split",
        type=Path,
        help="split CSV for test accuracy and INT8 calibration (default: the card's)",
    )
    parser.add_argument(
        "--data-root",
        type=Path,
        help="folder the split's image paths are relative to (the training dataset's folder)",
    )
    parser.add_argument(
        "--calibration-images",
        type=int,
        default=300,
        help="training images used to calibrate INT8 (default 300)",
    )
    parser.add_argument(
        "--calibration-method",
        choices=("auto", "minmax", "minmax-average", "percentile", "entropy"),
        default="auto",
        help="INT8 activation-range calibration; auto (default) tries minmax, "
        "minmax-average and percentile and keeps the one closest to FP32 on "
        "the validation split",
    )
    parser.add_argument("--cache", type=Path, help="folder for prepared image arrays")


def run(args: argparse.Namespace) -> int:
    forms = tuple(f.strip() for f in args.forms.split(",") if f.strip())
    bad = [f for f in forms if f not in FORMS]
    if bad:
        print(f"phytoscope: unknown form(s) {', '.join(bad)}; choose from {', '.join(FORMS)}")
        return ExitCode.USAGE
    card_path = args.model if args.model.suffix == ".json" else card_path_for(args.model)
    results = export_all(
        card_path,
        args.out,
        dataset_root=args.data_root,
        split_file=args.split,
        forms=forms,
        calibration_images=args.calibration_images,
        cache_dir=args.cache or cfg.cache_dir() / "training",
        progress=lambda message: print(message, flush=True),
        int8_method=args.calibration_method,
    )
    print(f"{'form':6s} {'file':22s} {'size MB':>8s} {'test top-1':>10s}")
    for r in results:
        path = r.card.model_path
        top1 = f"{r.test_top1:.4f}" if r.test_top1 is not None else "not measured"
        print(f"{r.form:6s} {path.name:22s} {path.stat().st_size / 1e6:8.1f} {top1:>10s}")
    measured = [r for r in results if r.test_top1 is not None]
    if measured:
        sources = sorted({s for r in measured for s in r.per_source})
        print("per source (test top-1): " + ", ".join(r.form for r in measured))
        for s in sources:
            print(
                f"  {s:32s} "
                + "  ".join(
                    f"{r.per_source.get(s, {}).get('top1', float('nan')):.4f}" for r in measured
                )
            )
    return ExitCode.OK
