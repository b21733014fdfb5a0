"""What a bug report needs: versions, engines, the installed model and sensors.

``phytoscope info`` prints it and the window's About page shows it, so both read this
one function (core, not the command, so the window need not import a command module).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import platform
import sys
from typing import Any

SECTIONS: list[tuple[str, str]] = [
    # (title, "module:function") — each function returns a JSON-able dict; sections added
    # by other parts of phytoscope (telemetry sensors, TensorRT state) register here.
    ("telemetry", "phytoscope.telemetry:describe_sensors"),
    ("tensorrt", "phytoscope.backends.tensorrt:describe_environment"),
    ("cameras", "phytoscope.sources.capture:describe_cameras"),
]


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


PACKAGES = (
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
    "matplotlib",
)
"""The packages whose versions ``phytoscope info``, About and benchmark reports record."""


def collect(model: str | None = None, camera: str | None = None) -> dict[str, Any]:
    """Everything :data:`SECTIONS` report; ``camera`` (a camera setting) is also opened and
    one frame read, so a technician can check a camera before a session."""
    from phytoscope import __version__, backends, config, modelcard

    info: dict[str, Any] = {
        "phytoscope": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "packages": {name: _version(name) for name in PACKAGES},
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
    if camera is not None:
        from phytoscope.sources.capture import describe_cameras

        info["cameras"] = describe_cameras(probe=camera)
    for title, target in SECTIONS:
        if title in info:
            continue
        module_name, _, func = target.partition(":")
        try:
            info[title] = getattr(importlib.import_module(module_name), func)()
        except (ImportError, AttributeError):
            continue  # that part is not in this build
        except Exception as exc:  # noqa: BLE001
            info[title] = f"error: {exc}"
    return info
