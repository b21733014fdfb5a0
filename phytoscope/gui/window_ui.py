"""The main window's layout: widgets, splitters, status bar, menus and toolbar.

Kept apart from :mod:`.main_window` (wiring) as Qt Designer keeps a form's layout apart
from its logic. :class:`WindowLayout` builds and names every widget; the window connects
them to the core session and the workers.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSize, Qt, QUrl
from PySide6.QtGui import QAction, QDragEnterEvent, QDropEvent, QIcon, QKeySequence
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

from phytoscope.gui.bench_page import BenchPage
from phytoscope.gui.charts import LiveCharts
from phytoscope.gui.imageview import ImageView
from phytoscope.gui.learn_dialog import open_learn_dialog
from phytoscope.gui.panels import AlertPanel
from phytoscope.gui.predictions import Gallery, PredictionsModel, PredictionsTable
from phytoscope.gui.sample_panel import SamplePanel
from phytoscope.gui.session import Session
from phytoscope.gui.style import GenusColours

log = logging.getLogger("phytoscope.gui.main_window")


class WindowLayout(QMainWindow):
    """The widgets of the main window (built by ``_build_ui`` and ``_build_actions``)."""

    colours: GenusColours
    session: Session
    banner: QLabel
    image_view: ImageView
    predictions_model: PredictionsModel
    predictions_table: PredictionsTable
    gallery: Gallery
    log_list: QListWidget
    lower_tabs: QTabWidget
    sample_panel: SamplePanel
    save_sample_button: QPushButton
    alert_panel: AlertPanel
    charts: LiveCharts
    bench_page: BenchPage
    tabs: QTabWidget
    status_backend: QLabel
    status_model: QLabel
    status_fps: QLabel
    status_dropped: QLabel
    status_progress: QProgressBar
    cancel_button: QPushButton

    def _build_ui(self, bench_overrides: dict[str, Any] | None, bench_out: Path | None) -> None:
        slots: Any = self  # the window's slots (defined by MainWindow)
        self.banner = QLabel()
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet(
            "background:#fff3bf; color:#5c3c00; padding:6px; border:1px solid #f59f00"
        )
        self.banner.hide()

        self.image_view = ImageView(self.colours)
        self.predictions_model = PredictionsModel(self.session, self.colours)
        self.predictions_table = PredictionsTable(self.predictions_model)
        self.predictions_table.record_activated.connect(slots.show_record)
        self.gallery = Gallery(self.session, self.colours)
        self.gallery.correction_requested.connect(slots.correct)
        self.gallery.export_requested.connect(slots.export_corrections)
        self.gallery.record_activated.connect(slots.show_record)
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
        self.save_sample_button = QPushButton("Save sample")
        self.save_sample_button.setToolTip(
            "Record the samples, their counts and alerts (a saved sample is updated in place)"
        )
        self.save_sample_button.clicked.connect(slots.save_sample)
        sample_box = QWidget()
        sample_layout = QVBoxLayout(sample_box)
        sample_layout.setContentsMargins(0, 0, 0, 0)
        sample_layout.addWidget(self.sample_panel, 1)
        sample_layout.addWidget(self.save_sample_button)
        self.alert_panel = AlertPanel()
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
        self.cancel_button.clicked.connect(slots.cancel_jobs)
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
        slots: Any = self
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
        self.act_camera = action("Live camera", slots.toggle_camera, SP.SP_MediaPlay, "Ctrl+L")
        self.act_camera.setCheckable(True)
        self.act_cancel = action("Stop", slots.cancel_jobs, SP.SP_MediaStop, "Esc")
        self.act_clear = action(
            "New sample", slots.new_sample, SP.SP_FileDialogNewFolder, QKeySequence.StandardKey.New
        )
        menu_file.addSeparator()
        self.act_export = action(
            "Export corrections…", slots.export_corrections, None, None, menu_file, False
        )
        menu_file.addSeparator()
        action("Quit", self.close, None, QKeySequence.StandardKey.Quit, menu_file, False)
        toolbar.addSeparator()
        self.act_settings = action(
            "Settings…", slots.open_settings, SP.SP_FileDialogDetailedView, "Ctrl+,", menu_tools
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

    def _show_busy(self, busy: bool) -> None:
        self.status_progress.setVisible(busy)
        self.cancel_button.setVisible(busy)

    def show_model(self, info: Any) -> None:
        """The loaded model in the status bar, its classes in the colours and the gallery."""
        self.banner.hide()
        self.colours.set_classes(info.classes)
        self.gallery.set_classes(info.classes)
        self.status_backend.setText(f"backend: {info.backend} {info.precision}")
        self.status_model.setText(f"model: {info.model}")
        self.status_model.setToolTip(
            f"sha256 {info.model_sha256}\nclasses: {', '.join(info.classes)}"
        )

    def show_no_model(self, reason: str) -> None:
        self.status_backend.setText("backend: —")
        self.status_model.setText("model: no model installed")
        self.banner.setText(
            "<b>No model installed</b> — images can be opened once a model is available. "
            f"{reason}<br>Choose a model folder in <i>Tools → Settings</i>, or train one with "
            "<code>phytoscope train</code>."
        )
        self.banner.show()

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
