"""Live charts of power, memory and throughput (pyqtgraph).

Samples go into numpy ring buffers as they arrive; the plots are redrawn by a ~10 Hz timer
on the GUI thread, never per sample, so a fast sensor cannot flood the event loop (the
pattern of pyqtgraph's scrolling-plot examples). The x axis is seconds before now; a few
minutes of history are kept. Pausing freezes the drawing while buffers keep filling, so
nothing is lost when drawing resumes.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer, Slot
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from phytoscope.types import TelemetrySample

HISTORY_S = 300.0
REDRAW_MS = 100


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
    """

    def __init__(
        self,
        parent: QWidget | None = None,
        capacity: int = 36000,
        history_s: float = HISTORY_S,
        horizontal: bool = False,
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

        self.title = QLabel("Power: waiting for the first reading…")
        self.pause_button = QPushButton("Pause")
        self.pause_button.setCheckable(True)
        self.pause_button.setToolTip("Freeze the charts; readings are still recorded")
        self.pause_button.toggled.connect(self.set_paused)
        head = QHBoxLayout()
        head.addWidget(self.title, 1)
        head.addWidget(self.pause_button)

        self.power_plot = self._plot("Power", "W")
        self.memory_plot = self._plot("Memory", "MiB")
        self.throughput_plot = self._plot("Throughput", "organisms/s")
        self.power_curve = self.power_plot.plot(pen=pg.mkPen("#d9480f", width=2))
        self.rss_curve = self.memory_plot.plot(
            pen=pg.mkPen("#1c7ed6", width=2), name="phytoscope RSS"
        )
        self.ram_curve = self.memory_plot.plot(
            pen=pg.mkPen("#868e96", width=1), name="system RAM used"
        )
        self.throughput_curve = self.throughput_plot.plot(
            pen=pg.mkPen("#2b8a3e", width=2), fillLevel=0, brush=pg.mkBrush(43, 138, 62, 50)
        )
        legend = self.memory_plot.addLegend(offset=(-5, 5))
        legend.setLabelTextSize("8pt")
        legend.addItem(self.rss_curve, "phytoscope RSS")
        legend.addItem(self.ram_curve, "system RAM used")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(head)
        plots = QHBoxLayout() if horizontal else QVBoxLayout()
        for plot in (self.power_plot, self.memory_plot, self.throughput_plot):
            plots.addWidget(plot, 1)
        layout.addLayout(plots, 1)

        self.timer = QTimer(self)
        self.timer.setInterval(REDRAW_MS)
        self.timer.timeout.connect(self.redraw)
        self.timer.start()

    def _plot(self, title: str, unit: str) -> pg.PlotWidget:
        plot = pg.PlotWidget()
        plot.setBackground("w")
        plot.setTitle(title, size="9pt", color="#222")
        plot.setLabel("left", unit)
        plot.setLabel("bottom", "s")
        plot.showGrid(x=True, y=True, alpha=0.25)
        plot.setXRange(-self.history_s, 0, padding=0)
        plot.setMouseEnabled(x=False, y=False)
        plot.hideButtons()
        plot.setMinimumHeight(90)
        plot.setMinimumWidth(120)
        return plot

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
            text = f"Power: <b>estimated</b> ({self._power_source}) — not a measurement"
        else:
            text = f"Power: measured ({self._power_source})"
        self.title.setText(text)
        self.power_plot.setTitle(
            "Power (estimated)" if self._estimated else "Power (measured)",
            size="9pt",
            color="#c92a2a" if self._estimated else "#222",
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

    def stop(self) -> None:
        self.timer.stop()
