"""Start the desktop application (called by ``phytoscope gui``)."""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SETTLE_MS = 1500
"""After the work is done, let charts and panels draw before a screenshot."""


def make_app(argv: list[str] | None = None) -> Any:
    import pyqtgraph as pg
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(argv or sys.argv[:1])
    app.setApplicationName("phytoscope")
    app.setOrganizationName("phytoscope")
    QGuiApplication.setDesktopFileName("phytoscope")  # static; names the .desktop file
    pg.setConfigOptions(antialias=True, background="w", foreground="#222")
    gui_thread_garbage_collection(app)
    return app


def gui_thread_garbage_collection(app: Any) -> None:
    """Collect Python garbage on the GUI thread only (pyqtgraph's ``GarbageCollector``).

    Python's cyclic collector runs in whichever thread happens to allocate; when it frees a
    Qt widget from a worker thread, Qt's destructor and the GUI thread can wait on each
    other for ever (seen here: a benchmark worker collecting a QMenu while the GUI thread
    painted a chart). With automatic collection off and a one-second timer collecting on
    the GUI thread, widgets are always destroyed where Qt expects them. Installed once per
    application; the collector is kept on the app so it lives as long as it does.
    """
    from pyqtgraph.util.garbage_collector import GarbageCollector

    if getattr(app, "_phytoscope_gc", None) is None:
        app._phytoscope_gc = GarbageCollector(interval=1.0)


class Driver:
    """``--open``, ``--screenshot``, ``--quit-after``, ``--run-benchmark`` for headless
    runs: the screenshot is taken once the opened inputs (and the benchmark) are done, or
    at ``--quit-after``, whichever comes first, and the window closes then. Without
    ``--screenshot``, ``--quit-after`` alone closes the window after that many seconds."""

    def __init__(
        self,
        window: Any,
        paths: list[str],
        screenshot: Path | None,
        quit_after: float | None,
        run_benchmark: bool,
    ):
        from PySide6.QtCore import QTimer

        self.window = window
        self.screenshot = screenshot
        self.quit_after = quit_after
        self.pending_paths = list(paths)
        self.waiting_analysis = bool(paths)
        self.waiting_bench = run_benchmark
        self.shot_taken = False
        self.exit_code = 0
        window.backend_ready.connect(self._on_backend)
        window.analysis_finished.connect(self._on_analysis)
        window.bench_page.finished.connect(self._on_bench)
        if run_benchmark:
            window.tabs.setCurrentWidget(window.bench_page)
            QTimer.singleShot(0, window.bench_page.start)
        if quit_after is not None:
            QTimer.singleShot(int(quit_after * 1000), self.finish)
        if not paths and not run_benchmark and screenshot is not None:
            QTimer.singleShot(SETTLE_MS, self._maybe_ready)

    def _on_backend(self, info: Any) -> None:
        if self.pending_paths:
            paths, self.pending_paths = self.pending_paths, []
            if info is None or self.window.open_paths(paths) is None:
                self.waiting_analysis = False
                self._maybe_ready()

    def _on_analysis(self, result: Any) -> None:
        if not self.window._jobs:
            self.waiting_analysis = False
            self._maybe_ready()

    def _on_bench(self, report: Any) -> None:
        self.waiting_bench = False
        self._maybe_ready()

    def _maybe_ready(self) -> None:
        from PySide6.QtCore import QTimer

        if self.waiting_analysis or self.waiting_bench or self.screenshot is None:
            return
        QTimer.singleShot(SETTLE_MS, self._ready)

    def _ready(self) -> None:
        self.finish()  # --quit-after is the longest the window stays open

    def take_screenshot(self) -> None:
        if self.screenshot is None or self.shot_taken:
            return
        self.shot_taken = True
        self.window.refresh_panels()
        self.window.charts.redraw()
        self.screenshot.parent.mkdir(parents=True, exist_ok=True)
        if not self.window.grab().save(str(self.screenshot)):
            log.error("could not write the screenshot %s", self.screenshot)
            self.exit_code = 1
        else:
            log.info("screenshot written to %s", self.screenshot)

    def finish(self) -> None:
        self.take_screenshot()
        self.window.close()


def run(
    paths: list[str],
    screenshot: Path | None = None,
    quit_after: float | None = None,
    run_benchmark: bool = False,
    tab: str | None = None,
    settings_path: Path | None = None,
) -> int:
    from PySide6.QtCore import QTimer

    from phytoscope.config import Settings
    from phytoscope.errors import ConfigError
    from phytoscope.gui.main_window import MainWindow, app_icon

    app = make_app()
    app.setWindowIcon(app_icon())
    try:
        settings = Settings.load(settings_path)
        settings_error = None
    except ConfigError as exc:
        settings, settings_error = Settings(), str(exc)
    window = MainWindow(settings, settings_path)
    if settings_error:
        window.report_error(f"{settings_error} (using defaults)")
    if tab == "benchmark":
        window.tabs.setCurrentWidget(window.bench_page)
    driver = Driver(window, paths, screenshot, quit_after, run_benchmark)
    window.show()
    # Ctrl+C in the terminal closes the window cleanly (threads joined) instead of killing it
    signal.signal(signal.SIGINT, lambda *_: window.close())
    keepalive = QTimer()
    keepalive.start(250)  # lets Python see the signal while Qt's loop runs
    keepalive.timeout.connect(lambda: None)
    code = app.exec()
    keepalive.stop()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    window.shutdown()
    window.deleteLater()
    return code or driver.exit_code
