"""Single image files: PNG, JPEG, BMP (OpenCV) and TIFF (tifffile, see :mod:`.tiff`).

Every reader returns pixels in RGB(A) order, or grey (H, W), with the file's own bit depth
(uint8 or uint16), so the rest of phytoscope never meets OpenCV's BGR order.

A file is one input: whatever goes wrong while reading it (unreadable, truncated, too large,
an OpenCV or tifffile exception) becomes a :class:`~phytoscope.errors.SourceError` naming
the file, so the caller skips that file and the run goes on. The format is taken from the
file's first bytes, not its name (a TIFF saved as ``.png`` still reads all its pages), and
the image size is read from the header before any pixel is decoded, so a small file that
claims 20000 x 20000 pixels is refused in microseconds instead of taking gigabytes.
"""

from __future__ import annotations

import logging
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from phytoscope.errors import SourceError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
TIFF_SUFFIXES = (".tif", ".tiff")

DEFAULT_MAX_PIXELS = 64_000_000
"""Largest image (or TIFF page) decoded, in pixels: 8000 x 8000. The largest camera frames
in the project's data are 2584 x 1936 (5 MP); 64 MP RGB is 192 MB decoded, and a whole
frame is also segmented, which needs a few more copies. ``PHYTOSCOPE_MAX_PIXELS`` raises it."""

FILE_PAGE_BUDGET = 4
"""A multi-page file stops after this many times the one-image limit of pixels in total
(the rest is reported as not read): a file is decoded as a whole, and several are decoded
at once by the pipeline."""

_HEAD_BYTES = 1 << 16

if "OPENCV_LOG_LEVEL" not in os.environ:
    # OpenCV prints its warnings ("PNG input buffer is incomplete") straight to stderr, from
    # C++, in whichever thread decodes; each is turned into this module's own message for
    # the file instead. OPENCV_LOG_LEVEL set by the user wins.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


def max_pixels() -> int:
    """The one-image pixel limit (``PHYTOSCOPE_MAX_PIXELS`` or :data:`DEFAULT_MAX_PIXELS`)."""
    value = os.environ.get("PHYTOSCOPE_MAX_PIXELS", "")
    try:
        return max(1, int(float(value))) if value else DEFAULT_MAX_PIXELS
    except ValueError:
        log.warning("PHYTOSCOPE_MAX_PIXELS=%r is not a number; using %d", value, DEFAULT_MAX_PIXELS)
        return DEFAULT_MAX_PIXELS


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


@dataclass(frozen=True)
class Decoded:
    """What one file gave: its images, and what could not be read of it.

    Attributes
    ----------
    pages
        One image per page (one for PNG/JPEG/BMP), RGB(A) or grey.
    expected
        Pages the file announces (multi-page TIFF metadata), or ``None`` when it does not
        say or all were read.
    problems
        What was lost, in words naming the page, e.g. ``"page 68 is cut off"``. Empty for a
        complete read.
    read
        Pages read (multi-page files; a page may hold several images), else ``None``.
    """

    pages: list[np.ndarray]
    expected: int | None = None
    problems: tuple[str, ...] = field(default=())
    read: int | None = None

    @property
    def partial(self) -> bool:
        return bool(self.problems)


def to_rgb_order(image: np.ndarray) -> np.ndarray:
    """OpenCV's BGR(A) -> RGB(A), in place; grey images are returned as they are."""
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB, dst=image)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA, dst=image)
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    return image


def check_pixels(image: np.ndarray, path: Path | str) -> np.ndarray:
    """Refuse what pre-processing cannot use, with a reason a technician can act on.

    Layouts that are images after all are brought to one the rest understands: grey +
    alpha becomes grey (alpha is ignored, as for RGBA), 1-bit images become 0/255, and
    non-finite values of float images become the darkest finite value.
    """
    if image.ndim == 3 and image.shape[2] == 2:
        image = image[:, :, 0]
    if image.size == 0 or image.ndim not in (2, 3) or min(image.shape[:2]) < 1:
        raise SourceError(f"{path}: empty image ({'x'.join(map(str, image.shape))} pixels)")
    if image.ndim == 3 and image.shape[2] not in (1, 3, 4):
        raise SourceError(
            f"{path}: {image.shape[2]} channels per pixel; expected grey, RGB or RGBA "
            "(save it as one of those)"
        )
    if image.dtype == np.bool_:
        return image.astype(np.uint8) * np.uint8(255)
    if image.dtype in (np.uint8, np.uint16):
        return image
    if np.issubdtype(image.dtype, np.floating):
        finite = np.isfinite(image)
        if not finite.all():
            if not finite.any():
                raise SourceError(f"{path}: no finite pixel value (all NaN or infinite)")
            image = np.where(finite, image, image[finite].min())
        return image  # pre-processing stretches other depths to 8 bits
    if np.issubdtype(image.dtype, np.integer):
        return image
    raise SourceError(f"{path}: unsupported pixel type {image.dtype}")


# -- headers -------------------------------------------------------------------------------


def sniff_format(head: bytes) -> str | None:
    """``"png"``, ``"jpeg"``, ``"bmp"`` or ``"tiff"`` from a file's first bytes, else None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8"):
        return "jpeg"
    if head.startswith(b"BM"):
        return "bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    return None


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _SOF and pos + 9 <= len(data):
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return width, height
        pos += 2 + length
    return None


def image_size(data: bytes, fmt: str) -> tuple[int, int] | None:
    """(width, height) from the header of a PNG, JPEG or BMP, without decoding pixels."""
    try:
        if fmt == "png" and data[12:16] == b"IHDR":
            width, height = struct.unpack(">II", data[16:24])
            return width, height
        if fmt == "bmp":
            width, height = struct.unpack("<ii", data[18:26])
            return abs(width), abs(height)
        if fmt == "jpeg":
            return _jpeg_size(data)
    except struct.error:
        return None
    return None


def check_size(path: Path | str, width: int, height: int, what: str = "image") -> None:
    """Refuse an image over :func:`max_pixels` before decoding it (message says what to do)."""
    limit = max_pixels()
    if width * height > limit:
        raise SourceError(
            f"{path}: {what} of {width} x {height} pixels ({width * height / 1e6:.0f} MP) is "
            f"over the {limit / 1e6:.0f} MP limit for one image; not decoded. Cut it into "
            "tiles, or raise the limit with PHYTOSCOPE_MAX_PIXELS if the machine has the memory"
        )


def _truncation_hint(data: bytes, fmt: str) -> str:
    if fmt == "png" and b"IEND" not in data[-32:]:
        return "; the file ends before its last chunk (truncated?)"
    if fmt == "jpeg" and not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        return "; the file ends before the image's end marker (truncated?)"
    return " (corrupt or truncated?)"


# -- reading ---------------------------------------------------------------------------------


def read_bytes(path: Path) -> bytes:
    """The file's bytes, with an OS error turned into a message naming the file."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except IsADirectoryError as exc:
        raise SourceError(f"{path}: is a folder, not an image file") from exc
    except FileNotFoundError as exc:
        raise SourceError(
            f"{path}: no longer exists (moved or deleted after the run started?)"
        ) from exc
    except PermissionError as exc:
        raise SourceError(
            f"{path}: permission denied (cannot read the file; ask its owner or change its permissions)"
        ) from exc
    except OSError as exc:
        raise SourceError(f"{path}: cannot read: {exc.strerror or exc}") from exc


def _decode_opencv(path: Path, data: bytes, fmt: str | None) -> np.ndarray:
    if fmt is not None:
        size = image_size(data, fmt)
        if size is not None:
            if min(size) < 1:
                raise SourceError(f"{path}: empty image ({size[0]} x {size[1]} pixels)")
            check_size(path, *size)
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:  # e.g. over OpenCV's own pixel limit, or a codec assertion
        detail = str(exc).strip().splitlines()[-1]
        raise SourceError(f"{path}: OpenCV cannot decode this image: {detail}") from exc
    if image is None:
        kind = (fmt or path.suffix.lstrip(".") or "image").upper()
        hint = _truncation_hint(data, fmt) if fmt else " (corrupt, or not an image?)"
        raise SourceError(f"{path}: not a readable {kind} image{hint}")
    return check_pixels(to_rgb_order(image), path)


def decode_file(path: Path | str) -> Decoded:
    """All images of one file, and what could not be read of it.

    Raises
    ------
    SourceError
        Nothing usable: unreadable, empty, too large, not an image. Partly readable
        multi-page TIFFs do not raise: their ``problems`` say what is missing.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(_HEAD_BYTES)
    except OSError:
        head = read_bytes(path)  # raises with the right message
    if not head:
        raise SourceError(f"{path}: empty file (0 bytes)")
    fmt = sniff_format(head)
    if fmt == "tiff" or (fmt is None and path.suffix.lower() in TIFF_SUFFIXES):
        from phytoscope.imaging.tiff import read_tiff_pages

        return read_tiff_pages(path)
    try:
        return Decoded([_decode_opencv(path, read_bytes(path), fmt)])
    except MemoryError as exc:
        raise SourceError(
            f"{path}: not enough memory to decode this image; close other programs or "
            "lower PHYTOSCOPE_MAX_PIXELS"
        ) from exc


def read_image(path: Path | str) -> list[np.ndarray]:
    """All images in a file (one, or one per page of a multi-page TIFF).

    Pages a truncated TIFF lost are left out silently here: sources that count organisms
    use :func:`decode_file`, which says what was lost.

    Raises
    ------
    SourceError
        Unreadable, truncated, empty or not an image: the caller skips the file.
    """
    return decode_file(path).pages
