"""``phytoscope build-engine``: build (or refresh) the TensorRT engine of an ONNX model.

Engines are also built on first use by ``--backend tensorrt``; this command does it ahead of
time, with progress, so the first classification on a Jetson does not wait minutes.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from phytoscope.backends.options import TrtOptions
from phytoscope.backends.tensorrt import CudaContext, EngineProvider, TensorRTBackend
from phytoscope.backends.tensorrt.build import STAGE
from phytoscope.commands.progressbar import add_progress_option, terminal_progress
from phytoscope.config import models_dir
from phytoscope.errors import ExitCode
from phytoscope.progress import CancelToken

HELP = "build the TensorRT engine (FP32, FP16 or INT8) of an ONNX model and cache it"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model", nargs="?", help="ONNX model, its card or its folder (default: installed model)"
    )
    parser.add_argument(
        "--precision",
        choices=("fp32", "fp16", "int8"),
        default="fp32",
        help="engine precision (default fp32; int8 needs --calibration-images)",
    )
    parser.add_argument(
        "--batch", type=int, default=16, help="largest batch the engine runs (default 16)"
    )
    parser.add_argument(
        "--workspace-mb",
        type=int,
        default=1024,
        help="builder scratch-memory limit in MB (default 1024; try 256-512 on a 4 GB board)",
    )
    parser.add_argument(
        "--dla-core",
        type=int,
        default=None,
        help="build for this DLA core (Jetson Xavier/Orin), layers it cannot run fall back to the GPU",
    )
    parser.add_argument(
        "--calibration-images",
        type=Path,
        default=None,
        help="folder of real images for INT8 calibration (a few hundred)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="engine cache folder (default: the user cache, e.g. ~/.cache/phytoscope/engines)",
    )
    parser.add_argument("--device", type=int, default=0, help="CUDA device index (default 0)")
    parser.add_argument(
        "--force", action="store_true", help="rebuild even when a matching engine is cached"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    add_progress_option(parser)


def run(args: argparse.Namespace) -> int:
    TensorRTBackend.require()  # names what to install when TensorRT/pycuda/GPU are missing
    if args.calibration_images is not None and args.precision != "int8":
        print("note: --calibration-images is only used with --precision int8", file=sys.stderr)
    options = TrtOptions(
        batch=args.batch,
        workspace_mb=args.workspace_mb,
        dla_core=args.dla_core,
        device=args.device,
        cache_dir=args.cache_dir,
        calibration_images=args.calibration_images,
        force=args.force,
    ).check_precision(args.precision)
    card = TensorRTBackend.select_card(args.model, args.precision, models_dir())
    card.verify_file()

    cancel = CancelToken()
    # Ctrl-C sets the token: the build runs in TensorRT's C++ code and stops cleanly at its
    # next step, raising Cancelled
    with terminal_progress(
        args.progress, {STAGE: "steps"}, cancel, interrupt_cancels=True
    ) as progress:
        provider = EngineProvider(card, args.precision, options, progress)
        with CudaContext(options.device):
            result = provider()
    summary = {
        "engine": str(result.path) if result.path else None,
        "built": result.built,
        "seconds": round(result.seconds, 1),
        "size_mb": round(len(result.engine) / 2**20, 2),
        "key": asdict(result.key),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        state = f"built in {summary['seconds']} s" if result.built else "already cached"
        where = summary["engine"] or "not cached (no writable cache folder; see the warning above)"
        print(f"{card.name} {args.precision} batch {args.batch} on {result.key.gpu_name}: {state}")
        print(f"engine: {where} ({summary['size_mb']} MB)")
    return ExitCode.OK
