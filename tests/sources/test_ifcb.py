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
from tests.faults import copy_bin, edit_adc

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


# -- damaged bins (issue #19, findings 2, 5 and 10) ------------------------------------------


def _bin(tmp_path, name=NEW.name):
    return copy_bin(tmp_path, name)


def test_overflowing_adc_value_skips_that_row_only(tmp_path):
    """#19.5: an ADC value 1e999 raised OverflowError and ended the whole run."""
    stem = edit_adc(_bin(tmp_path), line=2, column=15, value="1e999")  # ROI 2's RoiWidth
    items = list(iter_inputs([stem]))
    rois = [i for i in items if isinstance(i, Roi)]
    assert [r.index for r in rois] == [3] and all("partial" in r.flags for r in rois)
    assert rois[0].meta["rois_read"] == 1 and rois[0].meta["rois_expected"] == 2
    (report,) = [i for i in items if isinstance(i, Skipped)]
    assert report.kind == "partial" and (report.read, report.expected, report.line) == (1, 2, 2)
    assert "1 of 2 ROIs read" in report.reason
    assert "ADC line 2 skipped: column 16 (RoiWidth) is '1e999'" in report.reason


@pytest.mark.parametrize("value", ["abc", "nan", "-5", "3.5", ""])
def test_malformed_adc_row_names_its_line_and_keeps_the_others(tmp_path, value):
    """#19.5: one malformed row dropped the whole bin without naming the line."""
    stem = edit_adc(_bin(tmp_path, OLD.name), line=4, column=11, value=value)  # ROI 4 width
    items = list(iter_inputs([stem]))
    assert [i.index for i in items if isinstance(i, Roi)] == [1, 2, 3, 5, 6]
    report = items[-1]
    assert (
        isinstance(report, Skipped) and report.line == 4 and "ADC line 4 skipped" in report.reason
    )


def test_truncated_bin_flags_every_roi_it_gives(tmp_path):
    """#19.2 at the source: the ROIs of a cut-off bin carry ``partial`` and how many were read."""
    stem = _bin(tmp_path, OLD.name)
    roi = stem.with_suffix(".roi")
    roi.write_bytes(roi.read_bytes()[:40000])
    items = list(iter_inputs([stem]))
    rois = [i for i in items if isinstance(i, Roi)]
    assert [r.index for r in rois] == [1, 2]
    assert all("partial" in r.flags and r.meta["rois_expected"] == 6 for r in rois)
    report = items[-1]
    assert (report.kind, report.read, report.expected) == ("partial", 2, 6)
    assert "2 of 6 ROIs read; ROIs 3-6 lie past the end" in report.reason
    assert "40,000 bytes" in report.reason


def test_zero_byte_roi_file(tmp_path):
    stem = _bin(tmp_path)
    stem.with_suffix(".roi").write_bytes(b"")
    (report,) = list(iter_inputs([stem]))
    assert report.kind == "partial" and "0 of 2 ROIs read" in report.reason


def test_header_only_and_empty_adc(tmp_path):
    stem = _bin(tmp_path)
    adc = stem.with_suffix(".adc")
    adc.write_text("trigger#,ADCtime,PMTA,PMTB,RoiX,RoiY,RoiWidth,RoiHeight,StartByte\n")
    (item,) = list(iter_inputs([stem]))
    assert item.kind == "empty" and "holds no image (0 ADC rows" in item.reason
    adc.write_bytes(b"")
    (item,) = list(iter_inputs([stem]))
    assert item.kind == "error" and ".adc is empty" in item.reason


def test_unusable_run_time_flags_the_volume_not_the_rois(tmp_path):
    stem = _bin(tmp_path)
    hdr = stem.with_suffix(".hdr")
    hdr.write_text(hdr.read_text().replace("runTime: 715.6575", "runTime: 1e999"))
    for line in (1, 2, 3):  # the ADC's own run times, the fallback, unusable too
        edit_adc(stem, line, 22, "inf")
    rois = [i for i in iter_inputs([stem]) if isinstance(i, Roi)]
    assert len(rois) == 2 and all("no_volume" in r.flags for r in rois)


def test_nul_bytes_in_adc(tmp_path):
    stem = _bin(tmp_path)
    adc = stem.with_suffix(".adc")
    adc.write_bytes(adc.read_bytes().replace(b"\n2,", b"\n\x00\x00,", 1))
    rois = [i for i in iter_inputs([stem]) if isinstance(i, Roi)]
    assert [r.index for r in rois] == [2, 3]  # the trigger number is not needed for a ROI
