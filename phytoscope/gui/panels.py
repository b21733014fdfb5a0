"""The HAB alert panel (the sample panel is in :mod:`.sample_panel`, re-exported here)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QIcon
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from phytoscope.core.sample import format_per_l
from phytoscope.gui.sample_panel import SamplePanel
from phytoscope.gui.style import level_colour, text_colour_for, to_pixmap
from phytoscope.types import Alert


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
        self.unidentified = QLabel()
        self.unidentified.setWordWrap(True)
        self.unidentified.setStyleSheet("color: #5c3c00")
        layout.insertWidget(1, self.unidentified)
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
        rule_set = hab.rule_set
        n = hab.unidentified
        self.unidentified.setText(
            f"Alerts come from identified organisms only: {n} organism{'s' if n != 1 else ''} "
            "not identified, check by microscope"
            if n
            else ""
        )
        self.unidentified.setVisible(bool(n))
        signature = (
            rule_set.name,
            tuple(
                (a.taxon, a.level, a.concentration.count, round(a.concentration.per_l, 3))
                for a in hab.assessments
            ),
            tuple((t, a.id, a.acknowledged_at, a.reopened) for t, a in sorted(alerts.items())),
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
            label = QLabel("recorded when\nthe sample is saved")
            label.setStyleSheet("color: #888; font-size: 8pt")
            return label
        if alert.acknowledged_at:
            label = QLabel(f"acknowledged\n{alert.acknowledged_by}")
            label.setToolTip(f"by {alert.acknowledged_by} at {alert.acknowledged_at}")
            label.setStyleSheet("color: #2b8a3e; font-size: 8pt")
            return label
        button = QPushButton("Acknowledge again" if alert.reopened else "Acknowledge")
        button.setToolTip(
            (f"Re-opened: {alert.reopened}\n" if alert.reopened else "")
            + "Record that you have seen this alert at this concentration (your name and "
            "the time are stored; a later change of the sample re-opens it)"
        )
        button.clicked.connect(lambda: self.acknowledge_requested.emit(alert))
        return button


__all__ = ["AlertPanel", "SamplePanel"]
