"""Single image files: PNG, JPEG, BMP (OpenCV) and TIFF (tifffile, see :mod:`.tiff`).

Every reader returns pixels in RGB(A) order, or grey (H, W), with the file's own bit depth
(uint8 or uint16), so the rest of phytoscope never meets OpenCV's BGR order.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from phytoscope.errors import SourceError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
TIFF_SUFFIXES = (".tif", ".tiff")


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def to_rgb_order(image: np.ndarray) -> np.ndarray:
    """OpenCV's BGR(A) -> RGB(A); grey images are returned as they are."""
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    return image


def check_pixels(image: np.ndarray, path: Path) -> np.ndarray:
    """Refuse what pre-processing cannot use, with a reason a technician can act on."""
    if image.size == 0 or image.ndim not in (2, 3) or min(image.shape[:2]) < 1:
        raise SourceError(f"{path}: empty image ({image.shape})")
    if image.ndim == 3 and image.shape[2] not in (1, 3, 4):
        raise SourceError(f"{path}: {image.shape[2]} channels; expected grey, RGB or RGBA")
    if image.dtype not in (np.uint8, np.uint16):
        if np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating):
            return image  # pre-processing stretches other depths to 8 bits
        raise SourceError(f"{path}: unsupported pixel type {image.dtype}")
    return image


def read_image(path: Path) -> list[np.ndarray]:
    """All images in a file (one, or one per page of a multi-page TIFF).

    Raises
    ------
    SourceError
        Unreadable, truncated, empty or not an image: the caller skips the file.
    """
    path = Path(path)
    if path.suffix.lower() in TIFF_SUFFIXES:
        from phytoscope.imaging.tiff import read_tiff

        return [check_pixels(page, path) for page in read_tiff(path)]
    try:
        data = np.fromfile(
            path, dtype=np.uint8
        )  # np.fromfile + imdecode copes with non-ASCII paths
    except OSError as exc:
        raise SourceError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if data.size == 0:
        raise SourceError(f"{path}: empty file")
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise SourceError(
            f"{path}: not a readable {path.suffix.lstrip('.').upper()} image (corrupt or truncated?)"
        )
    return [check_pixels(to_rgb_order(image), path)]
