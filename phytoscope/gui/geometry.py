"""The layout a user leaves: window size, the charts dock and the splitters, remembered
between sessions (QSettings), and a window that always fits the screen it opens on.

No fixed size (#17: a window opened at 1600×1000 did not fit a 1366×768 laptop): the first
time it takes most of the available screen; a size saved on a larger screen shrinks to this
one. Functions of the window (a :class:`.window_ui.WindowLayout`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings
from PySide6.QtGui import QGuiApplication

from phytoscope.config import config_dir

CHARTS_FIRST_MIN_HEIGHT = 900
"""Pixels: on a shorter screen the charts dock starts closed the first time (the status
bar shows their latest readings; *View → Power and memory charts* opens it)."""
FIRST_SIZE = (1600, 1000)
"""Pixels: the first size on a screen that has room for it (else the screen's size)."""


def layout_settings(settings_path: Path | None) -> QSettings:
    """Where the window keeps its layout and remembered names: beside the settings file
    it was given (tests keep theirs in a temporary folder), else the user's config."""
    folder = Path(settings_path).parent if settings_path else config_dir()
    return QSettings(str(folder / "window.ini"), QSettings.Format.IniFormat)


def restore_layout(window: Any) -> None:
    """Put back the size, dock and splitters of the last session, then make sure the
    window fits the screen it is on (a layout saved on a 4K screen opens on a laptop)."""
    saved = window.window_settings
    geometry = saved.value("window/geometry")
    if geometry is not None:
        window.restoreGeometry(geometry)
    state = saved.value("window/state")
    if state is not None:
        window.restoreState(state)
    for name, splitter in window.splitters.items():
        sizes = saved.value(f"window/splitter/{name}")
        if sizes is not None:
            splitter.restoreState(sizes)
    fit_to_screen(window, first=geometry is None)


def fit_to_screen(window: Any, first: bool = True) -> None:
    """No fixed size: the first time, most of the available screen; later, the saved
    size shrunk to the screen where it no longer fits."""
    screen = window.screen() or QGuiApplication.primaryScreen()
    if screen is None:
        return
    available = screen.availableGeometry()
    if first:
        width = min(available.width(), max(FIRST_SIZE[0], int(available.width() * 0.8)))
        height = min(available.height(), max(FIRST_SIZE[1], int(available.height() * 0.8)))
    else:
        width = min(window.width(), available.width())
        height = min(window.height(), available.height())
    window.resize(width, height)
    if not available.contains(window.frameGeometry()):
        window.move(available.topLeft())
    if first and available.height() < CHARTS_FIRST_MIN_HEIGHT:
        window.charts_dock.hide()


def save_layout(window: Any) -> None:
    """Remember the size, dock and splitters (called when the window closes)."""
    if window._sizes_before_gallery is not None:  # the user's sizes, not the gallery's
        window.splitters["left"].setSizes(window._sizes_before_gallery)
    if window._charts_hidden_by_tab:
        window.charts_dock.show()
    saved = window.window_settings
    saved.setValue("window/geometry", window.saveGeometry())
    saved.setValue("window/state", window.saveState())
    for name, splitter in window.splitters.items():
        saved.setValue(f"window/splitter/{name}", splitter.saveState())
    saved.sync()
