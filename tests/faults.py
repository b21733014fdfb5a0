"""Bad inputs made on the spot under tmp_path: damaged images, bins and stacks.

Every builder writes real files (nothing mocked): PNGs are written byte by byte so
layouts OpenCV cannot encode (grey + alpha, a header claiming 20000 x 20000 pixels) exist
too; bins are the licensed fixtures of tests/data/ifcb, copied and then damaged.
"""

from __future__ import annotations

import shutil
import struct
import zlib
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent / "data"
NEW_BIN = "D20220522T003051_IFCB134"
"""New-format bin: 3 ADC rows, ROIs 2 and 3 carry an image."""
OLD_BIN = "IFCB5_2012_028_081515"
"""Old-format bin: 6 ROIs."""

PNG_COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(image: np.ndarray) -> bytes:
    """A PNG of ``image`` (H, W[, C]) uint8 or uint16, any of 1-4 channels."""
    image = image if image.ndim == 3 else image[:, :, None]
    height, width, channels = image.shape
    depth = 16 if image.dtype == np.uint16 else 8
    header = struct.pack(">IIBBBBB", width, height, depth, PNG_COLOUR_TYPES[channels], 0, 0, 0)
    data = image.astype(">u2" if depth == 16 else np.uint8)
    raw = b"".join(b"\x00" + data[row].tobytes() for row in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw))
        + _chunk(b"IEND", b"")
    )


def write_png(path: Path, image: np.ndarray) -> Path:
    path.write_bytes(png_bytes(image))
    return path


def png_bomb(path: Path, width: int, height: int) -> Path:
    """A few-kilobyte PNG whose header claims ``width`` x ``height`` RGB pixels (all black)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    comp = zlib.compressobj(9)
    row = b"\x00" * (1 + 3 * width)
    rows = min(height, 64)  # the data need not be complete: the header is what is checked
    data = b"".join(comp.compress(row) for _ in range(rows)) + comp.flush()
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", data)
        + _chunk(b"IEND", b"")
    )
    return path


def jpeg_bomb(path: Path, width: int, height: int) -> Path:
    """The first bytes of a baseline JPEG whose frame header claims ``width`` x ``height``."""
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    path.write_bytes(
        b"\xff\xd8" + b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00" + b"\x00" * 9 + sof
    )
    return path


def crop() -> np.ndarray:
    """A real grey IFCB image (SMHI, CC BY 4.0)."""
    import cv2

    return cv2.imread(str(DATA / "images" / "smhi_cryptomonadales.png"), cv2.IMREAD_GRAYSCALE)


def tiff_stack(path: Path, pages: int = 200, size: int = 64, keep: float = 1.0, **kw) -> Path:
    """A tifffile stack (page directory after the pixels, as tifffile and ImageJ write it),
    keeping only the first ``keep`` fraction of its bytes."""
    import tifffile

    rng = np.random.default_rng(0)
    tifffile.imwrite(path, rng.integers(0, 255, (pages, size, size), dtype=np.uint8), **kw)
    if keep < 1.0:
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * keep)])
    return path


def tiff_pages(path: Path, pages: int = 200, size: int = 64, keep: float = 1.0) -> Path:
    """A stack written page by page (each page's directory before the next page)."""
    import tifffile

    rng = np.random.default_rng(0)
    with tifffile.TiffWriter(path) as tif:
        for _ in range(pages):
            tif.write(
                rng.integers(0, 255, (size, size), dtype=np.uint8),
                photometric="minisblack",
                contiguous=False,
            )
    if keep < 1.0:
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * keep)])
    return path


def copy_bin(folder: Path, name: str = NEW_BIN) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in (".adc", ".hdr", ".roi"):
        shutil.copyfile(DATA / "ifcb" / (name + suffix), folder / (name + suffix))
    return folder / name


def edit_adc(stem: Path, line: int, column: int, value: str) -> Path:
    """Replace one cell (1-based line, 0-based column) of a bin's ADC file."""
    adc = stem.with_name(stem.name + ".adc")
    lines = adc.read_text(encoding="latin-1").splitlines()
    cells = lines[line - 1].split(",")
    cells[column] = value
    lines[line - 1] = ",".join(cells)
    adc.write_text("\n".join(lines) + "\n", encoding="latin-1")
    return stem


def truncate(path: Path, keep: int) -> Path:
    path.write_bytes(path.read_bytes()[:keep])
    return path
