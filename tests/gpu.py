"""GPU tests skip with a visible reason on machines without the hardware, and fail instead
when ``PHYTOSCOPE_REQUIRE_GPU=1`` says this machine should have it (a Jetson, a GPU runner):
a silently skipped GPU suite would otherwise look like a passing one.

Use :func:`skip_or_fail` (or the ``need_*`` helpers) inside tests or fixtures marked ``gpu``.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

REQUIRE_ENV = "PHYTOSCOPE_REQUIRE_GPU"


def gpu_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def skip_or_fail(reason: str) -> None:
    """Skip with ``reason``; fail with it when the GPU is required here."""
    if gpu_required():
        pytest.fail(
            f"{reason} ({REQUIRE_ENV} is set: this machine should run the GPU tests)", pytrace=False
        )
    pytest.skip(reason)


def need_cuda() -> None:
    """pycuda importable and a CUDA device present (TensorRT not needed)."""
    if importlib.util.find_spec("pycuda") is None:
        skip_or_fail("pycuda is not installed: CUDA buffer tests not run")
    try:
        import pycuda.driver as cuda

        cuda.init()
        count = cuda.Device.count()
    except Exception as exc:  # noqa: BLE001 - any driver failure means no usable GPU
        skip_or_fail(f"no usable CUDA device ({exc})")
        return
    if count < 1:
        skip_or_fail("no CUDA device found")


def need_tensorrt() -> None:
    """TensorRT >= 8.5, pycuda and a CUDA device, as the backend itself checks."""
    from phytoscope.backends.tensorrt import runtime_problem

    reason = runtime_problem()
    if reason:
        skip_or_fail(f"TensorRT backend cannot run here: {reason}")
