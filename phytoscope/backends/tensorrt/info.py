"""What ``phytoscope info`` says about TensorRT: versions, CUDA driver, GPUs, cached engines."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from typing import Any

from phytoscope.backends.tensorrt.cache import EngineCache
from phytoscope.backends.tensorrt.runtime import (
    INSTALL_HINT,
    PYCUDA_HINT,
    gpu_identity,
    runtime_problem,
    version_problem,
)


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
