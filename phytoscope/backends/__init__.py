"""Inference engines behind one contract, and the registry that picks among them.

Engines are named here as import paths, not imported, so listing them costs nothing and a
missing runtime only matters when that engine is asked for.

``create(name, precision, model, options=...)`` is the one way to make a backend: the
engine's class chooses the model card for the precision (``select_card``) and the precision
it runs at (``engine_precision``); ``options`` are the typed settings of
:mod:`phytoscope.backends.options`.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from phytoscope.backends.base import Backend, Outputs
from phytoscope.backends.options import (
    EngineOptions,
    OptionsArg,
    OrtOptions,
    TfOptions,
    TrtOptions,
    pick,
)
from phytoscope.config import models_dir as default_models_dir
from phytoscope.errors import BackendUnavailable, ConfigError, ModelError
from phytoscope.progress import Progress

__all__ = [
    "AUTO_ORDER",
    "REGISTRY",
    "Backend",
    "EngineOptions",
    "OrtOptions",
    "Outputs",
    "TfOptions",
    "TrtOptions",
    "availability",
    "backend_class",
    "choose",
    "create",
]

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
    options: OptionsArg = None,
    progress: Progress | None = None,
) -> Backend:
    """An unloaded backend for a model; use it as ``with create(...) as backend:``.

    Parameters
    ----------
    name
        ``auto`` or a registry name. With ``auto``, an engine whose model form is missing
        (e.g. no TensorRT engine can be built because there is no ONNX model) falls through
        to the next engine.
    precision
        Chooses the card in a model folder and, for TensorRT, the engine's precision.
    model, models_dir
        A card, model file or folder; else the installed models.
    options
        Typed engine options (:class:`OrtOptions`, :class:`TrtOptions`, ...), one or one per
        engine; each engine takes its own and uses defaults otherwise.
    progress
        Reports and cancels long loads (TensorRT engine builds).
    """
    folder = models_dir or default_models_dir()
    candidates = [name] if name != "auto" else list(AUTO_ORDER)
    errors: list[str] = []
    for candidate in candidates:
        try:
            cls = choose(candidate)
            card = cls.select_card(model, precision, folder)
            chosen = pick(cls.options_type, options)
            return cls(card, precision=precision, options=chosen, progress=progress)
        except ConfigError:
            raise  # a bad option is the user's to fix, whichever engine runs
        except Exception as exc:  # noqa: BLE001 - collect and report every reason
            if name != "auto":
                raise
            errors.append(f"{candidate}: {exc}")
    raise ModelError("no backend could open a model: " + "; ".join(errors))
