"""The review-first gallery: what needs a human eye comes first, nothing is hidden.

CellProfiler Analyst's "fetch uncertain" and FlowCam VisualSpreadsheet's galleries are the
models: organisms the model could not identify ("unknown": unlike every trained class
first, then too uncertain), then the least confident, and organisms already corrected
last; every organism is reachable through pages ("page 3 of 12") instead of a silent cap;
one key labels one organism (1-9 for the first classes, 0 for "unknown", type a few letters
to pick any class and Enter to apply, arrows to move). Counts come from each record's
effective label (the correction, else the model's), the same source as the sample table.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PySide6.QtCore import (
    QAbstractListModel,
    QElapsedTimer,
    QEvent,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QRect,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor, QFont, QKeyEvent, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QListView,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
)

from phytoscope.gui.style import GenusColours, to_pixmap
from phytoscope.gui.wording import confidence_percent

UNKNOWN = "unknown"
ALL = "\x00all"
"""Group key of every organism (cannot clash with a class name)."""
PAGE_SIZE = 200
MIN_THUMB, MAX_THUMB, DEFAULT_THUMB = 64, 256, 112
MIN_CAPTION = 140
"""Pixels: the narrowest caption ("colonial cyanobacteria" at 85 % of the font fits)."""
TYPE_AHEAD_MS = 1200
"""Letters typed within this time build one class-name prefix."""


class RecordLike(Protocol):
    """What the gallery reads of a record (:class:`phytoscope.gui.session.Record`)."""

    number: int
    prediction: Any
    thumbnail: np.ndarray | None
    corrected: str | None

    @property
    def label(self) -> str: ...

    @property
    def key(self) -> tuple[str, int]: ...


class SessionLike(Protocol):
    """What the gallery reads of the session: its records and a change counter."""

    @property
    def records(self) -> Sequence[Any]: ...

    @property
    def version(self) -> int: ...


def review_rank(record: Any) -> tuple[float, ...]:
    """Sort key, most in need of review first.

    Organisms already corrected come last (a human has looked); then "unknown" because
    unlike every trained class ("novel", the most novel first), "unknown" because too
    uncertain, and identified organisms, least confident first.
    """
    p = record.prediction
    if record.corrected is not None:
        return (3.0, p.confidence, float(record.number))
    if record.label == UNKNOWN:
        if p.unknown_reason == "novel":
            return (0.0, -(p.novelty or 0.0), float(record.number))
        return (1.0, p.confidence, float(record.number))
    return (2.0, p.confidence, float(record.number))


def group_counts(records: Sequence[Any]) -> Counter[str]:
    """Organisms per effective label: the sample table counts the same way."""
    return Counter(r.label for r in records)


def caption(record: Any, thresholds: dict[str, float]) -> tuple[str, str]:
    """Two lines under a thumbnail: the label that counts, then why (confidence, reason)."""
    p = record.prediction
    top = p.top_k[0][0] if p.top_k else p.label
    confidence = confidence_percent(p.confidence, thresholds.get(top))
    if record.corrected is not None:
        return f"✔ {record.corrected}", f"was {p.label} {confidence}"
    if record.label == UNKNOWN:
        why = "unfamiliar" if p.unknown_reason == "novel" else "unsure"
        return f"unknown ({why})", f"maybe {top} {confidence}"
    return p.label, confidence


class ThumbModel(QAbstractListModel):
    """The records of one page; pixmaps are made when first drawn and kept for the page."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[Any] = []
        self.size = DEFAULT_THUMB
        self.thresholds: dict[str, float] = {}
        self._pixmaps: dict[tuple[str, int], QPixmap] = {}

    def set_page(self, records: list[Any]) -> None:
        self.beginResetModel()
        self.records = records
        self._pixmaps = {}
        self.endResetModel()

    def set_size(self, size: int) -> None:
        self.size = size
        self._pixmaps = {}
        self.layoutChanged.emit()

    def rowCount(  # noqa: N802 - Qt's name
        self,
        parent: QModelIndex | QPersistentModelIndex = QModelIndex(),  # noqa: B008
    ) -> int:
        return 0 if parent.isValid() else len(self.records)

    def pixmap(self, record: Any) -> QPixmap | None:
        if record.thumbnail is None:
            return None
        pixmap = self._pixmaps.get(record.key)
        if pixmap is None:
            pixmap = to_pixmap(record.thumbnail).scaled(
                self.size,
                self.size,
                Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.SmoothTransformation,
            )
            self._pixmaps[record.key] = pixmap
        return pixmap

    def data(
        self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if not index.isValid() or index.row() >= len(self.records):
            return None
        record = self.records[index.row()]
        if role == Qt.ItemDataRole.UserRole:
            return record
        if role == Qt.ItemDataRole.DisplayRole:
            return "\n".join(caption(record, self.thresholds))
        if role == Qt.ItemDataRole.ToolTipRole:
            p = record.prediction
            lines = [f"{Path(p.source).name}  ROI {p.roi_index}"]
            lines.append(", ".join(f"{n} {prob:.1%}" for n, prob in p.top_k))
            if record.label == UNKNOWN and p.unknown_reason == "novel":
                lines.append("unfamiliar: unlike every class the model was trained on")
            elif record.label == UNKNOWN:
                lines.append("unsure: below the confidence its best class needs")
            if p.novelty is not None:
                lines.append(f"novelty score {p.novelty:.3g}")
            if record.corrected:
                lines.append(f"corrected from {p.label}")
            return "\n".join(lines)
        return None


class ThumbDelegate(QStyledItemDelegate):
    """A thumbnail in a square of the chosen size and two caption lines below it, inside a
    fixed grid cell: captions never run into the next row."""

    def __init__(self, model: ThumbModel, colours: GenusColours, parent: QObject | None = None):
        super().__init__(parent)
        self.model = model
        self.colours = colours

    def cell(self, option: QStyleOptionViewItem | None = None) -> QSize:
        metrics = option.fontMetrics if option is not None else None
        line = metrics.height() if metrics is not None else 16
        side = self.model.size
        # wide enough for a long class name under a small thumbnail
        return QSize(max(side, MIN_CAPTION) + 12, side + 2 * line + 14)

    def sizeHint(  # noqa: N802 - Qt's name
        self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> QSize:
        return self.cell(option)

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        record = index.data(Qt.ItemDataRole.UserRole)
        if record is None:
            return
        rect: QRect = option.rect  # type: ignore[attr-defined]
        painter.save()
        selected = bool(option.state & QStyle.StateFlag.State_Selected)  # type: ignore[attr-defined]
        if selected:
            painter.fillRect(rect, option.palette.highlight())  # type: ignore[attr-defined]
        side = self.model.size
        square = QRect(rect.x() + (rect.width() - side) // 2, rect.y() + 4, side, side)
        pixmap = self.model.pixmap(record)
        if pixmap is None:
            painter.fillRect(square, QColor("#e9ecef"))
            painter.setPen(QColor("#495057"))
            painter.drawText(
                square.adjusted(4, 4, -4, -4),
                Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                "no picture kept (memory limit)",
            )
        else:
            x = square.x() + (side - pixmap.width()) // 2
            y = square.y() + (side - pixmap.height()) // 2
            painter.drawPixmap(x, y, pixmap)
        pen = QPen(QColor(self.colours.hex(record.label)), 3)
        painter.setPen(pen)
        painter.drawRect(square.adjusted(1, 1, -1, -1))
        metrics = option.fontMetrics  # type: ignore[attr-defined]
        line = metrics.height()
        text_colour = option.palette.highlightedText() if selected else option.palette.text()  # type: ignore[attr-defined]
        painter.setPen(text_colour.color())
        first, second = caption(record, self.model.thresholds)
        top = square.bottom() + 4
        for row, text in enumerate((first, second)):
            box = QRect(rect.x() + 4, top + row * line, rect.width() - 8, line)
            font = QFont(option.font)  # type: ignore[attr-defined]
            font.setBold(row == 0)
            painter.setFont(font)
            if painter.fontMetrics().horizontalAdvance(text) > box.width():
                font.setPointSizeF(font.pointSizeF() * 0.85)  # shrink a little before eliding
                painter.setFont(font)
            elided = painter.fontMetrics().elidedText(
                text, Qt.TextElideMode.ElideRight, box.width()
            )
            painter.drawText(
                box, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter, elided
            )
        painter.restore()


class KeyLabeller(QObject):
    """Keyboard labelling on the thumbnail view (an event filter, so arrows stay Qt's).

    ``1``-``9`` apply the first nine classes and ``0`` "unknown" at once; letters typed in
    quick succession pick the class whose name starts with them; Enter applies the picked
    class; Page Up/Down turn the page.
    """

    apply = Signal(str)
    picked = Signal(str)
    page = Signal(int)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.classes: list[str] = []
        self.target = ""
        self.typed = ""
        self._clock = QElapsedTimer()

    def pick(self, prefix: str) -> str | None:
        wanted = prefix.casefold()
        for name in self.classes:
            if name.casefold().startswith(wanted):
                return name
        return None

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if event.type() != QEvent.Type.KeyPress:
            return False
        key_event: QKeyEvent = event  # type: ignore[assignment]
        key = key_event.key()
        mods = key_event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
        if mods not in (Qt.KeyboardModifier.NoModifier, Qt.KeyboardModifier.ShiftModifier):
            return False  # Ctrl+A and friends stay the view's
        if Qt.Key.Key_1 <= key <= Qt.Key.Key_9:
            n = key - Qt.Key.Key_1
            if n < len(self.classes):
                self.apply.emit(self.classes[n])
            return True
        if key == Qt.Key.Key_0:
            self.apply.emit(UNKNOWN)
            return True
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            if self.target:
                self.apply.emit(self.target)
            return True
        if key in (Qt.Key.Key_PageDown, Qt.Key.Key_PageUp):
            self.page.emit(1 if key == Qt.Key.Key_PageDown else -1)
            return True
        text = key_event.text()
        if text and (text.isalpha() or text in " -_/"):
            if not self._clock.isValid() or self._clock.elapsed() > TYPE_AHEAD_MS:
                self.typed = ""
            self._clock.restart()
            match = self.pick(self.typed + text)
            if match is not None:
                self.typed += text
                self.target = match
                self.picked.emit(match)
            return True
        return False


def thumb_view(model: ThumbModel, delegate: ThumbDelegate) -> QListView:
    view = QListView()
    view.setModel(model)
    view.setItemDelegate(delegate)
    view.setViewMode(QListView.ViewMode.IconMode)
    view.setResizeMode(QListView.ResizeMode.Adjust)
    view.setMovement(QListView.Movement.Static)
    view.setUniformItemSizes(True)
    view.setSpacing(2)
    view.setWordWrap(False)
    view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
    view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    view.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
    view.setGridSize(delegate.cell())
    return view
