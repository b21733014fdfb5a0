"""Recorded microscope video as a source: MP4, MOV, AVI, MKV through OpenCV's FFmpeg backend.

Frames are read by the same loop as the live camera (:func:`.capture.read_frames`) and cut
into organisms by the same segmentation (:func:`.capture.frame_rois`); only the pacing
differs: a file is read frame after frame and nothing is dropped, or sampled with
``--every N`` (every N-th frame) or ``--fps F`` (about F frames per second of recording).
Consecutive frames of a slowly drifting slide show the same organisms again, so sampling
is how a technician avoids counting one cell many times.

Each sampled frame is its own source, ``<file>#frame=<n>`` (n = the frame's index in the
file, from 0): boxes are drawn on that frame, and the report, the EcoTaxa export and the
window re-read it by seeking there.

Recording time. OpenCV does not expose container metadata, so the creation time is read
from the file's header here, without ffprobe: the ``mvhd`` box of MP4/MOV (QuickTime
``creation_time``, seconds since 1904 in UTC; 0 means unset), the ``DateUTC`` element of
Matroska/WebM (nanoseconds since 2001 in UTC), and the ``IDIT`` chunk or ``ICRD`` tag of
AVI (text, local time without a zone). Each ROI carries ``recorded_at`` = that time plus
the frame's offset in the recording. Some cameras write local time into the UTC fields;
the file cannot say so, which is why ``--sampled-at`` always wins.
"""

from __future__ import annotations

import functools
import logging
import math
import re
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, BinaryIO

import cv2
import numpy as np

from phytoscope.errors import ConfigError, SourceError
from phytoscope.sources.capture import Frame, frame_rois, read_frames, to_rgb
from phytoscope.types import Roi, Skipped

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm")
FRAME_REF = re.compile(r"^(?P<path>.+)#frame=(?P<number>\d+)$")

Unit = Callable[[], "list[Roi | Skipped]"]


def is_video_file(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def frame_source(path: Path | str, number: int) -> str:
    """The source name of one frame of a video file (what ROIs and predictions carry)."""
    return f"{path}#frame={number}"


def split_frame_source(source: str) -> tuple[Path, int] | None:
    """``("clip.mp4", 12)`` from ``"clip.mp4#frame=12"``; None for any other source."""
    match = FRAME_REF.match(str(source))
    if not match or not is_video_file(Path(match["path"])):
        return None
    return Path(match["path"]), int(match["number"])


@dataclass(frozen=True)
class VideoSampling:
    """Which frames of a file are classified: all (default), every N-th, or F per second."""

    every: int | None = None
    fps: float | None = None

    def __post_init__(self) -> None:
        if self.every is not None and self.fps is not None:
            raise ConfigError("give --every N or --fps F, not both")
        if self.every is not None and self.every < 1:
            raise ConfigError(f"--every must be a whole number of frames >= 1, not {self.every}")
        if self.fps is not None and not self.fps > 0:
            raise ConfigError(
                f"--fps must be a positive number of frames per second, not {self.fps}"
            )

    def keep(self, native_fps: float) -> Callable[[int], bool]:
        """``keep(n)`` for frame index n of a file recorded at ``native_fps``."""
        if self.every is not None:
            every = self.every
            return lambda n: n % every == 0
        if self.fps is not None and native_fps > 0 and self.fps < native_fps:
            ratio = self.fps / native_fps
            # frame n holds the sampling instant k/F when floor(n * F/fps) moves on
            return lambda n: n == 0 or int(n * ratio) > int((n - 1) * ratio)
        return lambda n: True

    def describe(self) -> str:
        if self.every is not None:
            return f"every {self.every}. frame"
        if self.fps is not None:
            return f"{self.fps:g} frames per second"
        return "every frame"


@dataclass(frozen=True)
class VideoInfo:
    """What a file says about itself (``frames`` and ``fps`` as the container reports them)."""

    path: Path
    fps: float
    frames: int
    width: int
    height: int
    recorded_at: datetime | None
    recorded_from: str
    """where ``recorded_at`` was read ("MP4 mvhd creation_time (UTC)" ...) or why not"""

    @property
    def duration_s(self) -> float | None:
        return self.frames / self.fps if self.fps > 0 and self.frames > 0 else None


def open_video(path: Path) -> Any:
    """An OpenCV capture of a file through FFmpeg, or a :class:`SourceError` saying why not."""
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"{path}: no such video file")
    device = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not device.isOpened():
        device.release()
        raise SourceError(
            f"{path}: OpenCV's FFmpeg backend cannot open it (not a video, an unsupported "
            "codec, or a damaged file); convert it with a video tool to MP4 (H.264) or "
            "AVI (MJPG) and try again"
        )
    return device


def probe(path: Path) -> VideoInfo:
    """Frame rate, frame count, size and recording time of a video file."""
    device = open_video(path)
    try:
        fps = float(device.get(cv2.CAP_PROP_FPS) or 0.0)
        frames = int(device.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        width = int(device.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
        height = int(device.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
    finally:
        device.release()
    recorded_at, recorded_from = recording_time(path)
    return VideoInfo(Path(path), fps, frames, width, height, recorded_at, recorded_from)


def _meta(info: VideoInfo, frame: Frame) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "video": str(info.path),
        "frame": frame.number,
        "time_s": round(frame.t, 3),
    }
    if info.recorded_at is not None:
        meta["recorded_at"] = (info.recorded_at + timedelta(seconds=frame.t)).isoformat()
    return meta


def _clock(fps: float) -> Callable[[int], float]:
    return (lambda n: n / fps) if fps > 0 else (lambda n: 0.0)


def frame_units(path: Path, sampling: VideoSampling | None = None) -> Iterator[Unit]:
    """One unit per sampled frame, read lazily in the iterating thread, segmented in the unit.

    Reading a file is sequential, so frames are read here, one ahead of each unit; the
    costly part, segmentation, runs when the unit is called (in ``classify_items``'s
    decoding pool). Only the frames of units not yet called are held in memory.
    """
    sampling = sampling or VideoSampling()
    try:
        info = probe(path)
        device = open_video(path)
    except SourceError as exc:
        yield functools.partial(_skipped, str(path), str(exc))
        return
    if (
        sampling.every is None
        and sampling.fps is None
        and info.fps > 0
        and info.frames > 2 * info.fps
    ):
        log.warning(
            "%s: classifying all %d frames (%.3g per second): an organism seen in several "
            "frames is counted in each; --every N or --fps F samples the recording",
            path,
            info.frames,
            info.fps,
        )
    read = 0
    last = -1
    try:
        frames = read_frames(
            device, live=False, clock=_clock(info.fps), keep=sampling.keep(info.fps)
        )
        for frame in frames:
            read += 1
            last = frame.number
            yield functools.partial(
                frame_rois, frame.image, frame_source(path, frame.number), _meta(info, frame)
            )
    finally:
        device.release()
    if read == 0:
        yield functools.partial(_skipped, str(path), "no frame could be decoded")
    elif info.frames > 0 and last < info.frames - 1 - _tail_slack(info, sampling):
        yield functools.partial(
            _skipped,
            str(path),
            f"the video ended after {last + 1} of the {info.frames} frames its header announces "
            "(truncated or damaged?): the frames read were classified",
        )


def _tail_slack(info: VideoInfo, sampling: VideoSampling) -> int:
    """Frames the last kept one may lie before the end without the file being short.

    A sampled file may end up to one step after its last kept frame; containers without an
    index (Matroska, some AVI) estimate their frame count from the duration, so 1 % either
    way is not a damaged file either.
    """
    step = 1
    if sampling.every is not None:
        step = sampling.every
    elif sampling.fps is not None and info.fps > sampling.fps:
        step = math.ceil(info.fps / sampling.fps)
    return step - 1 + info.frames // 100


def _skipped(source: str, reason: str) -> list[Roi | Skipped]:
    return [Skipped(source, reason)]


def read_frame(path: Path, number: int) -> np.ndarray:
    """Frame ``number`` (index from 0) of a file, RGB, by seeking: for thumbnails and exports."""
    device = open_video(path)
    try:
        device.set(cv2.CAP_PROP_POS_FRAMES, number)
        ok, image = device.read()
    finally:
        device.release()
    if not ok or image is None:
        raise SourceError(f"{path}: frame {number} cannot be read (the file is shorter?)")
    return to_rgb(image)


def frame_ref_rois(source: str) -> list[Roi | Skipped]:
    """The ROIs of one ``<file>#frame=<n>`` source, exactly as classification cut them."""
    ref = split_frame_source(source)
    if ref is None:
        return [Skipped(source, "not a video frame reference")]
    path, number = ref
    try:
        info = probe(path)
        image = read_frame(path, number)
    except SourceError as exc:
        return [Skipped(source, str(exc))]
    t = number / info.fps if info.fps > 0 else 0.0
    return frame_rois(image, source, _meta(info, Frame(number, t, image)))


# -- recording time from the container's header ------------------------------------------

_MP4_EPOCH = datetime(1904, 1, 1, tzinfo=timezone.utc)
_MKV_EPOCH = datetime(2001, 1, 1, tzinfo=timezone.utc)
_SCAN_LIMIT = 64 * 1024 * 1024
"""Header structures are read with seeks; no more than this is ever scanned."""


def recording_time(path: Path) -> tuple[datetime | None, str]:
    """When the file was recorded, from its header, and where that was read (or why not).

    A wrong or damaged header gives ``(None, reason)``, never an exception: the time is a
    convenience, the frames are what matter.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
            fh.seek(0)
            if head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip"):
                return _mp4_time(fh)
            if head[:4] == b"\x1a\x45\xdf\xa3":
                return _mkv_time(fh)
            if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
                return _avi_time(fh)
    except (OSError, ValueError, struct.error, OverflowError) as exc:
        return None, f"header unreadable ({exc})"
    return None, "no recording time in this container format"


def _mp4_boxes(fh: BinaryIO, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of the boxes between ``start`` and ``end``."""
    pos = start
    while pos + 8 <= end:
        fh.seek(pos)
        size, kind = struct.unpack(">I4s", fh.read(8))
        header = 8
        if size == 1:
            size = struct.unpack(">Q", fh.read(8))[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header:
            return
        yield kind, pos + header, min(pos + size, end)
        pos += size


def _mp4_time(fh: BinaryIO) -> tuple[datetime | None, str]:
    end = fh.seek(0, 2)
    for kind, start, stop in _mp4_boxes(fh, 0, end):
        if kind != b"moov":
            continue
        for inner, payload, _ in _mp4_boxes(fh, start, stop):
            if inner != b"mvhd":
                continue
            fh.seek(payload)
            version = fh.read(1)[0]
            fh.read(3)  # flags
            seconds = struct.unpack(
                ">Q" if version == 1 else ">I", fh.read(8 if version == 1 else 4)
            )[0]
            if seconds == 0:
                return None, "MP4 mvhd creation_time not set"
            return _MP4_EPOCH + timedelta(seconds=seconds), "MP4 mvhd creation_time (UTC)"
        return None, "MP4 without an mvhd box"
    return None, "MP4 without a moov box"


def _ebml_id(fh: BinaryIO) -> int:
    first = fh.read(1)
    if not first:
        raise ValueError("end of file")
    length = 1
    while length <= 4 and not first[0] & (0x80 >> (length - 1)):
        length += 1
    if length > 4:
        raise ValueError("bad EBML id")
    return int.from_bytes(first + fh.read(length - 1), "big")


def _ebml_size(fh: BinaryIO) -> int | None:
    first = fh.read(1)
    if not first:
        raise ValueError("end of file")
    length = 1
    while length <= 8 and not first[0] & (0x80 >> (length - 1)):
        length += 1
    if length > 8:
        raise ValueError("bad EBML size")
    value = first[0] & (0xFF >> length)
    for byte in fh.read(length - 1):
        value = (value << 8) | byte
    return None if value == (1 << (7 * length)) - 1 else value  # all ones: unknown size


def _mkv_time(fh: BinaryIO) -> tuple[datetime | None, str]:
    end = fh.seek(0, 2)
    fh.seek(0)
    pos = 0
    while pos < min(end, _SCAN_LIMIT):
        fh.seek(pos)
        element, size = _ebml_id(fh), _ebml_size(fh)
        body = fh.tell()
        if element == 0x18538067:  # Segment: its children follow
            pos = body
            continue
        if element == 0x1549A966 and size is not None:  # Info
            stop = body + size
            while fh.tell() < stop:
                child, child_size = _ebml_id(fh), _ebml_size(fh)
                if child_size is None:
                    break
                if child == 0x4461:  # DateUTC
                    ns = int.from_bytes(fh.read(child_size), "big", signed=True)
                    return _MKV_EPOCH + timedelta(microseconds=ns // 1000), "Matroska DateUTC (UTC)"
                fh.seek(child_size, 1)
            return None, "Matroska Info without DateUTC"
        if size is None:
            break
        pos = body + size
    return None, "Matroska without an Info element"


_AVI_FORMATS = (
    "%a %b %d %H:%M:%S %Y",
    "%Y:%m:%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d",
)


def _avi_time(fh: BinaryIO) -> tuple[datetime | None, str]:
    end = min(fh.seek(0, 2), _SCAN_LIMIT)

    def chunks(start: int, stop: int) -> Iterator[tuple[bytes, int, int]]:
        pos = start
        while pos + 8 <= stop:
            fh.seek(pos)
            kind, size = struct.unpack("<4sI", fh.read(8))
            yield kind, pos + 8, min(pos + 8 + size, stop)
            pos += 8 + size + (size & 1)

    for kind, start, stop in chunks(12, end):
        if kind != b"LIST":
            continue
        fh.seek(start)
        list_type = fh.read(4)
        if list_type not in (b"hdrl", b"INFO"):
            continue
        for inner, payload, inner_stop in chunks(start + 4, stop):
            if inner in (b"IDIT", b"ICRD"):
                fh.seek(payload)
                text = fh.read(inner_stop - payload).decode("latin-1").strip("\x00\r\n ")
                for fmt in _AVI_FORMATS:
                    try:
                        when = datetime.strptime(text, fmt)
                    except ValueError:
                        continue
                    return when, f"AVI {inner.decode()} (local time, no time zone in the file)"
                return None, f"AVI {inner.decode()} not understood: {text!r}"
    return None, "AVI without IDIT or ICRD"
