"""The main window: sources in, classified organisms, sample and HAB alerts, live charts,
benchmark page; every long job on a worker thread (see :mod:`.workers`)."""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QSize, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QSplitter,
    QStyle,
    QTabWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from phytoscope.config import Settings, default_database, resources_dir
from phytoscope.errors import PhytoscopeError
from phytoscope.gui.analysis import frame_key
from phytoscope.gui.bench_page import BenchPage
from phytoscope.gui.charts import LiveCharts
from phytoscope.gui.imageview import ImageView
from phytoscope.gui.jobs import (
    BackendInfo,
    BackendRequest,
    BatchResult,
    CameraJob,
    FilesJob,
    JobFinished,
    Progress,
)
from phytoscope.gui.panels import AlertPanel, SamplePanel
from phytoscope.gui.predictions import Gallery, PredictionsModel, PredictionsTable
from phytoscope.gui.session import Record, Session
from phytoscope.gui.style import GenusColours
from phytoscope.gui.workers import (
    LOAD_CANCELLED,
    Bridge,
    InferenceWorker,
    Task,
    TelemetryWorker,
    WorkerThread,
    describe_error,
)
from phytoscope.types import Alert

log = logging.getLogger(__name__)

PANEL_REFRESH_MS = 250
FRAME_CACHE = 48


def _key(record: Record) -> str:
    p = record.prediction
    return frame_key(p.source, p.roi_index, record.whole)


def app_icon() -> QIcon:
    path = resources_dir() / "icons" / "phytoscope.svg"
    return QIcon(str(path)) if path.exists() else QIcon()


class MainWindow(QMainWindow):
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
        self.colours = GenusColours()
        self.backend_info: BackendInfo | None = None
        self.no_model_reason: str | None = None
        self.rule_set: Any = None
        self._store: Any = None
        self._frames: OrderedDict[str, tuple[np.ndarray, float]] = OrderedDict()
        self._by_frame: dict[str, list[Record]] = {}
        self._job_counter = 0
        self._jobs: dict[int, FilesJob | CameraJob] = {}
        self._camera_job: CameraJob | None = None
        self._camera_mailbox: Any = None
        self._stored_alerts: dict[str, Alert] = {}
        self._shown_version = -1
        self._last_sample_id: int | None = None
        self._closing = False
        self._calls: list[Task] = []
        self._backend_request = BackendRequest()
        self._loading = False
        self.messages: list[str] = []
        self.fps = 0.0

        self.setWindowTitle("phytoscope — harmful algal bloom analyser")
        self.setWindowIcon(app_icon())
        self.setAcceptDrops(True)
        self.resize(1600, 1000)
        self._build_ui(bench_overrides, bench_out)
        self._build_actions()
        self._load_rule_set()

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
        self.telemetry.sampled.connect(self._on_sample)
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
        """Alerts of earlier samples stay open until someone acknowledges them: say so."""
        if self._closing or not self.database.exists():
            return
        try:
            open_alerts = self.store().open_alerts()
        except PhytoscopeError as exc:
            self.report_error(f"cannot read earlier alerts: {exc}")
            return
        if open_alerts:
            taxa = ", ".join(sorted({f"{a.taxon} ({a.level})" for a in open_alerts}))
            self.alert_panel.earlier.setText(
                f"<b>{len(open_alerts)} alert(s) from earlier samples not acknowledged</b>: {taxa} "
                "— <code>phytoscope report --list</code>"
            )
            self._message(
                f"{len(open_alerts)} alert(s) from earlier samples are not acknowledged: {taxa}"
            )

    # -- construction --------------------------------------------------------------------

    def _build_ui(self, bench_overrides: dict[str, Any] | None, bench_out: Path | None) -> None:
        self.banner = QLabel()
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet(
            "background:#fff3bf; color:#5c3c00; padding:6px; border:1px solid #f59f00"
        )
        self.banner.hide()

        self.image_view = ImageView(self.colours)
        self.predictions_model = PredictionsModel(self.session, self.colours)
        self.predictions_table = PredictionsTable(self.predictions_model)
        self.predictions_table.record_activated.connect(self.show_record)
        self.gallery = Gallery(self.session, self.colours)
        self.gallery.correction_requested.connect(self.correct)
        self.gallery.export_requested.connect(self.export_corrections)
        self.gallery.record_activated.connect(self.show_record)
        self.log_list = QListWidget()
        lower = QTabWidget()
        lower.addTab(self.predictions_table, "Predictions")
        lower.addTab(self.gallery, "Gallery by genus (correct labels)")
        lower.addTab(self.log_list, "Messages")
        self.lower_tabs = lower
        lower.currentChanged.connect(
            lambda _i: self.gallery.refresh() if self.gallery.isVisible() else None
        )
        left = QSplitter(Qt.Orientation.Vertical)
        left.addWidget(self.image_view)
        left.addWidget(lower)
        left.setSizes([520, 400])

        self.sample_panel = SamplePanel()
        self.sample_panel.changed.connect(self._force_refresh)
        self.save_sample_button = QPushButton("Save sample")
        self.save_sample_button.setToolTip(
            "Record the sample, its counts and its alerts (with corrections)"
        )
        self.save_sample_button.clicked.connect(lambda: self.record_sample(manual=True))
        sample_box = QWidget()
        sample_layout = QVBoxLayout(sample_box)
        sample_layout.setContentsMargins(0, 0, 0, 0)
        sample_layout.addWidget(self.sample_panel, 1)
        sample_layout.addWidget(self.save_sample_button)
        self.alert_panel = AlertPanel()
        self.alert_panel.acknowledge_requested.connect(self.acknowledge)
        self.charts = LiveCharts(horizontal=True)
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.alert_panel)
        right.addWidget(sample_box)
        right.addWidget(self.charts)
        right.setSizes([250, 450, 250])

        analysis = QSplitter(Qt.Orientation.Horizontal)
        analysis.addWidget(left)
        analysis.addWidget(right)
        analysis.setSizes([860, 740])
        analysis_page = QWidget()
        page_layout = QVBoxLayout(analysis_page)
        page_layout.setContentsMargins(4, 4, 4, 4)
        page_layout.addWidget(self.banner)
        page_layout.addWidget(analysis, 1)

        self.bench_page = BenchPage(overrides=bench_overrides, out_root=bench_out)
        self.tabs = QTabWidget()
        self.tabs.addTab(analysis_page, "Analysis")
        self.tabs.addTab(self.bench_page, "Benchmark")
        self.setCentralWidget(self.tabs)

        status = self.statusBar()
        self.status_backend = QLabel("backend: —")
        self.status_model = QLabel("model: loading…")
        self.status_fps = QLabel("— organisms/s")
        self.status_dropped = QLabel("dropped frames: —")
        self.status_progress = QProgressBar()
        self.status_progress.setMaximumWidth(220)
        self.status_progress.setRange(0, 0)
        self.status_progress.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the analysis; organisms classified so far are kept")
        self.cancel_button.clicked.connect(self.cancel_jobs)
        self.cancel_button.hide()
        for widget in (
            self.status_backend,
            self.status_model,
            self.status_fps,
            self.status_dropped,
        ):
            status.addPermanentWidget(widget)
        status.addPermanentWidget(self.status_progress)
        status.addPermanentWidget(self.cancel_button)

    def _build_actions(self) -> None:
        style = self.style()
        toolbar = QToolBar("Main")
        toolbar.setIconSize(QSize(20, 20))
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        toolbar.setObjectName("main-toolbar")
        self.addToolBar(toolbar)
        menu_file = self.menuBar().addMenu("&File")
        menu_tools = self.menuBar().addMenu("&Tools")
        menu_help = self.menuBar().addMenu("&Help")

        def action(
            text: str,
            slot: Any,
            icon: QStyle.StandardPixmap | None = None,
            shortcut: Any = None,
            menu: Any = menu_file,
            bar: bool = True,
        ) -> QAction:
            act = QAction(style.standardIcon(icon) if icon is not None else QIcon(), text, self)
            if shortcut is not None:
                act.setShortcut(QKeySequence(shortcut))
            act.triggered.connect(slot)
            menu.addAction(act)
            if bar:
                toolbar.addAction(act)
            return act

        SP = QStyle.StandardPixmap
        self.act_open_files = action(
            "Open images…", self.open_files_dialog, SP.SP_FileIcon, QKeySequence.StandardKey.Open
        )
        self.act_open_folder = action(
            "Open folder…", self.open_folder_dialog, SP.SP_DirIcon, "Ctrl+Shift+O"
        )
        self.act_open_bin = action(
            "Open IFCB bin…", self.open_bin_dialog, SP.SP_DriveHDIcon, "Ctrl+B"
        )
        toolbar.addSeparator()
        self.act_camera = action("Live camera", self.toggle_camera, SP.SP_MediaPlay, "Ctrl+L")
        self.act_camera.setCheckable(True)
        self.act_cancel = action("Stop", self.cancel_jobs, SP.SP_MediaStop, "Esc")
        self.act_clear = action(
            "New sample", self.new_sample, SP.SP_FileDialogNewFolder, QKeySequence.StandardKey.New
        )
        menu_file.addSeparator()
        self.act_export = action(
            "Export corrections…", self.export_corrections, None, None, menu_file, False
        )
        menu_file.addSeparator()
        action("Quit", self.close, None, QKeySequence.StandardKey.Quit, menu_file, False)
        toolbar.addSeparator()
        self.act_settings = action(
            "Settings…", self.open_settings, SP.SP_FileDialogDetailedView, "Ctrl+,", menu_tools
        )
        self.act_pause = action(
            "Pause charts",
            lambda checked: self.charts.pause_button.setChecked(checked),
            None,
            None,
            menu_tools,
            False,
        )
        self.act_pause.setCheckable(True)
        self.act_about = action(
            "About / doctor…", self.open_about, SP.SP_MessageBoxInformation, "F1", menu_help
        )

    # -- messages ------------------------------------------------------------------------

    def report_error(self, message: str) -> None:
        """A failure the user must see: status bar, message list, log; never a traceback."""
        self._message(message, error=True)

    def _message(self, message: str, error: bool = False) -> None:
        stamp = datetime.now().strftime("%H:%M:%S")
        self.messages.append(message)
        item = QListWidgetItem(f"{stamp}  {message}")
        if error:
            item.setForeground(Qt.GlobalColor.darkRed)
            log.warning("%s", message)
        else:
            log.info("%s", message)
        self.log_list.addItem(item)
        self.log_list.scrollToBottom()
        self.statusBar().showMessage(message, 15000 if error else 6000)

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
        self.banner.hide()
        self.colours.set_classes(info.classes)
        self.gallery.set_classes(info.classes)
        self.status_backend.setText(f"backend: {info.backend} {info.precision}")
        self.status_model.setText(f"model: {info.model}")
        self.status_model.setToolTip(
            f"sha256 {info.model_sha256}\nclasses: {', '.join(info.classes)}"
        )
        self._message(f"model {info.model} loaded with {info.backend} in {info.load_seconds:.1f} s")
        self._force_refresh()
        self.backend_ready.emit(info)

    def _on_no_model(self, reason: str) -> None:
        if reason == LOAD_CANCELLED and not self._backend_request.cancel.is_set():
            return  # an older request, replaced by the one now loading
        self.backend_info = None
        self.no_model_reason = reason
        self._loaded()
        self.status_backend.setText("backend: —")
        self.status_model.setText("model: no model installed")
        self.banner.setText(
            "<b>No model installed</b> — images can be opened once a model is available. "
            f"{reason}<br>Choose a model folder in <i>Tools → Settings</i>, or train one with "
            "<code>phytoscope train</code>."
        )
        self.banner.show()
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
        except Exception as exc:  # noqa: BLE001 - alerts off, the rest works
            self.rule_set = None
            self.report_error(
                f"HAB rule set {self.settings.rule_set!r} cannot be used: {describe_error(exc)}"
            )
            self.alert_panel.show_message(
                "HAB alerts are off: no usable rule set (Tools → Settings)"
            )

    # -- opening inputs ------------------------------------------------------------------

    def open_files_dialog(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(
            self,
            "Open images",
            "",
            "Images and IFCB files (*.png *.jpg *.jpeg *.bmp *.tif *.tiff *.roi *.adc *.hdr);;All files (*)",
        )
        if files:
            self.open_paths(files)

    def open_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a folder of images or IFCB bins")
        if folder:
            self.open_paths([folder])

    def open_bin_dialog(self) -> None:
        file, _ = QFileDialog.getOpenFileName(
            self, "Open an IFCB bin", "", "IFCB bins (*.roi *.adc *.hdr)"
        )
        if file:
            self.open_paths([file])

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        paths = [
            u.toLocalFile()
            for u in event.mimeData().urls()
            if isinstance(u, QUrl) and u.isLocalFile()
        ]
        if paths:
            event.acceptProposedAction()
            self.open_paths(paths)

    def open_paths(self, paths: list[str] | tuple[str, ...]) -> int | None:
        """Queue files/folders/bins for analysis; returns the job id (None if refused)."""
        missing = [p for p in paths if not Path(p).exists()]
        for p in missing:
            self.report_error(f"{p} does not exist")
        paths = [str(p) for p in paths if Path(p).exists()]
        if not paths:
            return None
        if self.backend_info is None and self.no_model_reason is not None:
            self.report_error("cannot analyse: no model installed (see the yellow banner)")
            return None
        self._job_counter += 1
        job = FilesJob(self._job_counter, tuple(paths))
        self._jobs[job.job_id] = job
        self._message(f"analysing {', '.join(Path(p).name for p in paths)}")
        self._show_busy(True)
        self.bridge.submit.emit(job)
        return job.job_id

    # -- camera --------------------------------------------------------------------------

    def toggle_camera(self, checked: bool) -> None:
        if checked:
            self.start_camera()
        else:
            self.stop_camera()

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
        for (source, frame), scale in zip(batch.frames, batch.frame_scales, strict=True):
            self._frames[source] = (frame, scale)
            self._frames.move_to_end(source)
            while len(self._frames) > FRAME_CACHE:
                self._frames.popitem(last=False)
        records = self.session.add(batch.predictions, batch.thumbnails, batch.origins, batch.whole)
        for r in records:
            self._by_frame.setdefault(_key(r), []).append(r)
        for s in batch.skipped:
            self.session.skipped.append((s.source, s.reason))
            self._message(f"skipped {s.source}: {s.reason}", error=True)
        if batch.store_error and not getattr(self, "_store_error_shown", False):
            self._store_error_shown = True
            self.report_error(
                batch.store_error + " — the results stay in this window; free disk space"
            )
        if batch.bins:
            self.session.bins.update(dict(batch.bins))
            self.sample_panel.set_bins(self.session.bins)
        self.charts.add_classified(len(batch.predictions))
        if records:
            latest = records[-1]
            key = _key(latest)
            if key != self.image_view.source:
                self.show_record(latest)
            else:  # more organisms of the frame on show
                for r in records:
                    if _key(r) == key:
                        self.image_view.add_prediction(r.prediction)

    def show_record(self, record: Record) -> None:
        """Show the image an organism is on (its frame, or itself) with its boxes."""
        key = _key(record)
        if key in self._frames:
            frame, scale = self._frames[key]
            predictions = [r.prediction for r in self._by_frame.get(key, ())[-500:]]
            self.image_view.show_image(key, frame, scale, predictions)
        elif record.thumbnail is not None:
            self.image_view.show_image(
                key, record.thumbnail, 1.0, [replace(record.prediction, box=None)]
            )

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
        if not self._jobs and not self._loading:
            self._show_busy(False)
        if result.error and result.predictions == 0 and not result.cancelled:
            self._message(f"analysis stopped: {result.error}", error=True)
        else:
            what = "cancelled after" if result.cancelled else "done:"
            self._message(
                f"{what} {result.predictions} organisms classified in {result.seconds:.1f} s"
                + (f", {result.skipped} inputs skipped" if result.skipped else "")
            )
        self._force_refresh()
        if result.predictions and not self._closing:
            self.record_sample(manual=False)
        self.analysis_finished.emit(result)

    def _show_busy(self, busy: bool) -> None:
        self.status_progress.setVisible(busy)
        self.cancel_button.setVisible(busy)

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
        self._frames.clear()
        self._by_frame.clear()
        self._stored_alerts = {}
        self._last_sample_id = None
        self.image_view.clear()
        self.sample_panel.set_bins({})
        self._force_refresh()

    # -- panels --------------------------------------------------------------------------

    def _force_refresh(self) -> None:
        self._shown_version = -1
        self.refresh_panels()

    def refresh_panels(self) -> None:
        """Counts, concentrations, alerts and gallery: redrawn at most 4 times a second."""
        if self.session.version == self._shown_version:
            return
        self._shown_version = self.session.version
        self.predictions_model.sync()
        if self.predictions_table.follow and len(self.session):
            self.predictions_table.scrollToBottom()
        if self.gallery.isVisible():  # thumbnails are built only for a gallery on show
            self.gallery.refresh()
        card = self.backend_info.card if self.backend_info else None
        volume = self.sample_panel.safe_volume()
        bins_only = self._bins_only(volume)
        counts = dict(self.session.bin_counts() if bins_only else self.session.counts)
        concentrations: list[Any] = []
        if card is not None and volume is not None:
            from phytoscope.core.sample import concentrations as concentrations_of

            concentrations = concentrations_of(counts, volume, card)
        self.sample_panel.show_counts(counts, concentrations)
        if bins_only:
            others = len(self.session) - sum(counts.values())
            self.sample_panel.total.setText(
                f"{sum(counts.values())} organisms from IFCB bins counted; {others} from other images are "
                "listed but not in cells/L (their volume is unknown: analyse them as a separate sample)"
            )
        if self.rule_set is None or card is None:
            return
        if volume is None:
            self.alert_panel.show_message(
                "HAB alerts: give the volume analysed (Sample panel) to compare with thresholds"
            )
            return
        from phytoscope.core import hab
        from phytoscope.core.sample import evidence_by_label

        result = hab.assess(counts, volume, card, self.rule_set)
        evidence = evidence_by_label(
            self.session.effective_predictions(bins_only), per_label=AlertPanel.EVIDENCE
        )
        self.alert_panel.show_result(result, self._stored_alerts, self._thumbnail_of, evidence)

    def _bins_only(self, volume: Any) -> bool:
        """An IFCB volume covers only the organisms of its bins, never other images."""
        return volume is not None and volume.method == "ifcb" and self.session.mixed

    def _thumbnail_of(self, key: tuple[str, int]) -> np.ndarray | None:
        record = self.session.by_key.get(key)
        return record.thumbnail if record else None

    # -- store (GUI-thread connection: a few small writes per user action) ----------------

    def store(self) -> Any:
        if self._store is None:
            from phytoscope.storage import Store

            self._store = Store(self.database)
        return self._store

    def record_sample(self, manual: bool) -> int | None:
        """Persist the sample, its counts and its alerts; alerts become acknowledgeable."""
        card = self.backend_info.card if self.backend_info else None
        if card is None or self.rule_set is None or not len(self.session):
            return None
        volume = self.sample_panel.safe_volume()
        if volume is None:
            if manual:
                self.report_error("the sample is not saved: give the volume analysed first")
            else:
                self._message(
                    "sample not saved yet: give the volume analysed, then click 'Save sample'"
                )
            return None
        from phytoscope.core import hab
        from phytoscope.types import Sample

        kind = (
            "ifcb"
            if volume.method == "ifcb"
            else (
                "camera"
                if any(s.startswith("camera:") for s in self.session.sources[:1])
                else "files"
            )
        )
        sample = Sample(
            kind=kind,
            sources=tuple(self.session.sources[:1000]),
            volume=volume,
            site=self.sample_panel.site.text().strip(),
            sampled_at=self.sample_panel.sampled_at_iso(),
            run_id=self.session.run_ids[-1] if self.session.run_ids else None,
            model=card.label,
            rule_set=self.rule_set.name,
            notes=f"{sum(1 for r in self.session.records if r.corrected)} corrections",
        )
        try:
            predictions = self.session.effective_predictions(self._bins_only(volume))
            if self._bins_only(volume):
                sample = replace(
                    sample, sources=tuple(sorted({p.source for p in predictions}))[:1000]
                )
            result = hab.record_sample(self.store(), sample, predictions, card, self.rule_set)
        except PhytoscopeError as exc:
            self.report_error(
                f"the sample could not be saved: {exc} — the results stay in this window"
            )
            return None
        self._last_sample_id = result.sample.id
        self._stored_alerts = {a.taxon: a for a in result.alerts}
        self._message(f"sample {result.sample.id} saved with {len(result.alerts)} alert(s)")
        self._force_refresh()
        return result.sample.id

    def acknowledge(self, alert: Alert) -> None:
        who = self.sample_panel.technician.text().strip()
        if not who:
            self.report_error(
                "type your name in the Sample panel (Technician) to acknowledge an alert"
            )
            return
        try:
            stored = self.store().acknowledge(alert.id, who)
        except PhytoscopeError as exc:
            self.report_error(f"acknowledgement not stored: {exc}")
            return
        self._stored_alerts[alert.taxon] = stored
        self._message(f"{alert.taxon} alert acknowledged by {who}")
        self._force_refresh()

    def correct(self, records: list[Record], label: str) -> None:
        from phytoscope.storage.corrections import Correction, add_correction

        card = self.backend_info.model if self.backend_info else ""
        saved = 0
        for record in records:
            if record.label == label:
                continue
            p = record.prediction
            try:
                add_correction(
                    self.store(),
                    Correction(
                        p.source,
                        p.roi_index,
                        p.label,
                        p.confidence,
                        label,
                        card,
                        self.session.run_ids[-1] if self.session.run_ids else None,
                        self.sample_panel.technician.text().strip(),
                    ),
                    record.thumbnail,
                )
            except PhytoscopeError as exc:
                self.report_error(f"correction not stored: {exc}")
                break
            self.session.correct(record, label)
            self.predictions_model.refresh_row(record.number - 1)
            saved += 1
        if saved:
            self._message(
                f"{saved} organism(s) relabelled as {label}; counts and alerts updated "
                "(click 'Save sample' to record the corrected sample)"
            )
        self._force_refresh()

    def export_corrections(self, folder: str | None = None) -> dict[str, int] | None:
        from phytoscope.storage.corrections import export_training_folder

        if not folder:
            folder = QFileDialog.getExistingDirectory(
                self, "Export corrections as a training folder"
            )
            if not folder:
                return None
        try:
            written = export_training_folder(self.store(), Path(folder))
        except PhytoscopeError as exc:
            self.report_error(str(exc))
            return None
        total = sum(written.values())
        self._message(
            f"exported {total} corrected organism(s) into {len(written)} class folder(s) in {folder}"
        )
        return written

    # -- telemetry -----------------------------------------------------------------------

    def _on_sample(self, sample: Any) -> None:
        self.charts.add_sample(sample)

    # -- dialogs -------------------------------------------------------------------------

    def open_settings(self) -> None:
        from phytoscope.gui.dialogs import SettingsDialog

        try:
            from phytoscope.core import hab

            rule_sets = hab.available_rule_sets()
        except Exception as exc:  # noqa: BLE001
            rule_sets = [self.settings.rule_set]
            self.report_error(f"cannot list rule sets: {describe_error(exc)}")
        dialog = SettingsDialog(
            self.settings, rule_sets, self.backend_info.card if self.backend_info else None, self
        )
        if dialog.exec() and dialog.result_settings is not None:
            self.apply_settings(dialog.result_settings)

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
            self._stored_alerts = {}
            self._load_rule_set()
        if old.telemetry_hz != new.telemetry_hz:
            self.bridge.start_telemetry.emit(float(new.telemetry_hz))
        self._force_refresh()

    def open_about(self) -> None:
        from phytoscope.core.diagnostics import collect
        from phytoscope.gui.dialogs import AboutDialog

        self.statusBar().showMessage("collecting versions, backends and sensors…")

        def show(info: dict[str, Any]) -> None:
            if not self._closing:
                self.about_dialog = AboutDialog(info, self)
                self.about_dialog.show()

        self._calls = [c for c in self._calls if c.running]
        # `phytoscope info` imports every runtime: not on the GUI thread
        call = Task(lambda progress: collect(), what="phytoscope info", name="phytoscope-info")
        call.result.connect(show)
        call.failed.connect(self.report_error)
        self._calls.append(call.start())

    # -- shutdown ------------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop every job and join every thread; safe to call twice."""
        if self._closing:
            return
        self._closing = True
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
