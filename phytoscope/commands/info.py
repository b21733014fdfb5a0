"""``phytoscope info``: what a bug report needs: versions, engines, model, sensors."""

from __future__ import annotations

import argparse
import json
from typing import Any

from phytoscope.core.diagnostics import collect

HELP = "show versions, available backends, the installed model and sensors"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--model", help="model card, model file or folder (default: installed model)"
    )
    parser.add_argument(
        "--camera",
        metavar="SPEC",
        help="open this camera (0, /dev/video0 or a GStreamer pipeline) and read one frame",
    )


def _print_tree(value: Any, indent: int = 0) -> None:
    pad = "  " * indent
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, (dict, list)):
                print(f"{pad}{key}:")
                _print_tree(item, indent + 1)
            else:
                print(f"{pad}{key}: {item if item is not None else '-'}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, (dict, list)):
                print(f"{pad}-")
                _print_tree(item, indent + 1)
            else:
                print(f"{pad}- {item}")
    else:
        print(f"{pad}{value}")


def run(args: argparse.Namespace) -> int:
    info = collect(args.model, camera=args.camera)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
    else:
        _print_tree(info)
    return 0
