"""The Benchmark page's views: the live phase timeline, bar charts that show spread, and
the shared results table model rendered as a Qt table.

Bars are medians; a thick line over a bar is the interquartile range of the measured
rounds and thin whiskers their min–max, so a reader sees at once how much two runs of the
same variant can differ. Estimated figures are drawn hatched in grey and their title says
why. Legends sit under the plot as text, never over the bars.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor, QFont, QResizeEvent
from PySide6.QtWidgets import (
    QLabel,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from phytoscope.bench.table import Table

PHASE_COLOURS = {
    "idle": "#adb5bd",
    "load": "#4dabf7",
    "first_batch": "#9775fa",
    "warmup": "#ffa94d",
    "measured": "#40c057",
    "measured_e2e": "#12b886",
    "end": "#868e96",
}
PHASE_NAMES = {
    "idle": "idle baseline",
    "load": "1 load",
    "first_batch": "2 first batch",
    "warmup": "3 warm-up",
    "measured": "4 engine-only rounds",
    "measured_e2e": "4 end-to-end pass",
}
TEXT = "#212529"
TONES = {"muted": "#495057", "error": "#c92a2a"}
ESTIMATED_COLOUR = "#495057"
"""Grey for estimated figures, still 8:1 against white (readable, visibly set apart)."""


def _plot(title: str) -> pg.PlotWidget:
    plot = pg.PlotWidget()
    plot.setBackground("w")
    plot.setTitle(title, size="9pt", color=TEXT)
    plot.setMouseEnabled(x=False, y=False)
    plot.hideButtons()
    plot.setMenuEnabled(False)
    plot.setMinimumHeight(120)
    for axis in ("left", "bottom"):
        plot.getAxis(axis).setTextPen(TEXT)
    return plot


def swatch(colour: str, hatched: bool = False) -> str:
    style = "border:1px solid #495057;" if hatched else ""
    return f"<span style='background:{colour};{style}'>&nbsp;&nbsp;&nbsp;&nbsp;</span>"


class Timeline(QWidget):
    """One row per variant; each phase a coloured span, live while the run goes on."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.plot = _plot("Phases, live (seconds since the run started)")
        self.plot.showGrid(x=True, alpha=0.25)
        legend = QLabel(
            "  ".join(f"{swatch(PHASE_COLOURS[k])} {name}" for k, name in PHASE_NAMES.items())
        )
        legend.setTextFormat(Qt.TextFormat.RichText)
        legend.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot, 1)
        layout.addWidget(legend)

    def draw(self, events: Sequence[tuple[float, str, str]], now: float) -> None:
        """``events``: (time, variant, phase); the run is sequential, so each phase lasts
        until the next phase mark, whichever variant it belongs to."""
        self.plot.clear()
        rows: list[str] = []
        spans: list[tuple[str, str, float, float]] = []
        current: tuple[str, str, float] | None = None
        for t, variant, phase in events:
            if variant not in rows:
                rows.append(variant)
            if current is not None:
                spans.append((*current, t))
                current = None
            if phase in PHASE_COLOURS and phase != "end":
                current = (variant, phase, t)
        if current is not None:
            spans.append((*current, now))
        for variant, phase, t0, t1 in spans:
            self.plot.addItem(
                pg.BarGraphItem(
                    x0=[t0],
                    x1=[max(t1, t0 + 0.02)],
                    y=[rows.index(variant)],
                    height=0.6,
                    brush=PHASE_COLOURS.get(phase, "#ced4da"),
                    pen=None,
                )
            )
        self.plot.getAxis("left").setTicks([list(enumerate(rows))])
        self.plot.setYRange(-0.7, max(len(rows), 1) - 0.3, padding=0)
        self.plot.setXRange(0, max(now, 1.0), padding=0.02)

    @property
    def items(self) -> list[object]:
        return list(self.plot.getPlotItem().items)


@dataclass(frozen=True)
class Series:
    """One bar per group: ``values`` (medians), optional ``iqr`` and ``span`` (min, max)."""

    name: str
    colour: str
    values: Sequence[float | None]
    iqr: Sequence[tuple[float, float] | None] = ()
    span: Sequence[tuple[float, float] | None] = ()
    hatched: bool = False


class BarChart(QWidget):
    """Grouped bars with their spread, a title that says what they measure, and a text
    legend under the plot."""

    def __init__(self, title: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.plot = _plot(title)
        self.plot.showGrid(y=True, alpha=0.25)
        self.legend = QLabel()
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        self.legend.setWordWrap(True)
        self.legend.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.legend)
        self.series: list[Series] = []

    def set_title(self, text: str, warn: bool = False) -> None:
        self.plot.setTitle(text, size="9pt", color="#c92a2a" if warn else TEXT)

    def show_bars(self, groups: Sequence[str], series: Sequence[Series], note: str = "") -> None:
        self.plot.clear()
        self.series = [s for s in series if any(v is not None for v in s.values)]
        n = max(1, len(self.series))
        width = 0.8 / n
        top = 0.0
        for i, s in enumerate(self.series):
            xs = np.arange(len(groups)) + (i - (n - 1) / 2) * width
            top = max(top, self._draw(s, xs, width))
        self.plot.getAxis("bottom").setTicks([list(enumerate(groups))])
        self.plot.setXRange(-0.6, len(groups) - 0.4, padding=0)
        self.plot.setYRange(0, top * 1.2 or 1.0, padding=0)
        keys = "  ".join(f"{swatch(s.colour, s.hatched)} {s.name}" for s in self.series)
        self.legend.setText(keys + (f"<br>{note}" if note else ""))

    def _draw(self, s: Series, xs: np.ndarray, width: float) -> float:
        present = [(x, v) for x, v in zip(xs, s.values, strict=True) if v is not None]
        if not present:
            return 0.0
        x, heights = [p[0] for p in present], [float(p[1]) for p in present]
        brush = (
            QBrush(QColor(s.colour), Qt.BrushStyle.BDiagPattern)
            if s.hatched
            else QBrush(QColor(s.colour))
        )
        pen = pg.mkPen(s.colour if not s.hatched else "#495057")  # cosmetic: 1 px at any scale
        self.plot.addItem(
            pg.BarGraphItem(x=x, height=heights, width=width * 0.9, brush=brush, pen=pen)
        )
        top = max(heights)
        top = max(top, self._error_bars(xs, s.span, width * 0.35, 1))
        top = max(top, self._error_bars(xs, s.iqr, 0.0, 4))
        spans = dict(zip(xs.tolist(), s.span, strict=False))
        for xi, h in zip(x, heights, strict=True):
            # above the whisker, so the figure never sits on the spread lines
            above = max(h, (spans.get(float(xi)) or (h, h))[1])
            label = pg.TextItem(_label(h), color=TEXT, anchor=(0.5, 1.0))
            label.setPos(xi, above)
            self.plot.addItem(label)
        return top

    def _error_bars(
        self,
        xs: np.ndarray,
        ranges: Sequence[tuple[float, float] | None],
        beam: float,
        thickness: int,
    ) -> float:
        present = [(x, r) for x, r in zip(xs, ranges, strict=False) if r is not None]
        if not present:
            return 0.0
        lo = np.array([r[0] for _, r in present])
        hi = np.array([r[1] for _, r in present])
        mid = (lo + hi) / 2
        self.plot.addItem(
            pg.ErrorBarItem(
                x=np.array([x for x, _ in present]),
                y=mid,
                top=hi - mid,
                bottom=mid - lo,
                beam=beam,
                pen=pg.mkPen(TEXT, width=thickness),
            )
        )
        return float(hi.max())


def fill_table(widget: QTableWidget, table: Table) -> None:
    """Render the shared table model: compact headers (full title as tooltip), estimated
    cells grey and italic with the reason as tooltip, unavailable rows muted, failures red."""
    widget.clear()
    widget.setColumnCount(len(table.columns))
    widget.setRowCount(len(table.rows))
    for i, column in enumerate(table.columns):
        head = QTableWidgetItem(column.header)
        head.setToolTip(column.tooltip or column.title)
        widget.setHorizontalHeaderItem(i, head)
    italic = QFont()
    italic.setItalic(True)
    for r, row in enumerate(table.rows):
        for c, cell in enumerate(row):
            item = QTableWidgetItem(cell.text)
            if cell.tooltip:
                item.setToolTip(cell.tooltip)
            if cell.estimated:
                item.setForeground(QColor(ESTIMATED_COLOUR))
                item.setFont(italic)
            if cell.tone in TONES:
                item.setForeground(QColor(TONES[cell.tone]))
            widget.setItem(r, c, item)
    widget.resizeColumnsToContents()
    widget.resizeRowsToContents()


class FittedTable(QTableWidget):
    """A results table whose columns fit its width where they can (long cells wrap; a
    header is never cut) and which is exactly as tall as its rows, so the page scrolls,
    not the table: every row stays visible."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(0, 0, parent)
        self.verticalHeader().setVisible(False)
        self.setWordWrap(True)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._fitted_width = -1

    def show_table(self, table: Table) -> None:
        fill_table(self, table)
        self._fitted_width = -1
        self.refit()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        if event.size().width() != self._fitted_width:
            self.refit()

    def refit(self) -> None:
        n = self.columnCount()
        if not n:
            return
        self._fitted_width = self.width()
        width = self.width() - 2 * self.frameWidth() - 2
        self.resizeColumnsToContents()
        header = self.horizontalHeader()
        heads = [header.sectionSizeFromContents(i).width() for i in range(n)]
        widths = [max(self.columnWidth(i), heads[i]) for i in range(n)]
        excess, room = sum(widths) - sum(heads), width - sum(heads)
        if sum(widths) > width and excess > 0 and room > 0:
            for i in range(n):
                self.setColumnWidth(i, heads[i] + int((widths[i] - heads[i]) * room / excess))
        self.resizeRowsToContents()
        height = header.sizeHint().height() + self.verticalHeader().length()
        if sum(self.columnWidth(i) for i in range(n)) > width:
            height += self.horizontalScrollBar().sizeHint().height()
        self.setFixedHeight(height + 2 * self.frameWidth() + 2)


def _label(v: float) -> str:
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.3g}"
