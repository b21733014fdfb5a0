"""Image files in every supported layout, written under tmp_path from licensed fixtures."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture
def crop_rgb() -> np.ndarray:
    """A real Pseudo-nitzschia crop (MIT) in RGB order."""
    return cv2.cvtColor(
        cv2.imread(str(DATA / "images" / "pn_delicatissima_crop.jpg")), cv2.COLOR_BGR2RGB
    )


@pytest.fixture
def grey_png() -> Path:
    return DATA / "images" / "smhi_cryptomonadales.png"


@pytest.fixture
def image_folder(tmp_path, crop_rgb) -> Path:
    """A folder tree with every format, a corrupt file, a hidden file and a non-image."""
    import tifffile

    root = tmp_path / "sample"
    (root / "sub").mkdir(parents=True)
    shutil.copyfile(DATA / "images" / "smhi_cryptomonadales.png", root / "a_grey.png")
    shutil.copyfile(DATA / "images" / "pn_delicatissima_crop.jpg", root / "b_colour.jpg")
    shutil.copyfile(DATA / "images" / "corrupt.png", root / "c_corrupt.png")
    rgba = np.dstack([crop_rgb, np.full(crop_rgb.shape[:2], 200, np.uint8)])
    cv2.imwrite(str(root / "d_rgba.png"), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    cv2.imwrite(str(root / "sub" / "e_grey.bmp"), cv2.cvtColor(crop_rgb, cv2.COLOR_RGB2GRAY))
    grey16 = cv2.cvtColor(crop_rgb, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 16  # 12-bit camera data
    tifffile.imwrite(root / "sub" / "f_16bit.tif", grey16)
    pages = (
        np.stack([cv2.cvtColor(crop_rgb, cv2.COLOR_RGB2GRAY)] * 3)
        // np.array([1, 2, 3], np.uint8)[:, None, None]
    )
    with tifffile.TiffWriter(root / "sub" / "g_pages.tiff") as tif:  # one field per page
        for page in pages.astype(np.uint8):
            tif.write(page, photometric="minisblack")
    (root / "sub" / "h_empty.jpg").write_bytes(b"")
    (root / "notes.txt").write_text("not an image")
    (root / ".hidden.png").write_bytes(b"junk")
    return root
