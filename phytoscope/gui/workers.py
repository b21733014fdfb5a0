"""The window's workers, all on the one worker shell of :mod:`phytoscope.gui.shell`.

Threads (DESIGN.md section 4):

- inference: :class:`InferenceWorker` creates, uses AND closes the backend (and its own
  results-store connection) on its long-lived thread (:class:`WorkerThread`). In: queued
  ``set_backend`` / ``submit`` / ``shutdown``; out: ``ready``, ``progress``,
  ``predictions``, ``finished``, ``error``, all carrying frozen objects from :mod:`.jobs`.
  Each job (files, camera) runs through :func:`~phytoscope.gui.shell.drive`, like every
  task, and stops on its cancel token, which the GUI sets directly because a busy worker
  does not read its queue until the job returns.
- telemetry: :class:`TelemetryWorker` creates its sampler and QTimer inside its thread
  and emits ``sampled(TelemetrySample)``.
- one-off work (the benchmark, the About dialog's ``phytoscope info``): a
  :class:`~phytoscope.gui.shell.Task` each (e.g. :func:`phytoscope.gui.bench_page.bench_work`).
- camera: a plain Python capture thread (:mod:`.camera`), joined when the job ends.

The main window stops every one of them before it closes.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from phytoscope import backends
from phytoscope.backends.base import Backend
from phytoscope.backends.options import TrtOptions
from phytoscope.config import default_database
from phytoscope.core.classifier import Classifier
from phytoscope.core.pipeline import engine_options
from phytoscope.errors import ModelError, PhytoscopeError
from phytoscope.gui import analysis
from phytoscope.gui.camera import CameraCapture, open_camera
from phytoscope.gui.jobs import (
    BackendInfo,
    BackendRequest,
    CameraJob,
    FilesJob,
    JobFinished,
)
from phytoscope.gui.shell import (
    Outcome,
    Task,
    WorkerThread,
    describe_error,
    drive,
    quit_own_thread,
)
from phytoscope.progress import Progress, ProgressEvent
from phytoscope.storage import Store
from phytoscope.telemetry import Sampler

log = logging.getLogger(__name__)

LOAD_CANCELLED = "model loading was cancelled: choose Tools → Settings → Save to load a model"

__all__ = [
    "Bridge",
    "InferenceWorker",
    "Task",
    "TelemetryWorker",
    "WorkerThread",
    "describe_error",
]


class InferenceWorker(QObject):
    """Loads the backend and runs analysis jobs on the inference thread."""

    ready = Signal(object)  # BackendInfo
    loading = Signal(str)
    predictions = Signal(object)  # BatchResult
    progress = Signal(object)  # Progress
    finished = Signal(object)  # JobFinished
    error = Signal(str)
    no_model = Signal(str)
    camera_started = Signal(object)  # the camera mailbox, for the dropped-frame counter

    def __init__(self, database: Path | None = None):
        super().__init__()
        self._database = database
        self._backend: Backend | None = None
        self._classifier: Classifier | None = None
        self._store: Store | None = None
        self._request = BackendRequest()

    # -- backend -------------------------------------------------------------------------

    def _close_backend(self) -> None:
        if self._backend is not None:
            try:
                self._backend.close()
            except Exception:  # noqa: BLE001 - closing must never stop the window closing
                log.exception("closing the backend failed")
        self._backend = self._classifier = None

    @Slot(object)
    def set_backend(self, request: BackendRequest) -> None:
        self._close_backend()
        self._request = request
        if request.cancel.is_set():  # cancelled, or replaced by a newer request, while queued
            self.no_model.emit(LOAD_CANCELLED)
            return
        self.loading.emit(f"loading model ({request.backend}, {request.precision})…")
        started = time.perf_counter()
        chosen = Path(request.model_dir) if request.model_dir else None
        try:
            backend = backends.create(
                request.backend,
                request.precision,
                # a folder of models, or one model card / model file
                model=chosen if chosen is not None and chosen.is_file() else None,
                models_dir=chosen if chosen is not None and not chosen.is_file() else None,
                # ONNX Runtime shares the CPUs with decoding as classify_items runs it;
                # TensorRT's profile is tuned for the batch the window runs
                options=(engine_options(), TrtOptions(batch=request.batch_size)),
                # engines that take long to load (TensorRT builds) report and stop here
                progress=Progress(self._loading_event, request.cancel, min_interval=0.1),
            )
            backend.load()
        except Exception as exc:  # noqa: BLE001 - any failure becomes a message, never a crash
            if request.cancel.is_set():
                self.no_model.emit(LOAD_CANCELLED)
            elif isinstance(exc, ModelError):
                log.warning("no usable model: %s", exc)
                self.no_model.emit(describe_error(exc))
            else:
                log.exception("backend failed to load")
                self.error.emit(f"cannot load the model: {describe_error(exc)}")
                self.no_model.emit(describe_error(exc))
            return
        if request.cancel.is_set():
            backend.close()
            self.no_model.emit(LOAD_CANCELLED)
            return
        self._backend, self._classifier = backend, Classifier(backend)
        card = backend.card
        self.ready.emit(
            BackendInfo(
                backend=backend.name,
                precision=backend.precision,
                model=card.label,
                model_sha256=card.sha256,
                classes=card.class_names,
                hab_classes=tuple(c.name for c in card.classes if c.hab),
                not_recognised=card.not_recognised,
                load_seconds=time.perf_counter() - started,
                card=card,
            )
        )

    def _loading_event(self, event: ProgressEvent) -> None:
        fraction = event.fraction
        text = event.message or event.stage
        self.loading.emit(f"{text} ({fraction:.0%})" if fraction is not None else text)

    # -- store ---------------------------------------------------------------------------

    def _open_store(self) -> Store:
        if self._store is None:
            self._store = Store(self._database or default_database())
        return self._store

    def _start_run(self, settings: dict[str, Any]) -> tuple[Store | None, int | None]:
        backend = self._backend
        if backend is None:
            return None, None
        try:
            store = self._open_store()
            run_id = store.start_run(
                backend.name, backend.card.label, backend.card.sha256, settings
            )
            return store, run_id
        except PhytoscopeError as exc:
            self.error.emit(f"results will not be saved: {exc}")
            return None, None

    def _finish_run(self, store: Any, run_id: int | None) -> None:
        if store is not None and run_id is not None:
            try:
                store.finish_run(run_id)
            except PhytoscopeError as exc:
                self.error.emit(f"could not close the run in the results store: {exc}")

    # -- jobs ----------------------------------------------------------------------------

    @Slot(object)
    def submit(self, job: FilesJob | CameraJob) -> None:
        if job.cancel.is_set():  # cancelled while it waited in the queue
            self.finished.emit(JobFinished(job.job_id, 0, 0, 0.0, cancelled=True))
            return
        if self._classifier is None:
            self.error.emit("no model is loaded: install a model or choose one in Settings")
            self.finished.emit(JobFinished(job.job_id, 0, 0, 0.0, error="no model loaded"))
            return
        settings = {"backend": self._request.backend, "precision": self._request.precision}
        store, run_id = self._start_run({**settings, "job": type(job).__name__})
        try:
            outcome = drive(
                lambda progress: self._run_job(job, store, run_id),
                Progress(cancel=job.cancel),
                what=f"analysis job {job.job_id}",
            )
        finally:
            self._finish_run(store, run_id)
        self.finished.emit(self._job_finished(job, outcome, run_id))

    def _run_job(self, job: FilesJob | CameraJob, store: Any, run_id: int | None) -> JobFinished:
        if isinstance(job, FilesJob):
            return analysis.run_files(
                job,
                self._classifier,
                store,
                run_id,
                self.predictions.emit,
                self.progress.emit,
                job.cancel,
                self._request.batch_size,
            )
        return self._run_camera(job, store, run_id)

    def _job_finished(
        self, job: FilesJob | CameraJob, outcome: Outcome, run_id: int | None
    ) -> JobFinished:
        """The job's own summary; a failed job is a message, and results so far are kept
        (each batch was stored and shown as it came)."""
        if outcome.ok:
            return outcome.value  # type: ignore[no-any-return]
        if outcome.error is not None:
            self.error.emit(outcome.error)
            return JobFinished(job.job_id, 0, 0, 0.0, run_id=run_id, error=outcome.error)
        return JobFinished(job.job_id, 0, 0, 0.0, run_id=run_id, cancelled=True)

    def _run_camera(self, job: CameraJob, store: Any, run_id: int | None) -> JobFinished:
        segment = analysis.frame_segmenter()
        device = open_camera(job.camera)
        capture = CameraCapture(device, on_error=self.error.emit).start()
        self.camera_started.emit(capture.mailbox)
        frames: dict[str, Any] = {}
        try:
            return analysis.classify_stream(
                job.job_id,
                analysis.camera_rois(capture.mailbox, job.cancel, segment, frames),
                self._classifier,
                store,
                run_id,
                self.predictions.emit,
                self.progress.emit,
                job.cancel,
                batch_size=self._request.batch_size,
                frame_of=lambda roi: frames.get(roi.source),
                dropped=lambda: capture.mailbox.dropped,
            )
        finally:
            capture.stop()

    @Slot()
    def shutdown(self) -> None:
        """Release the backend and store on this thread, then end the thread's loop."""
        self._close_backend()
        if self._store is not None:
            try:
                self._store.close()
            except Exception:  # noqa: BLE001
                log.exception("closing the results store failed")
            self._store = None
        quit_own_thread(self)


class TelemetryWorker(QObject):
    """Reads the telemetry sampler on a timer that lives in the telemetry thread."""

    sampled = Signal(object)  # TelemetrySample
    described = Signal(str)  # power label, once the sampler is open
    error = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self._sampler: Any = None
        self._timer: QTimer | None = None

    @Slot(float)
    def start(self, rate_hz: float) -> None:
        self._stop_sampling()
        try:
            self._sampler = Sampler(rate_hz=rate_hz, capacity=36000, pid=os.getpid())
        except Exception as exc:  # noqa: BLE001 - the window works without telemetry
            log.warning("telemetry unavailable: %s", exc)
            self.error.emit(f"live power and memory charts are unavailable: {describe_error(exc)}")
            return
        label = getattr(self._sampler, "power_label", "power")
        self.described.emit(str(label))
        self._timer = QTimer(self)  # created here, so it fires in this thread
        self._timer.timeout.connect(self._tick)
        self._timer.start(max(10, int(1000 / rate_hz)))
        self._tick()

    def _tick(self) -> None:
        if self._sampler is None:
            return
        try:
            sample = self._sampler.read_once()
        except Exception as exc:  # noqa: BLE001
            log.warning("telemetry read failed: %s", exc)
            self.error.emit(f"telemetry stopped: {describe_error(exc)}")
            self._stop_sampling()
            return
        self.sampled.emit(sample)

    def _stop_sampling(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer.deleteLater()
            self._timer = None
        if self._sampler is not None:
            close = getattr(self._sampler, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:  # noqa: BLE001
                    log.exception("closing the telemetry sampler failed")
            self._sampler = None

    @Slot()
    def shutdown(self) -> None:
        self._stop_sampling()
        quit_own_thread(self)


class Bridge(QObject):
    """Signals the GUI thread emits into workers (queued: the receivers live elsewhere)."""

    set_backend = Signal(object)
    submit = Signal(object)
    stop_inference = Signal()
    start_telemetry = Signal(float)
    stop_telemetry = Signal()
