"""*File → Open video…*: choose a recorded video and how many of its frames to analyse."""

from __future__ import annotations

from PySide6.QtWidgets import QFileDialog, QInputDialog, QWidget

from phytoscope.sources.video import VIDEO_SUFFIXES, VideoSampling

DEFAULT_FPS = 1.0
"""Frames per second offered first: consecutive frames show the same organisms again, so
analysing every frame would count a cell that drifts slowly through the field many times."""


def ask_video(parent: QWidget) -> tuple[str, VideoSampling] | None:
    """The video file and its sampling, or None if the user cancelled either question."""
    patterns = " ".join(f"*{s}" for s in VIDEO_SUFFIXES)
    file, _ = QFileDialog.getOpenFileName(
        parent, "Open a recorded video", "", f"Videos ({patterns});;All files (*)"
    )
    if not file:
        return None
    fps, ok = QInputDialog.getDouble(
        parent,
        "Frames to analyse",
        "Frames per second of recording to analyse (0 = every frame):",
        DEFAULT_FPS,
        0.0,
        120.0,
        2,
    )
    if not ok:
        return None
    return file, VideoSampling(fps=fps if fps > 0 else None)
