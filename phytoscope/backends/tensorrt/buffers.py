"""Engine I/O: buffer planning (pure numpy) and the pinned/device buffers that run it.

:func:`plan_buffers`, :func:`chunks` and :func:`pad_batch` are unit-tested without a GPU;
:class:`IOBuffers` and :func:`run_batches` need pycuda (no TensorRT: the GPU tests drive them
with a stand-in execution context).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from phytoscope.backends.tensorrt.runtime import import_pycuda_driver
from phytoscope.errors import BackendError, ConfigError, ModelError

_DTYPES = {
    "FLOAT": np.float32,
    "HALF": np.float16,
    "INT8": np.int8,
    "UINT8": np.uint8,
    "INT32": np.int32,
    "INT64": np.int64,
    "BOOL": np.bool_,
}


def numpy_dtype(trt_dtype: Any) -> np.dtype:
    """numpy dtype of a TensorRT DataType (by its name, e.g. ``DataType.HALF``)."""
    name = str(getattr(trt_dtype, "name", trt_dtype)).rsplit(".", 1)[-1].upper()
    if name not in _DTYPES:
        raise BackendError(
            f"engine tensor type {name} cannot be fed from numpy; rebuild the engine from a "
            "float32 ONNX export (`phytoscope build-engine`)"
        )
    return np.dtype(_DTYPES[name])


@dataclass(frozen=True)
class TensorDesc:
    """An engine I/O tensor as TensorRT describes it (``-1`` for a dynamic dimension)."""

    name: str
    is_input: bool
    shape: tuple[int, ...]
    dtype: np.dtype


@dataclass(frozen=True)
class BufferPlan:
    """One pinned host + one device buffer, sized for the largest batch the engine runs."""

    name: str
    is_input: bool
    shape: tuple[int, ...]
    dtype: np.dtype
    dynamic_batch: bool

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    @property
    def batch(self) -> int:
        return self.shape[0]


def plan_buffers(tensors: Sequence[TensorDesc], max_batch: int) -> list[BufferPlan]:
    """Concrete buffer shapes for an engine's I/O tensors.

    A dynamic leading dimension becomes ``max_batch`` (the profile's maximum); any other
    dynamic dimension is refused, since phytoscope's models have a fixed image size. An
    engine with a fixed batch keeps it (smaller batches are then padded at inference).
    Outputs are the logits and, for a model with an open-set score, its ``novelty`` (N,).
    """
    if max_batch < 1:
        raise ConfigError(f"batch size must be at least 1, not {max_batch}")
    inputs = [t for t in tensors if t.is_input]
    outputs = [t for t in tensors if not t.is_input]
    if len(inputs) != 1 or not 1 <= len(outputs) <= 2:
        raise ModelError(
            f"the engine has {len(inputs)} inputs and {len(outputs)} outputs; phytoscope "
            "runs classifiers with one image input, the logits and at most a novelty score"
        )
    plans = []
    for tensor in tensors:
        shape = tuple(int(d) for d in tensor.shape)
        if not shape:
            raise ModelError(f"engine tensor {tensor.name} is a scalar; expected a batch")
        if any(d < 0 for d in shape[1:]):
            raise ModelError(
                f"engine tensor {tensor.name} has dynamic dimensions {shape} beyond the batch; "
                "export the model with a fixed image size"
            )
        dynamic = shape[0] < 0
        concrete = (max_batch if dynamic else shape[0], *shape[1:])
        plans.append(
            BufferPlan(tensor.name, tensor.is_input, concrete, np.dtype(tensor.dtype), dynamic)
        )
    batches = {p.batch for p in plans}
    if len(batches) != 1:
        raise ModelError(f"engine tensors disagree on the batch size: {sorted(batches)}")
    return plans


def chunks(n: int, max_batch: int) -> list[tuple[int, int]]:
    """``[start, stop)`` slices splitting ``n`` images into batches the engine accepts."""
    if max_batch < 1:
        raise ValueError("max_batch must be >= 1")
    return [(start, min(start + max_batch, n)) for start in range(0, n, max_batch)]


def pad_batch(batch: np.ndarray, size: int) -> np.ndarray:
    """Bring a partial batch up to ``size`` rows by repeating its rows in order.

    Used where an engine or the calibrator needs exactly ``size`` rows; the extra rows are
    real images (not zeros) so calibration statistics are not skewed towards black.
    """
    n = batch.shape[0]
    if n == size:
        return batch
    if n == 0 or n > size:
        raise ValueError(f"cannot pad a batch of {n} to {size}")
    index = np.arange(size) % n
    return np.ascontiguousarray(batch[index])


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
