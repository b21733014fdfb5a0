"""Live camera capture: a capture thread writing a one-slot "latest frame" mailbox.

A microscope camera delivers frames faster than a CPU can classify them. Queueing them
would grow memory and lag ever further behind the slide, so the capture loop overwrites
the single slot instead and counts every frame the classifier never saw ("dropped"); the
status bar shows that count. This module has no Qt: the mailbox and the loop are plain
Python and are tested without a camera by handing :class:`CameraCapture` any object with
OpenCV's ``read()``/``release()``/``isOpened()``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from phytoscope.errors import SourceError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Frame:
    """One captured frame; ``number`` counts every frame the camera gave, from 1."""

    number: int
    t: float
    image: np.ndarray


class LatestFrameMailbox:
    """One slot holding the newest frame; a frame overwritten before it was taken is dropped.

    Thread-safe: one producer (the capture loop) calls :meth:`put`, one consumer (the
    inference worker) calls :meth:`take`.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._closed = False
        self.delivered = 0
        """frames written into the slot"""
        self.dropped = 0
        """frames overwritten before anyone took them"""
        self.taken = 0

    def put(self, frame: Frame) -> None:
        with self._cond:
            if self._frame is not None:
                self.dropped += 1
            self._frame = frame
            self.delivered += 1
            self._cond.notify()

    def take(self, timeout: float | None = None) -> Frame | None:
        """The newest frame (emptying the slot), or None on timeout or once closed and empty."""
        with self._cond:
            if self._frame is None and not self._closed:
                self._cond.wait(timeout)
            frame, self._frame = self._frame, None
            if frame is not None:
                self.taken += 1
            return frame

    def close(self) -> None:
        """Wake a waiting consumer; later :meth:`take` calls return what is left, then None."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed


class VideoDevice(Protocol):
    def isOpened(self) -> bool: ...  # noqa: N802 - OpenCV's spelling
    def read(self) -> tuple[bool, Any]: ...
    def release(self) -> None: ...


def parse_camera(spec: str) -> int | str:
    """A settings value -> what ``cv2.VideoCapture`` takes: a device index or a pipeline string.

    ``"0"`` or ``"/dev/video0"`` (V4L2 index), or a GStreamer pipeline such as
    ``"nvarguscamerasrc ! video/x-raw(memory:NVMM) ! nvvidconv ! video/x-raw,format=BGRx !
    videoconvert ! appsink"`` for the Jetson CSI camera.
    """
    spec = spec.strip()
    if not spec:
        raise SourceError(
            "no camera configured: set a device number or GStreamer pipeline in Settings"
        )
    if spec.isdigit():
        return int(spec)
    if spec.startswith("/dev/video") and spec[len("/dev/video") :].isdigit():
        return int(spec[len("/dev/video") :])
    return spec


def open_camera(spec: str) -> VideoDevice:
    """Open an OpenCV capture or raise a :class:`SourceError` a technician can act on."""
    import cv2

    target = parse_camera(spec)
    if isinstance(target, int):
        device = (
            cv2.VideoCapture(target, cv2.CAP_V4L2)
            if hasattr(cv2, "CAP_V4L2")
            else cv2.VideoCapture(target)
        )
        what = f"camera {target} (/dev/video{target})"
    else:
        device = cv2.VideoCapture(target, cv2.CAP_GSTREAMER)
        what = "the GStreamer camera pipeline"
    if not device.isOpened():
        device.release()
        hint = (
            "check it is plugged in, that /dev/video* exists and that you are in the 'video' group"
            if isinstance(target, int)
            else "check the pipeline in Settings and that OpenCV was built with GStreamer"
        )
        raise SourceError(f"cannot open {what}: {hint}")
    return device


class CameraCapture:
    """Reads frames on its own thread into a :class:`LatestFrameMailbox` until stopped.

    Parameters
    ----------
    device
        An opened capture (``open_camera``) or any object with the same three methods.
    on_error
        Called from the capture thread with a message when the camera disappears.
    max_failures
        Consecutive failed reads after which the camera counts as gone.
    """

    def __init__(
        self,
        device: VideoDevice,
        mailbox: LatestFrameMailbox | None = None,
        on_error: Callable[[str], None] | None = None,
        max_failures: int = 25,
    ):
        self.device = device
        self.mailbox = mailbox or LatestFrameMailbox()
        self.on_error = on_error
        self.max_failures = max_failures
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: str | None = None

    def start(self) -> CameraCapture:
        self._thread = threading.Thread(target=self._loop, name="phytoscope-camera", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        failures, number = 0, 0
        try:
            while not self._stop.is_set():
                ok, image = self.device.read()
                if not ok or image is None:
                    failures += 1
                    if failures >= self.max_failures:
                        self.error = "the camera stopped delivering frames (unplugged or busy?)"
                        log.error(self.error)
                        if self.on_error:
                            self.on_error(self.error)
                        break
                    time.sleep(0.02)
                    continue
                failures = 0
                number += 1
                image = np.asarray(image)
                if image.ndim == 3 and image.shape[2] == 3:
                    image = image[:, :, ::-1]  # OpenCV gives BGR; sources give RGB
                self.mailbox.put(Frame(number, time.monotonic(), np.ascontiguousarray(image)))
        finally:
            self.mailbox.close()

    def stop(self) -> None:
        """Stop the loop, join the thread and release the device (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        try:
            self.device.release()
        except Exception:  # noqa: BLE001 - a vanished device may fail to release
            log.debug("camera release failed", exc_info=True)
        self.mailbox.close()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
