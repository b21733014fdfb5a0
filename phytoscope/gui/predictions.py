"""The live list of predictions and the review-first gallery with label correction."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QItemSelectionModel,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
    Signal,
)
from PySide6.QtGui import QBrush, QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSlider,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from phytoscope.gui.flow import FlowLayout
from phytoscope.gui.gallery import (
    ALL,
    DEFAULT_THUMB,
    MAX_THUMB,
    MIN_THUMB,
    PAGE_SIZE,
    UNKNOWN,
    KeyLabeller,
    SessionLike,
    ThumbDelegate,
    ThumbModel,
    group_counts,
    review_rank,
    thumb_view,
)
from phytoscope.gui.style import GenusColours
from phytoscope.gui.wording import confidence_percent

COLUMNS = ("#", "Source", "ROI", "Genus", "Confidence", "Top 3", "Flags")


class PredictionsModel(QAbstractTableModel):
    """Rows are the session's records, appended in place as batches arrive."""

    def __init__(self, session: SessionLike, colours: GenusColours):
        super().__init__()
        self.session = session
        self.colours = colours
        self._rows = 0
        self.thresholds: dict[str, float] = {}
        """class -> confidence threshold of the card: confidences are shown with the
        decimals that keep them on the right side of it"""

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
                top = p.top_k[0][0] if p.top_k else p.label
                return confidence_percent(p.confidence, self.thresholds.get(top))
            if column == 5:
                return ", ".join(f"{name} {prob:.0%}" for name, prob in p.top_k)
            if column == 6:
                return ", ".join(p.flags)
        if role == Qt.ItemDataRole.ToolTipRole and column == 1:
            return p.source
        if role == Qt.ItemDataRole.DecorationRole and column == 3:
            return swatch(self.colours.hex(record.label))  # colour text would be unreadable
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


def swatch(colour: str, size: int = 12) -> QIcon:
    pixmap = QPixmap(size, size)
    pixmap.fill(QColor(colour))
    return QIcon(pixmap)


class Gallery(QWidget):
    """Groups (all, unknown, each genus) on the left; their organisms, most in need of
    review first, page by page on the right; correct by keys or by *Apply*.

    Reads the session's ``records`` and ``version`` only (:class:`.gallery.SessionLike`);
    a correction is a request (:attr:`correction_requested`): the window stores it and
    updates the session, then the gallery redraws from it.
    """

    correction_requested = Signal(object, str)  # list[Record], new label
    export_requested = Signal()
    record_activated = Signal(object)

    PAGE_SIZE = PAGE_SIZE

    def __init__(self, session: SessionLike, colours: GenusColours, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.colours = colours
        self.page = 0
        self._shown_version = -1
        self._group: str = ALL
        self._records: list[Any] = []
        self.counted: Callable[[tuple[str, int]], bool] | None = None
        """Whether the sample counts an organism (the window's core session decides): a
        copy of a bin opened from a second place is listed apart, not in the groups, so the
        gallery's counts are the sample table's."""
        self.genera = QListWidget()
        self.genera.setMaximumWidth(230)
        self.genera.setToolTip("Pick a group; 'All' and 'unknown' list what needs review first")
        self.genera.currentItemChanged.connect(lambda *_: self._group_changed())
        self.model = ThumbModel()
        self.delegate = ThumbDelegate(self.model, colours, self)
        self.thumbs = thumb_view(self.model, self.delegate)
        self.thumbs.clicked.connect(
            lambda index: self.record_activated.emit(index.data(Qt.ItemDataRole.UserRole))
        )
        self.thumbs.setToolTip(
            "1-9: that class · 0: unknown · letters: pick a class, Enter: apply · "
            "arrows: move · Ctrl+A: select the page · PgUp/PgDn: turn pages"
        )
        self.keys = KeyLabeller(self)
        self.thumbs.installEventFilter(self.keys)
        self.keys.apply.connect(self.apply_label)
        self.keys.picked.connect(self.target_picked)
        self.keys.page.connect(lambda step: self.turn_page(step))

        self.size_slider = QSlider(Qt.Orientation.Horizontal)
        self.size_slider.setRange(MIN_THUMB, MAX_THUMB)
        self.size_slider.setSingleStep(16)
        self.size_slider.setPageStep(32)
        self.size_slider.setValue(DEFAULT_THUMB)
        self.size_slider.setMaximumWidth(160)
        self.size_slider.setToolTip("Thumbnail size (64-256 pixels)")
        self.size_slider.valueChanged.connect(self.set_thumb_size)
        self.prev_page = QPushButton("◀")
        self.next_page = QPushButton("▶")
        for button, tip, step in (
            (self.prev_page, "Previous page (PgUp)", -1),
            (self.next_page, "Next page (PgDn)", 1),
        ):
            button.setToolTip(tip)
            button.setMaximumWidth(36)
            button.clicked.connect(lambda _checked=False, s=step: self.turn_page(s))
        self.page_label = QLabel()
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: #495057")
        top = QHBoxLayout()
        top.addWidget(QLabel("Size"))
        top.addWidget(self.size_slider)
        top.addWidget(self.note, 1)
        top.addWidget(self.prev_page)
        top.addWidget(self.page_label)
        top.addWidget(self.next_page)

        self.target = QComboBox()
        self.target.setToolTip("The correct class for the selected organisms (or type its name)")
        self.target.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.relabel = QPushButton("Apply to selected")
        self.relabel.setToolTip(
            "Store the correction (Enter); counts, concentrations and alerts update"
        )
        self.relabel.clicked.connect(lambda: self.apply_label(self.target.currentText()))
        self.export = QPushButton("Export corrections…")
        self.export.setToolTip(
            "Write every correction as a training folder (one sub-folder per class)"
        )
        self.export.clicked.connect(self.export_requested)
        self.key_help = QLabel()
        self.key_help.setWordWrap(True)
        self.key_help.setTextFormat(Qt.TextFormat.RichText)
        self.key_help.setStyleSheet("color: #495057")
        # wraps in a narrow pane instead of squeezing the class names
        bar_box = QWidget()
        bar = FlowLayout(bar_box, spacing=6)
        bar.addWidget(QLabel("Correct to:"))
        bar.addWidget(self.target)
        bar.addWidget(self.relabel)
        bar.addWidget(self.export)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addLayout(top)
        right_layout.addWidget(self.thumbs, 1)
        right_layout.addWidget(bar_box)
        right_layout.addWidget(self.key_help)
        split = QSplitter()
        split.addWidget(self.genera)
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        split.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(split)
        self.set_classes(())

    # -- classes -------------------------------------------------------------------------

    def set_classes(
        self, classes: tuple[str, ...], thresholds: dict[str, float] | None = None
    ) -> None:
        """The model's classes (targets of a correction) and their confidence thresholds."""
        self.target.blockSignals(True)
        self.target.clear()
        self.target.addItems([*classes, UNKNOWN])
        self.target.blockSignals(False)
        self.target.setMinimumWidth(self.target.sizeHint().width())  # the longest name fits
        self.keys.classes = [*classes, UNKNOWN]
        self.keys.target = self.target.currentText()
        self.model.thresholds = dict(thresholds or {})
        numbered = " · ".join(f"<b>{n}</b> {c}" for n, c in enumerate(classes[:9], start=1))
        self.key_help.setText(
            "Keys: "
            + (numbered + " · " if numbered else "")
            + "<b>0</b> unknown · type a name + <b>Enter</b>"
        )

    def target_picked(self, name: str) -> None:
        self.target.setCurrentText(name)

    # -- groups and pages ----------------------------------------------------------------

    def counted_records(self) -> list[Any]:
        """The records the samples count (all of them until the window says otherwise)."""
        records = list(self.session.records)
        counted = self.counted
        return records if counted is None else [r for r in records if counted(r.key)]

    def selected_label(self) -> str | None:
        """The group on show: a label, or None for all organisms."""
        return None if self._group == ALL else self._group

    def refresh(self, force: bool = False) -> None:
        """Redraw when the session changed (or ``force``), keeping group, page and selection."""
        if not force and self.session.version == self._shown_version:
            return
        self._shown_version = self.session.version
        counts = group_counts(self.counted_records())
        self.genera.blockSignals(True)
        self.genera.clear()
        groups: list[tuple[str, str]] = [
            (ALL, f"All, least confident first  ({len(self.counted_records())})")
        ]
        if counts.get(UNKNOWN):
            groups.append((UNKNOWN, f"{UNKNOWN}  ({counts[UNKNOWN]}) — not identified"))
        for label in sorted(counts, key=lambda k: (-counts[k], k)):
            if label != UNKNOWN:
                groups.append((label, f"{label}  ({counts[label]})"))
        keys = [k for k, _ in groups]
        if self._group not in keys:
            self._group, self.page = ALL, 0
        for key, text in groups:
            item = QListWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, key)
            if key != ALL:  # a swatch: genus colours are too light for text on white
                item.setIcon(swatch(self.colours.hex(key)))
            self.genera.addItem(item)
            if key == self._group:
                self.genera.setCurrentItem(item)
        self.genera.blockSignals(False)
        self._show_page(keep=True)

    def show_group(self, label: str | None) -> None:
        """Open a group (a label, "unknown", or None for all organisms) at its first page."""
        self.refresh()
        key = ALL if label is None else label
        for row in range(self.genera.count()):
            if self.genera.item(row).data(Qt.ItemDataRole.UserRole) == key:
                self.genera.setCurrentRow(row)
                return

    def _group_changed(self) -> None:
        item = self.genera.currentItem()
        self._group = item.data(Qt.ItemDataRole.UserRole) if item else ALL
        self.page = 0
        self._show_page(keep=False)

    @property
    def pages(self) -> int:
        return max(1, -(-len(self._records) // self.PAGE_SIZE))

    def turn_page(self, step: int) -> None:
        page = min(max(self.page + step, 0), self.pages - 1)
        if page != self.page:
            self.page = page
            self._show_page(keep=False)

    def _show_page(self, keep: bool) -> None:
        records = self.counted_records()
        if self._group != ALL:
            records = [r for r in records if r.label == self._group]
        self._records = sorted(records, key=review_rank)
        self.page = min(self.page, self.pages - 1)
        start = self.page * self.PAGE_SIZE
        selected = {r.key for r in self.selected_records()} if keep else set()
        scroll = self.thumbs.verticalScrollBar().value() if keep else 0
        self.model.set_page(self._records[start : start + self.PAGE_SIZE])
        if selected:
            selection = self.thumbs.selectionModel()
            for row, r in enumerate(self.model.records):
                if r.key in selected:
                    selection.select(
                        self.model.index(row), QItemSelectionModel.SelectionFlag.Select
                    )
        self.thumbs.verticalScrollBar().setValue(scroll)
        self.page_label.setText(f"page {self.page + 1} of {self.pages}")
        self.prev_page.setEnabled(self.page > 0)
        self.next_page.setEnabled(self.page < self.pages - 1)
        pictureless = sum(1 for r in self._records if r.thumbnail is None)
        notes = [f"{len(self._records)} organisms, most in need of review first"]
        apart = len(self.session.records) - len(self.counted_records())
        if apart:
            notes.append(f"{apart} not in the counts (a copy counted once, a bin left out)")
        if pictureless:
            notes.append(f"{pictureless} without a picture kept (memory limit)")
        self.note.setText("; ".join(notes))

    def set_thumb_size(self, size: int) -> None:
        self.model.set_size(int(size))
        self.thumbs.setGridSize(self.delegate.cell())
        self.thumbs.doItemsLayout()

    # -- corrections ---------------------------------------------------------------------

    def selected_records(self) -> list[Any]:
        rows = sorted(i.row() for i in self.thumbs.selectionModel().selectedIndexes())
        return [self.model.records[r] for r in rows if r < len(self.model.records)]

    def apply_label(self, label: str) -> None:
        """Correct the selected organisms (or the current one) to ``label``, then move on:
        the selection goes to the organism now in the first corrected one's place."""
        records = self.selected_records()
        current = self.thumbs.currentIndex()
        if not records and current.isValid():
            records = [self.model.records[current.row()]]
        if not records or not label:
            return
        first = min(self.model.records.index(r) for r in records)
        self.correction_requested.emit(records, label)
        self.refresh(force=True)
        self.thumbs.clearSelection()
        if self.model.rowCount():
            index = self.model.index(min(first, self.model.rowCount() - 1))
            self.thumbs.setCurrentIndex(index)
            self.thumbs.scrollTo(index)
