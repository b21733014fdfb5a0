"""Benchmark page: one click runs ``phytoscope bench`` (the same core function) in a worker
thread, shows progress and the phase timeline live, then the results table and plots."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from phytoscope.gui.workers import Task, bench_work

log = logging.getLogger(__name__)

PHASE_COLOURS = {
    "idle": "#adb5bd",
    "load": "#4dabf7",
    "first_batch": "#9775fa",
    "warmup": "#ffa94d",
    "measured": "#40c057",
    "measured_e2e": "#12b886",
    "end": "#868e96",
}
RESULT_COLUMNS = (
    "Variant",
    "Status",
    "Top-1",
    "FPS (best batch)",
    "FPS batch 1",
    "End-to-end FPS",
    "Latency p50 / p95 / p99 (ms, batch 1)",
    "Peak RSS",
    "Power whole / inference (W)",
    "FPS/W",
    "J per image",
)


def _fmt(value: Any, spec: str = ".3g", suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "—"
    return f"{value:{spec}}{suffix}"


class BenchPage(QWidget):
    """Runs :func:`phytoscope.bench.runner.run_benchmark`; ``overrides`` are passed to its
    config (tests use a tiny model and a tiny time budget)."""

    finished = Signal(object)  # BenchReport, or None when it failed / was cancelled

    def __init__(
        self,
        parent: QWidget | None = None,
        overrides: dict[str, Any] | None = None,
        out_root: Path | None = None,
    ):
        super().__init__(parent)
        from phytoscope.bench import runner as bench

        self._bench = bench
        self.overrides = dict(overrides or {})
        self.out_root = out_root
        self._task: Task | None = None
        self._t0 = 0.0
        self._events: list[tuple[float, str, str]] = []  # (t, variant, phase)
        self.report: Any = None
        self.last_message = ""

        self.checks: dict[str, QCheckBox] = {}
        choose = QGroupBox("Variants")
        grid = QGridLayout(choose)
        for i, (key, variant) in enumerate(bench.VARIANTS.items()):
            box = QCheckBox(variant.label)
            box.setChecked(key in ("tf_base", "ort_fp32", "ort_int8"))
            self.checks[key] = box
            grid.addWidget(box, i // 3, i % 3)
        self.quick = QCheckBox("Quick (fewer, shorter rounds; 100 images)")
        self.quick.setChecked(True)
        grid.addWidget(self.quick, 2, 0, 1, 3)
        self.run_button = QPushButton("Run benchmark")
        self.run_button.setDefault(True)
        self.run_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.progress.setFormat("%v / %m variants")
        self.status = QLabel(
            "Each variant runs in a fresh process; the idle baseline is measured first."
        )
        self.status.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.progress, 1)

        self.timeline = pg.PlotWidget()
        self.timeline.setBackground("w")
        self.timeline.setTitle("Phase timeline (live)", size="9pt", color="#222")
        self.timeline.setLabel("bottom", "seconds since start")
        self.timeline.showGrid(x=True, alpha=0.25)
        self.timeline.setMouseEnabled(x=False, y=False)
        self.timeline.hideButtons()
        self.timeline.setMinimumHeight(150)
        self.legend = QLabel(
            "Phases: "
            + "  ".join(
                f"<span style='background:{colour}'>&nbsp;&nbsp;&nbsp;</span> {phase.replace('_', ' ')}"
                for phase, colour in PHASE_COLOURS.items()
            )
        )
        self.legend.setTextFormat(Qt.TextFormat.RichText)

        self.table = QTableWidget(0, len(RESULT_COLUMNS))
        self.table.setHorizontalHeaderLabels(RESULT_COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.setWordWrap(True)
        self.fps_plot = self._bar_plot("Throughput (images/s, best batch)")
        self.fpw_plot = self._bar_plot("FPS per watt")
        self.report_label = QLabel()
        self.report_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.report_label.setWordWrap(True)

        plots = QHBoxLayout()
        plots.addWidget(self.fps_plot)
        plots.addWidget(self.fpw_plot)
        plots_box = QWidget()
        plots_box.setLayout(plots)
        timeline_box = QWidget()
        timeline_layout = QVBoxLayout(timeline_box)
        timeline_layout.setContentsMargins(0, 0, 0, 0)
        timeline_layout.addWidget(self.timeline, 1)
        timeline_layout.addWidget(self.legend)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(timeline_box)
        split.addWidget(self.table)
        split.addWidget(plots_box)
        split.setSizes([180, 220, 260])

        layout = QVBoxLayout(self)
        layout.addWidget(choose)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addWidget(split, 1)
        layout.addWidget(self.report_label)

    def _bar_plot(self, title: str) -> pg.PlotWidget:
        plot = pg.PlotWidget()
        plot.setBackground("w")
        plot.setTitle(title, size="9pt", color="#222")
        plot.setMouseEnabled(x=False, y=False)
        plot.hideButtons()
        plot.showGrid(y=True, alpha=0.25)
        plot.setMinimumHeight(160)
        return plot

    # -- running -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._task is not None and self._task.running

    def selected_variants(self) -> tuple[str, ...]:
        return tuple(k for k, box in self.checks.items() if box.isChecked())

    def make_config(self) -> Any:
        from phytoscope.config import data_dir

        root = self.out_root or data_dir() / "bench"
        out = root / datetime.now().strftime("%Y%m%d-%H%M%S")
        options: dict[str, Any] = {
            "variants": self.selected_variants(),
            "command_line": "phytoscope gui (benchmark page)",
        }
        options.update(self.overrides)
        if self.quick.isChecked():
            return self._bench.BenchConfig.quick_settings(out, **options)
        return self._bench.BenchConfig(out_dir=out, **options)

    def start(self) -> None:
        if self.running:
            return
        try:
            config = self.make_config().validate()
        except Exception as exc:  # noqa: BLE001 - a bad choice is a message
            self._set_status(f"cannot start: {exc}", error=True)
            return
        self.report = None
        self._events = []
        self._t0 = time.monotonic()
        self.timeline.clear()
        self.table.setRowCount(0)
        self.fps_plot.clear()
        self.fpw_plot.clear()
        self.progress.setRange(0, len(config.variants))
        self.progress.setValue(0)
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self._set_status(f"starting: results go to {config.out_dir}")
        self._task = Task(
            bench_work(self._bench.run_benchmark, config),
            what="benchmark",
            min_interval=0.0,  # phase events are few and each one is drawn
            name="phytoscope-bench",
        )
        self._task.progress.connect(self._on_progress)
        self._task.result.connect(self._on_finished)
        self._task.failed.connect(self._on_failed)
        self._task.start()

    def cancel(self) -> None:
        if self._task is not None and self.running:
            self._task.cancel()
            self.cancel_button.setEnabled(False)
            self._set_status("cancelling: stopping the running variant…")

    def stop(self) -> None:
        """Cancel and join the benchmark thread (the window is closing)."""
        if self._task is not None:
            self._task.join(cancel=True)

    def _join(self) -> None:
        if self._task is not None:
            self._task.join()
            self._task = None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def _set_status(self, text: str, error: bool = False) -> None:
        self.last_message = text
        self.status.setText(f"<span style='color:#c92a2a'>{text}</span>" if error else text)

    # -- progress and results ------------------------------------------------------------

    def _on_progress(self, p: Any) -> None:
        t = time.monotonic() - self._t0
        variant = p.variant or ("idle" if p.phase == "idle" else "")
        if p.phase in PHASE_COLOURS or p.phase in ("unavailable", "failed"):
            self._events.append((t, variant, p.phase))
        label = self._bench.VARIANTS[p.variant].label if p.variant in self._bench.VARIANTS else ""
        title = self._bench.PHASE_TITLES.get(p.phase, p.phase.replace("_", " "))
        self._set_status(
            f"{label + ': ' if label else ''}{title}{' — ' + p.message if p.message else ''}",
            error=p.phase == "failed",
        )
        done = p.index + (1 if p.phase in ("end", "unavailable", "failed") else 0)
        self.progress.setValue(min(max(done, self.progress.value()), self.progress.maximum()))
        self._draw_timeline(t)

    def _draw_timeline(self, now: float) -> None:
        """One row per variant; the run is sequential, so each phase lasts until the next
        phase mark, whichever variant it belongs to."""
        self.timeline.clear()
        rows: list[str] = []
        spans: list[tuple[str, str, float, float]] = []
        current: tuple[str, str, float] | None = None
        for t, variant, phase in self._events:
            if variant not in rows:
                rows.append(variant)
            if current is not None:
                spans.append((current[0], current[1], current[2], t))
                current = None
            if phase in PHASE_COLOURS and phase != "end":
                current = (variant, phase, t)
        if current is not None:
            spans.append((current[0], current[1], current[2], now))
        for variant, phase, t0, t1 in spans:
            y = rows.index(variant)
            self.timeline.addItem(
                pg.BarGraphItem(
                    x0=[t0],
                    x1=[max(t1, t0 + 0.02)],
                    y=[y],
                    height=0.6,
                    brush=PHASE_COLOURS.get(phase, "#ced4da"),
                    pen=None,
                )
            )
        axis = self.timeline.getAxis("left")
        axis.setTicks([[(i, v) for i, v in enumerate(rows)]])
        self.timeline.setYRange(-0.7, max(len(rows), 1) - 0.3, padding=0)
        self.timeline.setXRange(0, max(now, 1.0), padding=0.02)

    def _on_finished(self, report: Any) -> None:
        self._join()
        self.report = report
        self.progress.setValue(self.progress.maximum())
        self._draw_timeline(time.monotonic() - self._t0)
        self._show_results(report.results)
        failed = report.failed
        unavailable = [
            f"{v['key']} ({v.get('reason', '')})"
            for v in report.results.get("variants", [])
            if v.get("status") == "unavailable"
        ]
        self._set_status(
            f"done in {report.results.get('duration_s', 0):.0f} s"
            + (f"; failed: {', '.join(failed)}" if failed else "")
            + (f"; not available here: {'; '.join(unavailable)}" if unavailable else ""),
            error=bool(failed),
        )
        self.report_label.setText(
            f"Report: {report.out_dir} (results.json, summary.csv, timelines, plots)"
        )
        self.finished.emit(report)

    def _on_failed(self, message: str) -> None:
        self._join()
        self._set_status(message, error=True)
        self.finished.emit(None)

    def _show_results(self, results: dict[str, Any]) -> None:
        variants = results.get("variants", [])
        self.table.setRowCount(len(variants))
        ok_rows = []
        for row, v in enumerate(variants):
            label = (
                self._bench.VARIANTS[v["key"]].label
                if v["key"] in self._bench.VARIANTS
                else v["key"]
            )
            if v.get("status") != "ok":
                status = (
                    "not available here"
                    if v.get("status") == "unavailable"
                    else str(v.get("status"))
                )
                cells = [label, status] + [""] * (len(RESULT_COLUMNS) - 2)
            else:
                ok_rows.append((label, v))
                power = v.get("power", {})
                est = " (estimated)" if power.get("estimated") else ""
                lat = (v.get("engine", {}).get("1") or {}).get("latency_ms", {})
                mem = v.get("memory", {})
                cells = [
                    label,
                    "ok",
                    _fmt((v.get("accuracy") or {}).get("top1"), ".1%"),
                    _fmt(v.get("fps"), ".1f") + f" (b{v.get('best_batch')})",
                    _fmt(v.get("fps_batch1"), ".1f"),
                    _fmt(v.get("e2e_fps"), ".1f"),
                    " / ".join(_fmt(lat.get(k), ".2f") for k in ("p50", "p95", "p99")),
                    _fmt((mem.get("peak_rss_bytes") or 0) / 2**20, ".0f", " MiB")
                    + f" ({_fmt(mem.get('peak_rss_pct_ram'), '.1f')} %)",
                    f"{_fmt(power.get('mean_w_whole_run'), '.1f')} / {_fmt(power.get('mean_w_inference'), '.1f')}{est}",
                    _fmt(power.get("fps_per_w_inference"), ".2f") + est,
                    _fmt(power.get("energy_per_image_e2e_j"), ".3g") + est,
                ]
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if v.get("reason"):
                    item.setToolTip(str(v["reason"]))
                if v.get("status") == "failed":
                    item.setForeground(QColor("#c92a2a"))
                elif v.get("status") == "unavailable":
                    item.setForeground(QColor("#868e96"))
                self.table.setItem(row, column, item)
        self.table.resizeRowsToContents()
        self._bars(self.fps_plot, [(label, v.get("fps")) for label, v in ok_rows])
        estimated = any((v.get("power") or {}).get("estimated") for _, v in ok_rows)
        self.fpw_plot.setTitle(
            "FPS per watt" + (" (power estimated, not measured)" if estimated else ""),
            size="9pt",
            color="#c92a2a" if estimated else "#222",
        )
        self._bars(
            self.fpw_plot,
            [(label, (v.get("power") or {}).get("fps_per_w_inference")) for label, v in ok_rows],
        )

    @staticmethod
    def _bars(plot: pg.PlotWidget, values: list[tuple[str, float | None]]) -> None:
        plot.clear()
        present = [(k, float(v)) for k, v in values if v is not None]
        if not present:
            return
        x = np.arange(len(present))
        heights = [v for _, v in present]
        plot.addItem(pg.BarGraphItem(x=x, height=heights, width=0.5, brush="#1c7ed6"))
        for i, v in enumerate(heights):
            label = pg.TextItem(
                f"{v:,.0f}" if v >= 100 else f"{v:.3g}", color="#222", anchor=(0.5, 1.0)
            )
            label.setPos(i, v)
            plot.addItem(label)
        plot.getAxis("bottom").setTicks([[(i, k) for i, (k, _) in enumerate(present)]])
        plot.setXRange(-0.7, len(present) - 0.3, padding=0)
        plot.setYRange(0, max(heights) * 1.18 or 1.0, padding=0)


RunnerFactory = Callable[..., Any]
