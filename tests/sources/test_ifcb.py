"""IFCB bins, old and new format, against the ROIs the instruments' own tools exported."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from phytoscope.sources import iter_inputs
from phytoscope.sources.ifcb import IfcbBin, looks_like_bin
from phytoscope.types import Roi, Skipped

DATA = Path(__file__).resolve().parents[1] / "data"

NEW = DATA / "ifcb" / "D20220522T003051_IFCB134"
OLD = DATA / "ifcb" / "IFCB5_2012_028_081515"


def test_new_format_bin():
    abin = IfcbBin(NEW.with_suffix(".roi"))
    assert abin.bin_id == "D20220522T003051_IFCB134" and not abin.old_format
    assert abin.header["roiCount"] == "2"
    # header: runTime 715.6575 s, inhibitTime 0.15215 s, 0.25 mL/min
    assert abin.ml_analyzed == pytest.approx(0.25 * (715.6575 - 0.15215060763888888) / 60)
    rois = list(abin.rois())
    assert [r.number for r in rois] == [2, 3]  # ADC row 1 is a trigger without image
    assert rois[0].image.shape == (82, 176) and rois[1].image.shape == (114, 144)
    exported = cv2.imread(
        str(DATA / "ifcb" / "D20220522T003051_IFCB134_00002.png"), cv2.IMREAD_UNCHANGED
    )
    assert np.array_equal(rois[0].image, exported)


def test_old_format_bin():
    abin = IfcbBin(OLD)
    assert abin.old_format and len(abin) == 6
    exported = cv2.imread(
        str(DATA / "ifcb" / "IFCB5_2012_028_081515_00002.png"), cv2.IMREAD_UNCHANGED
    )
    assert np.array_equal(abin.roi(2), exported)
    # by hand from the ADC: run time 1.251953 s (last frame grab); five gaps between
    # frame grab and next trigger, each below the 0.073 s minimum -> 5 x 0.073; look time
    # = 1.251953 - 0.365 - 0.073 s; flow 5/48000 mL per step x 40 steps/s
    assert abin.ml_analyzed == pytest.approx((1.251953 - 5 * 0.073 - 0.073) * 5 / 48000 * 40)


@pytest.mark.parametrize("suffix", [".roi", ".adc", ".hdr", ""])
def test_any_file_of_the_triplet_opens_the_bin(suffix):
    path = NEW.with_name(NEW.name + suffix)
    assert looks_like_bin(path)
    assert IfcbBin(path).bin_id == NEW.name


def test_iter_inputs_yields_one_roi_per_image_with_meta():
    items = list(
        iter_inputs(
            [NEW.with_suffix(".adc"), NEW.with_suffix(".roi"), NEW.with_suffix(".hdr"), OLD]
        )
    )
    assert all(isinstance(i, Roi) for i in items)
    assert len(items) == 2 + 6  # the triplet is read once
    first = items[0]
    assert first.source == str(NEW) and first.index == 2
    assert first.meta == {
        "bin": NEW.name,
        "ml_analyzed": pytest.approx(2.98127, rel=1e-4),
        "roi_number": 2,
    }
    assert first.box == (788, 711, 176, 82)
    assert {i.meta["bin"] for i in items} == {NEW.name, OLD.name}


def test_folder_of_bins(tmp_path):
    for suffix in (".adc", ".hdr", ".roi"):
        shutil.copyfile(NEW.with_suffix(suffix), tmp_path / (NEW.name + suffix))
        shutil.copyfile(OLD.with_suffix(suffix), tmp_path / (OLD.name + suffix))
    items = list(iter_inputs([tmp_path]))
    assert len(items) == 8 and all(isinstance(i, Roi) for i in items)


def test_truncated_roi_file_keeps_earlier_rois_and_reports(tmp_path):
    for suffix in (".adc", ".hdr", ".roi"):
        shutil.copyfile(OLD.with_suffix(suffix), tmp_path / (OLD.name + suffix))
    roi = tmp_path / (OLD.name + ".roi")
    roi.write_bytes(roi.read_bytes()[:40000])  # ROI 3 (bytes 36927-52407) is cut off
    items = list(iter_inputs([roi]))
    rois = [i for i in items if isinstance(i, Roi)]
    assert [r.index for r in rois] == [1, 2]
    assert isinstance(items[-1], Skipped) and "past the end" in items[-1].reason


def test_missing_roi_file_is_skipped(tmp_path):
    shutil.copyfile(NEW.with_suffix(".adc"), tmp_path / (NEW.name + ".adc"))
    (item,) = list(iter_inputs([tmp_path / (NEW.name + ".adc")]))
    assert isinstance(item, Skipped) and ".roi is missing" in item.reason


def test_malformed_adc_is_skipped(tmp_path):
    (tmp_path / (NEW.name + ".adc")).write_text("1,2,three\n")
    (tmp_path / (NEW.name + ".roi")).write_bytes(b"\x00" * 10)
    (item,) = list(iter_inputs([tmp_path / NEW.name]))
    assert isinstance(item, Skipped) and "ADC" in item.reason
