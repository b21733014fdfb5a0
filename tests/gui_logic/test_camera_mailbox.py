"""The camera's one-slot mailbox and capture loop, without a camera (no Qt needed)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from phytoscope.errors import SourceError
from phytoscope.gui.camera import (
    CameraCapture,
    Frame,
    LatestFrameMailbox,
    open_camera,
    parse_camera,
)


def frame(n: int) -> Frame:
    return Frame(n, float(n), np.full((4, 4), n, np.uint8))


def test_mailbox_keeps_only_the_newest_frame_and_counts_the_dropped():
    box = LatestFrameMailbox()
    for n in range(1, 6):
        box.put(frame(n))
    got = box.take(timeout=0)
    assert got is not None and got.number == 5
    assert (box.delivered, box.dropped, box.taken) == (5, 4, 1)
    assert box.take(timeout=0) is None  # the slot is empty after a take
    box.put(frame(6))
    assert box.take(timeout=0).number == 6
    assert box.dropped == 4  # a frame taken in time is not dropped


def test_take_waits_for_a_frame_and_close_wakes_it():
    box = LatestFrameMailbox()
    got: list = []
    reader = threading.Thread(target=lambda: got.append(box.take(timeout=30)))
    reader.start()
    box.put(frame(1))
    reader.join()
    assert got[0].number == 1
    reader = threading.Thread(target=lambda: got.append(box.take(timeout=30)))
    reader.start()
    box.close()
    reader.join()
    assert got[1] is None and box.closed


class FakeDevice:
    """OpenCV's VideoCapture interface: ``frames`` good reads, then failures."""

    def __init__(self, frames: int):
        self.left = frames
        self.released = False
        self.reads = 0
        self.first_read_done = threading.Event()
        self.allow = threading.Event()

    def isOpened(self) -> bool:  # noqa: N802
        return True

    def read(self):
        self.reads += 1
        if self.left <= 0:
            return False, None
        self.left -= 1
        image = np.zeros((8, 8, 3), np.uint8)
        image[..., 0] = 255  # blue in OpenCV's BGR order
        return True, image

    def release(self) -> None:
        self.released = True


def test_capture_loop_fills_the_mailbox_converts_bgr_and_reports_a_vanished_camera():
    device = FakeDevice(frames=10)
    errors: list[str] = []
    capture = CameraCapture(device, on_error=errors.append, max_failures=3).start()
    capture._thread.join()  # the loop ends by itself once the camera "vanishes"
    assert capture.mailbox.delivered == 10
    assert capture.mailbox.dropped == 9  # nobody took any frame: all but the last were dropped
    latest = capture.mailbox.take(timeout=0)
    assert latest.number == 10
    assert latest.image[0, 0].tolist() == [0, 0, 255]  # RGB order, as every source gives
    assert errors and "stopped delivering frames" in errors[0]
    assert capture.mailbox.closed
    capture.stop()
    assert device.released


def test_stop_joins_a_running_capture():
    device = FakeDevice(frames=10**9)
    capture = CameraCapture(device).start()
    assert capture.mailbox.take(timeout=30) is not None
    capture.stop()
    assert not capture.running and device.released


def test_camera_settings_are_parsed():
    assert parse_camera("0") == 0
    assert parse_camera(" /dev/video2 ") == 2
    pipeline = "nvarguscamerasrc ! nvvidconv ! appsink"
    assert parse_camera(pipeline) == pipeline
    with pytest.raises(SourceError, match="no camera configured"):
        parse_camera("  ")


def test_a_missing_camera_is_a_clear_error():
    # no camera exists on the test machine; index 99 is never present anywhere
    with pytest.raises(SourceError, match=r"cannot open camera 99 \(/dev/video99\)"):
        open_camera("99")
