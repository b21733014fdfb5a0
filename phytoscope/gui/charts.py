"""Live charts of power, memory and throughput (pyqtgraph), made to live in a dock.

Samples go into numpy ring buffers as they arrive; the plots are redrawn by a ~10 Hz timer
on the GUI thread, never per sample, so a fast sensor cannot flood the event loop (the
pattern of pyqtgraph's scrolling-plot examples). The x axis is seconds before now; a few
minutes of history are kept. Pausing freezes the drawing while buffers keep filling, so
nothing is lost when drawing resumes.

The widget fits a collapsible dock (:func:`charts_dock`): the plots sit side by side when
the dock is wide and stacked when it is tall; legends are written into the plot titles, so
none covers a curve; and a one-line summary of the latest readings (:attr:`summary`) stays
readable, and is emitted for the status bar, when the dock is closed.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QFont, QResizeEvent
from PySide6.QtWidgets import (
    QBoxLayout,
    QDockWidget,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from phytoscope.types import TelemetrySample

HISTORY_S = 300.0
REDRAW_MS = 100
POWER_COLOUR, RSS_COLOUR, RAM_COLOUR, RATE_COLOUR = "#d9480f", "#1c7ed6", "#868e96", "#2b8a3e"


class RingBuffer:
    """Fixed-capacity (t, value...) store; ``view()`` returns the rows in time order."""

    def __init__(self, capacity: int, columns: int):
        self.capacity = int(capacity)
        self._data = np.full((self.capacity, columns), np.nan, dtype=np.float64)
        self._next = 0
        self._count = 0

    def append(self, row: tuple[float, ...] | list[float]) -> None:
        self._data[self._next] = row
        self._next = (self._next + 1) % self.capacity
        self._count = min(self._count + 1, self.capacity)

    def __len__(self) -> int:
        return self._count

    def view(self) -> np.ndarray:
        if self._count < self.capacity:
            return self._data[: self._count]
        return np.concatenate([self._data[self._next :], self._data[: self._next]])

    def clear(self) -> None:
        self._data[:] = np.nan
        self._next = self._count = 0


class LiveCharts(QWidget):
    """Power (W, "estimated" when it is), memory (RSS and system RAM, MiB) and throughput.

    Feed it with :meth:`add_sample` (telemetry) and :meth:`add_classified` (organisms done).
    ``horizontal`` fixes the plots side by side (True) or stacked (False); None (default)
    follows the widget's shape.
    """

    summary_changed = Signal(str)

    def __init__(
        self,
        parent: QWidget | None = None,
        capacity: int = 36000,
        history_s: float = HISTORY_S,
        horizontal: bool | None = None,
    ):
        super().__init__(parent)
        self.history_s = history_s
        self.power = RingBuffer(capacity, 2)  # t, W
        self.memory = RingBuffer(capacity, 3)  # t, rss MiB, system used MiB
        self.throughput = RingBuffer(capacity, 2)  # t, organisms/s
        self._classified_since = 0
        self._last_t: float | None = None
        self._estimated: bool | None = None
        self._power_source = ""
        self._dirty = False
        self.redraws = 0
        """how many times the plots were redrawn (tests check the timer drives them)"""
        self.paused = False
        self.horizontal = horizontal

        self.title = QLabel("Power: waiting for the first reading…")
        self.title.setWordWrap(True)
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.summary.setStyleSheet("color: #343a40")
        self.pause_button = QPushButton("Pause")
        self.pause_button.setCheckable(True)
        self.pause_button.setToolTip("Freeze the charts; readings are still recorded")
        self.pause_button.toggled.connect(self.set_paused)
        # one line in a wide dock (each label wraps in a narrow one)
        head = QHBoxLayout()
        head.addWidget(self.title, 1)
        head.addWidget(self.summary, 1)
        head.addWidget(self.pause_button, 0, Qt.AlignmentFlag.AlignTop)

        self.power_plot = self._plot("Power (W)")
        self.memory_plot = self._plot(
            "Memory (MiB): "
            + _key(RSS_COLOUR, "phytoscope")
            + " "
            + _key(RAM_COLOUR, "system RAM used")
        )
        self.throughput_plot = self._plot("Organisms/s · x axis: seconds ago")
        self.power_curve = self.power_plot.plot(pen=pg.mkPen(POWER_COLOUR, width=2))
        self.rss_curve = self.memory_plot.plot(pen=pg.mkPen(RSS_COLOUR, width=2))
        self.ram_curve = self.memory_plot.plot(pen=pg.mkPen(RAM_COLOUR, width=1))
        self.throughput_curve = self.throughput_plot.plot(
            pen=pg.mkPen(RATE_COLOUR, width=2), fillLevel=0, brush=pg.mkBrush(43, 138, 62, 50)
        )

        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.setSpacing(2)
        layout.addLayout(head)
        self.plots = QBoxLayout(QBoxLayout.Direction.LeftToRight)
        self.plots.setSpacing(2)
        for plot in (self.power_plot, self.memory_plot, self.throughput_plot):
            self.plots.addWidget(plot, 1)
        layout.addLayout(self.plots, 1)
        self._arrange(self.width(), self.height())

        self.timer = QTimer(self)
        self.timer.setInterval(REDRAW_MS)
        self.timer.timeout.connect(self.redraw)
        self.timer.start()

    def _plot(self, title: str) -> pg.PlotWidget:
        plot = pg.PlotWidget()
        plot.setBackground("w")
        plot.setTitle(title, size="8pt", color="#222")
        # a short strip: small tick labels, and few of them, so none overlaps another
        small = QFont()
        small.setPointSizeF(7.5)
        for side in ("left", "bottom"):
            axis = plot.getAxis(side)
            axis.setStyle(
                tickFont=small, maxTickLevel=0, tickTextOffset=2, hideOverlappingLabels=True
            )
        plot.getAxis("left").setWidth(36)
        plot.getAxis("bottom").setHeight(18)
        plot.showGrid(x=True, y=True, alpha=0.25)
        plot.setXRange(-self.history_s, 0, padding=0)
        plot.setMouseEnabled(x=False, y=False)
        plot.hideButtons()
        plot.setMinimumHeight(60)
        plot.setMinimumWidth(110)
        plot.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        return plot

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        # a dock's first size: a strip of about a sixth of a 768-pixel screen, so the
        # analysis above keeps its room on a laptop (#17: the charts took a third)
        return QSize(900, 130)

    def _arrange(self, width: int, height: int) -> None:
        """Side by side when wide (a dock under the analysis), stacked when tall."""
        wide = self.horizontal if self.horizontal is not None else width >= 1.6 * max(height, 1)
        direction = QBoxLayout.Direction.LeftToRight if wide else QBoxLayout.Direction.TopToBottom
        if self.plots.direction() != direction:
            self.plots.setDirection(direction)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._arrange(event.size().width(), event.size().height())

    # -- input ---------------------------------------------------------------------------

    @Slot(object)
    def add_sample(self, sample: TelemetrySample) -> None:
        t = sample.t
        if sample.power_w is not None:
            self.power.append((t, sample.power_w))
        if self._estimated != sample.estimated or self._power_source != sample.power_source:
            self._estimated, self._power_source = sample.estimated, sample.power_source
            self._update_title()
        mib = 1024.0 * 1024.0
        self.memory.append((t, sample.rss_bytes / mib, sample.ram_used_bytes / mib))
        if self._last_t is not None and t > self._last_t:
            self.throughput.append((t, self._classified_since / (t - self._last_t)))
        self._classified_since = 0
        self._last_t = t
        self._dirty = True

    def add_classified(self, n: int) -> None:
        """Organisms classified since the last call (throughput is per telemetry interval)."""
        self._classified_since += n

    def set_power_label(self, label: str) -> None:
        self._power_source = label
        self._update_title()

    def _update_title(self) -> None:
        if self._estimated:
            source = self._power_source.removeprefix("estimated: ")  # said once is enough
            text = f"Power: <b>estimated</b> ({source}) — not a measurement"
        else:
            text = f"Power: measured ({self._power_source})"
        self.title.setText(text)
        self.power_plot.setTitle(
            "Power (W, estimated)" if self._estimated else "Power (W, measured)",
            size="8pt",
            color="#a61e1e" if self._estimated else "#222",
        )

    @property
    def estimated(self) -> bool | None:
        return self._estimated

    # -- drawing -------------------------------------------------------------------------

    @Slot(bool)
    def set_paused(self, paused: bool) -> None:
        self.paused = paused
        self.pause_button.setText("Resume" if paused else "Pause")
        if not paused:
            self._dirty = True

    @Slot()
    def redraw(self) -> None:
        if self.paused or not self._dirty:
            return
        self._dirty = False
        now = max((b.view()[-1, 0] for b in (self.power, self.memory) if len(b)), default=0.0)
        start = min((b.view()[0, 0] for b in (self.power, self.memory) if len(b)), default=now)
        # show what there is, growing to the full history: a young run is not a dot at the edge
        span = min(self.history_s, max(30.0, (now - start) * 1.05))
        for plot in (self.power_plot, self.memory_plot, self.throughput_plot):
            plot.setXRange(-span, 0, padding=0)
        for buffer, curves in (
            (self.power, (self.power_curve,)),
            (self.memory, (self.rss_curve, self.ram_curve)),
            (self.throughput, (self.throughput_curve,)),
        ):
            data = buffer.view()
            if len(data) == 0:
                continue
            keep = data[:, 0] >= now - self.history_s
            x = data[keep, 0] - now
            top = 0.0
            for column, curve in enumerate(curves, start=1):
                y = data[keep, column]
                curve.setData(x, y)
                if np.isfinite(y).any():
                    top = max(top, float(np.nanmax(y)))
            plot = curves[0].getViewBox()
            if plot is not None:  # from zero: a flat 15 W must not look like noise
                plot.setYRange(0, top * 1.15 if top > 0 else 1.0, padding=0)
        self.redraws += 1
        self._update_summary()

    def _update_summary(self) -> None:
        parts = []
        if len(self.power):
            watts = self.power.view()[-1, 1]
            parts.append(f"{watts:.1f} W" + (" (estimated)" if self._estimated else ""))
        if len(self.memory):
            rss = self.memory.view()[-1, 1]
            parts.append(f"phytoscope {rss:,.0f} MiB")
        if len(self.throughput):
            parts.append(f"{self.throughput.view()[-1, 1]:.1f} organisms/s")
        text = " · ".join(parts)
        if text != self.summary.text():
            self.summary.setText(text)
            self.summary_changed.emit(text)

    def stop(self) -> None:
        self.timer.stop()


def _key(colour: str, text: str) -> str:
    """A legend entry written into a plot title: it can never cover a curve."""
    return f"<span style='color:{colour}'>━━</span>&nbsp;{text}"


def charts_dock(charts: LiveCharts, parent: QWidget | None = None) -> QDockWidget:
    """``charts`` in a dock the window can put under or beside the analysis; closing it
    (or its menu action, ``dock.toggleViewAction()``) hides it, one click brings it back."""
    dock = QDockWidget("Power, memory and throughput", parent)
    dock.setObjectName("charts-dock")  # saveState/restoreState remember where it was
    dock.setWidget(charts)
    dock.setFeatures(
        QDockWidget.DockWidgetFeature.DockWidgetClosable
        | QDockWidget.DockWidgetFeature.DockWidgetMovable
        | QDockWidget.DockWidgetFeature.DockWidgetFloatable
    )
    dock.toggleViewAction().setText("Power and memory charts")
    dock.toggleViewAction().setToolTip("Show or hide the live power, memory and throughput charts")
    return dock
