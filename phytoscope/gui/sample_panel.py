"""The sample panel: what the user says about the sample, and what the session made of it.

The panel holds no sample rule. It collects the user's entries into a
:class:`~phytoscope.core.session.SampleSettings` (the same fields as ``phytoscope
classify``'s sample options) and shows the :class:`~phytoscope.core.samples.SampleDraft`
values the core session computes: one entry per sample (bins pooled or one per bin,
other images apart), its volume, time, flags, warnings and counts. Every field starts empty
("not given"): nothing is counted from a number nobody typed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QDateTime, Qt, QTimeZone, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDateTimeEdit,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from phytoscope.core.sample import describe_volume, format_per_l
from phytoscope.core.samples import SampleDraft, VolumeSpec
from phytoscope.core.session import SampleSettings

VOLUME_NONE, VOLUME_GIVEN, VOLUME_UTERMOHL = (
    "not given (counts only)",
    "Volume I give",
    "Utermöhl chamber",
)
GROUPING_LABELS = {
    "auto": "Pool bins of one instrument and day",
    "per-bin": "One sample per bin",
    "pool": "Pool every bin (across days/instruments)",
}
PARTIAL_LABELS = {
    "scale": "Partial bins: volume scaled to ROIs read",
    "exclude": "Partial bins: left out",
}
NOT_GIVEN = "not given"
_NO_TIME = QDateTime(2000, 1, 1, 0, 0, 0)


def _spin(suffix: str, maximum: float = 1e6, decimals: int = 3) -> QDoubleSpinBox:
    """A number field that reads "not given" until something is typed (0 = not given)."""
    box = QDoubleSpinBox()
    box.setRange(0.0, maximum)
    box.setDecimals(decimals)
    box.setSuffix(suffix)
    box.setSpecialValueText(NOT_GIVEN)
    box.setValue(0.0)
    return box


def _value(box: QDoubleSpinBox | QSpinBox) -> Any:
    return box.value() if box.value() > box.minimum() else None


class SamplePanel(QWidget):
    """Site, time, volume and pooling entered by the user; samples, warnings and counts."""

    changed = Signal()
    """the user edited a setting"""
    selected = Signal()
    """another sample of the session was chosen"""
    review_unknown_requested = Signal()
    """the user asked to see the organisms not identified (the gallery's "unknown")"""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.site = QLineEdit()
        self.site.setPlaceholderText("site name or code")
        self.sampled_at = QDateTimeEdit()
        self.sampled_at.setCalendarPopup(True)
        self.sampled_at.setDisplayFormat("yyyy-MM-dd HH:mm")
        self.sampled_at.setMinimumDateTime(_NO_TIME)
        self.sampled_at.setSpecialValueText("not given")
        self.sampled_at.setDateTime(_NO_TIME)
        self.sampled_at.setToolTip(
            "When the water was taken (local time); IFCB bins bring their own time"
        )
        self.clear_time = QPushButton("×")
        self.clear_time.setToolTip("Forget the time typed")
        self.clear_time.setFixedWidth(24)
        self.clear_time.clicked.connect(lambda: self.sampled_at.setDateTime(_NO_TIME))
        # never the login: a shared lab computer's login is not the person who signs
        self.technician = QLineEdit()
        self.technician.setPlaceholderText("your name")
        self.method = QComboBox()
        self.method.addItems([VOLUME_NONE, VOLUME_GIVEN, VOLUME_UTERMOHL])
        self.given_ml = _spin(" mL")
        self.settled_ml = _spin(" mL settled", 1e4, 2)
        self.chamber_mm2 = _spin(" mm² chamber", 1e5, 2)
        self.counted_mm2 = _spin(" mm² counted", 1e5, 2)
        self.fields = QSpinBox()
        self.fields.setRange(0, 100000)
        self.fields.setSpecialValueText(NOT_GIVEN)
        self.fields.setSuffix(" fields")
        self.field_mm2 = _spin(" mm² per field", 1e4, 4)
        self.sample_ml = _spin(" mL of water", 1e5, 1)
        self.preservative_ml = _spin(" mL preservative", 1e4, 2)
        self.dilution = _spin(" × dilution", 1e6, 2)
        self.stack = QStackedWidget()
        none = QLabel("Images that are not IFCB bins are counted, not turned into cells/L.")
        none.setWordWrap(True)
        self.stack.addWidget(none)
        self.stack.addWidget(self.given_ml)
        uter = QWidget()
        grid = QGridLayout(uter)
        grid.setContentsMargins(0, 0, 0, 0)
        boxes = (self.settled_ml, self.chamber_mm2, self.counted_mm2, self.fields,
                 self.field_mm2, self.sample_ml, self.preservative_ml, self.dilution)  # fmt: skip
        for n, box in enumerate(boxes):
            grid.addWidget(box, n // 2, n % 2)
        self.stack.addWidget(uter)
        self.method.currentIndexChanged.connect(self._show_page)
        self._show_page(0)
        self.grouping = QComboBox()
        for key, label in GROUPING_LABELS.items():
            self.grouping.addItem(label, key)
        self.partial = QComboBox()
        for key, label in PARTIAL_LABELS.items():
            self.partial.addItem(label, key)
        self.choice = QComboBox()
        self.choice.setToolTip("The samples of this session (bins and other images are apart)")
        for combo in (self.method, self.grouping, self.partial, self.choice):
            # a long entry must not widen the window: the box shrinks, the list shows it whole
            combo.setSizeAdjustPolicy(
                QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
            )
            combo.setMinimumContentsLength(12)
        self.state = QLabel()
        self.state.setWordWrap(True)
        self.warnings = QLabel()
        self.warnings.setWordWrap(True)
        self.warnings.setTextFormat(Qt.TextFormat.PlainText)
        self.warnings.setStyleSheet("color: #c92a2a")
        self.volume_note = QLabel()
        self.volume_note.setWordWrap(True)
        self.volume_note.setStyleSheet("color: #555")

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        row = QHBoxLayout()
        row.addWidget(self.site, 2)
        row.addWidget(QLabel("taken"))
        row.addWidget(self.sampled_at, 1)
        row.addWidget(self.clear_time)
        form.addRow("Site", row)
        form.addRow("Technician", self.technician)
        form.addRow("Images' volume", self.method)
        form.addRow("", self.stack)
        bins = QHBoxLayout()
        bins.addWidget(self.grouping)
        bins.addWidget(self.partial)
        form.addRow("IFCB bins", bins)
        form.addRow("Sample", self.choice)
        form.addRow("", self.state)
        form.addRow("", self.volume_note)

        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["Class", "Count", "Concentration", "95 % interval"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setDefaultSectionSize(20)
        self.total = QLabel()
        self.total.setWordWrap(True)
        self.unknown = QLabel()
        self.unknown.setWordWrap(True)
        self.unknown.setTextFormat(Qt.TextFormat.RichText)
        self.unknown.setStyleSheet(
            "background:#fff3bf; color:#3d2c00; border:1px solid #f08c00; padding:3px"
        )
        self.unknown.setToolTip("Open the gallery on the organisms the model could not identify")
        self.unknown.linkActivated.connect(lambda _link: self.review_unknown_requested.emit())
        self.unknown.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(form)
        # the counts right under the sample they belong to; at least four rows of them
        # (the panel scrolls in a short window rather than squeezing the table shut)
        self.table.setMinimumHeight(110)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.total)
        layout.addWidget(self.unknown)
        layout.addWidget(self.warnings)
        self.site.textChanged.connect(self.changed)
        self.sampled_at.dateTimeChanged.connect(self.changed)
        for box in (*boxes, self.given_ml):
            box.valueChanged.connect(self.changed)
        for combo in (self.method, self.grouping, self.partial):
            combo.currentIndexChanged.connect(self.changed)
        self.choice.currentIndexChanged.connect(self.selected)

    def _show_page(self, index: int) -> None:
        """Only the page on show takes room (the Utermöhl grid is tall; the others are not)."""
        for i in range(self.stack.count()):
            policy = QSizePolicy.Policy.Preferred if i == index else QSizePolicy.Policy.Ignored
            page = self.stack.widget(i)
            if page is not None:
                page.setSizePolicy(policy, policy)
        self.stack.setCurrentIndex(index)
        self.stack.adjustSize()

    # -- what the user says ----------------------------------------------------------------

    def sampled_at_text(self) -> str | None:
        """The time typed, as UTC ISO 8601, or None while it is "not given"."""
        value = self.sampled_at.dateTime()
        if value <= _NO_TIME:
            return None
        return value.toUTC().toString(Qt.DateFormat.ISODate)

    def set_sampled_at(self, iso: str | None) -> None:
        """Show a time (ISO 8601 with zone), or "not given" for None."""
        if iso is None:
            self.sampled_at.setDateTime(_NO_TIME)
            return
        moment = QDateTime.fromString(iso.replace("+00:00", "Z"), Qt.DateFormat.ISODate)
        self.sampled_at.setDateTime(moment.toTimeZone(QTimeZone.systemTimeZone()))

    def volume_spec(self) -> VolumeSpec:
        method = self.method.currentText()
        if method == VOLUME_GIVEN:
            return VolumeSpec(method="given", given_ml=_value(self.given_ml))
        if method == VOLUME_UTERMOHL:
            return VolumeSpec(
                method="utermohl",
                settled_ml=_value(self.settled_ml),
                chamber_area_mm2=_value(self.chamber_mm2),
                counted_area_mm2=_value(self.counted_mm2),
                fields=_value(self.fields),
                field_area_mm2=_value(self.field_mm2),
                sample_ml=_value(self.sample_ml),
                preservative_ml=_value(self.preservative_ml),
                dilution=_value(self.dilution),
            )
        return VolumeSpec()

    def settings(self, notes: str = "") -> SampleSettings:
        return SampleSettings(
            site=self.site.text().strip(),
            sampled_at=self.sampled_at_text(),
            volume=self.volume_spec(),
            grouping=str(self.grouping.currentData()),
            partial=str(self.partial.currentData()),
            notes=notes,
        )

    def selected_key(self) -> str | None:
        data = self.choice.currentData()
        return str(data) if data is not None else None

    # -- what the session made of it ---------------------------------------------------------

    def show_samples(
        self, drafts: Sequence[SampleDraft], notices: Sequence[str]
    ) -> SampleDraft | None:
        """List the session's samples, keep the one chosen, show its state; returns it."""
        key = self.selected_key()
        self.choice.blockSignals(True)
        self.choice.clear()
        for d in drafts:
            self.choice.addItem(_title(d), d.key)
            self.choice.setItemData(
                self.choice.count() - 1, "\n".join(d.sources), Qt.ItemDataRole.ToolTipRole
            )
        keys = [d.key for d in drafts]
        if key in keys:
            self.choice.setCurrentIndex(keys.index(key))
        self.choice.blockSignals(False)
        draft = drafts[self.choice.currentIndex()] if drafts else None
        lines = list(notices)
        if draft is not None:
            lines += list(draft.warnings)
        self.warnings.setText("\n".join(f"⚠ {line}" for line in lines))
        self.warnings.setVisible(bool(lines))
        if draft is None:
            self.state.setText("")
            self.volume_note.setText("")
            self.show_counts({}, [], 0)
            return None
        self.state.setText(_state(draft))
        origin = {"bins": " (from the IFCB bin names)", "user": ""}.get(draft.time_source, "")
        when = f"sampled {draft.sampled_at}{origin}" if draft.sampled_at else ""
        volume = describe_volume(draft.volume) if draft.volume else ""
        self.volume_note.setText("; ".join(t for t in (volume, when) if t))
        self.show_counts(draft.counts, list(draft.concentrations), draft.n_unidentified)
        return draft

    def show_counts(self, counts: dict[str, int], concentrations: list[Any], unknown: int) -> None:
        """Counts per class; concentrations (core.sample.Concentration) when a volume is known."""
        by_taxon = {c.taxon: c for c in concentrations}
        names = sorted(counts, key=lambda k: (-counts.get(k, 0), k))
        self.table.setRowCount(len(names))
        for row, name in enumerate(names):
            c = by_taxon.get(name)
            cells = [name, str(counts.get(name, 0))]
            if c is None:
                cells += ["—", ""]
            elif c.detected:
                cells += [
                    f"{format_per_l(c.per_l)} {c.unit}",
                    f"{format_per_l(c.low_per_l)} – {format_per_l(c.high_per_l)}",
                ]
            else:
                cells += [
                    f"ND (< {format_per_l(c.detection_limit_per_l)})",
                    f"0 – {format_per_l(c.high_per_l)}",
                ]
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if column == 0 and c is not None and c.flags:
                    item.setToolTip("; ".join(c.flags))
                if column in (1, 2, 3):
                    item.setTextAlignment(
                        Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                    )
                if counts.get(name, 0) == 0:
                    item.setForeground(QBrush(QColor("#999999")))
                self.table.setItem(row, column, item)
        self.total.setText(f"{sum(counts.values())} organisms counted")
        self.show_unknown(unknown)

    def show_unknown(self, n: int) -> None:
        """ "N organisms not identified: check by microscope", a click away from the gallery."""
        noun = "organism" if n == 1 else "organisms"
        self.unknown.setText(
            f"<b>{n:,} {noun} not identified</b>: check by microscope — "
            "<a href='unknown'>show them in the gallery</a>"
        )
        self.unknown.setVisible(n > 0)


def _title(d: SampleDraft) -> str:
    if d.bins:
        names = ", ".join(b.bin_id for b in d.bins[:2]) + ("…" if len(d.bins) > 2 else "")
        what = f"IFCB {names}"
    else:
        names = ", ".join(Path(s).name or s for s in d.sources[:2])  # the full paths: tooltip
        what = f"{d.kind}: {names}" + ("…" if len(d.sources) > 2 else "")
    flags = f" [{', '.join(d.flags)}]" if d.flags else ""
    return f"{what} — {d.organisms} organisms{flags}"


def _state(d: SampleDraft) -> str:
    if d.sample_id is not None:
        saved = "saved" if d.saved else "changed since saved: click Save sample to update it"
        return f"Sample {d.sample_id}, revision {d.revision}: {saved}"
    if d.problems:
        return "Not saved: " + "; ".join(d.problems)
    return "Not saved yet: give the site (saved by itself at the end) or click Save sample"
