"""The analysis jobs the inference thread runs, as plain functions (no Qt).

:class:`~phytoscope.gui.workers.InferenceWorker` is a thin shell around these: it passes
callbacks that emit queued signals. Here the inputs are read (``phytoscope.sources``),
classified with the same ``classify_items`` the CLI uses, committed to the results store
batch by batch (a crash or a full disk loses nothing already classified), and handed back
with the pixels the GUI shows: a small thumbnail per ROI and, once per source, the image
its boxes are drawn on.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from phytoscope.errors import Cancelled, PhytoscopeError, StorageError
from phytoscope.gui.jobs import (
    FRAME_SIZE,
    THUMB_SIZE,
    WHOLE_SIZE,
    BatchResult,
    CameraJob,
    CancelToken,
    FilesJob,
    JobFinished,
    Progress,
    shrink,
)
from phytoscope.progress import Progress as ProgressContract
from phytoscope.sources.capture import frame_rois, mailbox_frames
from phytoscope.types import Roi, Skipped

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 0.1
"""At most ten progress messages a second: the GUI thread must never drown in them."""


def _load_frame(source: str) -> np.ndarray | None:
    """The full image a segmented ROI came from, for drawing its box (None if unreadable)."""
    try:
        from phytoscope.imaging.decode import read_image
        from phytoscope.sources.video import read_frame, split_frame_source

        if ref := split_frame_source(source):  # a video frame: sought again in the file
            return read_frame(*ref)
        pages = read_image(source)  # type: ignore[arg-type]
        return pages[0] if pages else None
    except (PhytoscopeError, OSError, ValueError, ImportError):
        return None


class _Tap:
    """Passes items through unchanged, keeping what the GUI needs of each ROI until its
    prediction comes back (a few prefetched batches of thumbnails at most).

    ``classify_items`` iterates it in its reader thread, or runs its units in its decoding
    pool, so the containers here are only touched with single, GIL-atomic operations (dict
    set/pop, list append/pop, set add, dict copy).
    """

    def __init__(
        self, items: Iterable[Roi | Skipped], frame_of: Callable[[Roi], np.ndarray | None]
    ):
        self.items = items
        self.frame_of = frame_of
        self.thumbs: dict[tuple[str, int], np.ndarray] = {}
        self.whole: dict[tuple[str, int], np.ndarray] = {}
        """display images of ROIs shown on their own (IFCB ROIs, single crops)"""
        self.origin: dict[tuple[str, int], str] = {}
        """IFCB bin id of each ROI that came from a bin"""
        self.frames: list[tuple[str, np.ndarray, float]] = []
        self.bins: dict[str, float] = {}
        self.seen_sources: set[str] = set()
        self.read = 0
        if callable(getattr(items, "units", None)):
            self.units = self._units

    def __iter__(self) -> Iterator[Roi | Skipped]:
        for item in self.items:
            self._see(item)
            yield item

    def _units(self) -> Iterator[Callable[[], list[Roi | Skipped]]]:
        """The source's units (one file or bin each), seen as they are decoded: lets
        ``classify_items`` decode whole files in parallel, as it does for the CLI."""

        def seen(unit: Callable[[], list[Roi | Skipped]]) -> list[Roi | Skipped]:
            items = list(unit())
            for item in items:
                self._see(item)
            return items

        for unit in self.items.units():  # type: ignore[attr-defined]
            yield functools.partial(seen, unit)

    def _see(self, item: Roi | Skipped) -> None:
        if isinstance(item, Roi):
            self.read += 1
            self.thumbs[(item.source, item.index)] = shrink(item.image, THUMB_SIZE)
            meta = item.meta or {}
            from_bin = "bin" in meta
            if from_bin:
                self.origin[(item.source, item.index)] = str(meta["bin"])
                try:
                    ml = float(meta.get("ml_analyzed", math.nan))
                    if math.isfinite(ml) and ml > 0:
                        self.bins[str(meta["bin"])] = ml
                except (TypeError, ValueError):
                    pass
            if item.box is None or from_bin:  # an IFCB ROI's box is in a frame nobody kept
                self.whole[(item.source, item.index)] = shrink(item.image, WHOLE_SIZE)
                self.seen_sources.add(item.source)
            elif item.source not in self.seen_sources:
                self.seen_sources.add(item.source)
                full = self.frame_of(item)
                if full is not None:
                    h, w = full.shape[:2]
                    frame = shrink(full, FRAME_SIZE)
                    self.frames.append((item.source, frame, frame.shape[1] / max(w, 1)))


def default_frame_of(roi: Roi) -> np.ndarray | None:
    return _load_frame(roi.source)


def frame_key(source: str, roi_index: int, whole: bool) -> str:
    """Key of the image a prediction is drawn on: its frame, or itself when it is whole."""
    return f"{source}#{roi_index}" if whole else source


def classify_stream(
    job_id: int,
    items: Iterable[Roi | Skipped],
    classifier: Any,
    store: Any | None,
    run_id: int | None,
    on_batch: Callable[[BatchResult], None],
    on_progress: Callable[[Progress], None],
    cancel: CancelToken,
    batch_size: int = 16,
    frame_of: Callable[[Roi], np.ndarray | None] = default_frame_of,
    dropped: Callable[[], int] | None = None,
) -> JobFinished:
    """Classify a stream of ROIs, committing and reporting each batch as it completes.

    Returns a :class:`JobFinished`; a cancelled job returns normally with ``cancelled`` set
    (everything classified before the cancel is already stored and reported).
    """
    from phytoscope.core.pipeline import classify_items

    tap = _Tap(items, frame_of)
    started = time.perf_counter()
    done = skipped_count = 0
    store_error: str | None = None
    last_progress = 0.0
    cancelled = False
    try:
        for predictions, skipped in classify_items(
            tap, classifier, batch_size=batch_size, progress=ProgressContract(cancel=cancel)
        ):
            if store is not None and run_id is not None and store_error is None:
                try:
                    if predictions:
                        store.add_predictions(run_id, predictions)
                    if skipped:
                        store.add_skipped(run_id, skipped)
                except StorageError as exc:
                    # keep classifying and showing results: they stay in the window; the
                    # message says the store stopped taking them
                    store_error = f"results are no longer saved: {exc}"
                    log.error(store_error)
            thumbs = tuple(tap.thumbs.pop((p.source, p.roi_index), None) for p in predictions)
            # the reader thread appends while we take: pop one by one (atomic under the GIL)
            taken = []
            while tap.frames:
                taken.append(tap.frames.pop(0))
            # of the whole-image ROIs, only the batch's last is worth showing
            images = [tap.whole.pop((p.source, p.roi_index), None) for p in predictions]
            whole = tuple(image is not None for image in images)
            origins = tuple(tap.origin.pop((p.source, p.roi_index), None) for p in predictions)
            shown = [
                (p, image)
                for p, image in zip(predictions, images, strict=True)
                if image is not None
            ]
            if shown:
                p, image = shown[-1]
                taken.append((frame_key(p.source, p.roi_index, True), image, 1.0))
            frames = tuple((s, f) for s, f, _ in taken)
            scales = tuple(k for _, _, k in taken)
            done += len(predictions)
            skipped_count += len(skipped)
            on_batch(
                BatchResult(
                    job_id=job_id,
                    predictions=tuple(predictions),
                    skipped=tuple(skipped),
                    thumbnails=thumbs,
                    frames=frames,
                    frame_scales=scales,
                    t=time.monotonic(),
                    store_error=store_error,
                    bins=tuple(sorted(dict(tap.bins).items())),
                    origins=origins,
                    whole=whole,
                )
            )
            now = time.perf_counter()
            if now - last_progress >= PROGRESS_INTERVAL_S:
                last_progress = now
                elapsed = max(now - started, 1e-9)
                on_progress(
                    Progress(
                        job_id,
                        done,
                        skipped_count,
                        f"{done} organisms classified",
                        done / elapsed,
                        dropped() if dropped else None,
                    )
                )
            if cancel.is_set():
                cancelled = True
                break
    except Cancelled:
        cancelled = True
    cancelled = cancelled or cancel.is_set()
    seconds = time.perf_counter() - started
    on_progress(
        Progress(
            job_id,
            done,
            skipped_count,
            "cancelled" if cancelled else "done",
            done / max(seconds, 1e-9),
            dropped() if dropped else None,
        )
    )
    return JobFinished(
        job_id=job_id,
        predictions=done,
        skipped=skipped_count,
        seconds=seconds,
        run_id=run_id,
        cancelled=cancelled,
        ml_analyzed=sum(dict(tap.bins).values()) if tap.bins else None,
        sources=tuple(sorted(tap.seen_sources)),
        error=store_error,
    )


def run_files(
    job: FilesJob,
    classifier: Any,
    store: Any | None,
    run_id: int | None,
    on_batch: Callable[[BatchResult], None],
    on_progress: Callable[[Progress], None],
    cancel: CancelToken,
    batch_size: int = 16,
) -> JobFinished:
    """Read files, folders and IFCB bins with ``phytoscope.sources`` and classify them."""
    from phytoscope.sources import iter_inputs

    return classify_stream(
        job.job_id,
        iter_inputs(list(job.paths), video=job.video),
        classifier,
        store,
        run_id,
        on_batch,
        on_progress,
        cancel,
        batch_size,
    )


def camera_rois(
    mailbox: Any,
    cancel: CancelToken,
    segment: Callable[[np.ndarray, str], list[Roi | Skipped]],
    frames: dict[str, np.ndarray] | None = None,
) -> Iterator[Roi | Skipped]:
    """ROIs of the newest camera frames, through the core segmentation, until cancelled or
    the camera stops; each frame becomes source ``camera:<frame number>`` and, when
    ``frames`` is given, is kept there (only the latest) for drawing its boxes."""
    for frame in mailbox_frames(mailbox, cancel.is_set):
        source = f"camera:{frame.number}"
        if frames is not None:
            frames.clear()
            frames[source] = frame.image
        yield from segment(frame.image, source)


def frame_segmenter() -> Callable[[np.ndarray, str], list[Roi | Skipped]]:
    """The capture's segmentation as ``(frame, source) -> ROIs`` (the one recorded video
    uses too: every camera frame is a whole microscope field, so it is always segmented)."""
    return lambda image, source: frame_rois(image, source)


__all__ = ["run_files", "classify_stream", "camera_rois", "CameraJob"]
