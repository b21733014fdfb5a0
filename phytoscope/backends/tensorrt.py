"""TensorRT: the fast engine on NVIDIA hardware (Jetson Orin with JetPack 6, x86 GPUs).

The engine is built from the ONNX FP32 model at FP32, FP16 or INT8 (``phytoscope
build-engine``, or on first load) and cached under a key of model sha256, TensorRT version,
GPU, precision and batch (see :mod:`phytoscope.backends.tensorrt_build`).

Threading: the CUDA context (``Device(n).make_context()``, never ``pycuda.autoinit``), the
engine, its execution context, the stream and every buffer are created in ``load()`` and
freed in ``close()`` on the calling thread — the GUI's inference QThread — and ``infer()``
must run on that same thread. Inference uses the name-based tensor API of TensorRT >= 8.5
(``num_io_tensors``, ``set_input_shape``, ``set_tensor_address``, ``execute_async_v3``) with
pinned host buffers and asynchronous copies on one CUDA stream.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from phytoscope.backends.base import LOGITS, Backend
from phytoscope.backends.tensorrt_build import (
    INSTALL_HINT,
    PYCUDA_HINT,
    BufferPlan,
    BuildOptions,
    EngineCache,
    EngineKey,
    ProgressCallback,
    TensorDesc,
    build_engine,
    chunks,
    import_pycuda_driver,
    import_tensorrt,
    numpy_dtype,
    pad_batch,
    plan_buffers,
    trt_logger,
    version_problem,
)
from phytoscope.errors import BackendError, BackendUnavailable, Cancelled, ModelError
from phytoscope.modelcard import ModelCard, resolve

log = logging.getLogger(__name__)

DEFAULT_BATCH = 16


# -- runtime probing ---------------------------------------------------------------------


def runtime_problem() -> str | None:
    """Why TensorRT inference cannot run here, or None: tensorrt (>= 8.5) and pycuda
    importable, and a CUDA device present. Cheap enough for ``--backend auto``."""
    if importlib.util.find_spec("tensorrt") is None:
        return f"TensorRT is not installed; {INSTALL_HINT}"
    try:
        import_tensorrt()
    except BackendUnavailable as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - a broken install must not break `auto`
        return f"TensorRT cannot be imported ({exc}); {INSTALL_HINT}"
    if importlib.util.find_spec("pycuda") is None:
        return f"pycuda is not installed; {PYCUDA_HINT}"
    try:
        cuda = import_pycuda_driver()
        cuda.init()
        count = cuda.Device.count()
    except BackendUnavailable as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - pycuda.driver.Error: no driver / no device
        return f"no usable CUDA device ({exc})"
    if count < 1:
        return "no CUDA device found"
    return None


def gpu_identity(device: Any) -> tuple[str, str]:
    """(GPU name, compute capability) of a pycuda Device, for the engine key."""
    major, minor = device.compute_capability()
    return str(device.name()), f"{major}.{minor}"


# -- CUDA context and buffers (pycuda; no TensorRT needed) --------------------------------


class CudaContext:
    """A CUDA context owned by the thread that creates it.

    ``Device(index).make_context()`` makes the context current on this thread only (unlike
    ``pycuda.autoinit``, which binds it to whichever thread imports it first and tears it
    down at interpreter exit). :meth:`close` pops and detaches it on the same thread.
    """

    def __init__(self, device_index: int = 0):
        cuda = import_pycuda_driver()
        cuda.init()
        if device_index >= cuda.Device.count():
            raise BackendUnavailable(f"CUDA device {device_index} does not exist")
        self._cuda = cuda
        self.device = cuda.Device(device_index)
        self.context = self.device.make_context()
        self.thread = threading.get_ident()
        self.name, self.compute_capability = gpu_identity(self.device)

    def check_thread(self) -> None:
        if threading.get_ident() != self.thread:
            raise BackendError(
                "TensorRT backend used from a thread other than the one that loaded it; "
                "create, use and close it on the inference thread"
            )

    def close(self) -> None:
        if self.context is None:
            return
        if threading.get_ident() != self.thread:
            # pycuda only destroys a context off its owner thread when it is current there
            log.warning("CUDA context closed from another thread than the one that made it")
            self.context.push()
        else:
            self.context.pop()
        self.context.detach()  # owner thread: pushes, destroys, pops; elsewhere: destroys
        self.context = None

    def __enter__(self) -> CudaContext:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class IOBuffers:
    """Pinned host and device memory for each planned tensor, copied on one stream."""

    def __init__(self, plans: list[BufferPlan]):
        cuda = import_pycuda_driver()
        self._cuda = cuda
        self.plans = {p.name: p for p in plans}
        self.host: dict[str, np.ndarray] = {}
        self.device: dict[str, Any] = {}
        self.stream = cuda.Stream()
        try:
            for plan in plans:
                self.host[plan.name] = cuda.pagelocked_empty(plan.shape, plan.dtype)
                self.device[plan.name] = cuda.mem_alloc(plan.nbytes)
        except Exception:
            self.free()
            raise

    def upload(self, name: str, data: np.ndarray) -> None:
        """Copy ``data`` (n leading rows) into the pinned buffer, then to the GPU (async)."""
        n = data.shape[0]
        host = self.host[name][:n]
        np.copyto(host, data, casting="same_kind")
        self._cuda.memcpy_htod_async(self.device[name], host, self.stream)

    def download(self, name: str, n: int) -> np.ndarray:
        """Queue the GPU -> pinned copy of ``n`` rows; valid after :meth:`synchronize`."""
        host = self.host[name][:n]
        self._cuda.memcpy_dtoh_async(host, self.device[name], self.stream)
        return host

    def synchronize(self) -> None:
        self.stream.synchronize()

    def address(self, name: str) -> int:
        return int(self.device[name])

    def free(self) -> None:
        for allocation in self.device.values():
            allocation.free()
        for array in self.host.values():
            base = getattr(array, "base", None)
            if base is not None and hasattr(base, "free"):
                base.free()
        self.device.clear()
        self.host.clear()
        self.stream = None


def run_batches(
    execution: Any,
    buffers: IOBuffers,
    inp: BufferPlan,
    outs: BufferPlan | Sequence[BufferPlan],
    batch: np.ndarray,
) -> dict[str, np.ndarray]:
    """Run ``batch`` through an execution context, ``inp.batch`` rows at a time.

    Per chunk, all on the buffers' one stream: set the chunk's input shape (dynamic batch)
    or pad it with real rows (fixed-batch engine), copy host -> device, enqueue with
    ``execute_async_v3``, copy every output device -> host, then wait once. ``execution``
    is TensorRT's IExecutionContext with its tensor addresses already set to ``buffers``.
    Returns each output's rows by tensor name.
    """
    outs = [outs] if isinstance(outs, BufferPlan) else list(outs)
    results: dict[str, list[np.ndarray]] = {o.name: [] for o in outs}
    for start, stop in chunks(batch.shape[0], inp.batch):
        part = batch[start:stop]
        n = part.shape[0]
        if inp.dynamic_batch:
            if not execution.set_input_shape(inp.name, part.shape):
                raise BackendError(f"engine refused input shape {part.shape}")
        else:
            part = pad_batch(part, inp.batch)  # fixed-batch engine: fill with real rows
        buffers.upload(inp.name, part)
        if not execution.execute_async_v3(buffers.stream.handle):
            raise BackendError("execute_async_v3 failed (see the TensorRT log)")
        hosts = {o.name: buffers.download(o.name, part.shape[0]) for o in outs}
        buffers.synchronize()
        for name, host in hosts.items():
            results[name].append(host[:n].astype(np.float32, copy=True))
    return {name: np.concatenate(parts) for name, parts in results.items()}


# -- the card TensorRT builds from --------------------------------------------------------


@dataclass(frozen=True)
# -- engine cache + build, shared by the backend and `phytoscope build-engine` -------------


@dataclass
class EngineResult:
    engine: bytes
    path: Path | None
    key: EngineKey
    built: bool
    seconds: float


def obtain_engine(
    card: ModelCard,
    options: BuildOptions,
    context: CudaContext,
    cache: EngineCache,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    force: bool = False,
    reject: Path | None = None,
) -> EngineResult:
    """The serialised engine for ``card`` at ``options``: from the cache, else built and cached.

    ``reject`` names a cached file that failed to deserialise: it is removed and rebuilt.
    """
    trt = import_tensorrt()
    key = EngineKey(
        model_sha256=card.sha256,
        tensorrt_version=trt.__version__,
        gpu_name=context.name,
        compute_capability=context.compute_capability,
        precision=options.precision,
        batch=options.batch,
        dla_core=options.dla_core,
    )
    if reject is not None:
        cache.discard(reject)
    found = None if force else cache.lookup(card.name, key)
    if found is not None:
        log.info("using cached TensorRT engine %s", found.path)
        return EngineResult(found.path.read_bytes(), found.path, key, False, 0.0)
    log.warning(
        "building a TensorRT %s engine for %s (batch %d); this happens once per model, "
        "precision and GPU and can take minutes",
        options.precision,
        card.label,
        options.batch,
    )
    started = time.perf_counter()
    engine = build_engine(card.model_path, card, options, cache, key, progress, cancel)
    seconds = time.perf_counter() - started
    path = cache.store(
        card.name,
        key,
        engine,
        build_seconds=round(seconds, 1),
        workspace_mb=options.workspace_mb,
        model=card.label,
    )
    return EngineResult(engine, path, key, True, seconds)


# -- the backend -------------------------------------------------------------------------


class TensorRTBackend(Backend):
    """TensorRT engine built from the ONNX FP32 model.

    Options: ``precision`` (fp32/fp16/int8; default from the card ``select_card`` made),
    ``batch`` (profile's opt = max batch, default 16; larger batches are split), ``device``
    (GPU index), ``workspace_mb``, ``dla_core``, ``calibration_images`` (INT8),
    ``cache_dir``, ``progress`` (callable(message, fraction)), ``cancel`` (threading.Event).
    """

    name = "tensorrt"
    model_format = "onnx"
    install_hint = INSTALL_HINT
    precisions = ("fp32", "fp16", "int8")

    def __init__(self, card: ModelCard, **options: Any):
        super().__init__(card, **options)
        requested = options.get("precision") or "fp32"  # the engine's; the card is the FP32 ONNX
        if requested not in self.precisions:
            raise ModelError(f"tensorrt builds fp32, fp16 or int8 engines, not {requested}")
        self._requested_precision: str = requested
        self._engine_precision: str | None = None
        self._ctx: CudaContext | None = None
        self._buffers: IOBuffers | None = None
        self._result: EngineResult | None = None

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return runtime_problem()

    @classmethod
    def select_card(cls, model: Path | str | None, precision: str, default_dir: Path) -> ModelCard:
        """The ONNX FP32 card; FP16/INT8 are precisions of the engine built from it."""
        if precision not in cls.precisions:
            raise ModelError(
                f"tensorrt runs precisions {', '.join(cls.precisions)}, not {precision}"
            )
        card = resolve(model, "onnx", "fp32", default_dir)
        if card.format != "onnx" or card.precision != "fp32":
            raise ModelError(
                f"TensorRT builds its engines from the FP32 ONNX model; {card.label} is not one "
                "(pass the fp32 .onnx model; choose the engine precision with --precision)"
            )
        return card

    @property
    def precision(self) -> str:
        return self._engine_precision or self._requested_precision

    @property
    def max_batch(self) -> int:
        if self._buffers is not None:
            return self._input.batch
        return int(self.options.get("batch") or DEFAULT_BATCH)

    def build_options(self) -> BuildOptions:
        calib = self.options.get("calibration_images")
        return BuildOptions(
            precision=self._requested_precision,
            batch=int(self.options.get("batch") or DEFAULT_BATCH),
            workspace_mb=self.options.get("workspace_mb", 1024),
            dla_core=self.options.get("dla_core"),
            calibration_images=Path(calib) if calib else None,
        ).validate()

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
        options = self.build_options()
        cache = EngineCache(self.options.get("cache_dir"))
        self._ctx = CudaContext(int(self.options.get("device", 0)))
        try:
            self._load_engine(trt, options, cache)
        except BaseException:
            self._release()
            raise

    def _load_engine(self, trt: Any, options: BuildOptions, cache: EngineCache) -> None:
        assert self._ctx is not None
        progress = self.options.get("progress")
        cancel = self.options.get("cancel")
        result = obtain_engine(self.card, options, self._ctx, cache, progress, cancel)
        self._runtime = trt.Runtime(trt_logger(trt))
        if options.dla_core is not None:
            self._runtime.DLA_core = options.dla_core  # before deserialising a DLA engine
        engine = self._runtime.deserialize_cuda_engine(result.engine)
        if engine is None and not result.built:
            log.warning(
                "cached TensorRT engine %s could not be deserialised (built by another TensorRT "
                "or GPU, or damaged); rebuilding",
                result.path,
            )
            result = obtain_engine(
                self.card,
                options,
                self._ctx,
                cache,
                progress,
                cancel,
                force=True,
                reject=result.path,
            )
            engine = self._runtime.deserialize_cuda_engine(result.engine)
        if engine is None:
            raise BackendError("TensorRT could not deserialise the engine it just built")
        self._engine = engine
        self._result = result
        descs = [
            TensorDesc(
                name=(name := engine.get_tensor_name(i)),
                is_input=engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT,
                shape=tuple(engine.get_tensor_shape(name)),
                dtype=numpy_dtype(engine.get_tensor_dtype(name)),
            )
            for i in range(engine.num_io_tensors)
        ]
        plans = plan_buffers(descs, options.batch)
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
        self._engine_precision = result.key.precision

    def _infer_impl(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        assert self._ctx is not None and self._buffers is not None
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
        return info


# -- `phytoscope info` ---------------------------------------------------------------------


def _nvidia_smi() -> list[dict[str, str]] | str:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return "nvidia-smi not found"
    try:
        out = subprocess.run(
            [
                exe,
                "--query-gpu=name,driver_version,memory.total,compute_cap",
                "--format=csv,noheader",
            ],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return f"nvidia-smi failed: {exc}"
    rows = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        rows.append(
            dict(zip(("name", "driver", "memory", "compute_capability"), parts, strict=False))
        )
    return rows


def describe_environment() -> dict[str, Any]:
    """TensorRT/pycuda versions, CUDA driver and GPUs, engine cache (for ``phytoscope info``)."""
    out: dict[str, Any] = {}
    if importlib.util.find_spec("tensorrt") is None:
        out["tensorrt"] = f"not installed ({INSTALL_HINT})"
    else:
        try:
            import tensorrt as trt

            version = str(getattr(trt, "__version__", "?"))
            problem = version_problem(version)
            out["tensorrt"] = version + (f" (unusable: {problem})" if problem else "")
        except Exception as exc:  # noqa: BLE001
            out["tensorrt"] = f"cannot be imported: {exc}"
    gpus: Any = None
    if importlib.util.find_spec("pycuda") is None:
        out["pycuda"] = f"not installed ({PYCUDA_HINT})"
    else:
        try:
            import pycuda
            import pycuda.driver as cuda

            out["pycuda"] = getattr(pycuda, "VERSION_TEXT", "installed")
            cuda.init()
            major, minor = divmod(cuda.get_driver_version(), 1000)
            out["cuda_driver"] = f"{major}.{minor // 10}"
            out["cuda_built_with"] = ".".join(str(v) for v in cuda.get_version())
            gpus = []
            for i in range(cuda.Device.count()):
                dev = cuda.Device(i)
                name, cc = gpu_identity(dev)
                gpus.append(
                    {
                        "name": name,
                        "compute_capability": cc,
                        "memory_mb": dev.total_memory() // 2**20,
                    }
                )
        except Exception as exc:  # noqa: BLE001
            out["pycuda"] = out.get("pycuda", "installed") + f" (CUDA unusable: {exc})"
    out["gpus"] = gpus if gpus else _nvidia_smi()
    out["backend"] = runtime_problem() or "available"
    cache = EngineCache()
    out["engine_cache"] = str(cache.requested)
    out["engines"] = cache.entries() or "none cached"
    return out
