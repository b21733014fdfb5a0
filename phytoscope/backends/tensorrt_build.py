"""TensorRT engines: version checks, the engine cache, buffer planning, calibration, building.

Everything above the ``build_engine`` section is pure Python (numpy, OpenCV, stdlib) and is
unit-tested on machines without TensorRT. ``tensorrt`` and ``pycuda`` are imported only
inside the functions that talk to them, so importing this module never needs either.

Cache layout (one folder, default ``config.cache_dir()/engines``)::

    <model>-<sha256[:12]>-<precision>-b<batch>[-dla<N>].engine   serialised engine
    <same>.engine.json                                           sidecar: the full EngineKey
    timing-trt<version>-<gpu>.cache                              TensorRT timing cache
    calib-<sha256[:12]>-<images digest>.cache                    INT8 calibration cache

The engine's file name leaves out the TensorRT version and the GPU on purpose: after a
JetPack upgrade, or a cache folder copied from another machine, the same file is found, its
sidecar disagrees with this machine, and the engine is rebuilt in place with a logged
message (instead of stale engines piling up, or a cryptic deserialisation error).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from phytoscope.errors import (
    BackendError,
    BackendUnavailable,
    Cancelled,
    ConfigError,
    ModelError,
    SourceError,
)
from phytoscope.imaging import decode
from phytoscope.imaging.decode import IMAGE_SUFFIXES
from phytoscope.modelcard import InputSpec, ModelCard

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


ProgressCallback = Callable[[str, "float | None"], None]
"""``progress(message, fraction)``; fraction in [0, 1] or None when unknown."""


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


# -- engine cache ------------------------------------------------------------------------


@dataclass(frozen=True)
class EngineKey:
    """What an engine is only valid for. Any difference means rebuild."""

    model_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    precision: str
    batch: int
    dla_core: int | None = None

    def differences(self, other: dict[str, Any]) -> list[str]:
        """Human-readable fields in which a sidecar's key differs from this one."""
        out = []
        for name, value in asdict(self).items():
            theirs = other.get(name, "<missing>")
            if theirs != value:
                out.append(f"{name.replace('_', ' ')} {theirs} -> {value}")
        return out


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "x"


def engine_file_name(card_name: str, key: EngineKey) -> str:
    dla = f"-dla{key.dla_core}" if key.dla_core is not None else ""
    return f"{_slug(card_name)}-{key.model_sha256[:12]}-{key.precision}-b{key.batch}{dla}.engine"


def writable_dir(path: Path) -> bool:
    """True when files can be created in ``path`` (created if missing)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError:
        return False
    return True


def atomic_write(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename, so a crash never leaves half an engine."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class CachedEngine:
    path: Path
    sidecar: dict[str, Any]


class EngineCache:
    """Engines on disk under their :class:`EngineKey`, with a user-cache fallback.

    ``directory`` is where engines should go (``--cache-dir``); when it cannot be written
    (a read-only install folder, a path under a file) the user cache
    ``config.cache_dir()/engines`` is used instead, with a warning, and lookups search both
    so the engine built there is found at the next start.
    """

    def __init__(self, directory: Path | str | None = None, fallback: Path | None = None):
        from phytoscope.config import cache_dir

        self.fallback = Path(fallback) if fallback else cache_dir() / "engines"
        self.requested = Path(directory) if directory else self.fallback
        self._write_dir: Path | None = None
        self._resolved = False

    @property
    def search_dirs(self) -> list[Path]:
        dirs = [self.requested]
        if self.fallback != self.requested:
            dirs.append(self.fallback)
        return dirs

    @property
    def write_dir(self) -> Path | None:
        """The folder new files go to, or None when neither folder can be written."""
        if not self._resolved:
            self._resolved = True
            for candidate in self.search_dirs:
                if writable_dir(candidate):
                    if candidate != self.requested:
                        log.warning(
                            "TensorRT engine cache %s cannot be written; using %s instead",
                            self.requested,
                            candidate,
                        )
                    self._write_dir = candidate
                    break
            else:
                log.warning(
                    "neither %s nor %s can be written: TensorRT engines will not be cached and "
                    "will be rebuilt at every start; fix the permissions or pass --cache-dir",
                    self.requested,
                    self.fallback,
                )
        return self._write_dir

    def lookup(self, card_name: str, key: EngineKey) -> CachedEngine | None:
        """The cached engine for ``key``, or None (with the reason logged) to rebuild."""
        name = engine_file_name(card_name, key)
        for folder in self.search_dirs:
            engine = folder / name
            if not engine.is_file():
                continue
            sidecar_path = engine.with_name(engine.name + ".json")
            try:
                sidecar = json.loads(sidecar_path.read_text(encoding="utf-8"))
                stored_key = sidecar["key"]
                if not isinstance(stored_key, dict):
                    raise TypeError("key is not an object")
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning(
                    "cached TensorRT engine %s has no readable sidecar (%s): it may come from "
                    "another machine; rebuilding",
                    engine,
                    exc,
                )
                continue
            diffs = key.differences(stored_key)
            if diffs:
                log.warning(
                    "cached TensorRT engine %s was built for a different setup (%s); rebuilding",
                    engine,
                    "; ".join(diffs),
                )
                continue
            return CachedEngine(engine, sidecar)
        return None

    def store(self, card_name: str, key: EngineKey, engine: bytes, **extra: Any) -> Path | None:
        """Write an engine and its sidecar; None (logged) when nothing can be written."""
        folder = self.write_dir
        if folder is None:
            return None
        path = folder / engine_file_name(card_name, key)
        sidecar = {
            "key": asdict(key),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "size_bytes": len(engine),
            **extra,
        }
        try:
            atomic_write(path, engine)
            atomic_write(
                path.with_name(path.name + ".json"), (json.dumps(sidecar, indent=2) + "\n").encode()
            )
        except OSError as exc:
            log.warning(
                "could not write TensorRT engine %s (%s); it will be rebuilt next time", path, exc
            )
            return None
        return path

    def discard(self, path: Path) -> None:
        """Remove an engine that failed to deserialise (and its sidecar)."""
        for victim in (path, path.with_name(path.name + ".json")):
            try:
                victim.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("could not remove stale engine file %s: %s", victim, exc)

    def timing_cache_path(self, tensorrt_version: str, gpu_name: str) -> Path | None:
        folder = self.write_dir
        if folder is None:
            return None
        return folder / f"timing-trt{tensorrt_version}-{_slug(gpu_name)}.cache"

    def calibration_cache_path(self, key: EngineKey, images_digest: str) -> Path | None:
        name = f"calib-{key.model_sha256[:12]}-{images_digest[:12]}.cache"
        for folder in self.search_dirs:
            if (folder / name).is_file():
                return folder / name
        target = self.write_dir
        return target / name if target is not None else None

    def entries(self) -> list[dict[str, Any]]:
        """Cached engines (for ``phytoscope info``)."""
        out = []
        for folder in self.search_dirs:
            if not folder.is_dir():
                continue
            for engine in sorted(folder.glob("*.engine")):
                row: dict[str, Any] = {
                    "file": str(engine),
                    "size_mb": round(engine.stat().st_size / 2**20, 1),
                }
                try:
                    sidecar = json.loads(engine.with_name(engine.name + ".json").read_text())
                    key = sidecar["key"]
                    row.update(
                        precision=key["precision"],
                        batch=key["batch"],
                        tensorrt=key["tensorrt_version"],
                        gpu=key["gpu_name"],
                        built_at=sidecar.get("built_at"),
                    )
                except (OSError, ValueError, KeyError, TypeError):
                    row["sidecar"] = "missing or unreadable (will be rebuilt)"
                out.append(row)
        return out


# -- buffers -----------------------------------------------------------------------------

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
    """
    if max_batch < 1:
        raise ConfigError(f"batch size must be at least 1, not {max_batch}")
    inputs = [t for t in tensors if t.is_input]
    outputs = [t for t in tensors if not t.is_input]
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelError(
            f"the engine has {len(inputs)} inputs and {len(outputs)} outputs; phytoscope "
            "runs classifiers with one image input and one logits output"
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


# -- calibration -------------------------------------------------------------------------


def list_images(folder: Path | str, limit: int | None = None) -> list[Path]:
    """Image files under a folder (recursive, sorted), thinned evenly to ``limit``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"calibration folder {folder} does not exist or is not a folder")
    files = sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    )
    if not files:
        raise ConfigError(
            f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}; INT8 calibration needs a few "
            "hundred real images of the kind you will classify"
        )
    if limit and len(files) > limit:
        step = len(files) / limit
        files = [files[int(i * step)] for i in range(limit)]
    return files


def images_digest(files: Sequence[Path]) -> str:
    """Identity of a calibration set (names, sizes, mtimes), to key its calibration cache."""
    digest = hashlib.sha256()
    for f in files:
        stat = f.stat()
        digest.update(f"{f.name}\0{stat.st_size}\0{int(stat.st_mtime)}\n".encode())
    return digest.hexdigest()


def read_image(path: Path) -> np.ndarray | None:
    """The first image of a file, decoded as inference decodes it, or None if unreadable."""
    try:
        return decode.read_image(path)[0]
    except SourceError as exc:
        log.debug("%s", exc)
        return None


def calibration_batches(
    images: Iterable[Path | np.ndarray], spec: InputSpec, batch: int
) -> Iterator[np.ndarray]:
    """Pre-processed float32 batches of ``batch`` images (the last one may be shorter).

    Images go through :func:`phytoscope.imaging.preprocess.preprocess`, exactly as at inference,
    so the INT8 ranges TensorRT measures are those the engine will see. Unreadable files are
    skipped with a warning.
    """
    from phytoscope.imaging.preprocess import preprocess

    if batch < 1:
        raise ConfigError(f"calibration batch must be at least 1, not {batch}")
    pending: list[np.ndarray] = []
    for item in images:
        pixels = read_image(item) if isinstance(item, Path) else item
        if pixels is None:
            log.warning("calibration: cannot read %s; skipped", item)
            continue
        pending.append(preprocess(pixels, spec))
        if len(pending) == batch:
            yield np.stack(pending).astype(np.float32, copy=False)
            pending = []
    if pending:
        yield np.stack(pending).astype(np.float32, copy=False)


# -- build progress ----------------------------------------------------------------------


@dataclass
class PhaseTracker:
    """Turns TensorRT's nested build phases into ``progress(message, fraction)`` calls.

    The fraction follows the outermost phase only (inner phases repeat per layer/tactic and
    would make a bar jump back); messages name the innermost phase and its step. TensorRT
    may call from several of its threads, hence the lock.
    """

    progress: ProgressCallback | None = None
    cancel: threading.Event | None = None
    _phases: dict[str, tuple[str | None, int]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def phase_start(self, phase: str, parent: str | None, steps: int) -> None:
        with self._lock:
            self._phases[phase] = (parent, max(int(steps), 1))
            self._emit(f"{phase}", self._fraction(phase, 0))

    def step_complete(self, phase: str, step: int) -> bool:
        with self._lock:
            _, steps = self._phases.get(phase, (None, 1))
            self._emit(f"{phase} {step + 1}/{steps}", self._fraction(phase, step + 1))
        return not (self.cancel is not None and self.cancel.is_set())

    def phase_finish(self, phase: str) -> None:
        with self._lock:
            self._phases.pop(phase, None)

    def _fraction(self, phase: str, done: int) -> float | None:
        parent, steps = self._phases.get(phase, (None, 1))
        if parent is not None:
            return None
        return min(done / steps, 1.0)

    def _emit(self, message: str, fraction: float | None) -> None:
        if self.progress is not None:
            self.progress(message, fraction)


# -- building (needs TensorRT) -------------------------------------------------------------


@dataclass(frozen=True)
class BuildOptions:
    precision: str = "fp32"
    batch: int = 16
    """The optimisation profile's opt and max batch (min is 1)."""
    workspace_mb: int | None = 1024
    """Builder scratch memory limit; keep it well under a 4 GB board's free memory."""
    dla_core: int | None = None
    calibration_images: Path | None = None
    calibration_limit: int = 512

    def validate(self) -> BuildOptions:
        if self.precision not in ("fp32", "fp16", "int8"):
            raise ConfigError(f"precision must be fp32, fp16 or int8, not {self.precision!r}")
        if not 1 <= self.batch <= 1024:
            raise ConfigError(f"batch must be between 1 and 1024, not {self.batch}")
        if self.workspace_mb is not None and self.workspace_mb < 16:
            raise ConfigError(f"workspace must be at least 16 MB, not {self.workspace_mb}")
        if self.dla_core is not None and self.precision == "fp32":
            raise ConfigError("DLA cores run FP16 or INT8 only: add --precision fp16 or int8")
        return self


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


def _make_progress_monitor(trt: Any, tracker: PhaseTracker) -> Any:
    class _Monitor(trt.IProgressMonitor):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            tracker.phase_start(phase_name, parent_phase, num_steps)

        def step_complete(self, phase_name: str, step: int) -> bool:
            return tracker.step_complete(phase_name, step)

        def phase_finish(self, phase_name: str) -> None:
            tracker.phase_finish(phase_name)

    return _Monitor()


def make_calibrator(
    trt: Any,
    cuda: Any,
    batches: Iterator[np.ndarray],
    batch: int,
    spec: InputSpec,
    cache_path: Path | None,
    cancel: threading.Event | None = None,
) -> Any:
    """An IInt8EntropyCalibrator2 fed by pre-processed real images, keeping a cache file."""
    nbytes = int(np.prod(spec.batch_shape(batch))) * 4

    class _Calibrator(trt.IInt8EntropyCalibrator2):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.device = cuda.mem_alloc(nbytes)
            self.count = 0

        def get_batch_size(self) -> int:
            return batch

        def get_batch(self, names: list[str]) -> list[int] | None:
            if cancel is not None and cancel.is_set():
                return None
            try:
                data = next(batches)
            except StopIteration:
                log.info("INT8 calibration used %d images", self.count)
                return None
            self.count += data.shape[0]
            cuda.memcpy_htod(self.device, np.ascontiguousarray(pad_batch(data, batch)))
            return [int(self.device)]

        def read_calibration_cache(self) -> bytes | None:
            if cache_path is not None and cache_path.is_file():
                log.info("using INT8 calibration cache %s", cache_path)
                return cache_path.read_bytes()
            return None

        def write_calibration_cache(self, cache: Any) -> None:
            if cache_path is None:
                return
            try:
                atomic_write(cache_path, bytes(cache))
            except OSError as exc:
                log.warning("could not keep the INT8 calibration cache %s: %s", cache_path, exc)

        def free(self) -> None:
            self.device.free()

    return _Calibrator()


def build_engine(
    onnx_path: Path,
    card: ModelCard,
    options: BuildOptions,
    cache: EngineCache,
    key: EngineKey,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> bytes:
    """Build a serialised engine from an ONNX model (a CUDA context must be current).

    Reports progress through ``progress``; setting ``cancel`` stops the build (TensorRT 10's
    progress monitor; on 8.x the build stops at the next coarse step) with :class:`Cancelled`.
    """
    # One code path serves TensorRT 8.5 to 10.x, so it uses calls newer releases deprecate
    # (EXPLICIT_BATCH, platform_has_fast_*, implicit INT8 calibration); their Python
    # DeprecationWarnings say nothing a technician can act on.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return _build_engine(onnx_path, card, options, cache, key, progress, cancel)


def _build_engine(
    onnx_path: Path,
    card: ModelCard,
    options: BuildOptions,
    cache: EngineCache,
    key: EngineKey,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> bytes:
    trt = import_tensorrt()
    options = options.validate()
    report = progress or (lambda message, fraction: None)
    major = parse_version(trt.__version__)[0]

    def check_cancel() -> None:
        if cancel is not None and cancel.is_set():
            raise Cancelled("TensorRT engine build cancelled")

    logger = trt_logger(trt)
    report(f"parsing {onnx_path.name}", 0.0)
    builder = trt.Builder(logger)
    flags = 0 if major >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelError(f"TensorRT cannot parse {onnx_path.name}: {errors}")
    expected_outputs = 1 if card.novelty is None else 2
    if network.num_inputs != 1 or network.num_outputs != expected_outputs:
        raise ModelError(
            f"{onnx_path.name}: expected one input and {expected_outputs} output(s) "
            "(logits, and novelty where the card has one)"
        )
    inp = network.get_input(0)
    shape = tuple(inp.shape)
    outputs = [network.get_output(i) for i in range(network.num_outputs)]
    logits = next((o for o in outputs if o.name == "logits"), outputs[0])
    card.check_io_shapes(shape, tuple(logits.shape)[-1])
    if shape[0] > 0 and shape[0] != options.batch:
        raise ModelError(
            f"{onnx_path.name} has a fixed batch of {shape[0]}; export it with a dynamic batch "
            f"(`phytoscope export`) or build with --batch {shape[0]}"
        )
    check_cancel()

    config = builder.create_builder_config()
    if options.workspace_mb is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mb << 20)
    profile = builder.create_optimization_profile()
    rest = shape[1:]
    profile.set_shape(inp.name, (1, *rest), (options.batch, *rest), (options.batch, *rest))
    config.add_optimization_profile(profile)

    if options.precision in ("fp16", "int8"):
        if not getattr(builder, "platform_has_fast_fp16", True):
            log.warning("this GPU has no fast FP16; the %s engine may be slow", options.precision)
        config.set_flag(trt.BuilderFlag.FP16)  # INT8 layers fall back to FP16, not FP32
    calibrator = None
    if options.precision == "int8":
        if not getattr(builder, "platform_has_fast_int8", True):
            log.warning("this GPU has no fast INT8; the engine may be slow")
        config.set_flag(trt.BuilderFlag.INT8)
        files: list[Path] = []
        digest = "nocalibimages"
        if options.calibration_images is not None:
            files = list_images(options.calibration_images, options.calibration_limit)
            digest = images_digest(files)
        calib_cache = cache.calibration_cache_path(key, digest)
        if not files and (calib_cache is None or not calib_cache.is_file()):
            raise ConfigError(
                "INT8 needs calibration images: build the engine once with `phytoscope "
                "build-engine MODEL --precision int8 --calibration-images DIR` (a few hundred "
                "real images of the kind you will classify); later runs reuse the cached engine"
            )
        cuda = import_pycuda_driver()
        batches = calibration_batches(files, card.input, options.batch)
        calibrator = make_calibrator(
            trt, cuda, batches, options.batch, card.input, calib_cache, cancel
        )
        config.int8_calibrator = calibrator
        config.set_calibration_profile(profile)
        report(f"INT8 calibration on {len(files) or 'cached'} images", None)

    if options.dla_core is not None:
        if builder.num_DLA_cores == 0:
            raise ConfigError(
                "this GPU has no DLA cores (only Jetson Xavier/Orin boards do); drop --dla-core"
            )
        if not 0 <= options.dla_core < builder.num_DLA_cores:
            raise ConfigError(
                f"DLA core {options.dla_core} does not exist (this board has {builder.num_DLA_cores})"
            )
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = options.dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)

    timing_path = cache.timing_cache_path(key.tensorrt_version, key.gpu_name)
    blob = b""
    if timing_path is not None and timing_path.is_file():
        blob = timing_path.read_bytes()
    try:
        timing = config.create_timing_cache(blob)
    except Exception:  # noqa: BLE001 - a damaged cache file only costs build time
        timing = None
    if timing is None or not config.set_timing_cache(timing, False):
        log.warning(
            "timing cache %s is damaged or does not fit this TensorRT/GPU; starting a new one",
            timing_path,
        )
        timing = config.create_timing_cache(b"")
        config.set_timing_cache(timing, False)

    tracker = PhaseTracker(report, cancel)
    # TensorRT holds only a pointer to the monitor: keep the Python object alive (this local)
    # for as long as the build runs
    monitor = _make_progress_monitor(trt, tracker) if hasattr(trt, "IProgressMonitor") else None
    if monitor is not None:
        config.progress_monitor = monitor
    check_cancel()
    report(
        f"building {options.precision} engine (batch {options.batch}); this can take minutes", None
    )
    started = time.perf_counter()
    try:
        serialized = builder.build_serialized_network(network, config)
    finally:
        if calibrator is not None:
            calibrator.free()
        del monitor
    check_cancel()
    if serialized is None:
        raise BackendError(
            f"TensorRT could not build a {options.precision} engine for {onnx_path.name} (see the "
            "log above); on a small board try a smaller --workspace-mb or --batch, or fp16"
        )
    log.info("built %s engine in %.1f s", options.precision, time.perf_counter() - started)
    if timing_path is not None:
        try:
            atomic_write(timing_path, bytes(config.get_timing_cache().serialize()))
        except OSError as exc:
            log.warning("could not keep the timing cache %s: %s", timing_path, exc)
    report("engine built", 1.0)
    return bytes(serialized)
