"""Frames from a camera or a recorded video: one read loop, one segmentation, two pacings.

A live microscope camera and a video file are the same thing to phytoscope: OpenCV's
``VideoCapture`` hands out BGR frames through ``read()``. :func:`read_frames` is the one
loop that reads them, numbers them, converts them to RGB and tells a failed read from the
end of a file; :func:`frame_rois` is the one place a whole frame becomes ROIs (the core
segmentation, :func:`phytoscope.imaging.segment.segment_frame`, with its focus gate: ROIs
of a blurry frame are flagged ``"blurry"``, and a blurry frame with nothing found is
reported as skipped).

What differs is the pacing. A camera delivers frames faster than a CPU can classify them;
queueing them would grow memory and lag ever further behind the slide, so
:class:`CameraCapture` runs the loop on its own thread into a one-slot
:class:`LatestFrameMailbox` that keeps only the newest frame and counts every frame the
classifier never saw ("dropped"). A file has no such hurry: every frame (or every N-th,
or F per second) is read in turn and nothing is dropped (:mod:`phytoscope.sources.video`).

The window's camera, its *Open video…* and ``phytoscope classify clip.mp4`` all go through
this module. It has no Qt: tests hand :class:`CameraCapture` any object with OpenCV's
``read()`` / ``release()`` / ``isOpened()``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
from cv2 import videoio_registry

from phytoscope.errors import SourceError
from phytoscope.types import Roi, Skipped

log = logging.getLogger(__name__)

CAMERA_GONE = "the camera stopped delivering frames (unplugged or busy?)"


@dataclass(frozen=True)
class Frame:
    """One frame as read.

    ``number`` counts the frames a camera gave, from 1; for a file it is the frame's
    index in the file, from 0 (what ``CAP_PROP_POS_FRAMES`` seeks to). ``t`` is
    ``time.monotonic()`` for a camera and the frame's time from the start of a file (s).
    """

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


def to_rgb(image: Any) -> np.ndarray:
    """A frame as OpenCV gives it (BGR, BGRA or grey) in the RGB order every source uses."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 3:
        image = image[:, :, ::-1]
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, [2, 1, 0, 3]]
    elif image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    return np.ascontiguousarray(image)


def read_frames(
    device: VideoDevice,
    *,
    live: bool,
    clock: Callable[[int], float] | None = None,
    keep: Callable[[int], bool] | None = None,
    stop: threading.Event | None = None,
    max_failures: int = 25,
) -> Iterator[Frame]:
    """Every frame ``device`` gives, in RGB order, until it ends or ``stop`` is set.

    Parameters
    ----------
    live
        A camera: a failed read is retried (a busy USB bus drops the odd frame) and
        ``max_failures`` failures in a row raise :class:`SourceError` (the camera is gone);
        frames are numbered from 1. A file: the first failed read is its end; frames are
        numbered by their index in the file, from 0.
    clock
        ``clock(number)`` -> the frame's ``t`` (default ``time.monotonic()``).
    keep
        ``keep(number)`` False skips a frame of a file without decoding it into an image
        (``grab()`` instead of ``read()`` where the device has it): ``--every``/``--fps``.
    stop
        Set by another thread to end the loop after the current read.
    """
    grab = getattr(device, "grab", None) if not live else None
    number = 0 if live else -1
    failures = 0
    while stop is None or not stop.is_set():
        if not live:
            number += 1
            if keep is not None and not keep(number) and callable(grab):
                if not grab():
                    return
                continue
        ok, image = device.read()
        if not ok or image is None:
            if not live:
                return
            failures += 1
            if failures >= max_failures:
                raise SourceError(CAMERA_GONE)
            time.sleep(0.02)
            continue
        failures = 0
        if live:
            number += 1
        elif keep is not None and not keep(number):
            continue  # a device without grab(): read and dropped
        t = clock(number) if clock is not None else time.monotonic()
        yield Frame(number, t, to_rgb(image))


def frame_rois(
    image: np.ndarray, source: str, meta: dict[str, Any] | None = None
) -> list[Roi | Skipped]:
    """The organisms of one whole frame, through the core segmentation and its focus gate.

    Every camera or video frame is a whole microscope field, so it is always segmented.
    ``meta`` (frame number, time in the recording) is added to every ROI's own.
    """
    # imported here: the package's __init__ imports the video reader, which imports this
    from phytoscope.sources import rois_from_image

    try:
        items = list(rois_from_image(image, source, segment="always"))
    except SourceError as exc:
        return [Skipped(source, str(exc))]
    if not meta:
        return items
    return [
        Roi(
            source=item.source,
            index=item.index,
            image=item.image,
            box=item.box,
            flags=item.flags,
            meta={**item.meta, **meta},
        )
        if isinstance(item, Roi)
        else item
        for item in items
    ]


def mailbox_frames(mailbox: LatestFrameMailbox, cancelled: Callable[[], bool]) -> Iterator[Frame]:
    """The newest frames of a live capture, one at a time, until cancelled or it ends."""
    while not cancelled():
        frame = mailbox.take(timeout=0.2)
        if frame is None:
            if mailbox.closed:
                return
            continue
        yield frame


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
    """Runs :func:`read_frames` on its own thread into a :class:`LatestFrameMailbox`.

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
        try:
            for frame in read_frames(
                self.device, live=True, stop=self._stop, max_failures=self.max_failures
            ):
                self.mailbox.put(frame)
        except SourceError as exc:
            self.error = str(exc)
            log.error(self.error)
            if self.on_error:
                self.on_error(self.error)
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


# -- what `phytoscope info` says about cameras -------------------------------------------------

PROBE_TIMEOUT_S = 5.0


def _probe(spec: str, timeout: float) -> dict[str, Any]:
    """Open ``spec`` as the window would and read one frame, within ``timeout`` seconds."""
    outcome: dict[str, Any] = {"camera": spec}
    done = threading.Event()

    def attempt() -> None:
        try:
            device = open_camera(spec)
        except SourceError as exc:
            outcome["result"] = f"cannot open: {exc}"
            done.set()
            return
        try:
            ok, image = device.read()
            if ok and image is not None:
                frame = to_rgb(image)
                channels = 1 if frame.ndim == 2 else frame.shape[2]
                outcome["result"] = "opened, one frame read"
                outcome["frame"] = (
                    f"{frame.shape[1]}x{frame.shape[0]}, {channels} channel(s), {frame.dtype}"
                )
                get = getattr(device, "get", None)
                if callable(get):
                    outcome["fps_reported"] = round(float(get(cv2.CAP_PROP_FPS) or 0.0), 2)
            else:
                outcome["result"] = "opened, but no frame came (in use by another program?)"
        finally:
            device.release()
            done.set()

    # a V4L2 open or read can block for long on a busy device: the probe must not hang info
    threading.Thread(target=attempt, name="phytoscope-camera-probe", daemon=True).start()
    if not done.wait(timeout):
        outcome["result"] = f"no answer within {timeout:g} s (device busy or pipeline stalled)"
    return outcome


def describe_cameras(
    probe: str | None = None,
    sys_root: Path | str = "/sys",
    timeout: float = PROBE_TIMEOUT_S,
) -> dict[str, Any]:
    """Cameras this machine offers and what OpenCV can open them with (for ``phytoscope info``).

    Listing reads ``/sys/class/video4linux`` only (no device is opened, no light goes on);
    ``probe`` (a settings value: ``0``, ``/dev/video0`` or a GStreamer pipeline) is opened
    and one frame read, as the window's *Live camera* would.
    """
    registry = videoio_registry

    def names(ids: Iterable[int]) -> list[str]:
        return [registry.getBackendName(b) for b in ids if registry.hasBackend(b)]

    info: dict[str, Any] = {
        "opencv_camera_backends": names(registry.getCameraBackends()),
        "opencv_file_backends": names(registry.getStreamBackends()),
        "gstreamer": "yes" if registry.hasBackend(cv2.CAP_GSTREAMER) else
        "no (a Jetson CSI camera needs an OpenCV built with GStreamer, e.g. JetPack's)",
    }  # fmt: skip
    devices = []
    folder = Path(sys_root) / "class" / "video4linux"
    if folder.is_dir():
        for entry in sorted(folder.iterdir(), key=lambda p: (len(p.name), p.name)):
            name_file = entry / "name"
            name = name_file.read_text(errors="replace").strip() if name_file.is_file() else "?"
            devices.append(f"/dev/{entry.name}: {name}")
    info["devices"] = devices or "none (no /dev/video* device)"
    if probe is not None:
        info["probe"] = _probe(probe, timeout)
    return info
