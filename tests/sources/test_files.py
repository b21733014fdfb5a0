"""Image files and folders: formats, bit depths, channel order, bad files."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import tifffile

from phytoscope.errors import SourceError
from phytoscope.imaging.decode import read_image
from phytoscope.sources import expand_paths, iter_inputs
from phytoscope.types import Roi, Skipped


def test_grey_png_stays_grey(grey_png):
    (image,) = read_image(grey_png)
    assert image.ndim == 2 and image.dtype == np.uint8
    assert np.array_equal(image, cv2.imread(str(grey_png), cv2.IMREAD_UNCHANGED))


def test_colour_jpeg_is_given_in_rgb_order(tmp_path, crop_rgb):
    # a pure red patch: in RGB order channel 0 is the large one (OpenCV would put it last)
    red = np.zeros((20, 30, 3), np.uint8)
    red[..., 0] = 250
    path = tmp_path / "red.png"
    cv2.imwrite(str(path), cv2.cvtColor(red, cv2.COLOR_RGB2BGR))
    (image,) = read_image(path)
    assert image.shape == (20, 30, 3)
    assert image[..., 0].mean() > 240 and image[..., 2].mean() < 10


def test_rgba_and_bmp_and_16bit_and_pages(image_folder, crop_rgb):
    (rgba,) = read_image(image_folder / "d_rgba.png")
    assert rgba.shape[2] == 4 and np.array_equal(rgba[..., :3], crop_rgb)
    (bmp,) = read_image(image_folder / "sub" / "e_grey.bmp")
    assert bmp.ndim == 2
    (deep,) = read_image(image_folder / "sub" / "f_16bit.tif")
    assert deep.dtype == np.uint16 and deep.max() > 255
    assert np.array_equal(deep, tifffile.imread(image_folder / "sub" / "f_16bit.tif"))
    pages = read_image(image_folder / "sub" / "g_pages.tiff")
    assert len(pages) == 3 and all(p.shape == bmp.shape for p in pages)
    assert pages[0].mean() > pages[1].mean() > pages[2].mean()


def test_rgb_tiff(tmp_path, crop_rgb):
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, crop_rgb, photometric="rgb")
    (image,) = read_image(path)
    assert np.array_equal(image, crop_rgb)


@pytest.mark.parametrize(
    "name, fragment", [("c_corrupt.png", "corrupt"), ("sub/h_empty.jpg", "empty")]
)
def test_bad_files_raise_source_error(image_folder, name, fragment):
    with pytest.raises(SourceError, match=fragment):
        read_image(image_folder / name)


def test_corrupt_tiff(tmp_path):
    path = tmp_path / "broken.tif"
    path.write_bytes(b"II*\x00" + b"\x00" * 20)
    with pytest.raises(SourceError, match="TIFF"):
        read_image(path)


def test_folder_walk_is_sorted_recursive_and_skips_bad_files(image_folder):
    items = list(iter_inputs([image_folder]))
    rois = [i for i in items if isinstance(i, Roi)]
    skipped = [i for i in items if isinstance(i, Skipped)]
    names = [r.source.split("sample/")[1] for r in rois]
    assert (
        names
        == ["a_grey.png", "b_colour.jpg", "d_rgba.png", "sub/e_grey.bmp", "sub/f_16bit.tif"]
        + ["sub/g_pages.tiff"] * 3
    )
    assert [r.index for r in rois if r.source.endswith("g_pages.tiff")] == [0, 1, 2]
    assert [r.meta["page"] for r in rois if r.source.endswith("g_pages.tiff")] == [0, 1, 2]
    # the corrupt and the empty file are reported, the text file and hidden file ignored
    assert sorted(s.source.split("sample/")[1] for s in skipped) == [
        "c_corrupt.png",
        "sub/h_empty.jpg",
    ]
    assert all(s.reason for s in skipped)
    assert all(r.box is None and r.flags == () for r in rois)  # small images are not segmented


def test_explicit_paths_missing_and_unsupported(image_folder):
    items = list(
        iter_inputs(
            [image_folder / "nope.png", image_folder / "notes.txt", image_folder / "a_grey.png"]
        )
    )
    assert isinstance(items[0], Skipped) and "no such file" in items[0].reason
    assert isinstance(items[1], Skipped) and "not a supported" in items[1].reason
    assert isinstance(items[2], Roi)


def test_expand_paths_kinds(image_folder):
    kinds = dict((p.name, k) for k, p in expand_paths([image_folder]))
    assert (
        kinds["a_grey.png"] == "image" and "notes.txt" not in kinds and ".hidden.png" not in kinds
    )


def test_segment_choice_is_checked(image_folder):
    with pytest.raises(ValueError):
        list(iter_inputs([image_folder], segment="sometimes"))


def test_never_segment_keeps_whole_image(image_folder):
    items = list(iter_inputs([image_folder / "b_colour.jpg"], segment="never"))
    assert len(items) == 1 and items[0].box is None
    assert not items[0].segmented  # an instrument's crop: the crops' novelty threshold
