"""Messages a technician cannot miss: a log with a counter on its tab, and a banner that
stays for anything that changes the numbers.

Issue #17 found errors only in a Messages tab without a counter, long lines cut off, and a
status-bar warning (a truncated bin) replaced within milliseconds. Here every message is
wrapped and kept; the tab says how many arrived unseen (in red when one is an error); and
what changes the counts or concentrations (inputs skipped, a truncated bin, a partial
sample) also goes on a banner above the analysis that stays until it is dismissed.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from datetime import datetime

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTabWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

log = logging.getLogger(__name__)

MAX_LINES = 5000
"""Messages kept on screen (the log file keeps them all)."""
ERROR_RED = "#a61e1e"


class MessageLog(QTextBrowser):
    """Time-stamped messages, wrapped to the width, errors in red; counts unseen ones."""

    unseen_changed = Signal(int, bool)  # messages since last seen, any of them an error

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setOpenLinks(False)
        self.setLineWrapMode(QTextBrowser.LineWrapMode.WidgetWidth)
        self.document().setMaximumBlockCount(MAX_LINES)
        self.messages: list[tuple[str, bool]] = []
        self.unseen = 0
        self.unseen_error = False

    def add(self, text: str, error: bool = False, stamp: datetime | None = None) -> None:
        """Append a message; it counts as unseen until :meth:`mark_seen`."""
        when = (stamp or datetime.now()).strftime("%H:%M:%S")
        self.messages.append((text, error))
        body = html.escape(text)
        if error:
            body = f"<span style='color:{ERROR_RED}'><b>{body}</b></span>"
        self.append(f"<span style='color:#495057'>{when}</span>&nbsp; {body}")
        self.unseen += 1
        self.unseen_error = self.unseen_error or error
        self.unseen_changed.emit(self.unseen, self.unseen_error)

    def mark_seen(self) -> None:
        if self.unseen or self.unseen_error:
            self.unseen, self.unseen_error = 0, False
            self.unseen_changed.emit(0, False)


class TabBadge:
    """Keeps a tab's title as "Messages (3)" while messages are unseen, red for errors,
    and marks them seen when the tab is opened."""

    def __init__(self, tabs: QTabWidget, log_widget: MessageLog, title: str = "Messages"):
        self.tabs, self.log, self.title = tabs, log_widget, title
        log_widget.unseen_changed.connect(self._update)
        tabs.currentChanged.connect(lambda _i: self._seen_if_open())
        self._update(log_widget.unseen, log_widget.unseen_error)

    def _index(self) -> int:
        return self.tabs.indexOf(self.log)

    def _seen_if_open(self) -> None:
        if self.tabs.currentWidget() is self.log:
            self.log.mark_seen()

    def _update(self, unseen: int, error: bool) -> None:
        index = self._index()
        if index < 0:
            return
        if unseen and self.tabs.currentWidget() is self.log and self.log.isVisible():
            self.log.mark_seen()  # read as they arrive
            return
        self.tabs.setTabText(index, f"{self.title} ({unseen})" if unseen else self.title)
        bar = self.tabs.tabBar()
        bar.setTabTextColor(index, QColor(ERROR_RED) if error else bar.palette().text().color())

    @property
    def text(self) -> str:
        return self.tabs.tabText(self._index())


@dataclass
class Notice:
    key: str
    text: str
    level: str
    dismissable: bool


LEVEL_STYLES = {
    # background, border, text: all pairs above 7:1
    "warning": ("#fff3bf", "#f08c00", "#3d2c00"),
    "error": ("#ffe3e3", "#c92a2a", "#5c0a0a"),
    "info": ("#e7f5ff", "#1c7ed6", "#0b2e4f"),
}


class _NoticeRow(QFrame):
    def __init__(self, banner: Banner, notice: Notice):
        super().__init__()
        background, border, text = LEVEL_STYLES.get(notice.level, LEVEL_STYLES["warning"])
        self.setObjectName("notice")
        self.setStyleSheet(
            f"#notice {{ background:{background}; border:1px solid {border}; border-radius:3px }}"
        )
        self.label = QLabel(notice.text)
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.TextFormat.RichText)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        self.label.setStyleSheet(f"color:{text}; background:transparent")
        self.dismiss = QPushButton("Dismiss")
        self.dismiss.setToolTip("Hide this notice (it stays in the Messages tab)")
        self.dismiss.setVisible(notice.dismissable)
        self.dismiss.clicked.connect(lambda: banner.dismiss(notice.key))
        row = QHBoxLayout(self)
        row.setContentsMargins(8, 4, 4, 4)
        row.addWidget(self.label, 1)
        row.addWidget(self.dismiss, 0, Qt.AlignmentFlag.AlignTop)


class Banner(QWidget):
    """Notices above the analysis that stay until dismissed (or, for a state such as
    "no model", until the window removes them)."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.notices: dict[str, Notice] = {}
        self.rows: dict[str, _NoticeRow] = {}
        self._said: dict[str, str] = {}
        self.box = QVBoxLayout(self)
        self.box.setContentsMargins(0, 0, 0, 4)
        self.box.setSpacing(3)
        self.setVisible(False)

    def post(self, key: str, text: str, level: str = "warning", dismissable: bool = True) -> None:
        """Show (or update) the notice ``key``; ``text`` may hold simple HTML."""
        notice = Notice(key, text, level, dismissable)
        old = self.rows.pop(key, None)
        row = _NoticeRow(self, notice)
        if old is not None:
            self.box.replaceWidget(old, row)
            old.setParent(None)
            old.deleteLater()
        else:
            self.box.addWidget(row)
        self.notices[key], self.rows[key] = notice, row
        self.setVisible(True)
        self.changed.emit()

    def post_once(self, key: str, text: str, level: str = "warning") -> None:
        """Post ``text`` unless it is what ``key`` last said (shown or dismissed): a notice
        the user dismissed comes back only when it has something new; "" removes it."""
        if not text:
            self.dismiss(key)
        elif self._said.get(key) != text:
            self.post(key, text, level)
        self._said[key] = text

    def forget(self) -> None:
        """Remove every dismissable notice and what they said (a new sample)."""
        for key, notice in list(self.notices.items()):
            if notice.dismissable:
                self.dismiss(key)
        self._said.clear()

    def dismiss(self, key: str) -> None:
        """Remove a notice (the button, or the window when its cause is gone)."""
        row = self.rows.pop(key, None)
        self.notices.pop(key, None)
        if row is not None:
            self.box.removeWidget(row)
            row.setParent(None)
            row.deleteLater()
        self.setVisible(bool(self.notices))
        self.changed.emit()

    def text(self) -> str:
        """All notices as plain text (tests, the status bar, copy)."""
        return "\n".join(self.rows[k].label.text() for k in self.notices)


# -- the words of common notices ---------------------------------------------------------


def no_model_text(reason: str) -> str:
    """The no-model banner in a technician's words: what is missing, what to do; the
    developer's reason last, for whoever installs the model."""
    if "cancel" in reason.lower():
        return (
            "<b>No model loaded</b>: loading it was cancelled, so images cannot be analysed "
            "yet. <b>To load it</b>: <i>Tools → Settings → Save</i>."
        )
    return (
        "<b>No model installed</b>: phytoscope needs its identification model to analyse "
        "images, and none was found. <b>What to do</b>: reinstall phytoscope (the .deb "
        "and the Python package bring the model), or ask whoever set up this computer "
        "for the model folder and choose it in <i>Tools → Settings → Model folder</i>."
        f"<br><span style='font-size:8pt'>For the person who installs it: "
        f"{html.escape(reason)}</span>"
    )


def skipped_text(skipped: list[tuple[str, str]], shown: int = 3) -> str:
    """``"3 inputs skipped — not in the counts: a.png (unreadable), …"``."""
    n = len(skipped)
    names = ", ".join(
        f"{html.escape(source.rsplit('/', 1)[-1])} ({html.escape(reason)})"
        for source, reason in skipped[:shown]
    )
    more = f" and {n - shown} more (see Messages)" if n > shown else ""
    noun = "input" if n == 1 else "inputs"
    return f"<b>{n} {noun} skipped — not in the counts or concentrations</b>: {names}{more}."


CHANGES_NUMBERS = ("counted once", "left out", "PARTIAL")
"""Words of the core session's notices and warnings that mean the counts are not simply
every organism opened: a copy counted once, a bin left out, a partial (truncated) bin.
Pooling choices and mixed inputs stay in the sample panel only."""


def inputs_text(lines: list[str]) -> str:
    """What the inputs did to the numbers (copies counted once, bins left out or partial),
    as one notice; "" when there is nothing to say."""
    lines = [line for line in lines if any(word in line for word in CHANGES_NUMBERS)]
    if not lines:
        return ""
    items = "".join(f"<li>{html.escape(line)}</li>" for line in dict.fromkeys(lines))
    return f"<b>Check before using the numbers</b>:<ul style='margin:0'>{items}</ul>"
