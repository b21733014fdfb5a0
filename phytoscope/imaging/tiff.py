"""TIFF pages through tifffile: 8/16-bit, grey/RGB/RGBA, multi-page stacks.

OpenCV reads only the first page and silently drops some layouts, so microscope stacks
(one field per page, often 12-16 bit in uint16) go through tifffile instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from phytoscope.errors import SourceError


def _page_to_image(page: np.ndarray, photometric: str | None) -> list[np.ndarray]:
    """One page array -> one or more images (a page holding a volume is split)."""
    if page.ndim == 2:
        return [page]
    if page.ndim == 3 and page.shape[2] in (3, 4):
        return [page]
    if page.ndim == 3 and page.shape[2] == 1:
        return [page[:, :, 0]]
    if page.ndim == 3 and page.shape[0] in (3, 4) and photometric == "RGB":
        return [np.moveaxis(page, 0, -1)]  # planar RGB
    if page.ndim >= 3:
        return [image for sub in page for image in _page_to_image(sub, None)]
    raise SourceError(f"unsupported TIFF layout {page.shape}")


def read_tiff(path: Path) -> list[np.ndarray]:
    """Every page of a TIFF as an image in RGB(A) or grey order, at its own bit depth."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            if not tif.pages:
                raise SourceError(f"{path}: TIFF has no pages")
            images: list[np.ndarray] = []
            for page in tif.pages:
                photometric = getattr(getattr(page, "photometric", None), "name", None)
                data = page.asarray()  # type: ignore[union-attr]
                images.extend(_page_to_image(np.asarray(data), photometric))
    except SourceError:
        raise
    except Exception as exc:  # noqa: BLE001 - tifffile raises many types for broken files
        raise SourceError(f"{path}: not a readable TIFF (corrupt or truncated?): {exc}") from exc
    if not images:
        raise SourceError(f"{path}: TIFF holds no image")
    return images
