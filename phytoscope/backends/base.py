"""The lifecycle every inference engine follows (modelled on Polygraphy's runners).

``load()`` / ``close()`` (or ``with backend:``), ``input_spec``, ``infer(batch) -> logits``.
The base class validates inputs and outputs once for all engines; a subclass implements
only ``_load_impl``, ``_infer_impl`` and ``_close_impl``, and imports its runtime inside
those methods so that ``import phytoscope.backends.x`` never needs the runtime installed.

Threading: create, use and close a backend on one thread (the GUI's inference thread).
CUDA contexts in particular belong to the thread that made them. A backend whose
``concurrent_calls`` is above 1 (ONNX Runtime on the CPU) also takes ``infer`` from that
many other threads at once, while the creating thread waits for them.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from phytoscope.errors import BackendError, BackendUnavailable, ModelError
from phytoscope.modelcard import InputSpec, ModelCard, resolve

log = logging.getLogger(__name__)


class Backend(ABC):
    name: ClassVar[str]
    """Registry name, e.g. ``"onnxruntime"``."""
    model_format: ClassVar[str]
    """Card format it runs (``"onnx"``, ``"keras"``)."""
    install_hint: ClassVar[str]
    """What to install when the runtime is missing, shown to the user verbatim."""
    precisions: ClassVar[tuple[str, ...]] = ("fp32",)

    def __init__(self, card: ModelCard, **options: Any):
        self.card = card
        self.options = options
        self._loaded = False

    # -- discovery -----------------------------------------------------------------------

    @classmethod
    @abstractmethod
    def unavailable_reason(cls) -> str | None:
        """None when this engine can run here, else why not (naming what to install)."""

    @classmethod
    def require(cls) -> None:
        reason = cls.unavailable_reason()
        if reason:
            raise BackendUnavailable(f"{cls.name} backend is not available: {reason}")

    @classmethod
    def select_card(cls, model: Path | str | None, precision: str, default_dir: Path) -> ModelCard:
        """The model card this engine runs for a precision (TensorRT overrides: it builds
        its engine from the ONNX FP32 card)."""
        if precision not in cls.precisions:
            raise ModelError(
                f"{cls.name} runs precisions {', '.join(cls.precisions)}, not {precision}"
            )
        return resolve(model, cls.model_format, precision, default_dir)

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def input_spec(self) -> InputSpec:
        return self.card.input

    @property
    def precision(self) -> str:
        return self.card.precision

    @property
    def loaded(self) -> bool:
        return self._loaded

    @property
    def concurrent_calls(self) -> int:
        """How many ``infer`` calls may run at once, from different threads (1: only the
        creating thread may call it)."""
        return 1

    def load(self) -> Backend:
        if self._loaded:
            return self
        self.require()
        self.card.verify_file()
        try:
            self._load_impl()
        except (ModelError, BackendUnavailable):
            raise
        except Exception as exc:  # runtime-specific errors become one clear type
            raise BackendError(
                f"{self.name} could not load {self.card.model_path.name}: {exc}"
            ) from exc
        self._loaded = True
        log.info("loaded %s with %s", self.card.label, self.name)
        return self

    def close(self) -> None:
        if self._loaded:
            try:
                self._close_impl()
            finally:
                self._loaded = False

    def __enter__(self) -> Backend:
        return self.load()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Logits (N, classes) for a pre-processed float32 batch in the card's layout."""
        if not self._loaded:
            raise BackendError(f"{self.name}: infer() before load()")
        expected = self.input_spec.batch_shape(batch.shape[0] if batch.ndim else 0)
        if batch.shape != expected or batch.shape[0] == 0:
            raise ValueError(
                f"{self.name}: batch shape {batch.shape}, expected {expected} with N >= 1"
            )
        if batch.dtype != np.float32:
            raise ValueError(f"{self.name}: batch dtype {batch.dtype}, expected float32")
        try:
            logits = np.asarray(self._infer_impl(np.ascontiguousarray(batch)))
        except Exception as exc:
            raise BackendError(f"{self.name} inference failed: {exc}") from exc
        if logits.shape != (batch.shape[0], self.card.num_classes):
            raise BackendError(
                f"{self.name} returned shape {logits.shape}, expected "
                f"({batch.shape[0]}, {self.card.num_classes})"
            )
        return logits.astype(np.float32, copy=False)

    def describe(self) -> dict[str, Any]:
        """Facts for ``phytoscope info``, bug reports and benchmark records."""
        return {"backend": self.name, "model": self.card.label}

    # -- engine-specific -----------------------------------------------------------------

    @abstractmethod
    def _load_impl(self) -> None: ...

    @abstractmethod
    def _infer_impl(self, batch: np.ndarray) -> np.ndarray: ...

    def _close_impl(self) -> None:  # noqa: B027 - optional hook
        pass
