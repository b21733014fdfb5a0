"""The main window: layout and wiring. Sources in, classified organisms, sample and HAB
alerts, live charts, benchmark page; every long job on a worker thread (see
:mod:`.workers`). The samples, their rules and their saving belong to the core
:class:`~phytoscope.core.session.SampleSession` (shown by :class:`.sample_view.SampleView`),
the same object ``phytoscope classify`` drives."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QTimer, Signal
from PySide6.QtGui import QCloseEvent, QIcon

from phytoscope.config import Settings, default_database, resources_dir
from phytoscope.core.session import SampleSession
from phytoscope.gui.exporting import ReportExports
from phytoscope.gui.frames import FrameShelf
from phytoscope.gui.geometry import layout_settings, restore_layout, save_layout
from phytoscope.gui.jobs import (
    BackendInfo,
    BackendRequest,
    BatchResult,
    CameraJob,
    FilesJob,
    JobFinished,
    Progress,
)
from phytoscope.gui.messages import inputs_text, skipped_text
from phytoscope.gui.sample_view import SampleView
from phytoscope.gui.samples_tab import install_samples
from phytoscope.gui.session import Record, Session
from phytoscope.gui.style import GenusColours
from phytoscope.gui.window_ui import WindowLayout
from phytoscope.gui.workers import (
    LOAD_CANCELLED,
    Bridge,
    InferenceWorker,
    Task,
    TelemetryWorker,
    WorkerThread,
    describe_error,
)
from phytoscope.sources.ifcb import looks_like_bin
from phytoscope.sources.video import VideoSampling

log = logging.getLogger(__name__)

PANEL_REFRESH_MS = 250


def app_icon() -> QIcon:
    path = resources_dir() / "icons" / "phytoscope.svg"
    return QIcon(str(path)) if path.exists() else QIcon()


class MainWindow(WindowLayout):
    """Parameters
    ----------
    settings
        What the user chose (saved to ``settings_path`` when changed in the dialog).
    database
        The results store (default: the user's data folder).
    bench_overrides
        Passed to the benchmark config (tests: tiny model, tiny budget).
    start_telemetry
        Tests of unrelated parts may switch the sampler off.
    """

    analysis_finished = Signal(object)  # JobFinished
    backend_ready = Signal(object)  # BackendInfo, or None when no model could be loaded

    def __init__(
        self,
        settings: Settings | None = None,
        settings_path: Path | None = None,
        database: Path | None = None,
        bench_overrides: dict[str, Any] | None = None,
        bench_out: Path | None = None,
        start_telemetry: bool = True,
    ):
        super().__init__()
        self.settings = settings or Settings()
        self.settings_path = settings_path
        self.database = Path(database) if database else default_database()
        self.session = Session()
        self.sample_session = SampleSession()
        self.colours = GenusColours()
        self.backend_info: BackendInfo | None = None
        self.no_model_reason: str | None = None
        self.rule_set: Any = None
        self._store: Any = None
        self._job_counter = 0
        self._jobs: dict[int, FilesJob | CameraJob] = {}
        self._camera_job: CameraJob | None = None
        self._camera_mailbox: Any = None
        self._shown_version = -1
        self._closing = False
        self._calls: list[Task] = []
        self._backend_request = BackendRequest()
        self._loading = False
        self.messages: list[str] = []
        self.fps = 0.0
        self._banner_version = -1
        self.window_settings = layout_settings(settings_path)
        self.splitters = {}

        self.setWindowTitle("phytoscope — harmful algal bloom analyser")
        self.setWindowIcon(app_icon())
        self.setAcceptDrops(True)
        self._build_ui(bench_overrides, bench_out)
        self._build_actions()
        restore_layout(self)
        self.sample_panel.technician.setText(self.alert_panel.technician_name())
        self.frames = FrameShelf(self.image_view)
        self.samples = SampleView(
            self.sample_session, self.sample_panel, self.alert_panel, self.store,
            self._thumbnail_of, self._message, self.report_error,
        )  # fmt: skip
        self.gallery.counted = self.samples.counted  # its counts are the sample table's
        self.exports = ReportExports(self)
        self._load_rule_set()
        install_samples(self)  # the Samples tab (#17): past samples, alerts, manual counts
        # a microscope count typed where the alerts say what this model cannot see goes
        # where the Samples tab's go
        self.alert_panel.manual_entry = True
        self.alert_panel.manual_count_entered.connect(self.samples_wiring.add_manual)

        # inference thread: the backend is created, used and closed there
        self.bridge = Bridge()
        self.inference = InferenceWorker(self.database)
        self.inference.ready.connect(self._on_ready)
        self.inference.loading.connect(self._on_loading)
        self.inference.no_model.connect(self._on_no_model)
        self.inference.predictions.connect(self._on_batch)
        self.inference.progress.connect(self._on_progress)
        self.inference.finished.connect(self._on_finished)
        self.inference.error.connect(self.report_error)
        self.inference.camera_started.connect(self._on_camera_started)
        self.bridge.set_backend.connect(self.inference.set_backend)
        self.bridge.submit.connect(self.inference.submit)
        self.bridge.stop_inference.connect(self.inference.shutdown)
        self.inference_thread = WorkerThread(self.inference, "phytoscope-inference")

        # telemetry thread: sampler and timer live there
        self.telemetry = TelemetryWorker()
        self.telemetry.sampled.connect(self.charts.add_sample)
        self.telemetry.described.connect(self.charts.set_power_label)
        self.telemetry.error.connect(self.report_error)
        self.bridge.start_telemetry.connect(self.telemetry.start)
        self.bridge.stop_telemetry.connect(self.telemetry.shutdown)
        self.telemetry_thread = WorkerThread(self.telemetry, "phytoscope-telemetry")
        if start_telemetry:
            self.bridge.start_telemetry.emit(float(self.settings.telemetry_hz))

        self.refresh_timer = QTimer(self)
        self.refresh_timer.setInterval(PANEL_REFRESH_MS)
        self.refresh_timer.timeout.connect(self.refresh_panels)
        self.refresh_timer.start()
        self.load_backend()
        QTimer.singleShot(0, self._report_open_alerts)

    def _report_open_alerts(self) -> None:
        if not self._closing and self.database.exists():
            self.samples.report_open_alerts()

    # -- model ---------------------------------------------------------------------------

    def load_backend(self) -> None:
        self.status_model.setText("model: loading…")
        request = BackendRequest(
            self.settings.backend,
            self.settings.precision,
            self.settings.model_dir,
            self.settings.batch_size,
        )
        self._backend_request.cancel.set()  # a model still loading is not wanted any more
        self._backend_request = request
        self._loading = True
        self._show_busy(True)
        self.bridge.set_backend.emit(request)

    def _on_loading(self, text: str) -> None:
        self.status_model.setText(text)
        self.status_progress.setFormat(text)

    def _on_ready(self, info: BackendInfo) -> None:
        self.backend_info = info
        self.no_model_reason = None
        self._loaded()
        self.show_model(info)
        self._message(f"model {info.model} loaded with {info.backend} in {info.load_seconds:.1f} s")
        self.sample_session.set_model(info.card)
        self._force_refresh()
        self.backend_ready.emit(info)

    def _on_no_model(self, reason: str) -> None:
        if reason == LOAD_CANCELLED and not self._backend_request.cancel.is_set():
            return  # an older request, replaced by the one now loading
        self.backend_info = None
        self.no_model_reason = reason
        self._loaded()
        self.show_no_model(reason)
        self._message(f"no model: {reason}", error=True)
        self.backend_ready.emit(None)

    def _loaded(self) -> None:
        self._loading = False
        if not self._jobs:
            self._show_busy(False)

    def _load_rule_set(self) -> None:
        try:
            from phytoscope.core import hab

            self.rule_set = hab.load_rule_set(self.settings.rule_set)
            self.sample_session.set_rule_set(self.rule_set)
        except Exception as exc:  # noqa: BLE001 - alerts off, the rest works
            self.rule_set = None
            self.sample_session.set_rule_set(None)
            self.report_error(
                f"HAB rule set {self.settings.rule_set!r} cannot be used: {describe_error(exc)}"
            )
            self.alert_panel.show_message(
                "HAB alerts are off: no usable rule set (Tools → Settings)"
            )

    # -- opening inputs ------------------------------------------------------------------

    def open_paths(
        self, paths: list[str] | tuple[str, ...], video: VideoSampling | None = None
    ) -> int | None:
        """Queue files/folders/bins/videos for analysis; returns the job id (None if refused).

        ``video`` (a ``VideoSampling``) says which frames of video files to analyse."""
        # an IFCB bin may be named by its stem (no suffix), as on the command line
        missing = [p for p in paths if not Path(p).exists() and not looks_like_bin(p)]
        for p in missing:
            self.report_error(f"{p} does not exist")
        paths = [str(p) for p in paths if p not in missing]
        if not paths:
            return None
        if self.backend_info is None and self.no_model_reason is not None:
            self.report_error("cannot analyse: no model installed (see the yellow banner)")
            return None
        self._job_counter += 1
        job = FilesJob(self._job_counter, tuple(paths), video=video)
        self._jobs[job.job_id] = job
        self._message(f"analysing {', '.join(Path(p).name for p in paths)}")
        self._show_busy(True)
        self.bridge.submit.emit(job)
        return job.job_id

    # -- camera --------------------------------------------------------------------------

    def start_camera(self) -> int | None:
        if self._camera_job is not None:
            return self._camera_job.job_id
        if self.backend_info is None:
            self.report_error("cannot start the camera: no model is loaded")
            self.act_camera.setChecked(False)
            return None
        self._job_counter += 1
        job = CameraJob(self._job_counter, self.settings.camera)
        self._camera_job = job
        self._jobs[job.job_id] = job
        self._message(f"starting camera {self.settings.camera!r}")
        self._show_busy(True)
        self.bridge.submit.emit(job)
        return job.job_id

    def stop_camera(self) -> None:
        if self._camera_job is not None:
            self._camera_job.cancel.set()

    def _on_camera_started(self, mailbox: Any) -> None:
        self._camera_mailbox = mailbox
        self.status_dropped.setText("dropped frames: 0")

    # -- results from the inference thread -----------------------------------------------

    def _on_batch(self, batch: BatchResult) -> None:
        records = self.session.add(batch.predictions, batch.thumbnails, batch.origins, batch.whole)
        for s in batch.skipped:
            self.session.skipped.append((s.source, s.reason))
            self._message(f"skipped {s.source}: {s.reason}", error=True)
        if batch.skipped:
            self.banner.post_once("skipped", skipped_text(self.session.skipped))
        if batch.analysis is not None:
            self.sample_session.add(batch.analysis)
        self.charts.add_classified(len(batch.predictions))
        self.frames.add(batch, records)

    def show_record(self, record: Record) -> None:
        """Show the image an organism is on (its frame, or itself) with its boxes."""
        self.frames.show(record)

    def _on_progress(self, p: Progress) -> None:
        self.fps = p.rate
        self.status_fps.setText(f"{p.rate:.1f} organisms/s")
        self.status_progress.setFormat(f"{p.done} classified")
        if p.dropped is not None:
            self.status_dropped.setText(f"dropped frames: {p.dropped}")

    def _on_finished(self, result: JobFinished) -> None:
        job = self._jobs.pop(result.job_id, None)
        if isinstance(job, CameraJob):
            self._camera_job = None
            self.act_camera.setChecked(False)
        if result.run_id is not None:
            self.session.run_ids.append(result.run_id)
            self.sample_session.add_run(result.run_id)
        if not self._jobs and not self._loading:
            self._show_busy(False)
        if result.error:
            self.report_error(f"analysis stopped: {result.error}")
        if result.predictions or not result.error:
            what = "cancelled after" if result.cancelled else "done:"
            self._message(
                f"{what} {result.predictions} organisms classified in {result.seconds:.1f} s"
                + (f", {result.skipped} inputs skipped" if result.skipped else "")
            )
        self._force_refresh()
        if result.predictions and not self._closing:
            self.samples.save(manual=False)  # only when the session's rule allows it
        self.analysis_finished.emit(result)

    def cancel_jobs(self) -> None:
        if self._loading:
            self._backend_request.cancel.set()
            self._message("cancelling the model load")
        for job in self._jobs.values():
            job.cancel.set()
        if self._jobs:
            self._message("cancelling — organisms already classified are kept")

    def new_sample(self) -> None:
        """Start a fresh sample (the previous one stays in the results store)."""
        if self._jobs:
            self.report_error(
                "wait for the analysis to finish (or stop it) before starting a new sample"
            )
            return
        self.session.clear()
        self.predictions_model.sync()
        self.frames.clear()
        self.samples.new_sample()
        self.banner.forget()
        self._force_refresh()

    # -- panels --------------------------------------------------------------------------

    def _force_refresh(self) -> None:
        self._shown_version = -1
        self.samples.refresh(force=True)
        self.refresh_panels()

    def refresh_panels(self) -> None:
        """Table, gallery, sample and alerts: redrawn at most 4 times a second."""
        self.samples.refresh()
        if self.sample_session.version != self._banner_version:
            self._banner_version = self.sample_session.version
            self._post_inputs_notice()
        if self.session.version == self._shown_version:
            return
        self._shown_version = self.session.version
        self.predictions_model.sync()
        if self.predictions_table.follow and len(self.session):
            self.predictions_table.scrollToBottom()
        if self.gallery.isVisible():  # thumbnails are built only for a gallery on show
            self.gallery.refresh()

    # -- what changes the numbers: a banner that stays ------------------------------------

    def _post_inputs_notice(self) -> None:
        """Copies counted once, bins left out or partial: the session's notices and every
        sample's partial-bin warnings stay on the banner until the inputs change."""
        lines = list(self.sample_session.notices())
        for draft in self.sample_session.samples():
            lines += [w for w in draft.warnings if w.startswith("PARTIAL")]
        self.banner.post_once("inputs", inputs_text(lines))

    def _thumbnail_of(self, key: tuple[str, int]) -> np.ndarray | None:
        record = self.session.by_key.get(key)
        return record.thumbnail if record else None

    # -- store (GUI-thread connection: a few small writes per user action) ----------------

    def store(self) -> Any:
        if self._store is None:
            from phytoscope.storage import Store

            self._store = Store(self.database)
        return self._store

    def save_sample(self) -> int | None:
        """Save the samples (Save sample); returns the id of the one on show, if saved."""
        self.samples.save(manual=True)
        draft = self.samples.draft
        return draft.sample_id if draft is not None else None

    def correct(self, records: list[Record], label: str) -> None:
        model = self.backend_info.model if self.backend_info else ""
        for record in self.samples.correct(records, label, self.session, model):
            self.predictions_model.refresh_row(record.number - 1)
        self._force_refresh()

    def export_corrections(self, folder: str | None = None) -> dict[str, int] | None:
        return self.exports.corrections(folder)

    # -- dialogs -------------------------------------------------------------------------

    def apply_settings(self, new: Settings) -> None:
        old, self.settings = self.settings, new
        try:
            self.settings.save(self.settings_path)
        except OSError as exc:
            self.report_error(f"settings not saved: {exc}")
        if (old.backend, old.precision, old.model_dir, old.batch_size) != (
            new.backend,
            new.precision,
            new.model_dir,
            new.batch_size,
        ):
            if self._jobs:
                self.report_error("the new model is loaded after the running analysis ends")
            self.load_backend()
        if old.rule_set != new.rule_set:
            self._load_rule_set()
        if old.telemetry_hz != new.telemetry_hz:
            self.bridge.start_telemetry.emit(float(new.telemetry_hz))
        self._force_refresh()

    def open_about(self) -> None:
        """Help → About: what ``phytoscope info`` knows (it imports every runtime: not on
        the GUI thread) as a readable page, with what is in use now."""
        from phytoscope.core.diagnostics import collect
        from phytoscope.gui.about import AboutDialog

        self.statusBar().showMessage("collecting versions, backends and sensors…")
        info = self.backend_info
        card, engine = (info.card, f"{info.backend} {info.precision}") if info else (None, "")

        def show(facts: dict[str, Any]) -> None:
            if not self._closing:
                self.about_dialog = AboutDialog(facts, self, self.rule_set, card, engine)
                self.about_dialog.show()

        self.run_task(lambda progress: collect(), "phytoscope info", "phytoscope-info", show)

    def run_task(self, work: Any, what: str, name: str, on_result: Any) -> Task:
        """Run ``work`` on a worker thread; its result to ``on_result``, a failure to the
        user; joined when the window closes."""
        self._calls = [c for c in self._calls if c.running]
        task = Task(work, what=what, name=name)
        task.result.connect(on_result)
        task.failed.connect(self.report_error)
        self._calls.append(task.start())
        return task

    # -- shutdown ------------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop every job and join every thread; safe to call twice."""
        if self._closing:
            return
        self._closing = True
        save_layout(self)
        self.refresh_timer.stop()
        self.charts.stop()
        for job in self._jobs.values():
            job.cancel.set()
        self._backend_request.cancel.set()
        self.bench_page.stop()
        self.telemetry_thread.stop(self.bridge.stop_telemetry)
        self.inference_thread.stop(self.bridge.stop_inference)
        for call in self._calls:
            call.join()
        if self._store is not None:
            self._store.close()
            self._store = None

    @property
    def threads_running(self) -> list[str]:
        names = []
        if self.inference_thread.running:
            names.append("inference")
        if self.telemetry_thread.running:
            names.append("telemetry")
        if self.bench_page.running:
            names.append("benchmark")
        names += [c.name for c in self._calls if c.running]
        return names
