"""TensorRT and pycuda themselves: version checks, imports, the CUDA context, the logger.

``tensorrt`` and ``pycuda`` are imported only inside these functions (they are optional
runtimes), so importing this module never needs either. Everything else in the package gets
them through :func:`import_tensorrt` and :func:`import_pycuda_driver`, which turn a missing
or unusable install into :class:`~phytoscope.errors.BackendUnavailable` naming what to do.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import threading
from typing import Any

from phytoscope.errors import BackendError, BackendUnavailable

log = logging.getLogger(__name__)

MIN_VERSION = (8, 5)
"""The name-based tensor API (num_io_tensors, set_tensor_address, execute_async_v3)."""

INSTALL_HINT = (
    "on a Jetson (JetPack 6): `sudo apt install python3-libnvinfer`, a virtual environment "
    "made with `python3 -m venv --system-site-packages`, and pycuda built from source "
    "(`pip install pycuda` with nvcc on PATH); on an x86 NVIDIA GPU: "
    "`pip install 'phytoscope[tensorrt]'` (tensorrt and pycuda wheels)"
)
PYCUDA_HINT = (
    "pycuda is built from source against the installed CUDA: put nvcc on PATH "
    "(`export PATH=/usr/local/cuda/bin:$PATH`) and run `pip install pycuda`"
)


# -- versions ----------------------------------------------------------------------------


def parse_version(text: str) -> tuple[int, ...]:
    """``"10.3.0.30"`` -> ``(10, 3, 0, 30)``; stops at the first non-numeric part."""
    parts: list[int] = []
    for piece in str(text).strip().split("."):
        match = re.match(r"\d+", piece)
        if not match:
            break
        parts.append(int(match.group()))
        if match.end() != len(piece):
            break
    if not parts:
        raise ValueError(f"not a version: {text!r}")
    return tuple(parts)


def version_problem(version: str) -> str | None:
    """Why this TensorRT cannot be used, or None when it can."""
    try:
        parsed = parse_version(version)
    except ValueError:
        return f"TensorRT reports an unreadable version {version!r}; reinstall it ({INSTALL_HINT})"
    if parsed[:2] < MIN_VERSION:
        return (
            f"TensorRT {version} is too old: phytoscope needs TensorRT "
            f"{MIN_VERSION[0]}.{MIN_VERSION[1]} or later (its name-based tensor API; JetPack 6 "
            "ships 8.6 or 10.x). JetPack 4.6 (TensorRT 8.0, Python 3.6) cannot run phytoscope: "
            "reflash the board with JetPack 6, or use --backend onnxruntime"
        )
    return None


def import_tensorrt() -> Any:
    """The ``tensorrt`` module, checked; BackendUnavailable naming what to install otherwise."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise BackendUnavailable(f"TensorRT is not installed ({exc}); {INSTALL_HINT}") from exc
    problem = version_problem(getattr(trt, "__version__", ""))
    if problem:
        raise BackendUnavailable(problem)
    return trt


def import_pycuda_driver() -> Any:
    try:
        import pycuda.driver as cuda
    except ImportError as exc:
        raise BackendUnavailable(
            f"pycuda is not installed or cannot load ({exc}); {PYCUDA_HINT}"
        ) from exc
    except OSError as exc:  # libcuda missing: no NVIDIA driver
        raise BackendUnavailable(f"pycuda cannot load the NVIDIA driver ({exc})") from exc
    return cuda


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


# -- the GPU and its CUDA context ---------------------------------------------------------


def gpu_identity(device: Any) -> tuple[str, str]:
    """(GPU name, compute capability) of a pycuda Device, for the engine key."""
    major, minor = device.compute_capability()
    return str(device.name()), f"{major}.{minor}"


def current_gpu() -> tuple[str, str]:
    """(GPU name, compute capability) of the device whose CUDA context is current here."""
    cuda = import_pycuda_driver()
    try:
        device = cuda.Context.get_device()
    except Exception as exc:  # noqa: BLE001 - pycuda.driver.LogicError: no current context
        raise BackendError(
            "no CUDA context is current on this thread: make one with CudaContext first"
        ) from exc
    return gpu_identity(device)


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


# -- logging -----------------------------------------------------------------------------

_LOGGER: Any = None
_LOGGER_LOCK = threading.Lock()


def trt_logger(trt: Any) -> Any:
    """One TensorRT logger per process (as TensorRT expects), forwarding to ``logging``."""
    global _LOGGER
    with _LOGGER_LOCK:
        if _LOGGER is None:
            trt_log = logging.getLogger("phytoscope.tensorrt")
            levels = {
                trt.ILogger.Severity.INTERNAL_ERROR: logging.CRITICAL,
                trt.ILogger.Severity.ERROR: logging.ERROR,
                trt.ILogger.Severity.WARNING: logging.WARNING,
                trt.ILogger.Severity.INFO: logging.DEBUG,
                trt.ILogger.Severity.VERBOSE: logging.DEBUG,
            }

            class _Logger(trt.ILogger):  # type: ignore[misc, name-defined]
                def __init__(self) -> None:
                    trt.ILogger.__init__(self)

                def log(self, severity: Any, msg: str) -> None:
                    trt_log.log(levels.get(severity, logging.INFO), "%s", msg)

            _LOGGER = _Logger()
        return _LOGGER
