"""``phytoscope info``: what a bug report needs: versions, engines, model, sensors."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import platform
import sys
from typing import Any

HELP = "show versions, available backends, the installed model and sensors"

SECTIONS: list[tuple[str, str]] = [
    # (title, "module:function") — each function returns a JSON-able dict; sections added
    # by other parts of phytoscope (telemetry sensors, TensorRT state) register here.
    ("telemetry", "phytoscope.telemetry:describe_sensors"),
    ("tensorrt", "phytoscope.backends.tensorrt:describe_environment"),
]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--model", help="model card, model file or folder (default: installed model)"
    )


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def collect(model: str | None = None) -> dict[str, Any]:
    from phytoscope import __version__, backends, config, modelcard

    info: dict[str, Any] = {
        "phytoscope": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "packages": {
            name: _version(name)
            for name in (
                "numpy",
                "opencv-python-headless",
                "onnxruntime",
                "tensorflow",
                "tensorflow-cpu",
                "keras",
                "PySide6-Essentials",
                "PySide6",
                "pyqtgraph",
                "tensorrt",
                "pycuda",
                "jetson-stats",
                "psutil",
            )
        },
        "backends": {
            name: (reason or "available") for name, reason in backends.availability().items()
        },
        "paths": {
            "models": str(config.models_dir()),
            "resources": str(config.resources_dir()),
            "data": str(config.data_dir()),
            "cache": str(config.cache_dir()),
        },
    }
    try:
        folder = config.models_dir()
        cards = [modelcard.ModelCard.load(model)] if model else modelcard.discover(folder)
        info["models"] = [
            {
                "card": str(c.path),
                "label": c.label,
                "classes": list(c.class_names),
                "input": f"{c.input.height}x{c.input.width}x{c.input.channels} {c.input.layout}",
                "accuracy": c.accuracy.get("test_top1"),
            }
            for c in cards
        ] or "no model installed"
    except Exception as exc:  # noqa: BLE001 - info must always print something
        info["models"] = f"error: {exc}"
    for title, target in SECTIONS:
        module_name, _, func = target.partition(":")
        try:
            info[title] = getattr(importlib.import_module(module_name), func)()
        except (ImportError, AttributeError):
            continue  # that part is not in this build
        except Exception as exc:  # noqa: BLE001
            info[title] = f"error: {exc}"
    return info


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
    info = collect(args.model)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
    else:
        _print_tree(info)
    return 0
