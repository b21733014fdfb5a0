"""The live camera's capture, for the window's inference worker.

The capture loop, its one-slot mailbox and the frame segmentation moved to
:mod:`phytoscope.sources.capture`, where recorded video reads frames through the same
code; the names stay importable from here for the GUI.
"""

from phytoscope.sources.capture import (
    CameraCapture,
    Frame,
    LatestFrameMailbox,
    open_camera,
    parse_camera,
)

__all__ = ["CameraCapture", "Frame", "LatestFrameMailbox", "open_camera", "parse_camera"]
