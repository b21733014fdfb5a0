"""Sample panel (site, time, volume; counts and concentrations) and the HAB alert panel."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from PySide6.QtCore import QDateTime, QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QIcon
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDateTimeEdit,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from phytoscope.errors import ConfigError
from phytoscope.gui.style import level_colour, text_colour_for, to_pixmap
from phytoscope.storage.corrections import current_user
from phytoscope.types import Alert, Volume

VOLUME_IFCB, VOLUME_GIVEN, VOLUME_UTERMOHL = (
    "IFCB bins (from their headers)",
    "Volume I give",
    "Utermöhl chamber",
)


def _spin(value: float, maximum: float, suffix: str, decimals: int = 3) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(0.0, maximum)
    box.setDecimals(decimals)
    box.setValue(value)
    box.setSuffix(suffix)
    return box


class SamplePanel(QWidget):
    """Where and when the water was taken, how much was analysed; counts per class."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.site = QLineEdit()
        self.site.setPlaceholderText("site name or code")
        self.sampled_at = QDateTimeEdit(QDateTime.currentDateTime())
        self.sampled_at.setCalendarPopup(True)
        self.sampled_at.setDisplayFormat("yyyy-MM-dd HH:mm")
        self.technician = QLineEdit(current_user())
        self.method = QComboBox()
        self.method.addItems([VOLUME_GIVEN, VOLUME_IFCB, VOLUME_UTERMOHL])
        self.given_ml = _spin(0.0, 1e6, " mL")
        self.given_ml.setSpecialValueText("not given")
        self.settled_ml = _spin(10.0, 1e4, " mL settled", 1)
        self.chamber_mm2 = _spin(530.9, 1e5, " mm² chamber", 1)
        self.counted_mm2 = _spin(530.9, 1e5, " mm² counted", 1)
        self.ifcb_label = QLabel("no IFCB bin read yet")
        self.ifcb_label.setWordWrap(True)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.given_ml)
        self.stack.addWidget(self.ifcb_label)
        uter = QWidget()
        uter_layout = QHBoxLayout(uter)
        uter_layout.setContentsMargins(0, 0, 0, 0)
        for box in (self.settled_ml, self.chamber_mm2, self.counted_mm2):
            uter_layout.addWidget(box)
        self.stack.addWidget(uter)
        self.method.currentIndexChanged.connect(self.stack.setCurrentIndex)
        self.volume_note = QLabel()
        self.volume_note.setWordWrap(True)
        self.volume_note.setStyleSheet("color: #555")

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        row = QHBoxLayout()
        row.addWidget(self.site, 2)
        row.addWidget(QLabel("taken"))
        row.addWidget(self.sampled_at, 1)
        form.addRow("Site", row)
        form.addRow("Technician", self.technician)
        form.addRow("Volume", self.method)
        form.addRow("", self.stack)
        form.addRow("", self.volume_note)

        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["Class", "Count", "Concentration", "95 % interval"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setDefaultSectionSize(20)
        self.total = QLabel()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(form)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.total)
        for box in (self.given_ml, self.settled_ml, self.chamber_mm2, self.counted_mm2):
            box.valueChanged.connect(self.changed)
        self.method.currentIndexChanged.connect(self.changed)
        self._bins: dict[str, float] = {}

    def set_bins(self, bins: dict[str, float]) -> None:
        """IFCB bins read so far; switches the volume to them the first time."""
        first = not self._bins and bins
        self._bins = dict(bins)
        if bins:
            total = sum(bins.values())
            self.ifcb_label.setText(f"{total:.4g} mL in {len(bins)} bin(s)")
        if first:
            self.method.setCurrentText(VOLUME_IFCB)

    def volume(self) -> Volume | None:
        """The sample's volume, or None when it is not known yet (counts only)."""
        from phytoscope.core import sample

        method = self.method.currentText()
        if method == VOLUME_IFCB:
            return sample.ifcb_volume(self._bins) if self._bins else None
        if method == VOLUME_GIVEN:
            return sample.given_volume(self.given_ml.value()) if self.given_ml.value() > 0 else None
        return sample.utermohl_volume(
            self.settled_ml.value(),
            chamber_area_mm2=self.chamber_mm2.value(),
            counted_area_mm2=self.counted_mm2.value(),
        )

    def safe_volume(self) -> Volume | None:
        try:
            volume = self.volume()
        except ConfigError as exc:
            self.volume_note.setText(f"<span style='color:#c92a2a'>{exc}</span>")
            return None
        if volume is None:
            self.volume_note.setText("Give the volume analysed to turn counts into cells/L.")
        else:
            from phytoscope.core.sample import describe_volume

            self.volume_note.setText(describe_volume(volume))
        return volume

    def sampled_at_iso(self) -> str:
        return self.sampled_at.dateTime().toString(Qt.DateFormat.ISODate)

    def show_counts(self, counts: dict[str, int], concentrations: list[Any]) -> None:
        """Counts per class; concentrations (core.sample.Concentration) when a volume is known."""
        by_taxon = {c.taxon: c for c in concentrations}
        names = [c.taxon for c in concentrations] or []
        for label in sorted(counts, key=lambda k: -counts[k]):
            if label not in by_taxon:
                names.append(label)
        names.sort(key=lambda k: (-counts.get(k, 0), k))
        self.table.setRowCount(len(names))
        from phytoscope.core.sample import format_per_l

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


class AlertPanel(QWidget):
    """One row per monitored taxon: level in the rule set's colours, threshold, concentration
    with its interval, evidence thumbnails, acknowledge; then what this model cannot see."""

    acknowledge_requested = Signal(object)  # Alert (with its store id)

    EVIDENCE = 4

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.title = QLabel("HAB alerts")
        self.title.setStyleSheet("font-weight: bold")
        self.title.setWordWrap(True)
        self.table = QTableWidget(0, 6)
        self.table.setHorizontalHeaderLabels(
            ["Level", "Taxon", "Threshold", "Concentration (95 %)", "Evidence", ""]
        )
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setDefaultSectionSize(44)
        self.not_monitored = QLabel()
        self.not_monitored.setWordWrap(True)
        self.not_monitored.setStyleSheet("color: #666")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.title)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.not_monitored)
        self.earlier = QLabel()
        self.earlier.setWordWrap(True)
        self.earlier.setStyleSheet("color: #c92a2a")
        layout.addWidget(self.earlier)
        self._signature: Any = None
        self.levels_shown: dict[str, str] = {}
        """taxon -> level currently shown (read by tests and the status bar)"""

    def show_message(self, text: str) -> None:
        self.title.setText(text)

    def show_result(
        self,
        hab: Any,
        alerts: dict[str, Alert],
        thumbnail_of: Callable[[tuple[str, int]], np.ndarray | None],
        evidence: dict[str, list[tuple[str, int]]],
    ) -> None:
        """Show a ``core.hab.HabResult``; ``alerts`` maps taxon -> stored Alert (acknowledgeable)."""
        from phytoscope.core.sample import format_per_l

        rule_set = hab.rule_set
        signature = (
            rule_set.name,
            tuple(
                (a.taxon, a.level, a.concentration.count, round(a.concentration.per_l, 3))
                for a in hab.assessments
            ),
            tuple((t, a.id, a.acknowledged_at) for t, a in sorted(alerts.items())),
        )
        n_alerts = len(hab.alerts)
        self.title.setText(
            f"HAB alerts — {rule_set.title}: "
            + (
                f"<span style='color:#c92a2a'>{n_alerts} alert{'s' if n_alerts != 1 else ''}</span>"
                if n_alerts
                else "no threshold reached"
            )
        )
        self.title.setTextFormat(Qt.TextFormat.RichText)
        missing = ", ".join(hab.not_monitored)
        self.not_monitored.setText(
            f"<b>Not monitored by this model</b> (count these by microscope): {missing}"
            if missing
            else ""
        )
        if signature == self._signature:
            return
        self._signature = signature
        self.levels_shown = {a.taxon: a.level for a in hab.assessments}
        self.table.setRowCount(len(hab.assessments))
        for row, a in enumerate(hab.assessments):
            colour = level_colour(a.level, rule_set.levels)
            level = QTableWidgetItem(a.describe_level().replace("_", " "))
            level.setBackground(QBrush(colour))
            level.setForeground(QBrush(QColor(text_colour_for(colour))))
            level.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
            self.table.setItem(row, 0, level)
            taxon = QTableWidgetItem(a.taxon + (f"\n{a.syndrome}" if a.syndrome else ""))
            taxon.setToolTip("\n".join([f"rule: {a.rule_taxon} ({a.rank})", *a.flags]))
            self.table.setItem(row, 1, taxon)
            threshold = (
                a.threshold_per_l if a.threshold_per_l is not None else a.next_threshold_per_l
            )
            prefix = "" if a.threshold_per_l is not None else "next: "
            if threshold is None:
                text = "—"
            elif threshold < 1:  # a "present" band (any cell counts)
                text = f"{prefix}present"
            else:
                text = f"{prefix}≥ {format_per_l(threshold)} cells/L"
            self.table.setItem(row, 2, QTableWidgetItem(text))
            c = a.concentration
            conc = (
                f"{format_per_l(c.per_l)} {c.unit}\n({format_per_l(c.low_per_l)} – {format_per_l(c.high_per_l)})"
                if c.detected
                else f"ND (< {format_per_l(c.detection_limit_per_l)})"
            )
            conc_item = QTableWidgetItem(conc)
            if a.flags:
                conc_item.setToolTip("\n".join(a.flags))
            self.table.setItem(row, 3, conc_item)
            self.table.setCellWidget(row, 4, self._evidence(a.classes, thumbnail_of, evidence))
            self.table.setCellWidget(row, 5, self._ack_widget(alerts.get(a.taxon), a.is_alert))
        self.table.resizeColumnsToContents()

    def _evidence(
        self,
        classes: tuple[str, ...],
        thumbnail_of: Callable[[tuple[str, int]], Any],
        evidence: dict[str, list[tuple[str, int]]],
    ) -> QWidget:
        strip = QListWidget()
        strip.setViewMode(QListView.ViewMode.IconMode)
        strip.setFlow(QListView.Flow.LeftToRight)
        strip.setIconSize(QSize(38, 38))
        strip.setFixedHeight(44)
        strip.setFixedWidth(4 * 42 + 6)
        strip.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        strip.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        strip.setFrameShape(QListWidget.Shape.NoFrame)
        strip.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        shown = 0
        for name in classes:
            for key in evidence.get(name, ()):
                thumb = thumbnail_of(key)
                if thumb is None:
                    continue
                item = QListWidgetItem(QIcon(to_pixmap(thumb)), "")
                item.setToolTip(f"{key[0]} #{key[1]}")
                strip.addItem(item)
                shown += 1
                if shown >= self.EVIDENCE:
                    return strip
        return strip

    def _ack_widget(self, alert: Alert | None, is_alert: bool) -> QWidget:
        if not is_alert:
            return QLabel("")
        if alert is None or alert.id is None:
            label = QLabel("recorded when\nthe analysis ends")
            label.setStyleSheet("color: #888; font-size: 8pt")
            return label
        if alert.acknowledged_at:
            label = QLabel(f"acknowledged\n{alert.acknowledged_by}")
            label.setToolTip(f"by {alert.acknowledged_by} at {alert.acknowledged_at}")
            label.setStyleSheet("color: #2b8a3e; font-size: 8pt")
            return label
        button = QPushButton("Acknowledge")
        button.setToolTip(
            "Record that you have seen this alert (your name and the time are stored)"
        )
        button.clicked.connect(lambda: self.acknowledge_requested.emit(alert))
        return button
