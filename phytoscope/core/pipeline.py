"""Classify a stream of inputs with decoding and pre-processing overlapping inference.

One plain function, :func:`classify_items`, used by ``phytoscope classify``, the GUI's
inference worker and the benchmark (DESIGN section 4: long work is a function taking
progress and cancel, unit-tested without Qt).

Why threads: the inference engine (ONNX Runtime, TensorRT, TensorFlow) releases the GIL
while it runs, and so do OpenCV's decoders and resizers, so a background thread can read
and pre-process batch N+1 while batch N runs through the engine. A bounded queue keeps
memory flat on a folder of millions of images.

Who calls the engine: by default only the calling thread, because CUDA contexts and some
runtimes belong to the thread that created them. A backend whose ``concurrent_calls`` is
above 1 (ONNX Runtime on the CPU, created with :func:`engine_options`) is instead called
from that many engine threads at once, one single-threaded run each ("lanes"): on a CPU
that keeps every core busy without the per-operator hand-offs of one many-threaded run,
which decoding threads keep interrupting.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace

import cv2
import numpy as np

from phytoscope.backends.options import OrtOptions
from phytoscope.core.classifier import Classifier
from phytoscope.errors import Cancelled
from phytoscope.imaging.preprocess import normalise, prepare_uint8
from phytoscope.modelcard import InputSpec
from phytoscope.progress import Progress
from phytoscope.types import Prediction, Roi, Skipped

log = logging.getLogger(__name__)

STAGE = "classify"
"""The progress stage :func:`classify_items` reports (organisms classified + inputs skipped)."""


@dataclass
class _Batch:
    rois: list[Roi]
    tensor: np.ndarray | None
    skipped: list[Skipped]


_END = object()


def prepare_batch(
    rois: list[Roi], spec: InputSpec
) -> tuple[list[Roi], np.ndarray | None, list[Skipped]]:
    """Pre-process ROIs into one tensor; a ROI that cannot be prepared becomes Skipped.

    Per-ROI failures (a degenerate 0-pixel crop, an odd channel count) must not take the
    other 15 ROIs of the batch down with them.
    """
    kept: list[Roi] = []
    prepared: list[np.ndarray] = []
    skipped: list[Skipped] = []
    for roi in rois:
        try:
            prepared.append(prepare_uint8(roi.image, spec))
            kept.append(roi)
        except Exception as exc:  # noqa: BLE001 - ValueError, cv2.error...: report, keep going
            skipped.append(Skipped(f"{roi.source}#{roi.index}", f"cannot pre-process ROI: {exc}"))
    tensor = normalise(np.stack(prepared), spec) if prepared else None
    return kept, tensor, skipped


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, e.g. under taskset or a container)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_workers(cpus: int | None = None) -> int:
    """Decoding threads for a machine: 2 on small ones, 3/8 of the CPUs (at most 8) on large."""
    cpus = cpus or usable_cpus()
    return 2 if cpus <= 4 else min(8, max(2, cpus * 3 // 8))


MAX_LANES = 8
"""Concurrent engine runs at most: each holds its own activations (a second lane added 66 MB
to the GUI's peak RSS on the FlowCam folder)."""


def engine_options(cpus: int | None = None) -> OrtOptions:
    """ONNX Runtime options for an engine that shares ``cpus`` (default: all usable) with
    decoding; pass them as ``backends.create(..., options=engine_options())``.

    Every caller of :func:`classify_items` (``classify``, the GUI, the archive workers,
    the pipeline benchmark) creates its backend with these, so they all run the same way.
    For ONNX Runtime: ``lanes`` single-threaded runs at once, one per CPU (at most
    :data:`MAX_LANES`, the CPUs shared out as ``threads`` per run), without busy-waiting.
    Measured on this project's 2-vCPU machine with the shipped model (results/pipeline/):
    one run at a time on both cores spent 2.89 ms of CPU per image, two single-threaded runs
    2.60 ms, and with decoding alongside, the lanes classified a real FlowCam run of 3,122
    crops 22 % faster (639 vs 525 img/s). Spinning was already off: ONNX Runtime's pool
    busy-waits between operators by default and starved the decoding threads (16 CPUs:
    685 img/s spinning, 959 img/s not).

    ``PHYTOSCOPE_THREADS`` (one run with that many threads) and ``PHYTOSCOPE_ORT_SPIN``,
    read by the backend, override. Other engines take their own options (``create`` hands
    each engine its own), so these never reach TensorRT or TensorFlow.
    """
    cpus = max(1, cpus or usable_cpus())
    options = OrtOptions()
    if not os.environ.get("PHYTOSCOPE_ORT_SPIN"):
        options = replace(options, spin=False)
    if not os.environ.get("PHYTOSCOPE_THREADS"):
        lanes = min(cpus, MAX_LANES)
        options = replace(options, lanes=lanes, threads=max(1, cpus // lanes))
    return options.validate()


_opencv_lock = threading.Lock()
_opencv_users = 0
_opencv_threads_before = 0


@contextlib.contextmanager
def opencv_single_threaded() -> Iterator[None]:
    """OpenCV without its own worker threads while pipelines run (restored after the last).

    The pipeline already decodes one file per pool thread; OpenCV's default of splitting
    every resize and colour conversion over all CPUs only adds threads that compete with
    the engine's. Measured on the 2-vCPU machine, decoding + pre-processing the 3000
    benchmark images took 0.51-0.66 ms of CPU per image with OpenCV's threads and 0.38-0.45
    ms without (pixels identical), and the pipeline rose from 70 % to 76 % of engine-only
    in the same interleaved rounds. On a 16-CPU machine each of 6 decoding threads fanned
    out to 16 more. The setting is process-wide in OpenCV, hence the count of users.
    """
    global _opencv_users, _opencv_threads_before
    with _opencv_lock:
        if _opencv_users == 0:
            _opencv_threads_before = cv2.getNumThreads()
            cv2.setNumThreads(1)
        _opencv_users += 1
    try:
        yield
    finally:
        with _opencv_lock:
            _opencv_users -= 1
            if _opencv_users == 0:
                cv2.setNumThreads(_opencv_threads_before)


def _decode_and_prepare(
    unit: Callable[[], list], spec: InputSpec
) -> list[tuple[Roi | Skipped, np.ndarray | None]]:
    """Run one source unit (read a file or bin) and pre-process its ROIs, in a pool thread."""
    out: list[tuple[Roi | Skipped, np.ndarray | None]] = []
    for item in unit():
        if isinstance(item, Skipped):
            out.append((item, None))
            continue
        try:
            out.append((item, prepare_uint8(item.image, spec)))
        except Exception as exc:  # noqa: BLE001 - one bad ROI is reported, the rest go on
            out.append(
                (Skipped(f"{item.source}#{item.index}", f"cannot pre-process ROI: {exc}"), None)
            )
    return out


def _total_of(items: Iterable[Roi | Skipped]) -> int | None:
    try:
        return len(items)  # type: ignore[arg-type]
    except TypeError:
        return None


def classify_items(
    items: Iterable[Roi | Skipped],
    classifier: Classifier,
    batch_size: int = 16,
    progress: Progress | None = None,
    prefetch: int = 4,
    workers: int | None = None,
    total: int | None = None,
) -> Iterator[tuple[list[Prediction], list[Skipped]]]:
    """Classify every ROI of ``items``, yielding ``(predictions, skipped)`` per batch.

    Parameters
    ----------
    items
        What :func:`phytoscope.sources.iter_inputs` yields (any iterable of Roi/Skipped);
        it is iterated in a background thread, so lazy decoding overlaps inference.
    classifier
        Holds an already loaded backend. Only this (the calling) thread calls it, unless
        its ``concurrent_calls`` is above 1: then that many engine threads do.
    batch_size
        ROIs per engine call.
    progress
        The one progress/cancel contract (:mod:`phytoscope.progress`): stage
        :data:`STAGE` is reported after each batch, ``done`` counting ROIs classified plus
        inputs skipped, ``total`` ``None`` when the number of items is not known. Its
        cancel token is checked between batches; when set, the reader stops and
        :class:`Cancelled` is raised. Batches already yielded stay with the caller (write
        them as they come).
    prefetch
        Pre-processed batches that may wait for the engine (bounds memory).
    workers
        Decoding / pre-processing threads (default :func:`default_workers`). When
        ``items`` offers ``units()`` (what ``iter_inputs`` returns), whole files are decoded
        and pre-processed in parallel, in order; otherwise items are read one by one in the
        reader thread and only pre-processing runs in the pool.
    total
        Known number of items, for the progress callback (else ``len(items)`` if any).

    Yields
    ------
    (predictions, skipped)
        In input order. A batch may hold only skipped entries (no predictions).

    Raises
    ------
    Cancelled
        When the progress's cancel token was set.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    total = total if total is not None else _total_of(items)
    progress = Progress.of(progress)
    cancel = progress.cancel
    spec = classifier.card.input
    stop = threading.Event()
    lanes = max(1, int(getattr(classifier.backend, "concurrent_calls", 1)))
    # with lanes the queue holds batches being classified too
    batches: queue.Queue = queue.Queue(maxsize=max(1, prefetch) + lanes - 1)
    workers = workers if workers is not None else default_workers()
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="phytoscope-prep")
    engines = (
        ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="phytoscope-infer")
        if lanes > 1
        else None
    )
    units = getattr(items, "units", None)

    def finish(batch: _Batch) -> tuple[list[Prediction], list[Skipped]]:
        """Inference and post-processing of one batch (in the caller's or an engine thread)."""
        predictions = (
            classifier.predict_tensor(batch.tensor, batch.rois) if batch.tensor is not None else []
        )
        return predictions, batch.skipped

    def enqueue(batch: _Batch) -> bool:
        """Hand a ready batch on: straight to an engine lane when there are lanes."""
        return put(engines.submit(finish, batch) if engines is not None else batch)

    def put(value: object) -> bool:
        """Put unless stopping; False when the consumer has gone away."""
        while not stop.is_set():
            try:
                batches.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def submit(rois: list[Roi], skipped: list[Skipped]) -> Future:
        """Pre-process in the pool, or, with lanes, pre-process and classify in a lane."""

        def work() -> _Batch:
            kept, tensor, bad = prepare_batch(rois, spec) if rois else ([], None, [])
            return _Batch(kept, tensor, skipped + bad)

        if engines is not None:
            return engines.submit(lambda: finish(work()))
        return pool.submit(work)

    def parallel_reader() -> None:
        """Decode whole units in the pool, a bounded window ahead, and batch in order."""
        rois: list[Roi] = []
        prepared: list[np.ndarray] = []
        skipped: list[Skipped] = []
        pending: deque[Future] = deque()
        window = max(2, 4 * workers)

        def take(results: list[tuple[Roi | Skipped, np.ndarray | None]]) -> bool:
            nonlocal rois, prepared, skipped
            for item, pixels in results:
                if isinstance(item, Skipped) or pixels is None:
                    skipped.append(item)  # type: ignore[arg-type]
                    continue
                rois.append(item)
                prepared.append(pixels)
                if len(rois) >= batch_size:
                    if not enqueue(_Batch(rois, normalise(np.stack(prepared), spec), skipped)):
                        return False
                    rois, prepared, skipped = [], [], []
            return True

        try:
            for unit in units():  # type: ignore[misc]
                if stop.is_set() or cancel.is_set():
                    break
                pending.append(pool.submit(_decode_and_prepare, unit, spec))
                if len(pending) >= window and not take(pending.popleft().result()):
                    return
            while pending and not stop.is_set():
                if not take(pending.popleft().result()):
                    return
            if rois or skipped:
                enqueue(
                    _Batch(rois, normalise(np.stack(prepared), spec) if prepared else None, skipped)
                )
        except BaseException as exc:  # noqa: BLE001 - hand the failure to the consumer
            put(exc)
        finally:
            for future in pending:
                future.cancel()
            put(_END)

    def reader() -> None:
        rois: list[Roi] = []
        skipped: list[Skipped] = []
        try:
            for item in items:
                if stop.is_set() or cancel.is_set():
                    break
                if isinstance(item, Skipped):
                    skipped.append(item)
                    continue
                rois.append(item)
                if len(rois) >= batch_size:
                    if not put(submit(rois, skipped)):
                        return
                    rois, skipped = [], []
            if rois or skipped:
                put(submit(rois, skipped))
        except BaseException as exc:  # noqa: BLE001 - hand the failure to the consumer
            put(exc)
        finally:
            put(_END)

    target = parallel_reader if callable(units) else reader
    thread = threading.Thread(target=target, name="phytoscope-reader", daemon=True)
    with opencv_single_threaded():
        thread.start()
        done = 0
        try:
            while True:
                if cancel.is_set():
                    raise Cancelled(f"stopped after {done} items")
                try:
                    entry = batches.get(timeout=0.1)
                except queue.Empty:
                    continue
                if entry is _END:
                    break
                if isinstance(entry, BaseException):
                    raise entry
                result = entry.result() if isinstance(entry, Future) else entry
                predictions, skipped = finish(result) if isinstance(result, _Batch) else result
                # a cancel that arrived during inference still delivers this batch: it is done
                done += len(predictions) + len(skipped)
                progress.update(STAGE, done, total)
                yield predictions, skipped
        finally:
            stop.set()
            thread.join(timeout=5)
            pool.shutdown(wait=True, cancel_futures=True)
            if engines is not None:  # runs in progress end before the caller closes the backend
                engines.shutdown(wait=True, cancel_futures=True)
            if thread.is_alive():  # stuck in a slow read; it is a daemon and stops at its next put
                log.warning("input reader did not stop within 5 s")
