"""Recorded video as a source: real files written at test time from the licensed sample field,
read through OpenCV's FFmpeg backend by the camera's capture loop and segmentation."""

from __future__ import annotations

import struct
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from phytoscope.sources import expand_paths, iter_inputs
from phytoscope.sources.video import (
    VideoSampling,
    frame_source,
    probe,
    recording_time,
    split_frame_source,
)
from phytoscope.types import Roi, Skipped
from tests.videos import drifting_frames, set_mp4_creation_time, write_video


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """Four frames of a drifting field at 2 frames/s, the last one out of focus."""
    return write_video(
        tmp_path_factory.mktemp("video") / "clip.avi", drifting_frames(4, blur_last=True)
    )


@pytest.fixture(scope="module")
def streamed(clip) -> list:
    return list(iter_inputs([clip]))


def test_every_frame_is_segmented_into_organisms_of_its_own_source(clip, streamed):
    rois = [r for r in streamed if isinstance(r, Roi)]
    assert {r.source for r in rois} == {frame_source(clip, n) for n in range(4)}
    info = probe(clip)
    assert (info.frames, info.fps, info.width, info.height) == (4, 2.0, 2584, 1936)
    for r in rois:
        x, y, w, h = r.box
        assert 0 <= x and 0 <= y and x + w <= info.width and y + h <= info.height
        assert r.image.shape[:2] == (h, w)
        assert r.meta["frame"] == split_frame_source(r.source)[1]
        assert r.meta["time_s"] == pytest.approx(r.meta["frame"] / 2.0)
        assert r.image.ndim == 3 and r.image.shape[2] == 3  # RGB, as every source gives
        assert r.segmented  # cut out of a frame: held to the card's frame threshold


def test_the_focus_gate_flags_the_defocused_frame_only(clip, streamed):
    blurry = Counter(
        split_frame_source(r.source)[1]
        for r in streamed
        if isinstance(r, Roi) and "blurry" in r.flags
    )
    gated = [s for s in streamed if isinstance(s, Skipped) and "out of focus" in s.reason]
    assert set(blurry) | {split_frame_source(s.source)[1] for s in gated} == {3}


def test_a_frame_reference_gives_back_the_same_organisms(clip, streamed):
    source = frame_source(clip, 2)
    first = [(r.index, r.box) for r in streamed if isinstance(r, Roi) and r.source == source]
    again = [(r.index, r.box) for r in iter_inputs([source]) if isinstance(r, Roi)]
    assert first and again == first
    assert [kind for kind, _ in expand_paths([source])] == ["frame"]


def test_every_n_frames_and_frames_per_second(clip):
    def frames(sampling):
        return {
            split_frame_source(r.source)[1]
            for r in iter_inputs([clip], video=sampling)
            if isinstance(r, Roi)
        }

    assert frames(VideoSampling(every=2)) == {0, 2}
    assert frames(VideoSampling(fps=1.0)) == {0, 2}  # the file runs at 2 frames/s
    keep = VideoSampling(fps=7.5).keep(30.0)
    assert [n for n in range(20) if keep(n)] == [0, 4, 8, 12, 16]
    assert all(VideoSampling(fps=60).keep(30.0)(n) for n in range(10))
    with pytest.raises(Exception, match="not both"):
        VideoSampling(every=2, fps=1.0)


def test_recording_time_from_an_mp4_header_dates_every_frame(tmp_path):
    path = write_video(tmp_path / "rec.mp4", drifting_frames(2), fps=2.0, fourcc="mp4v")
    assert recording_time(path) == (None, "MP4 mvhd creation_time not set")  # OpenCV writes 0
    when = datetime(2025, 6, 3, 9, 41, 7, tzinfo=timezone.utc)
    set_mp4_creation_time(path, when)
    assert recording_time(path) == (when, "MP4 mvhd creation_time (UTC)")
    stamps = {
        r.meta["frame"]: r.meta["recorded_at"] for r in iter_inputs([path]) if isinstance(r, Roi)
    }
    assert stamps == {0: when.isoformat(), 1: (when + timedelta(seconds=0.5)).isoformat()}


def _ebml(element_id: bytes, payload: bytes) -> bytes:
    return element_id + bytes([0x80 | len(payload)]) + payload if len(payload) < 127 else b""


def test_recording_time_of_matroska_and_avi_headers(tmp_path, clip):
    # what OpenCV's own writers leave: no time, said plainly
    assert recording_time(clip) == (None, "AVI without IDIT or ICRD")
    mkv = write_video(tmp_path / "plain.mkv", drifting_frames(1), fourcc="MJPG")
    assert recording_time(mkv) == (None, "Matroska Info without DateUTC")
    # a Matroska header with DateUTC (ns since 2001) inside a Segment of unknown size
    when = datetime(2024, 2, 29, 12, 0, 0, tzinfo=timezone.utc)
    ns = int((when - datetime(2001, 1, 1, tzinfo=timezone.utc)).total_seconds()) * 10**9
    info = _ebml(
        b"\x15\x49\xa9\x66",
        _ebml(b"\x2a\xd7\xb1", b"\x0f\x42\x40")
        + _ebml(b"\x44\x61", ns.to_bytes(8, "big", signed=True)),
    )
    header = _ebml(b"\x1a\x45\xdf\xa3", _ebml(b"\x42\x82", b"matroska"))
    (tmp_path / "dated.mkv").write_bytes(
        header + b"\x18\x53\x80\x67\x01\xff\xff\xff\xff\xff\xff\xff" + info
    )
    assert recording_time(tmp_path / "dated.mkv") == (when, "Matroska DateUTC (UTC)")
    # an AVI whose header list carries the IDIT date (local time, no zone)
    idit = b"IDIT" + struct.pack("<I", 26) + b"MON MAR 10 15:04:43 2008\n\x00"
    hdrl = b"LIST" + struct.pack("<I", 4 + len(idit)) + b"hdrl" + idit
    (tmp_path / "dated.avi").write_bytes(
        b"RIFF" + struct.pack("<I", 4 + len(hdrl)) + b"AVI " + hdrl
    )
    got, where = recording_time(tmp_path / "dated.avi")
    assert got == datetime(2008, 3, 10, 15, 4, 43) and "local time" in where


def test_damaged_videos_are_reported_and_what_was_read_is_kept(tmp_path, clip):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video" * 100)
    (skip,) = list(iter_inputs([garbage]))
    assert isinstance(skip, Skipped) and "cannot open it" in skip.reason
    data = clip.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) * 6 // 10])
    items = list(iter_inputs([cut]))
    assert any(isinstance(r, Roi) for r in items)  # the frames before the damage count
    (note,) = [s for s in items if isinstance(s, Skipped)]
    assert "ended after" in note.reason and "of the 4 frames" in note.reason
