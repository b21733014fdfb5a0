"""Inference engines behind one contract, and the registry that picks among them.

Engines are named here as import paths, not imported, so listing them costs nothing and a
missing runtime only matters when that engine is asked for.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from phytoscope.backends.base import Backend
from phytoscope.errors import BackendUnavailable, ConfigError

REGISTRY: dict[str, str] = {
    "tensorrt": "phytoscope.backends.tensorrt:TensorRTBackend",
    "onnxruntime": "phytoscope.backends.onnxruntime:OnnxRuntimeBackend",
    "tensorflow": "phytoscope.backends.tensorflow:TensorFlowBackend",
}
AUTO_ORDER = ("tensorrt", "onnxruntime", "tensorflow")
"""Fastest first: TensorRT on NVIDIA hardware, ONNX Runtime on any CPU, then Keras."""


def backend_class(name: str) -> type[Backend]:
    if name not in REGISTRY:
        raise ConfigError(f"unknown backend {name!r}; choose from auto, {', '.join(REGISTRY)}")
    module_name, _, class_name = REGISTRY[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:  # the adapter module itself is absent in this build
        raise BackendUnavailable(
            f"{name} backend is not part of this installation ({exc})"
        ) from exc
    cls: type[Backend] = getattr(module, class_name)
    return cls


def availability() -> dict[str, str | None]:
    """Backend name -> None if it can run here, else the reason it cannot."""
    out: dict[str, str | None] = {}
    for name in REGISTRY:
        try:
            out[name] = backend_class(name).unavailable_reason()
        except BackendUnavailable as exc:
            out[name] = str(exc)
    return out


def choose(name: str) -> type[Backend]:
    """Resolve ``auto`` to the fastest engine present; check a named one can run."""
    if name != "auto":
        cls = backend_class(name)
        cls.require()
        return cls
    reasons = availability()
    for candidate in AUTO_ORDER:
        if reasons.get(candidate) is None:
            return backend_class(candidate)
    raise BackendUnavailable(
        "no inference backend can run here: " + "; ".join(f"{k}: {v}" for k, v in reasons.items())
    )


def create(
    name: str = "auto",
    precision: str = "fp32",
    model: Path | str | None = None,
    models_dir: Path | None = None,
    **options: Any,
) -> Backend:
    """An unloaded backend for a model; use it as ``with create(...) as backend:``.

    With ``auto``, an engine whose model form is missing (e.g. no TensorRT engine can be
    built because there is no ONNX model) falls through to the next engine.
    """
    from phytoscope.config import models_dir as default_models_dir

    folder = models_dir or default_models_dir()
    if name != "auto":
        cls = choose(name)
        return cls(cls.select_card(model, precision, folder), precision=precision, **options)
    errors: list[str] = []
    for candidate in AUTO_ORDER:
        try:
            cls = choose(candidate)
            return cls(cls.select_card(model, precision, folder), precision=precision, **options)
        except Exception as exc:  # noqa: BLE001 - collect and report every reason
            errors.append(f"{candidate}: {exc}")
    from phytoscope.errors import ModelError

    raise ModelError("no backend could open a model: " + "; ".join(errors))
