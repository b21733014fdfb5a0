"""The main window's layout: widgets, splitters, status bar, menus and toolbar.

Kept apart from :mod:`.main_window` (wiring) as Qt Designer keeps a form's layout apart
from its logic. :class:`WindowLayout` builds and names every widget; the window connects
them to the core session and the workers.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, QSize, Qt, QUrl
from PySide6.QtGui import (
    QAction,
    QDragEnterEvent,
    QDropEvent,
    QIcon,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QLabel,
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

from phytoscope.gui.alerts import AlertPanel
from phytoscope.gui.bench_page import BenchPage
from phytoscope.gui.charts import LiveCharts, charts_dock
from phytoscope.gui.flow import scrolled
from phytoscope.gui.imageview import ImageView
from phytoscope.gui.learn_dialog import open_learn_dialog
from phytoscope.gui.messages import Banner, MessageLog, TabBadge, no_model_text
from phytoscope.gui.predictions import Gallery, PredictionsModel, PredictionsTable
from phytoscope.gui.sample_panel import SamplePanel
from phytoscope.gui.session import Session
from phytoscope.gui.style import GenusColours
from phytoscope.gui.workers import describe_error

log = logging.getLogger("phytoscope.gui.main_window")

NO_MODEL = "no-model"
"""Banner key of the no-model notice (removed when a model loads)."""
GALLERY_SHARE = 0.6
"""Share of the left pane's height the gallery takes while it is open."""


class WindowLayout(QMainWindow):
    """The widgets of the main window (built by ``_build_ui`` and ``_build_actions``)."""

    colours: GenusColours
    session: Session
    window_settings: QSettings
    """the window's own layout and remembered names (not the analysis settings)"""
    splitters: dict[str, QSplitter]
    banner: Banner
    image_view: ImageView
    predictions_model: PredictionsModel
    predictions_table: PredictionsTable
    gallery: Gallery
    message_log: MessageLog
    messages_badge: TabBadge
    analysis_page: QWidget
    lower_tabs: QTabWidget
    sample_panel: SamplePanel
    save_sample_button: QPushButton
    alert_panel: AlertPanel
    charts: LiveCharts
    charts_dock: QDockWidget
    status_charts: QLabel
    bench_page: BenchPage
    tabs: QTabWidget
    status_backend: QLabel
    status_model: QLabel
    status_fps: QLabel
    status_dropped: QLabel
    status_progress: QProgressBar
    cancel_button: QPushButton
    samples_tab: Any
    samples_wiring: Any
    """the Samples tab and its wiring (:func:`.samples_tab.install_samples` adds them)"""

    def _build_ui(self, bench_overrides: dict[str, Any] | None, bench_out: Path | None) -> None:
        slots: Any = self  # the window's slots (defined by MainWindow)
        self.banner = Banner()

        self.image_view = ImageView(self.colours)
        self.predictions_model = PredictionsModel(self.session, self.colours)
        self.predictions_table = PredictionsTable(self.predictions_model)
        self.predictions_table.record_activated.connect(slots.show_record)
        self.gallery = Gallery(self.session, self.colours)
        self.gallery.correction_requested.connect(slots.correct)
        self.gallery.export_requested.connect(slots.export_corrections)
        self.gallery.record_activated.connect(slots.show_record)
        self.message_log = MessageLog()
        lower = QTabWidget()
        lower.addTab(self.predictions_table, "Predictions")
        lower.addTab(self.gallery, "Gallery (review and correct)")
        lower.addTab(self.message_log, "Messages")
        self.lower_tabs = lower
        self.messages_badge = TabBadge(lower, self.message_log)
        lower.currentChanged.connect(self._lower_tab_changed)
        self._sizes_before_gallery: list[int] | None = None
        left = self._splitter("left", Qt.Orientation.Vertical, self.image_view, lower)
        left.setSizes([520, 400])

        self.sample_panel = SamplePanel()
        self.sample_panel.review_unknown_requested.connect(slots.show_unknowns)
        self.save_sample_button = QPushButton("Save sample")
        self.save_sample_button.setToolTip(
            "Record the samples, their counts and alerts (a saved sample is updated in place)"
        )
        self.save_sample_button.clicked.connect(slots.save_sample)
        # the panel scrolls in a short window instead of raising the window's minimum height
        sample_scroll = scrolled(self.sample_panel)
        sample_box = QWidget()
        sample_layout = QVBoxLayout(sample_box)
        sample_layout.setContentsMargins(0, 0, 0, 0)
        sample_layout.addWidget(sample_scroll, 1)
        sample_layout.addWidget(self.save_sample_button)
        # its microscope-count entry is switched on once the Samples tab stores such counts
        self.alert_panel = AlertPanel(self.window_settings, manual_entry=False)
        self.alert_panel.review_unknown_requested.connect(slots.show_unknowns)
        right = self._splitter("right", Qt.Orientation.Vertical, self.alert_panel, sample_box)
        right.setSizes([540, 360])  # the alerts first: they are what a lab acts on

        analysis = self._splitter("analysis", Qt.Orientation.Horizontal, left, right)
        analysis.setSizes([860, 600])
        analysis_page = QWidget()
        page_layout = QVBoxLayout(analysis_page)
        page_layout.setContentsMargins(4, 4, 4, 4)
        page_layout.addWidget(self.banner)
        page_layout.addWidget(analysis, 1)
        self.analysis_page = analysis_page

        self.bench_page = BenchPage(overrides=bench_overrides, out_root=bench_out)
        self.tabs = QTabWidget()
        self.tabs.addTab(analysis_page, "Analysis")
        self.tabs.addTab(self.bench_page, "Benchmark")
        self.setCentralWidget(self.tabs)

        # live charts: a dock under the analysis, closed with one click, back with one
        self.charts = LiveCharts()
        self.charts_dock = charts_dock(self.charts, self)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.charts_dock)
        self.tabs.currentChanged.connect(self._charts_for_tab)
        self._charts_hidden_by_tab = False

        status = self.statusBar()
        self.status_backend = QLabel("backend: —")
        self.status_model = QLabel("model: loading…")
        self.status_fps = QLabel("— organisms/s")
        self.status_dropped = QLabel("dropped frames: —")
        self.status_charts = QLabel()
        self.status_charts.setToolTip("Latest power, memory and throughput (charts closed)")
        self.charts.summary_changed.connect(self.status_charts.setText)
        self.charts_dock.visibilityChanged.connect(
            lambda shown: self.status_charts.setVisible(not shown)
        )
        self.status_charts.hide()
        self.status_progress = QProgressBar()
        self.status_progress.setMaximumWidth(220)
        self.status_progress.setRange(0, 0)
        self.status_progress.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the analysis; organisms classified so far are kept")
        self.cancel_button.clicked.connect(slots.cancel_jobs)
        self.cancel_button.hide()
        for widget in (
            self.status_backend,
            self.status_model,
            self.status_fps,
            self.status_dropped,
            self.status_charts,
        ):
            status.addPermanentWidget(widget)
        status.addPermanentWidget(self.status_progress)
        status.addPermanentWidget(self.cancel_button)

    def _splitter(self, name: str, orientation: Qt.Orientation, *widgets: QWidget) -> QSplitter:
        """A splitter whose sizes the window remembers (QSettings, by ``name``)."""
        splitter = QSplitter(orientation)
        splitter.setObjectName(f"{name}-splitter")
        splitter.setChildrenCollapsible(False)
        for widget in widgets:
            splitter.addWidget(widget)
        self.splitters[name] = splitter
        return splitter

    def _lower_tab_changed(self, _index: int) -> None:
        """The gallery needs height to review: while it is open it gets at least 60 % of
        the left pane (on a laptop the image would leave it one row); the sizes chosen
        before come back when another tab is opened."""
        left = self.splitters["left"]
        sizes = left.sizes()
        if self.lower_tabs.currentWidget() is self.gallery:
            self.gallery.refresh()
            total = sum(sizes)
            if total and sizes[1] < GALLERY_SHARE * total:
                self._sizes_before_gallery = sizes
                lower = int(GALLERY_SHARE * total)
                left.setSizes([total - lower, lower])
        elif self._sizes_before_gallery is not None:
            left.setSizes(self._sizes_before_gallery)
            self._sizes_before_gallery = None

    def _charts_for_tab(self, index: int) -> None:
        """The charts dock belongs to the analysis: hidden on the benchmark page (which has
        its own charts) and back, if it was open, on return."""
        on_analysis = self.tabs.widget(index) is self.analysis_page
        if not on_analysis and self.charts_dock.isVisible():
            self._charts_hidden_by_tab = True
            self.charts_dock.hide()
        elif on_analysis and self._charts_hidden_by_tab:
            self._charts_hidden_by_tab = False
            self.charts_dock.show()

    def _build_actions(self) -> None:
        slots: Any = self
        style = self.style()
        toolbar = QToolBar("Main")
        toolbar.setIconSize(QSize(20, 20))
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        toolbar.setObjectName("main-toolbar")
        self.addToolBar(toolbar)
        menu_file = self.menuBar().addMenu("&File")
        menu_view = self.menuBar().addMenu("&View")
        menu_tools = self.menu_tools = self.menuBar().addMenu("&Tools")
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
            "Open images…", slots.open_files_dialog, SP.SP_FileIcon, QKeySequence.StandardKey.Open
        )
        self.act_open_folder = action(
            "Open folder…", slots.open_folder_dialog, SP.SP_DirIcon, "Ctrl+Shift+O"
        )
        self.act_open_bin = action(
            "Open IFCB bin…", slots.open_bin_dialog, SP.SP_DriveHDIcon, "Ctrl+B"
        )
        self.act_open_video = action(
            "Open video…", slots.open_video_dialog, SP.SP_MediaSeekForward, None, menu_file, False
        )
        toolbar.addSeparator()
        self.act_camera = action(
            "Live camera",
            lambda on: slots.start_camera() if on else slots.stop_camera(),
            SP.SP_MediaPlay,
            "Ctrl+L",
        )
        self.act_camera.setCheckable(True)
        self.act_cancel = action("Stop", slots.cancel_jobs, SP.SP_MediaStop, "Esc")
        self.act_clear = action(
            "New sample", slots.new_sample, SP.SP_FileDialogNewFolder, QKeySequence.StandardKey.New
        )
        menu_file.addSeparator()
        self.act_save = action(
            "Save sample", slots.save_sample, None, QKeySequence.StandardKey.Save, menu_file, False
        )
        self.act_report = action(
            "Export report…",
            lambda: slots.exports.report_dialog(),
            None,
            "Ctrl+R",
            menu_file,
            False,
        )
        self.act_report.setToolTip(
            "The sample on show as HTML, PDF or CSV (the files `phytoscope report` writes)"
        )
        self.act_ecotaxa = action(
            "Export to EcoTaxa…",
            lambda: slots.exports.ecotaxa_dialog(),
            None,
            None,
            menu_file,
            False,
        )
        self.act_ecotaxa.setToolTip("The organisms of the sample on show as an EcoTaxa import zip")
        self.act_export = action(
            "Export corrections…", slots.export_corrections, None, None, menu_file, False
        )
        menu_file.addSeparator()
        action("Quit", self.close, None, QKeySequence.StandardKey.Quit, menu_file, False)
        toolbar.addSeparator()
        self.act_settings = action(
            "Settings…", slots.open_settings, SP.SP_FileDialogDetailedView, "Ctrl+,", menu_tools
        )
        menu_view.addAction(self.charts_dock.toggleViewAction())
        self.act_pause = action(
            "Pause charts",
            lambda checked: self.charts.pause_button.setChecked(checked),
            None,
            None,
            menu_view,
            False,
        )
        self.act_pause.setCheckable(True)
        self.charts.pause_button.toggled.connect(self.act_pause.setChecked)
        # -- learning (issue 15): teach the model a lab's genera; the dialog does the rest
        self.act_learn = action(
            "Add genus / improve model…",
            lambda: open_learn_dialog(self),
            None,
            None,
            menu_tools,
            False,
        )
        self.act_about = action(
            "About / doctor…", slots.open_about, SP.SP_MessageBoxInformation, "F1", menu_help
        )

    # -- messages and status (what every slot of the window reports through) -------------

    messages: list[str]

    def report_error(self, message: str) -> None:
        """A failure the user must see: status bar, message list, log; never a traceback."""
        self._message(message, error=True)

    def _message(self, message: str, error: bool = False) -> None:
        self.messages.append(message)
        if error:
            log.warning("%s", message)
        else:
            log.info("%s", message)
        self.message_log.add(message, error)
        self.statusBar().showMessage(message, 15000 if error else 6000)

    def _show_busy(self, busy: bool) -> None:
        self.status_progress.setVisible(busy)
        self.cancel_button.setVisible(busy)

    def show_model(self, info: Any) -> None:
        """The loaded model in the status bar, its classes in the colours and the gallery."""
        self.banner.dismiss(NO_MODEL)
        self.colours.set_classes(info.classes)
        # confidences printed on the right side of their class's threshold (#17)
        card = info.card
        thresholds = {c.name: c.threshold for c in card.classes if c.threshold > 0} if card else {}
        self.predictions_model.thresholds = thresholds
        self.gallery.set_classes(info.classes, thresholds)
        self.status_backend.setText(f"backend: {info.backend} {info.precision}")
        self.status_model.setText(f"model: {info.model}")
        self.status_model.setToolTip(
            f"sha256 {info.model_sha256}\nclasses: {', '.join(info.classes)}"
        )

    def show_no_model(self, reason: str) -> None:
        self.status_backend.setText("backend: —")
        self.status_model.setText("model: no model installed")
        self.banner.post(NO_MODEL, no_model_text(reason), "error", dismissable=False)

    def show_unknowns(self) -> None:
        """The organisms the model could not identify, in the gallery (a click from the
        sample and alert panels)."""
        self.tabs.setCurrentWidget(self.analysis_page)
        self.lower_tabs.setCurrentWidget(self.gallery)
        self.gallery.show_group("unknown")

    def open_settings(self) -> None:
        from phytoscope.core import hab
        from phytoscope.gui.dialogs import SettingsDialog

        slots: Any = self
        try:
            rule_sets = hab.available_rule_sets()
        except Exception as exc:  # noqa: BLE001 - the one in use still shows
            rule_sets = [slots.settings.rule_set]
            self.report_error(f"cannot list rule sets: {describe_error(exc)}")
        info = slots.backend_info
        dialog = SettingsDialog(slots.settings, rule_sets, info.card if info else None, self)
        if dialog.exec() and dialog.result_settings is not None:
            slots.apply_settings(dialog.result_settings)

    # -- choosing inputs (files, folders, bins; drag and drop) --------------------------

    def open_files_dialog(self) -> None:
        slots: Any = self
        files, _ = QFileDialog.getOpenFileNames(
            self,
            "Open images",
            "",
            "Images and IFCB files (*.png *.jpg *.jpeg *.bmp *.tif *.tiff *.roi *.adc *.hdr);;All files (*)",
        )
        if files:
            slots.open_paths(files)

    def open_folder_dialog(self) -> None:
        slots: Any = self
        folder = QFileDialog.getExistingDirectory(self, "Open a folder of images or IFCB bins")
        if folder:
            slots.open_paths([folder])

    def open_bin_dialog(self) -> None:
        slots: Any = self
        file, _ = QFileDialog.getOpenFileName(
            self, "Open an IFCB bin", "", "IFCB bins (*.roi *.adc *.hdr)"
        )
        if file:
            slots.open_paths([file])

    def open_video_dialog(self) -> None:
        from phytoscope.gui.video_dialog import ask_video

        slots: Any = self
        chosen = ask_video(self)
        if chosen:
            slots.open_paths([chosen[0]], video=chosen[1])

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        slots: Any = self
        paths = [
            u.toLocalFile()
            for u in event.mimeData().urls()
            if isinstance(u, QUrl) and u.isLocalFile()
        ]
        if paths:
            event.acceptProposedAction()
            slots.open_paths(paths)
