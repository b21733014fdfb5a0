"""The Samples tab: past samples by site and date, open alerts, re-open, manual counts, and
each monitored taxon over time per site with its thresholds (the IFCB dashboard's view).

Everything shown is read from the results store through the core (:mod:`phytoscope.core.
history`, :func:`~phytoscope.core.hab.describe_alert`); re-opening loads the stored sample
into the window's own :class:`~phytoscope.core.session.SampleSession` (its organisms,
corrections, settings and manual counts), so the sample and alert panels show it and *Save
sample* updates the same record. :func:`install_samples` is the one call that wires the tab
into the window.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from phytoscope.core import history
from phytoscope.core.hab import describe_alert
from phytoscope.core.sample import PRESENCE, format_per_l, level_words
from phytoscope.errors import PhytoscopeError
from phytoscope.gui.manual import ManualCountsBox
from phytoscope.types import Sample

log = logging.getLogger(__name__)

ALL_SITES = "All sites"
SAMPLE_COLUMNS = (
    "Sample", "Site", "Sampled at (UTC)", "Kind", "Volume", "Rule set", "Open alerts",
    "Not identified", "Flags",
)  # fmt: skip
ALERT_COLUMNS = ("Alert", "Sample", "Site", "Alert (plain words)")
LEVEL_PENS = {0: "#2b8a3e", 1: "#e67700", 2: "#c92a2a", 3: "#862e9c"}
"""Threshold lines, lowest level first (yellow-ish to red: drawn dark enough to read)."""


def _item(text: str, sample_id: int | None = None) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
    if sample_id is not None:
        item.setData(Qt.ItemDataRole.UserRole, sample_id)
    return item


def _table(columns: tuple[str, ...]) -> QTableWidget:
    table = QTableWidget(0, len(columns))
    table.setHorizontalHeaderLabels(list(columns))
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.verticalHeader().hide()
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    table.horizontalHeader().setStretchLastSection(True)
    table.setWordWrap(True)
    return table


class SamplesTab(QWidget):
    """Parameters
    ----------
    store
        Returns the open results store (raises :class:`PhytoscopeError` when it cannot).
    error
        Where problems reading the store are reported.
    """

    reopen_requested = Signal(int)  # sample id: the window loads it into its session

    def __init__(self, store: Callable[[], Any], error: Callable[[str], None] = log.error):
        super().__init__()
        self._store = store
        self._error = error
        self.site = QComboBox()
        self.site.setToolTip("Samples and time series of one site")
        self.site.currentTextChanged.connect(lambda _: self.refresh())
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(self.refresh)
        self.reopen = QPushButton("Re-open sample")
        self.reopen.setToolTip(
            "Load the selected sample (or the sample of the selected alert) into the window: "
            "its organisms, corrections and settings; Save sample updates the same record"
        )
        self.reopen.clicked.connect(self._reopen_selected)
        top = QHBoxLayout()
        top.addWidget(QLabel("Site"))
        top.addWidget(self.site, 1)
        top.addWidget(self.refresh_button)
        top.addWidget(self.reopen)

        self.samples = _table(SAMPLE_COLUMNS)
        self.samples.doubleClicked.connect(lambda _: self._reopen_selected(self.samples))
        self.alerts = _table(ALERT_COLUMNS)
        self.alerts.setTextElideMode(Qt.TextElideMode.ElideNone)
        # the plain words wrap at whatever width the column gets: never cut off
        self.alerts.horizontalHeader().sectionResized.connect(
            lambda *_: self.alerts.resizeRowsToContents()
        )
        self.alerts.doubleClicked.connect(lambda _: self._reopen_selected(self.alerts))
        self.alerts_label = QLabel("Open alerts")
        self.manual = ManualCountsBox()

        self.taxon = QComboBox()
        self.taxon.setToolTip("The monitored taxon drawn over time at the chosen site")
        self.taxon.currentTextChanged.connect(lambda _: self.draw_series())
        self.plot = pg.PlotWidget(axisItems={"bottom": pg.DateAxisItem(utcOffset=0)})
        self.plot.setBackground("w")
        self.plot.setLogMode(x=False, y=True)
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.plot.setLabel("left", "per L (log)")
        self.plot.setLabel("bottom", "sampled at (UTC)")
        self.plot.setMinimumHeight(180)
        self.series_note = QLabel()
        self.series_note.setWordWrap(True)

        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        lv.addWidget(self.samples, 3)
        lv.addWidget(self.alerts_label)
        lv.addWidget(self.alerts, 2)
        series = QWidget()
        rv = QVBoxLayout(series)
        rv.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        row.addWidget(QLabel("Taxon"))
        row.addWidget(self.taxon, 1)
        rv.addLayout(row)
        rv.addWidget(self.plot, 1)
        rv.addWidget(self.series_note)
        # the manual counts scroll rather than raise the window's minimum height (their
        # wrapped words grow tall in a narrow pane): the window fits 1366x768 and less
        scroller = QScrollArea()
        scroller.setWidgetResizable(True)
        scroller.setFrameShape(QFrame.Shape.NoFrame)
        scroller.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroller.setWidget(self.manual)
        scroller.setMinimumHeight(80)
        self.right = QSplitter(Qt.Orientation.Vertical)
        self.right.addWidget(series)
        self.right.addWidget(scroller)
        self.right.setChildrenCollapsible(False)
        self.right.setSizes([3000, 2000])
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(left)
        self.splitter.addWidget(self.right)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setStretchFactor(0, 5)  # the tables' columns first, the plot takes the rest
        self.splitter.setStretchFactor(1, 4)
        self.splitter.setSizes([5000, 4000])
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.splitter, 1)
        self._series: dict[str, list[history.Point]] = {}

    # -- reading the store -------------------------------------------------------------

    def refresh(self) -> None:
        """Read the samples, alerts and series again (after a save, or on demand)."""
        try:
            store = self._store()
            stored = store.samples()
            opened = store.open_alerts()
            counts = {s.id: sum(1 for a in opened if a.sample_id == s.id) for s in stored}
        except PhytoscopeError as exc:
            self._error(f"cannot read the stored samples: {exc}")
            return
        self._fill_sites(history.sites(stored))
        site = self.site.currentText()
        shown = [s for s in history.by_site_and_date(stored) if site in (ALL_SITES, s.site)]
        self._fill_samples(shown, counts)
        site_of = {s.id: s.site for s in stored}
        self.alerts_label.setText(
            f"Open alerts ({len(opened)}, all sites): double-click to re-open"
        )
        self.alerts.setRowCount(len(opened))
        for r, a in enumerate(opened):
            cells = (str(a.id), str(a.sample_id), site_of.get(a.sample_id, ""), describe_alert(a))
            for c, text in enumerate(cells):
                self.alerts.setItem(r, c, _item(text, a.sample_id))
        self.alerts.resizeRowsToContents()
        try:
            self._series = history.series(store, site) if site != ALL_SITES else {}
        except PhytoscopeError as exc:
            self._error(f"cannot read the time series: {exc}")
            self._series = {}
        self._fill_taxa()
        self.draw_series()

    def _fill_sites(self, sites: list[str]) -> None:
        current = self.site.currentText()
        wanted = [ALL_SITES, *sites]
        if [self.site.itemText(i) for i in range(self.site.count())] != wanted:
            self.site.blockSignals(True)
            self.site.clear()
            self.site.addItems(wanted)
            # one site: its series at once; several: keep the choice, else all of them
            pick = current if current in wanted and current != ALL_SITES else None
            pick = pick or (sites[0] if len(sites) == 1 else ALL_SITES)
            self.site.setCurrentText(pick)
            self.site.blockSignals(False)

    def _fill_samples(self, shown: list[Sample], open_counts: dict[Any, int]) -> None:
        self.samples.setRowCount(len(shown))
        for r, s in enumerate(shown):
            cells = (
                f"{s.id} (rev {s.revision})", s.site or "-", s.sampled_at or "no time", s.kind,
                f"{s.volume.ml_analyzed:.4g} mL", s.rule_set or "-", str(open_counts.get(s.id, 0)),
                str(s.unidentified) if s.unidentified else "", ", ".join(s.flags),
            )  # fmt: skip
            for c, text in enumerate(cells):
                self.samples.setItem(r, c, _item(text, s.id))

    def _fill_taxa(self) -> None:
        current = self.taxon.currentText()
        self.taxon.blockSignals(True)
        self.taxon.clear()
        # taxa that were ever detected first: a series of zeros is rarely what one looks for
        names = sorted(self._series, key=lambda t: not any(p.detected for p in self._series[t]))
        self.taxon.addItems(names)
        if current in names:
            self.taxon.setCurrentText(current)
        self.taxon.blockSignals(False)

    # -- the time series ----------------------------------------------------------------

    def draw_series(self) -> None:
        """The chosen taxon at the chosen site: detected (filled), not detected drawn at
        its detection limit (open triangle), and the thresholds of its latest rule set."""
        self.plot.clear()
        points = self._series.get(self.taxon.currentText(), [])
        if not points:
            self.series_note.setText(
                "Choose a site to see each monitored taxon over time."
                if self.site.currentText() == ALL_SITES
                else "No saved sample of this site has an assessment (save samples with a rule set)."
            )
            return
        xs = [p.sampled_at.timestamp() for p in points]
        found = [(x, p) for x, p in zip(xs, points, strict=True) if p.detected]
        zeros = [(x, p) for x, p in zip(xs, points, strict=True) if not p.detected]
        unit = points[-1].unit
        if found:
            self.plot.plot(
                [x for x, _ in found], [p.per_l for _, p in found], pen=pg.mkPen("#1c7ed6", width=2),
                symbol="o", symbolBrush="#1c7ed6",
            )  # fmt: skip
        if zeros:
            self.plot.plot(
                [x for x, _ in zeros], [p.detection_limit_per_l for _, p in zeros], pen=None,
                symbol="t", symbolBrush=None, symbolPen="#495057",
            )  # fmt: skip
        latest = points[-1]
        lines = history.thresholds(latest.rule_set, latest.rule_taxon)
        span = [min(xs) - 43200, max(xs) + 43200]  # half a day each side
        presence = [level for level, per_l in lines if per_l < PRESENCE]
        for n, (level, per_l) in enumerate(lines):
            if per_l < PRESENCE:  # "any cell found": no line that drags the log axis to 1e-4
                continue
            pen = pg.mkPen(LEVEL_PENS.get(n, "#343a40"), width=1, style=Qt.PenStyle.DashLine)
            self.plot.plot(span, [per_l, per_l], pen=pen)
            # labels sit in view coordinates, which are log10 on a log axis; alternate ends,
            # so two close levels (40,000 and 50,000) do not print over each other
            left = n % 2 == 0
            label = pg.TextItem(
                f"{level_words(level)} ≥ {format_per_l(per_l)}",
                color=pen.color(),
                anchor=(0, 1) if left else (1, 1),
            )
            label.setPos(span[0] if left else span[1], math.log10(per_l))
            self.plot.addItem(label)
        manual = sum(1 for p in points if p.manual)
        self.series_note.setText(
            f"{self.taxon.currentText()} in {unit}: {len(points)} sample(s), filled where found, "
            "an open triangle at the detection limit where not; dashed: the thresholds of "
            f"{latest.rule_set} ({latest.rule_taxon})"
            + (f"; {', '.join(presence)}: any cell found" if presence else "")
            + (f"; {manual} from manual counts" if manual else "")
            + ("; chains/L: cells may be higher" if unit == "chains/L" else "")
        )

    # -- actions --------------------------------------------------------------------------

    def selected_sample(self, table: QTableWidget | None = None) -> int | None:
        for t in (table,) if table is not None else (self.samples, self.alerts):
            row = t.currentRow()
            item = t.item(row, 0) if row >= 0 and t.item(row, 0) is not None else None
            if item is not None and t.selectionModel().hasSelection():
                return int(item.data(Qt.ItemDataRole.UserRole))
        return None

    def _reopen_selected(self, table: QTableWidget | None = None) -> None:
        sample_id = self.selected_sample(table if isinstance(table, QTableWidget) else None)
        if sample_id is None:
            self._error("select a sample (or an open alert) to re-open")
            return
        self.reopen_requested.emit(sample_id)


def install_samples(window: Any) -> SamplesTab:
    """Add the Samples tab to the window and wire it: re-open into the window's session,
    manual counts for the sample on show, refreshed after every save."""
    tab = SamplesTab(window.store, window.report_error)
    window.tabs.addTab(tab, "Samples")
    window.samples_tab = tab
    window.samples_wiring = SamplesWiring(window, tab)
    return tab


from phytoscope.gui.samples_wiring import SamplesWiring  # noqa: E402 - it names SamplesTab
