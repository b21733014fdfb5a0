"""INT8 calibration: real images, decoded and pre-processed exactly as at inference.

The image list, its digest (which keys the calibration cache) and the batches are pure
Python and unit-tested without TensorRT; :func:`make_calibrator` wraps them in TensorRT's
``IInt8EntropyCalibrator2`` and needs TensorRT and pycuda.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from phytoscope.backends.tensorrt.buffers import pad_batch
from phytoscope.backends.tensorrt.cache import atomic_write
from phytoscope.errors import ConfigError, SourceError
from phytoscope.imaging import decode
from phytoscope.imaging.decode import IMAGE_SUFFIXES
from phytoscope.imaging.preprocess import preprocess
from phytoscope.modelcard import InputSpec
from phytoscope.progress import CancelToken

log = logging.getLogger(__name__)


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


def make_calibrator(
    trt: Any,
    cuda: Any,
    batches: Iterator[np.ndarray],
    batch: int,
    spec: InputSpec,
    cache_path: Path | None,
    cancel: CancelToken | None = None,
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
