"""TensorRT: the fast engine on NVIDIA hardware (Jetson Orin with JetPack 6, x86 GPUs).

The engine is built from the ONNX FP32 model at FP32, FP16 or INT8 (``phytoscope
build-engine``, or on first load) and cached under a key of model sha256, TensorRT version,
GPU, precision and batch. The package keeps each job in its own module, in the spirit of
Polygraphy's loaders and runners:

- :mod:`.runtime`: TensorRT/pycuda imports and version checks, the CUDA context, the logger
- :mod:`.cache`: the engine cache on disk (keys, sidecars, fallback folder)
- :mod:`.calibration`: INT8 calibration images, pre-processed as at inference
- :mod:`.build`: building an engine from ONNX, with progress and cancel
- :mod:`.provider`: the engine provider (cache, else build and cache), a callable
- :mod:`.buffers`: buffer planning, pinned/device buffers, batched execution
- :mod:`.runner`: :class:`TensorRTBackend`, which takes an engine or a provider
- :mod:`.info`: what ``phytoscope info`` reports

``tensorrt`` and ``pycuda`` are imported only inside functions, so importing this package
never needs either.
"""

from __future__ import annotations

from phytoscope.backends.tensorrt.buffers import IOBuffers, run_batches
from phytoscope.backends.tensorrt.cache import EngineCache, EngineKey
from phytoscope.backends.tensorrt.info import describe_environment
from phytoscope.backends.tensorrt.provider import EngineProvider, EngineResult
from phytoscope.backends.tensorrt.runner import TensorRTBackend
from phytoscope.backends.tensorrt.runtime import CudaContext, runtime_problem

__all__ = [
    "CudaContext",
    "EngineCache",
    "EngineKey",
    "EngineProvider",
    "EngineResult",
    "IOBuffers",
    "TensorRTBackend",
    "describe_environment",
    "run_batches",
    "runtime_problem",
]
