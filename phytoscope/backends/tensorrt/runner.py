"""The TensorRT runner: deserialises an engine and runs batches through it.

Like Polygraphy's ``TrtRunner``, it takes its engine from outside: serialised bytes, an
:class:`~phytoscope.backends.tensorrt.provider.EngineResult`, or a callable returning one
(default: an :class:`~phytoscope.backends.tensorrt.provider.EngineProvider` for its card,
precision and options, which finds the engine in the cache or builds it). It only owns what
running needs: the CUDA context, the runtime, the execution context and the buffers.

Threading: the CUDA context (``Device(n).make_context()``, never ``pycuda.autoinit``), the
engine, its execution context, the stream and every buffer are created in ``load()`` and
freed in ``close()`` on the calling thread — the GUI's inference QThread — and ``infer()``
must run on that same thread. Inference uses the name-based tensor API of TensorRT >= 8.5
(``num_io_tensors``, ``set_input_shape``, ``set_tensor_address``, ``execute_async_v3``) with
pinned host buffers and asynchronous copies on one CUDA stream.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from phytoscope.backends.base import LOGITS, Backend
from phytoscope.backends.options import OptionsArg, TrtOptions
from phytoscope.backends.tensorrt.buffers import (
    BufferPlan,
    IOBuffers,
    TensorDesc,
    numpy_dtype,
    plan_buffers,
    run_batches,
)
from phytoscope.backends.tensorrt.provider import EngineProvider, EngineResult
from phytoscope.backends.tensorrt.runtime import (
    INSTALL_HINT,
    CudaContext,
    import_tensorrt,
    runtime_problem,
    trt_logger,
)
from phytoscope.errors import BackendError, Cancelled, ModelError
from phytoscope.modelcard import ModelCard, resolve
from phytoscope.progress import Progress

log = logging.getLogger(__name__)

EngineSource = bytes | EngineResult | Callable[[], bytes | EngineResult]
"""What the runner takes: an engine, or something that gives one once a context exists."""


class TensorRTBackend(Backend):
    """TensorRT engine built from the ONNX FP32 model.

    Parameters
    ----------
    card
        The FP32 ONNX card (:meth:`select_card`).
    precision
        The engine's precision (fp32, fp16, int8; default fp32).
    options
        :class:`~phytoscope.backends.options.TrtOptions`: batch (the optimisation profile's
        opt and max; larger batches are split), device, workspace, DLA core, cache folder,
        INT8 calibration images.
    progress
        Engine build progress and cancel.
    engine
        Serialised engine bytes, an ``EngineResult``, or a callable returning either, called
        with the CUDA context current (default: an ``EngineProvider``). Only a provider can
        rebuild a cached engine that fails to deserialise.
    """

    name = "tensorrt"
    model_format = "onnx"
    install_hint = INSTALL_HINT
    precisions = ("fp32", "fp16", "int8")
    options_type = TrtOptions
    options: TrtOptions

    def __init__(
        self,
        card: ModelCard,
        precision: str | None = None,
        options: OptionsArg = None,
        progress: Progress | None = None,
        engine: EngineSource | None = None,
    ):
        super().__init__(card, precision, options, progress)
        self.options.check_precision(self.precision)
        self._source: EngineSource = (
            engine
            if engine is not None
            else EngineProvider(card, self.precision, self.options, self.progress)
        )
        self._ctx: CudaContext | None = None
        self._buffers: IOBuffers | None = None
        self._result: EngineResult | None = None
        self._input: BufferPlan | None = None
        self._outputs: list[BufferPlan] = []

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return runtime_problem()

    @classmethod
    def select_card(cls, model: Path | str | None, precision: str, default_dir: Path) -> ModelCard:
        """The ONNX FP32 card; FP16/INT8 are precisions of the engine built from it."""
        cls.check_precision(precision)
        card = resolve(model, "onnx", "fp32", default_dir)
        if card.format != "onnx" or card.precision != "fp32":
            raise ModelError(
                f"TensorRT builds its engines from the FP32 ONNX model; {card.label} is not one "
                "(pass the fp32 .onnx model; choose the engine precision with --precision)"
            )
        return card

    @classmethod
    def check_precision(cls, precision: str) -> None:
        if precision not in cls.precisions:
            raise ModelError(
                f"tensorrt builds fp32, fp16 or int8 engines, not {precision} "
                f"(it runs precisions {', '.join(cls.precisions)})"
            )

    @classmethod
    def engine_precision(cls, card: ModelCard, requested: str | None) -> str:
        """The engine's precision: the requested one (the card is always the FP32 ONNX)."""
        precision = requested or "fp32"
        cls.check_precision(precision)
        return precision

    @property
    def max_batch(self) -> int:
        if self._input is not None:
            return self._input.batch
        return self.options.batch

    # -- lifecycle -------------------------------------------------------------------------

    def load(self) -> TensorRTBackend:
        try:
            super().load()
        except BackendError as exc:  # a cancelled build stays a cancellation, not a failure
            if isinstance(exc.__cause__, Cancelled):
                raise exc.__cause__ from None
            raise
        return self

    def _load_impl(self) -> None:
        trt = import_tensorrt()
        self._ctx = CudaContext(self.options.device)
        try:
            self._load_engine(trt)
        except BaseException:
            self._release()
            raise

    def _fetch(self) -> EngineResult | bytes:
        source = self._source
        return source() if callable(source) else source

    def _load_engine(self, trt: Any) -> None:
        fetched = self._fetch()
        self._runtime = trt.Runtime(trt_logger(trt))
        if self.options.dla_core is not None:
            self._runtime.DLA_core = self.options.dla_core  # before deserialising a DLA engine
        blob = fetched.engine if isinstance(fetched, EngineResult) else fetched
        engine = self._runtime.deserialize_cuda_engine(blob)
        if (
            engine is None
            and isinstance(fetched, EngineResult)
            and not fetched.built
            and isinstance(self._source, EngineProvider)
        ):
            log.warning(
                "cached TensorRT engine %s could not be deserialised (built by another TensorRT "
                "or GPU, or damaged); rebuilding",
                fetched.path,
            )
            fetched = self._source.rebuild(fetched)
            engine = self._runtime.deserialize_cuda_engine(fetched.engine)
        if engine is None:
            raise BackendError(
                "TensorRT could not deserialise the engine"
                + (" it just built" if isinstance(fetched, EngineResult) and fetched.built else "")
            )
        self._engine = engine
        self._result = fetched if isinstance(fetched, EngineResult) else None
        self._bind(trt, engine)

    def _bind(self, trt: Any, engine: Any) -> None:
        """Plan and allocate the buffers of ``engine`` and make its execution context."""
        descs = [
            TensorDesc(
                name=(name := engine.get_tensor_name(i)),
                is_input=engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT,
                shape=tuple(engine.get_tensor_shape(name)),
                dtype=numpy_dtype(engine.get_tensor_dtype(name)),
            )
            for i in range(engine.num_io_tensors)
        ]
        plans = plan_buffers(descs, self.options.batch)
        self._input = next(p for p in plans if p.is_input)
        self._outputs = [p for p in plans if not p.is_input]
        logits = next((p for p in self._outputs if p.name == LOGITS), self._outputs[0])
        self.card.check_io_shapes(self._input.shape, logits.shape[-1])
        self._exec = engine.create_execution_context()
        if self._exec is None:
            raise BackendError(
                "TensorRT could not create an execution context (out of GPU memory?)"
            )
        self._buffers = IOBuffers(plans)
        for plan in plans:
            self._exec.set_tensor_address(plan.name, self._buffers.address(plan.name))

    def _infer_impl(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        assert self._ctx is not None and self._buffers is not None and self._input is not None
        self._ctx.check_thread()
        return run_batches(self._exec, self._buffers, self._input, self._outputs, batch)

    def _release(self) -> None:
        """Free in reverse order of creation, with the context still current."""
        for attr in ("_exec", "_engine", "_runtime"):
            if hasattr(self, attr):
                delattr(self, attr)
        if self._buffers is not None:
            self._buffers.free()
            self._buffers = None
        self._input = None
        if self._ctx is not None:
            self._ctx.close()
            self._ctx = None

    def _close_impl(self) -> None:
        self._release()

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info["precision"] = self.precision
        info["max_batch"] = self.max_batch
        if self._ctx is not None:
            info["gpu"] = f"{self._ctx.name} (compute {self._ctx.compute_capability})"
        if self._result is not None:
            info["engine"] = str(self._result.path) if self._result.path else "not cached"
            info["tensorrt"] = self._result.key.tensorrt_version
            info["built_now"] = self._result.built
        elif self._engine_given:
            info["engine"] = "given by the caller"
        return info

    @property
    def _engine_given(self) -> bool:
        return not isinstance(self._source, EngineProvider)
