"""Short microscope videos built at test time from the licensed sample frame (imported as
``tests.videos``; nothing is checked in but the MIT frame, see resources/samples/ATTRIBUTION.md).
"""

from __future__ import annotations

import struct
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
FRAME = REPO / "resources" / "samples" / "frames" / "Pn_calliantha_20230523_0035_24.jpg"
"""A whole 2584x1936 phase-contrast field (Marzidovšek et al. 2024, MIT)."""


def drifting_frames(n: int, blur_last: bool = False) -> list[np.ndarray]:
    """``n`` BGR frames of the sample field drifting 20 px right and 10 px down per frame
    (a slide moving under the objective); the last one defocused when ``blur_last``."""
    field = cv2.imread(str(FRAME))
    h, w = field.shape[:2]
    frames = []
    for i in range(n):
        shift = np.float32([[1, 0, 20 * i], [0, 1, 10 * i]])
        frames.append(cv2.warpAffine(field, shift, (w, h), borderMode=cv2.BORDER_REFLECT))
    if blur_last:
        # a focus miss: the same Gaussian (sigma 4 px) the segmentation's blur limit was set on
        frames[-1] = cv2.GaussianBlur(frames[-1], (0, 0), 4)
    return frames


def write_video(
    path: Path, frames: list[np.ndarray], fps: float = 2.0, fourcc: str = "MJPG"
) -> Path:
    """Write frames with OpenCV's FFmpeg writer (MJPG in AVI is the most portable)."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(
        str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*fourcc), fps, (w, h)
    )
    assert writer.isOpened(), f"OpenCV cannot write {fourcc} to {path.suffix}"
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def set_mp4_creation_time(path: Path, when: datetime) -> None:
    """Stamp an MP4's ``mvhd`` creation time, as a camera does (OpenCV's writer leaves it 0)."""
    data = bytearray(path.read_bytes())
    at = data.find(b"mvhd")
    assert at > 0 and data[at + 4] == 0, "expected a version-0 mvhd box"
    seconds = int((when - datetime(1904, 1, 1, tzinfo=timezone.utc)).total_seconds())
    data[at + 8 : at + 12] = struct.pack(">I", seconds)
    path.write_bytes(bytes(data))
