"""TIFF pages through tifffile: 8/16-bit, grey/RGB/RGBA, multi-page stacks, cut-off files.

OpenCV reads only the first page and silently drops some layouts, so microscope stacks
(one field per page, often 12-16 bit in uint16) go through tifffile instead.

A truncated stack is the case to get right: tifffile and ImageJ write the page directory
of a contiguous stack *after* the pixels, so a copy cut off half-way shows one page and no
error, and counting its organisms over the whole sample's volume would understate every
concentration. Here the pages the file announces (tifffile's shape metadata, ImageJ's
``images=``) are compared with the pages found; pages of a contiguous, uncompressed stack
whose bytes are still in the file are read from those bytes, and whatever is missing is
reported page by page in :attr:`~phytoscope.imaging.decode.Decoded.problems`.

tifffile reports damage through the ``tifffile`` logger ("invalid page offset ..."), which
would otherwise print to stderr from whichever thread decodes: this module routes those
records into the problems of the file being read (or to this module's logger at INFO).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from phytoscope.errors import SourceError, number_ranges
from phytoscope.imaging.decode import (
    FILE_PAGE_BUDGET,
    Decoded,
    check_pixels,
    check_size,
    max_pixels,
)

log = logging.getLogger(__name__)

# TIFF photometric interpretations (TIFF 6.0, tag 262)
_MINISWHITE, _RGB, _PALETTE, _SEPARATED = 0, 2, 3, 5


class _TifffileLog(logging.Handler):
    """Collects tifffile's records per thread while a file is read; logs the rest at INFO."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.local = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        notes = getattr(self.local, "notes", None)
        if notes is not None:
            notes.append(record.getMessage())
        else:
            log.info("tifffile: %s", record.getMessage())

    @contextlib.contextmanager
    def collect(self) -> Iterator[list[str]]:
        notes: list[str] = []
        self.local.notes = notes
        try:
            yield notes
        finally:
            self.local.notes = None


_TIFFFILE_LOG = _TifffileLog()
_tifffile_logger = logging.getLogger("tifffile")
_tifffile_logger.addHandler(_TIFFFILE_LOG)
_tifffile_logger.propagate = False


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    return text[:200]


def _to_grey_or_colour(data: np.ndarray, photometric: int, colormap: Any) -> np.ndarray:
    """One image (H, W[, S]) in the file's colour model -> grey or RGB(A)."""
    if photometric == _PALETTE and colormap is not None and data.ndim == 2:
        cmap = np.asarray(colormap)
        if cmap.max() > 255:
            cmap = (cmap >> 8).astype(np.uint8)
        return np.moveaxis(cmap.astype(np.uint8), 0, -1)[data.astype(np.intp)]
    if photometric == _SEPARATED and data.ndim == 3 and data.shape[2] >= 4:
        top = float(np.iinfo(data.dtype).max) if np.issubdtype(data.dtype, np.integer) else 1.0
        ink = data[..., :4].astype(np.float32) / top
        rgb = (1.0 - ink[..., :3]) * (1.0 - ink[..., 3:4]) * top
        return rgb.astype(data.dtype)
    if photometric == _MINISWHITE and data.ndim == 2:
        if data.dtype == np.bool_:
            return ~data
        if np.issubdtype(data.dtype, np.unsignedinteger):
            return np.iinfo(data.dtype).max - data
    if data.ndim == 3 and data.shape[2] > 4:
        return data[..., :4] if photometric == _RGB else data[..., 0]
    return data


def _page_images(data: np.ndarray, axes: str, photometric: int, colormap: Any) -> list[np.ndarray]:
    """A page's array -> its images: samples become channels, any other axis more images.

    ``axes`` is tifffile's axes string of the page (``YX``, ``YXS``, ``SYX`` planar,
    ``ZYXS`` volumes). Grey + alpha (``YXS`` with 2 samples) is *one* grey image.
    """
    if len(axes) != data.ndim or "Y" not in axes or "X" not in axes:
        if data.ndim == 2:
            return [data]
        raise SourceError(f"unsupported TIFF page layout {data.shape} ({axes or 'no axes'})")
    order = [i for i, a in enumerate(axes) if a not in "YXS"]
    order += [axes.index("Y"), axes.index("X")] + ([axes.index("S")] if "S" in axes else [])
    data = np.transpose(data, order)
    lead = len(axes) - (3 if "S" in axes else 2)
    stack = data.reshape((-1, *data.shape[lead:]))
    images = []
    for image in stack:
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[:, :, 0]
        images.append(_to_grey_or_colour(image, photometric, colormap))
    return images


def _announced_pages(tif: Any) -> int | None:
    """How many pages the file's own metadata says the first series has (None: not said)."""
    try:
        if tif.is_imagej and tif.imagej_metadata:
            images = int(tif.imagej_metadata.get("images", 0))
            if images > 1:
                return images
        if tif.is_shaped and tif.shaped_metadata:
            shape = tif.shaped_metadata[0].get("shape")
            page = tif.pages.first.shape
            if shape and page:
                pages = math.prod(shape) // max(1, math.prod(page))
                return pages if pages > 1 else None
    except Exception:  # noqa: BLE001 - damaged metadata: fall back to counting pages
        log.debug("unreadable TIFF metadata", exc_info=True)
    return None


def _contiguous_pages(tif: Any, path: Path, first: int, count: int) -> list[np.ndarray]:
    """Pages ``first..first+count-1`` (0-based) of a contiguous, uncompressed stack.

    Such a stack (tifffile's and ImageJ's default) stores page after page from the first
    page's data offset on, so the pages whose bytes are complete can be read even when the
    page directory at the end of the file was cut off.
    """
    page = tif.pages.first
    if page.compression != 1 or not page.is_contiguous or page.is_tiled or not page.dataoffsets:
        return []
    dtype = np.dtype(page.dtype).newbyteorder(tif.byteorder)
    nbytes = int(page.nbytes)
    offset = int(page.dataoffsets[0])
    size = os.path.getsize(path)
    out = []
    with open(path, "rb") as fh:
        for number in range(first, first + count):
            start = offset + number * nbytes
            if nbytes <= 0 or start + nbytes > size:
                break
            fh.seek(start)
            data = np.frombuffer(fh.read(nbytes), dtype).reshape(page.shape)
            out.extend(
                _page_images(
                    data.astype(dtype.newbyteorder("=")),
                    page.axes,
                    int(page.photometric),
                    page.colormap,
                )
            )
    return out


def _read_page(page: Any) -> list[np.ndarray]:
    return _page_images(
        np.asarray(page.asarray()),
        getattr(page, "axes", ""),
        int(getattr(page, "photometric", 1)),
        getattr(page, "colormap", None),
    )


def read_tiff_pages(path: Path | str) -> Decoded:
    """Every page of a TIFF as images in RGB(A) or grey order, and what could not be read.

    Raises
    ------
    SourceError
        Not a TIFF, or not a single page could be read.
    """
    import tifffile

    path = Path(path)
    budget = FILE_PAGE_BUDGET * max_pixels()
    images: list[np.ndarray] = []
    failed: dict[str, list[int]] = {}  # reason -> 1-based page numbers
    problems: list[str] = []
    with _TIFFFILE_LOG.collect() as notes:
        try:
            tif = tifffile.TiffFile(path)
        except PermissionError as exc:
            raise SourceError(
                f"{path}: permission denied (cannot read the file; ask its owner or "
                "change its permissions)"
            ) from exc
        except Exception as exc:  # noqa: BLE001 - tifffile raises many types for broken files
            raise SourceError(f"{path}: not a readable TIFF ({_reason(exc)})") from exc
        with tif:
            expected = _announced_pages(tif)
            found = used = read = 0
            stopped = False
            try:
                for number, page in enumerate(tif.pages, start=1):
                    found = number
                    width = int(getattr(page, "imagewidth", 0))
                    height = int(getattr(page, "imagelength", 0))
                    try:
                        check_size(path, width, height, what=f"page {number}")
                    except SourceError as exc:
                        failed.setdefault("over the pixel limit for one image", []).append(number)
                        log.info("%s", exc)
                        continue
                    if used + width * height > budget:
                        problems.append(
                            f"pages {number} and after not read: the file holds more than "
                            f"{budget / 1e6:.0f} MP of pixels (split the stack, or raise "
                            "PHYTOSCOPE_MAX_PIXELS)"
                        )
                        stopped = True
                        break
                    try:
                        images.extend(check_pixels(im, path) for im in _read_page(page))
                        used += width * height
                        read += 1
                    except MemoryError:
                        failed.setdefault("not enough memory", []).append(number)
                    except Exception as exc:  # noqa: BLE001 - one bad page, the others go on
                        failed.setdefault(_reason(exc), []).append(number)
            except Exception as exc:  # noqa: BLE001 - the page chain itself is broken
                problems.append(f"the page directory breaks after page {found} ({_reason(exc)})")
            if not stopped and expected and found < expected:
                try:
                    recovered = _contiguous_pages(tif, path, found, expected - found)
                except Exception as exc:  # noqa: BLE001 - best effort on a damaged file
                    log.debug("%s: contiguous pages not recovered: %s", path, exc)
                    recovered = []
                images.extend(check_pixels(im, path) for im in recovered)
                read += len(recovered)
                if found + len(recovered) < expected:
                    problems.append(
                        f"pages {found + len(recovered) + 1}-{expected} of {expected} are "
                        "missing: the file ends before them (truncated?)"
                    )
                elif recovered:
                    log.info(
                        "%s: %d pages read from the stack's bytes (page directory cut off)",
                        path,
                        len(recovered),
                    )
    for note in notes:
        log.debug("%s: tifffile: %s", path, note)
    if not expected and any("invalid page offset" in n or "corrupted" in n for n in notes):
        problems.append(
            f"the page directory points past the end of the file after page {max(found, 1)} "
            "(truncated? how many pages it had is not recorded in the file)"
        )
    for reason, numbers in failed.items():
        label = "page" if len(numbers) == 1 else "pages"
        problems.insert(0, f"{label} {number_ranges(numbers)} cannot be read: {reason}")
    if expected and read == expected and problems:
        # every announced page was read (from the stack's bytes): nothing is lost
        log.info("%s: all %d pages read despite: %s", path, read, "; ".join(problems))
        problems = []
    if not images:
        detail = "; ".join(problems) if problems else "no image in the file"
        raise SourceError(f"{path}: no readable TIFF page ({detail})")
    return Decoded(images, expected=expected, problems=tuple(problems), read=read)


def read_tiff(path: Path) -> list[np.ndarray]:
    """Every readable page of a TIFF (see :func:`read_tiff_pages` for what was lost)."""
    return read_tiff_pages(path).pages
