"""GUI test fixtures: a real main window (offscreen), real ONNX Runtime backend, strict checks.

Every test here fails on a Qt warning (or worse) and on a Python thread left running after
it; the window fixture also checks that closing the window stopped every QThread.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest

pytest.importorskip("PySide6", reason="PySide6 not installed (pip install 'phytoscope[gui]')")
pytest.importorskip("pyqtgraph", reason="pyqtgraph not installed (pip install 'phytoscope[gui]')")

from tests.conftest import DATA, make_tiny_model  # noqa: E402

HAB_CLASSES = ("Pseudo-nitzschia", "Dinophysis", "Alexandrium", "detritus_other")
"""Class names the Scotland rule set monitors (plus one it does not), for a tiny model with
random weights: the alert checks drive labels through the gallery's corrections."""

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    """Every test here needs Qt: mark it ``gui`` (``-m "not gui"`` leaves them out)."""
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.gui)


QT_WARNING_ALLOWED = (
    # the offscreen platform cannot pass size hints to a window manager it does not have
    re.compile(r"This plugin does not support propagateSizeHints"),
)


@pytest.fixture(autouse=True)
def fail_on_qt_warnings():
    """Collect Qt's warning/critical/fatal messages during the test and fail on any."""
    from PySide6.QtCore import QtMsgType, qInstallMessageHandler

    seen: list[str] = []

    def handler(kind, context, message):  # called from any thread
        if kind in (QtMsgType.QtDebugMsg, QtMsgType.QtInfoMsg):
            return
        if any(p.search(message) for p in QT_WARNING_ALLOWED):
            return
        seen.append(f"{kind.name}: {message}")

    previous = qInstallMessageHandler(handler)
    yield seen
    qInstallMessageHandler(previous)
    assert not seen, "Qt warnings: " + "; ".join(seen)


@pytest.fixture(autouse=True, scope="module")
def gui_thread_garbage_collection(qapp):
    """As the application does (``gui.app.gui_thread_garbage_collection``): Python garbage
    is collected on the GUI thread only, so a worker thread never destroys a Qt widget.
    Automatic collection is switched back on after each module, for the Qt-free tests."""
    import gc

    from pyqtgraph.util.garbage_collector import GarbageCollector

    collector = GarbageCollector(interval=1.0)
    yield collector
    collector.timer.stop()
    gc.enable()
    gc.collect()


@pytest.fixture(autouse=True)
def no_leaked_threads():
    """Fail when a Python thread started during the test is still alive after it."""

    def alive() -> dict[int, str]:
        return {
            t.ident: t.name
            for t in threading.enumerate()
            if t.ident is not None and not isinstance(t, threading._DummyThread) and t.is_alive()
        }

    before = alive()
    yield
    leaked = {ident: name for ident, name in alive().items() if ident not in before}
    assert not leaked, f"threads left running: {sorted(leaked.values())}"


@pytest.fixture(scope="session")
def hab_model_dir(tmp_path_factory) -> Path:
    """The tiny ONNX model (random weights) with the HAB class names; no TensorFlow needed."""
    return make_tiny_model(tmp_path_factory.mktemp("hab_model"), classes=HAB_CLASSES, size=32)


@pytest.fixture
def artefacts(tmp_path) -> Path:
    """Where screenshots go: $PHYTOSCOPE_TEST_ARTEFACTS (CI uploads it) or tmp_path."""
    import os

    root = Path(os.environ.get("PHYTOSCOPE_TEST_ARTEFACTS") or tmp_path / "artefacts")
    root.mkdir(parents=True, exist_ok=True)
    return root


def open_window(qtbot, tmp_path: Path, model_dir: Path | None, **kwargs):
    from phytoscope.config import Settings
    from phytoscope.gui.main_window import MainWindow

    settings = Settings(
        model_dir=str(model_dir) if model_dir else str(tmp_path / "no-model"),
        rule_set="scotland_habreports",
        telemetry_hz=10.0,
        batch_size=4,
    )
    window = MainWindow(
        settings,
        settings_path=tmp_path / "settings.json",
        database=tmp_path / "results.sqlite",
        bench_out=tmp_path / "bench",
        **kwargs,
    )
    qtbot.addWidget(window)
    window.show()
    return window


def close_window(window) -> None:
    window.close()
    assert window.threads_running == []
    assert not window.inference_thread.thread.isRunning()
    assert not window.telemetry_thread.thread.isRunning()


@pytest.fixture
def window(qtbot, tmp_path, hab_model_dir):
    """The main window on the tiny HAB-class model, its backend loaded."""
    w = open_window(qtbot, tmp_path, hab_model_dir)
    qtbot.waitUntil(
        lambda: w.backend_info is not None or w.no_model_reason is not None, timeout=30000
    )
    assert w.backend_info is not None, w.no_model_reason
    yield w
    close_window(w)


def analyse(qtbot, window, paths, timeout=60000):
    """Open paths through the window and wait until the job finished; returns JobFinished."""
    with qtbot.waitSignal(window.analysis_finished, timeout=timeout) as blocker:
        job = window.open_paths([str(p) for p in paths])
        assert job is not None, window.messages
    return blocker.args[0]


__all__ = ["DATA", "HAB_CLASSES", "analyse", "close_window", "open_window"]
