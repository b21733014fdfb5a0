"""The lifecycle every inference engine follows (modelled on Polygraphy's runners).

``load()`` / ``close()`` (or ``with backend:``), ``input_spec``, ``infer(batch) -> Outputs``.
The base class validates inputs and outputs once for all engines; a subclass implements
only ``_load_impl``, ``_infer_impl`` and ``_close_impl``, and imports its runtime inside
those methods so that ``import phytoscope.backends.x`` never needs the runtime installed.

A backend is made from three things: the model card it runs (:meth:`Backend.select_card`),
the precision it runs at (:meth:`Backend.engine_precision`: the one place that decides it,
for every engine) and its typed engine options (:mod:`phytoscope.backends.options`). Long
loads (TensorRT engine builds) report through, and stop on, the one progress contract
(:class:`phytoscope.progress.Progress`).

Outputs are found by name, so every engine hands the same tensors to the shared
post-processing: ``logits`` (N, classes) and, for a model whose card has a ``novelty``
section, the open-set score ``novelty`` (N,) computed inside the graph (DESIGN 5b). A
model with a single output (older exports) has only logits.

Threading: create, use and close a backend on one thread (the GUI's inference thread).
CUDA contexts in particular belong to the thread that made them. A backend whose
``concurrent_calls`` is above 1 (ONNX Runtime on the CPU) also takes ``infer`` from that
many other threads at once, while the creating thread waits for them.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from phytoscope.backends.options import EngineOptions, OptionsArg, pick
from phytoscope.errors import BackendError, BackendUnavailable, ModelError
from phytoscope.modelcard import InputSpec, ModelCard, resolve
from phytoscope.progress import Progress

log = logging.getLogger(__name__)

LOGITS = "logits"
"""Name of the logits output of every model phytoscope exports."""


@dataclass(frozen=True)
class Outputs:
    """What one inference call gives back, the same for every engine.

    ``novelty`` is higher for an organism less like every training class; the card's
    ``novelty.threshold`` turns it into "unknown" (:mod:`phytoscope.core.classifier`). It
    is ``None`` for a model without a novelty output.
    """

    logits: np.ndarray
    novelty: np.ndarray | None = None


def pick_outputs(
    card: ModelCard, named: Mapping[str, np.ndarray] | Sequence[np.ndarray]
) -> Outputs:
    """The logits and novelty among an engine's outputs, by name.

    ``named`` maps output names to arrays (a sequence means "in graph order, unnamed": only
    valid for a single output). One output is always the logits; with several, they are
    found by the names ``logits`` and the card's ``novelty.output``.
    """
    if not isinstance(named, Mapping):
        arrays = list(named)
        if len(arrays) != 1:
            raise BackendError(f"{len(arrays)} unnamed outputs; expected one (logits)")
        named = {LOGITS: arrays[0]}
    wanted_novelty = card.novelty.output if card.novelty is not None else None
    if len(named) == 1 and wanted_novelty is None:
        return Outputs(np.asarray(next(iter(named.values()))))
    found = {output_key(name): value for name, value in named.items()}
    if LOGITS not in found:
        raise ModelError(
            f"{card.file}: no output named {LOGITS!r} among {sorted(named)}; "
            "re-export the model with `phytoscope export`"
        )
    novelty = None
    if wanted_novelty is not None:
        if wanted_novelty not in found:
            raise ModelError(
                f"{card.file}: its card expects a novelty output {wanted_novelty!r}, "
                f"the model has {sorted(named)}: the card and the model do not belong together"
            )
        novelty = np.asarray(found[wanted_novelty])
    return Outputs(np.asarray(found[LOGITS]), novelty)


def output_key(name: str) -> str:
    """``logits:0`` (TensorFlow's tensor naming) -> ``logits``."""
    return name.split(":", 1)[0]


class Backend(ABC):
    name: ClassVar[str]
    """Registry name, e.g. ``"onnxruntime"``."""
    model_format: ClassVar[str]
    """Card format it runs (``"onnx"``, ``"keras"``)."""
    install_hint: ClassVar[str]
    """What to install when the runtime is missing, shown to the user verbatim."""
    precisions: ClassVar[tuple[str, ...]] = ("fp32",)
    options_type: ClassVar[type[EngineOptions]] = EngineOptions
    """The dataclass of this engine's settings (``OrtOptions``, ``TfOptions``, ...)."""

    def __init__(
        self,
        card: ModelCard,
        precision: str | None = None,
        options: OptionsArg = None,
        progress: Progress | None = None,
    ):
        """An unloaded backend.

        Parameters
        ----------
        card
            The model card, as :meth:`select_card` chose it.
        precision
            What the user asked for; :meth:`engine_precision` decides what runs.
        options
            This engine's options (or several engines' options, this one's is picked);
            ``None`` means its defaults.
        progress
            Where a long load reports and learns of a cancel (TensorRT builds).
        """
        self.card = card
        self.options: EngineOptions = pick(self.options_type, options)
        self._precision = self.engine_precision(card, precision)
        self.progress = Progress.of(progress)
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
        cls.check_precision(precision)
        return resolve(model, cls.model_format, precision, default_dir)

    @classmethod
    def check_precision(cls, precision: str) -> None:
        if precision not in cls.precisions:
            raise ModelError(
                f"{cls.name} runs precisions {', '.join(cls.precisions)}, not {precision}"
            )

    @classmethod
    def engine_precision(cls, card: ModelCard, requested: str | None) -> str:
        """The precision this engine runs ``card`` at, for a requested one.

        For engines that run the model file as it is (ONNX Runtime, TensorFlow) it is the
        card's: the requested precision only chose which card of a folder to run (an
        explicitly named card wins). TensorRT overrides it: its card is the FP32 ONNX
        model and the precision is the engine's it builds.
        """
        return card.precision

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def input_spec(self) -> InputSpec:
        return self.card.input

    @property
    def precision(self) -> str:
        """The precision this backend runs at (see :meth:`engine_precision`)."""
        return self._precision

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

    def infer(self, batch: np.ndarray) -> Outputs:
        """Logits (N, classes) and novelty (N,) for a pre-processed float32 batch in the
        card's layout."""
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
            raw = self._infer_impl(np.ascontiguousarray(batch))
        except Exception as exc:
            raise BackendError(f"{self.name} inference failed: {exc}") from exc
        outputs = raw if isinstance(raw, Outputs) else pick_outputs(self.card, raw)
        n = batch.shape[0]
        if outputs.logits.shape != (n, self.card.num_classes):
            raise BackendError(
                f"{self.name} returned shape {outputs.logits.shape}, expected "
                f"({n}, {self.card.num_classes})"
            )
        novelty = outputs.novelty
        if novelty is not None:
            novelty = np.asarray(novelty).reshape(-1)
            if novelty.shape != (n,):
                raise BackendError(
                    f"{self.name} returned novelty of shape {outputs.novelty.shape}, expected ({n},)"  # type: ignore[union-attr]
                )
            novelty = novelty.astype(np.float32, copy=False)
        return Outputs(outputs.logits.astype(np.float32, copy=False), novelty)

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """Only the logits of :meth:`infer` (accuracy, benchmark and parity code)."""
        return self.infer(batch).logits

    def describe(self) -> dict[str, Any]:
        """Facts for ``phytoscope info``, bug reports and benchmark records."""
        return {"backend": self.name, "model": self.card.label}

    # -- engine-specific -----------------------------------------------------------------

    @abstractmethod
    def _load_impl(self) -> None: ...

    @abstractmethod
    def _infer_impl(
        self, batch: np.ndarray
    ) -> Mapping[str, np.ndarray] | Sequence[np.ndarray] | Outputs:
        """The engine's outputs by name (``{"logits": ..., "novelty": ...}``), or a
        one-element sequence for a single-output model."""

    def _close_impl(self) -> None:  # noqa: B027 - optional hook
        pass
