"""Frozen messages exchanged between the GUI thread and its workers (no Qt here).

Every object crossing a thread boundary is immutable, so a slot can keep it without copying
and without racing the worker that made it; numpy arrays inside are marked read-only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from phytoscope.modelcard import ModelCard
from phytoscope.progress import CancelToken
from phytoscope.sources.video import VideoSampling
from phytoscope.types import Prediction, Skipped

THUMB_SIZE = 128
"""Longest side of a gallery thumbnail: the model's own input size, so an exported
correction loses nothing the classifier would have seen."""
FRAME_SIZE = 1024
"""Longest side of a segmented frame kept for the image view."""
WHOLE_SIZE = 512
"""Longest side of a whole-image ROI (IFCB ROI, single crop) kept for the image view."""


def frozen_array(image: np.ndarray) -> np.ndarray:
    out = np.ascontiguousarray(image)
    if out is image:
        out = out.copy()
    out.flags.writeable = False
    return out


def shrink(image: np.ndarray, longest: int) -> np.ndarray:
    """uint8 copy of ``image`` whose longest side is at most ``longest`` (aspect kept)."""
    import cv2

    from phytoscope.imaging.preprocess import to_uint8

    image = to_uint8(np.asarray(image))
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    h, w = image.shape[:2]
    scale = longest / max(h, w, 1)
    if scale < 1:
        image = cv2.resize(
            image,
            (max(1, round(w * scale)), max(1, round(h * scale))),
            interpolation=cv2.INTER_AREA,
        )
    return frozen_array(image)


@dataclass(frozen=True)
class BackendRequest:
    """Load (or reload) the model; ``cancel`` drops it if set while it is still loading."""

    backend: str = "auto"
    precision: str = "fp32"
    model_dir: str = ""
    batch_size: int = 16
    cancel: CancelToken = field(default_factory=lambda: CancelToken(), compare=False)


@dataclass(frozen=True)
class BackendInfo:
    """What the inference thread loaded, for the status bar and panels."""

    backend: str
    precision: str
    model: str
    model_sha256: str
    classes: tuple[str, ...]
    hab_classes: tuple[str, ...] = ()
    not_recognised: tuple[str, ...] = ()
    load_seconds: float = 0.0
    card: ModelCard | None = None


@dataclass(frozen=True)
class FilesJob:
    """Classify files, folders and IFCB bins. The GUI keeps ``cancel`` to stop this job."""

    job_id: int
    paths: tuple[str, ...]
    cancel: CancelToken = field(default_factory=lambda: CancelToken(), compare=False)
    video: VideoSampling | None = None
    """which frames of video files to analyse (a ``VideoSampling``; None: every frame)"""


@dataclass(frozen=True)
class CameraJob:
    """Classify live camera frames until cancelled or the camera stops."""

    job_id: int
    camera: str
    cancel: CancelToken = field(default_factory=lambda: CancelToken(), compare=False)


@dataclass(frozen=True)
class Progress:
    job_id: int
    done: int
    """ROIs classified so far"""
    skipped: int
    message: str
    rate: float = 0.0
    """ROIs per second over the whole job"""
    dropped: int | None = None
    """camera frames dropped so far (camera jobs)"""


@dataclass(frozen=True)
class BatchResult:
    """One batch of predictions with the pixels the GUI needs to show them."""

    job_id: int
    predictions: tuple[Prediction, ...]
    skipped: tuple[Skipped, ...]
    thumbnails: tuple[np.ndarray | None, ...]
    """one per prediction, uint8, longest side THUMB_SIZE"""
    frames: tuple[tuple[str, np.ndarray], ...] = ()
    """(key, image) for the image view (see ``analysis.frame_key``): segmented frames first
    seen in this batch (boxes scaled by ``frame_scales``) and the batch's last whole-image
    ROI"""
    frame_scales: tuple[float, ...] = ()
    t: float = 0.0
    store_error: str | None = None
    bins: tuple[tuple[str, float], ...] = ()
    """(IFCB bin id, ml_analyzed) of bins whose ROIs were read so far"""
    origins: tuple[str | None, ...] = ()
    """per prediction: the IFCB bin id it came from, None for other images"""
    whole: tuple[bool, ...] = ()
    """per prediction: True when the ROI is shown on its own (an IFCB ROI, a single
    crop), False when it is a segment drawn on its frame"""


@dataclass(frozen=True)
class JobFinished:
    job_id: int
    predictions: int
    skipped: int
    seconds: float
    run_id: int | None = None
    cancelled: bool = False
    error: str | None = None
    ml_analyzed: float | None = None
    """sum of ml_analyzed over IFCB bins read (None when the inputs carry no volume)"""
    sources: tuple[str, ...] = field(default_factory=tuple)
