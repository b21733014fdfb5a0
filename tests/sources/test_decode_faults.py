"""Decoding damaged, odd and oversized images: each is that file's problem, said precisely.

Issue #19 findings 3, 4, 5 and 10 (grey + alpha TIFF, truncated stacks, OpenCV errors,
pixel limit, tiny images, log lines on stderr).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from phytoscope.errors import SourceError
from phytoscope.imaging import decode
from phytoscope.imaging.decode import decode_file, read_image
from phytoscope.sources import iter_inputs
from phytoscope.types import Roi, Skipped
from tests import faults


def items(path) -> tuple[list[Roi], list[Skipped]]:
    got = list(iter_inputs([path]))
    return [i for i in got if isinstance(i, Roi)], [i for i in got if isinstance(i, Skipped)]


# -- layouts -------------------------------------------------------------------------------


def test_grey_alpha_tiff_is_one_image(tmp_path):
    """#19.3: a 300 x 300 grey + alpha TIFF became 300 one-row "organisms"."""
    image = np.dstack([np.full((300, 300), 90, np.uint8), np.full((300, 300), 255, np.uint8)])
    path = tmp_path / "ga.tif"
    tifffile.imwrite(path, image, photometric="minisblack", extrasamples=["unassalpha"])
    rois, skipped = items(path)
    assert len(rois) == 1 and not skipped
    assert rois[0].image.shape == (300, 300) and int(rois[0].image[0, 0]) == 90


def test_grey_alpha_png_is_one_image(tmp_path):
    image = np.dstack([np.full((20, 30), 90, np.uint8), np.full((20, 30), 255, np.uint8)])
    rois, _ = items(faults.write_png(tmp_path / "ga.png", image))
    assert len(rois) == 1 and rois[0].image.shape[:2] == (20, 30)


@pytest.mark.parametrize(
    "kw, check",
    [
        (dict(photometric="rgb", planarconfig="separate"), lambda im: im.shape == (20, 30, 3)),
        (
            dict(
                photometric="palette",
                colormap=np.tile(np.arange(256, dtype=np.uint16) * 257, (3, 1)),
            ),
            lambda im: im.shape == (20, 30, 3),
        ),
        (dict(photometric="separated"), lambda im: im.shape == (20, 30, 3)),
        (dict(photometric="miniswhite"), lambda im: im.ndim == 2 and im[0, 0] == 255 - 7),
    ],
    ids=["planar-rgb", "palette", "cmyk", "min-is-white"],
)
def test_tiff_colour_models(tmp_path, kw, check):
    shape = {"separate": (3, 20, 30)}.get(kw.get("planarconfig", ""), (20, 30))
    if kw.get("photometric") == "separated":
        shape = (20, 30, 4)
    path = tmp_path / "x.tif"
    tifffile.imwrite(path, np.full(shape, 7, np.uint8), **kw)
    (image,) = read_image(path)
    assert check(image), image.shape


def test_one_bit_and_float_tiffs(tmp_path):
    tifffile.imwrite(tmp_path / "bits.tif", np.eye(20, dtype=bool))
    (bits,) = read_image(tmp_path / "bits.tif")
    assert bits.dtype == np.uint8 and set(np.unique(bits)) == {0, 255}
    data = np.linspace(0, 1, 400, dtype=np.float32).reshape(20, 20)
    data[0, 0] = np.nan
    tifffile.imwrite(tmp_path / "float.tif", data)
    (image,) = read_image(tmp_path / "float.tif")
    assert np.isfinite(image).all()


def test_format_comes_from_the_bytes_not_the_name(tmp_path):
    tifffile.imwrite(
        tmp_path / "stack.png", np.zeros((3, 10, 10), np.uint8), photometric="minisblack"
    )
    assert len(read_image(tmp_path / "stack.png")) == 3  # every page, not OpenCV's first
    faults.write_png(tmp_path / "flat.tif", np.zeros((10, 12), np.uint8))
    assert read_image(tmp_path / "flat.tif")[0].shape == (10, 12)
    (tmp_path / "notes.jpg").write_text("meeting notes, not a picture")
    with pytest.raises(SourceError, match="not a readable JPG image"):
        read_image(tmp_path / "notes.jpg")


def test_sixteen_bit_png_keeps_its_depth(tmp_path):
    image = (np.arange(200, dtype=np.uint16).reshape(10, 20) * 300).astype(np.uint16)
    (got,) = read_image(faults.write_png(tmp_path / "deep.png", image))
    assert got.dtype == np.uint16 and np.array_equal(got, image)


def test_cmyk_jpeg_is_rgb(tmp_path):
    image_module = pytest.importorskip("PIL.Image", reason="Pillow writes the CMYK JPEG")
    image_module.new("CMYK", (20, 10), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")
    (got,) = read_image(tmp_path / "cmyk.jpg")
    assert got.shape == (10, 20, 3) and got[0, 0, 0] > 200 and got[0, 0, 2] < 50  # red


# -- truncated stacks ------------------------------------------------------------------------


def test_truncated_stack_reports_pages_read_of_expected(tmp_path):
    """#19.4: a stack cut in half read 1 of 200 pages, with no word and exit 0."""
    path = faults.tiff_stack(tmp_path / "cut.tif", pages=200, keep=0.5)
    decoded = decode_file(path)
    assert decoded.partial and decoded.expected == 200
    assert 90 <= decoded.read < 200 == decoded.expected  # every page whose bytes are there
    assert len(decoded.pages) == decoded.read
    rois, skipped = items(path)
    assert len(rois) == decoded.read and all("partial" in r.flags for r in rois)
    (report,) = skipped
    assert report.kind == "partial" and (report.read, report.expected) == (decoded.read, 200)
    assert f"{decoded.read} of 200 pages read" in report.reason and "truncated" in report.reason


def test_imagej_stack_cut_off(tmp_path):
    path = faults.tiff_stack(tmp_path / "ij.tif", pages=50, keep=0.4, imagej=True)
    decoded = decode_file(path)
    assert decoded.expected == 50 and 0 < decoded.read < 50 and decoded.partial


def test_stack_missing_only_its_page_directory_is_complete(tmp_path):
    path = faults.tiff_stack(tmp_path / "tail.tif", pages=200)
    faults.truncate(path, path.stat().st_size - 300)  # pixels all there, directory cut
    decoded = decode_file(path)
    assert decoded.read == 200 and not decoded.partial


def test_page_by_page_stack_cut_off_names_the_page(tmp_path):
    path = faults.tiff_pages(tmp_path / "pages.tif", pages=200, keep=0.3)
    decoded = decode_file(path)
    assert decoded.partial and decoded.expected is None and 0 < decoded.read < 200
    text = "; ".join(decoded.problems)
    assert f"page {decoded.read + 1} cannot be read" in text and "past the end" in text


def test_truncated_single_images_say_so(tmp_path):
    png = faults.write_png(tmp_path / "cut.png", faults.crop())
    faults.truncate(png, png.stat().st_size // 2)
    with pytest.raises(SourceError, match="ends before its last chunk"):
        read_image(png)
    jpg = tmp_path / "cut.jpg"
    cv2.imwrite(str(jpg), faults.crop())
    faults.truncate(jpg, jpg.stat().st_size // 2)
    with pytest.raises(SourceError, match="end marker"):
        read_image(jpg)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(SourceError, match="empty file"):
        read_image(tmp_path / "empty.png")


# -- size guards -------------------------------------------------------------------------------


@pytest.mark.parametrize("bomb", [faults.png_bomb, faults.jpeg_bomb], ids=["png", "jpeg"])
def test_huge_image_is_refused_before_decoding(tmp_path, monkeypatch, bomb):
    """#19.10: a 20000 x 20000 PNG took 2.5 GB; its header alone decides now."""
    path = bomb(tmp_path / "huge.img", 20000, 20000)

    def no_decoding(*args):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(cv2, "imdecode", no_decoding)
    with pytest.raises(SourceError, match=r"20000 x 20000 pixels \(400 MP\) is over the 64 MP"):
        decode_file(path)


def test_limit_is_configurable(tmp_path, monkeypatch):
    path = faults.write_png(tmp_path / "a.png", np.zeros((100, 100), np.uint8))
    monkeypatch.setenv("PHYTOSCOPE_MAX_PIXELS", "5000")
    with pytest.raises(SourceError, match="PHYTOSCOPE_MAX_PIXELS"):
        read_image(path)
    monkeypatch.setenv("PHYTOSCOPE_MAX_PIXELS", "20000")
    assert read_image(path)[0].shape == (100, 100)


def test_opencv_error_is_the_files_problem(tmp_path, monkeypatch):
    """#19.5: a PNG over OpenCV's own pixel limit raised cv2.error and ended the run."""
    monkeypatch.setenv("PHYTOSCOPE_MAX_PIXELS", str(4 * 10**9))  # let it reach OpenCV
    path = faults.png_bomb(tmp_path / "huge.png", 40000, 40000)
    rois, skipped = items(path)
    assert rois == [] and "OpenCV cannot decode" in skipped[0].reason


def test_oversized_page_and_page_budget(tmp_path, monkeypatch):
    monkeypatch.setenv("PHYTOSCOPE_MAX_PIXELS", "1000")  # 31 x 31 pages pass, 4000 px in all
    path = faults.tiff_stack(tmp_path / "many.tif", pages=50, size=10)
    decoded = decode_file(path)
    assert decoded.read == 40 and "pages 41 and after not read" in decoded.problems[0]
    with tifffile.TiffWriter(tmp_path / "mixed.tif") as tif:
        for size in (10, 40, 10):
            tif.write(np.zeros((size, size), np.uint8), contiguous=False)
    decoded = decode_file(tmp_path / "mixed.tif")
    assert (
        decoded.read == 2 and "page 2 cannot be read: over the pixel limit" in decoded.problems[0]
    )


def test_tiny_images_are_flagged(tmp_path):
    """#19.10: a 1-pixel image was counted as an organism without a flag."""
    for name, shape in (("one.png", (1, 1)), ("thin.png", (5, 40)), ("ok.png", (11, 51))):
        faults.write_png(tmp_path / name, np.full(shape, 100, np.uint8))
    rois, _ = items(tmp_path)
    assert {Path(r.source).name: r.flags for r in rois} == {
        "ok.png": (),
        "one.png": ("tiny",),
        "thin.png": ("tiny",),
    }


# -- OS errors ---------------------------------------------------------------------------------


def test_unreadable_file_is_skipped_with_a_reason(tmp_path, monkeypatch):
    path = faults.write_png(tmp_path / "a.png", faults.crop())
    if os.geteuid() != 0:
        path.chmod(0)
    else:  # root reads any file: inject the error a user would meet

        def denied(file, *args, **kwargs):
            raise PermissionError(13, "Permission denied", str(file))

        monkeypatch.setattr(decode, "open", denied, raising=False)
    rois, skipped = items(path)
    assert rois == [] and "permission denied" in skipped[0].reason


def test_file_that_vanishes_after_listing(tmp_path, monkeypatch):
    import phytoscope.sources as sources

    for name in ("a.png", "b.png"):
        faults.write_png(tmp_path / name, faults.crop())
    real = sources.resolve_inputs

    def listed_then_deleted(paths, index=None):
        for entry in real(paths, index):
            if entry.path.name == "b.png":
                entry.path.unlink()  # gone between the listing and the reading
            yield entry

    monkeypatch.setattr(sources, "resolve_inputs", listed_then_deleted)
    rois, skipped = items(tmp_path)
    assert len(rois) == 1 and "no longer exists" in skipped[0].reason


# -- log lines -----------------------------------------------------------------------------------


def test_opencv_and_tifffile_do_not_write_to_stderr(tmp_path, capfd, caplog):
    """#19.10: OpenCV's "[ WARN ...]" lines and tifffile's warnings leaked to stderr."""
    png = faults.write_png(tmp_path / "cut.png", faults.crop())
    faults.truncate(png, png.stat().st_size // 2)
    stack = faults.tiff_pages(tmp_path / "cut.tif", pages=20, keep=0.5)
    with caplog.at_level(logging.DEBUG):
        items(tmp_path)
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""
    # what tifffile said is kept, at debug level, under phytoscope's name with the file
    routed = [r for r in caplog.records if r.name == "phytoscope.imaging.tiff"]
    assert any(
        "invalid page offset" in r.getMessage() and str(stack) in r.getMessage() for r in routed
    )
    # and nothing reaches the root logger's handlers, which print to stderr in the CLI
    # (pytest 9 itself listens on non-propagating loggers, so records are not the test)
    assert not logging.getLogger("tifffile").propagate
