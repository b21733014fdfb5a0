"""The live list of predictions and the per-genus thumbnail gallery with label correction."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import QBrush, QColor, QIcon
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from phytoscope.gui.session import Record, Session
from phytoscope.gui.style import GenusColours, to_pixmap

COLUMNS = ("#", "Source", "ROI", "Genus", "Confidence", "Top 3", "Flags")


class PredictionsModel(QAbstractTableModel):
    """Rows are the session's records, appended in place as batches arrive."""

    def __init__(self, session: Session, colours: GenusColours):
        super().__init__()
        self.session = session
        self.colours = colours
        self._rows = 0

    def rowCount(  # noqa: N802
        self,
        parent: QModelIndex | QPersistentModelIndex = QModelIndex(),  # noqa: B008
    ) -> int:
        return 0 if parent.isValid() else self._rows

    def columnCount(  # noqa: N802
        self,
        parent: QModelIndex | QPersistentModelIndex = QModelIndex(),  # noqa: B008
    ) -> int:
        return len(COLUMNS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:  # noqa: N802
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section]
        return None

    def data(
        self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if not index.isValid():
            return None
        record = self.session.records[index.row()]
        p = record.prediction
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if column == 0:
                return record.number
            if column == 1:
                return Path(p.source).name if not p.source.startswith("camera:") else p.source
            if column == 2:
                return p.roi_index
            if column == 3:
                return (
                    f"{p.label} → {record.corrected} (corrected)" if record.corrected else p.label
                )
            if column == 4:
                return f"{p.confidence:.1%}"
            if column == 5:
                return ", ".join(f"{name} {prob:.0%}" for name, prob in p.top_k)
            if column == 6:
                return ", ".join(p.flags)
        if role == Qt.ItemDataRole.ToolTipRole and column == 1:
            return p.source
        if role == Qt.ItemDataRole.ForegroundRole and column == 3:
            return QBrush(QColor(self.colours.hex(record.label)))
        if role == Qt.ItemDataRole.BackgroundRole and column == 6 and p.flags:
            return QBrush(QColor("#fff3bf"))
        return None

    def sync(self) -> None:
        """Announce records appended since the last call (one insert per batch)."""
        n = len(self.session.records)
        if n < self._rows:
            self.beginResetModel()
            self._rows = n
            self.endResetModel()
        elif n > self._rows:
            self.beginInsertRows(QModelIndex(), self._rows, n - 1)
            self._rows = n
            self.endInsertRows()

    def refresh_row(self, row: int) -> None:
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(COLUMNS) - 1))


class PredictionsTable(QTableView):
    record_activated = Signal(object)

    def __init__(self, model: PredictionsModel, parent: QWidget | None = None):
        super().__init__(parent)
        self.setModel(model)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setAlternatingRowColors(True)
        self.verticalHeader().setVisible(False)
        self.verticalHeader().setDefaultSectionSize(22)
        header = self.horizontalHeader()
        header.setStretchLastSection(True)
        for column, width in enumerate((48, 170, 44, 170, 80, 260)):
            self.setColumnWidth(column, width)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.follow = True
        """scroll to the newest row as predictions arrive (off once the user scrolls up)"""
        self.clicked.connect(self._clicked)

    def _clicked(self, index: QModelIndex) -> None:
        model: PredictionsModel = self.model()  # type: ignore[assignment]
        self.record_activated.emit(model.session.records[index.row()])


class Gallery(QWidget):
    """Genera with counts on the left; their thumbnails on the right; relabel and export."""

    correction_requested = Signal(object, str)  # list[Record], new label
    export_requested = Signal()
    record_activated = Signal(object)

    MAX_SHOWN = 600
    """thumbnails shown per genus at once (the most confident first)"""

    def __init__(self, session: Session, colours: GenusColours, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.colours = colours
        self._shown_version = -1
        self._shown_label: str | None = None
        self.genera = QListWidget()
        self.genera.setMaximumWidth(230)
        self.genera.currentTextChanged.connect(lambda _text: self._show_selected(force=True))
        self.thumbs = QListWidget()
        self.thumbs.setViewMode(QListView.ViewMode.IconMode)
        self.thumbs.setIconSize(QSize(96, 96))
        self.thumbs.setResizeMode(QListView.ResizeMode.Adjust)
        self.thumbs.setMovement(QListView.Movement.Static)
        self.thumbs.setSpacing(4)
        self.thumbs.setUniformItemSizes(True)
        self.thumbs.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.thumbs.itemClicked.connect(
            lambda item: self.record_activated.emit(item.data(Qt.ItemDataRole.UserRole))
        )
        self.target = QComboBox()
        self.target.setToolTip("The correct genus for the selected thumbnails")
        self.relabel = QPushButton("Relabel selected")
        self.relabel.setToolTip("Store the correction; counts, concentrations and alerts update")
        self.relabel.clicked.connect(self._relabel)
        self.export = QPushButton("Export corrections…")
        self.export.setToolTip(
            "Write every correction as a training folder (one sub-folder per class)"
        )
        self.export.clicked.connect(self.export_requested)
        self.note = QLabel()
        self.note.setStyleSheet("color: #666")
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Correct to:"))
        bar.addWidget(self.target, 1)
        bar.addWidget(self.relabel)
        bar.addStretch(1)
        bar.addWidget(self.export)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(self.thumbs, 1)
        right_layout.addWidget(self.note)
        right_layout.addLayout(bar)
        split = QSplitter()
        split.addWidget(self.genera)
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(split)

    def set_classes(self, classes: tuple[str, ...]) -> None:
        self.target.blockSignals(True)
        self.target.clear()
        self.target.addItems([*classes, "unknown"])
        self.target.blockSignals(False)

    def refresh(self) -> None:
        """Update genus counts; rebuild the thumbnails only if the session changed."""
        if self.session.version == self._shown_version:
            return
        current = (
            self.genera.currentItem().data(Qt.ItemDataRole.UserRole)
            if self.genera.currentItem()
            else None
        )
        self.genera.blockSignals(True)
        self.genera.clear()
        for label in self.session.labels():
            item = QListWidgetItem(f"{label}  ({self.session.counts[label]})")
            item.setData(Qt.ItemDataRole.UserRole, label)
            item.setForeground(QBrush(QColor(self.colours.hex(label))))
            self.genera.addItem(item)
            if label == current:
                self.genera.setCurrentItem(item)
        if self.genera.currentItem() is None and self.genera.count():
            self.genera.setCurrentRow(0)
        self.genera.blockSignals(False)
        self._show_selected(force=False)
        self._shown_version = self.session.version

    def selected_label(self) -> str | None:
        item = self.genera.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item else None

    def _show_selected(self, force: bool) -> None:
        label = self.selected_label()
        if label is None:
            self.thumbs.clear()
            return
        records = sorted(self.session.records_for(label), key=lambda r: -r.prediction.confidence)
        # (record, thumbnail) pairs: only records that kept a thumbnail are shown
        shown = [(r, r.thumbnail) for r in records if r.thumbnail is not None][: self.MAX_SHOWN]
        keys = [r.key for r, _ in shown]
        current = [
            self.thumbs.item(i).data(Qt.ItemDataRole.UserRole).key
            for i in range(self.thumbs.count())
        ]
        if not force and label == self._shown_label and keys == current:
            return
        self._shown_label = label
        self.thumbs.clear()
        for r, thumbnail in shown:
            item = QListWidgetItem(QIcon(to_pixmap(thumbnail)), f"{r.prediction.confidence:.0%}")
            item.setData(Qt.ItemDataRole.UserRole, r)
            item.setToolTip(
                f"{Path(r.prediction.source).name} #{r.prediction.roi_index}\n"
                + ", ".join(f"{n} {p:.0%}" for n, p in r.prediction.top_k)
                + (f"\ncorrected from {r.prediction.label}" if r.corrected else "")
            )
            self.thumbs.addItem(item)
        hidden = len(records) - len(shown)
        self.note.setText(f"{hidden} more not shown (most confident first)" if hidden > 0 else "")

    def _relabel(self) -> None:
        records: list[Record] = [
            i.data(Qt.ItemDataRole.UserRole) for i in self.thumbs.selectedItems()
        ]
        label = self.target.currentText()
        if records and label:
            self.correction_requested.emit(records, label)
