"""Benchmark page: one click runs ``phytoscope bench`` (the same core function) in a worker
thread, shows its progress and phase timeline live, then the results.

Before a run the page says what will be measured and how (phases, rounds, engine-only vs
end-to-end) instead of empty plots; variants that cannot run here are disabled with their
reason. After a run it shows the summary table the command line and the report print
(:func:`phytoscope.bench.summary.summary_table`), the warnings the report gives (machine not
idle, rounds that disagree, power estimated) in a banner, and charts whose bars carry the
spread of the measured rounds; estimated energy is drawn hatched and titled as such.
"""

from __future__ import annotations

import html
import logging
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from phytoscope.bench import stages
from phytoscope.bench.config import VARIANTS, BenchConfig
from phytoscope.bench.notes import method, notices
from phytoscope.bench.results import BenchResult, VariantResult
from phytoscope.bench.runner import BenchReport, Planned, plan_variants, run_benchmark
from phytoscope.bench.summary import summary_table
from phytoscope.bench.table import ESTIMATED_TIP
from phytoscope.gui.bench_charts import BarChart, FittedTable, Series, Timeline
from phytoscope.gui.shell import Task
from phytoscope.progress import Progress, ProgressEvent

log = logging.getLogger(__name__)

BANNER_STYLE = (
    "QLabel{background:#fff3bf;color:#212529;border:1px solid #f59f00;"
    "border-left:6px solid #f59f00;padding:6px;}"
)
DEFAULT_CHOICE = ("tf_base", "ort_fp32", "ort_int8")


def bench_work(config: BenchConfig) -> Any:
    """The benchmark as work for the one worker shell: :func:`run_benchmark`, the function
    ``phytoscope bench`` runs, with the task's progress and cancel token."""

    def work(progress: Progress) -> BenchReport:
        return run_benchmark(config, progress)

    return work


def _short(label: str) -> str:
    return label.replace(" (Keras)", "").replace("ONNX Runtime", "ORT")


def _range(spread: Any, low: str, high: str) -> tuple[float, float] | None:
    a, b = getattr(spread, low), getattr(spread, high)
    return None if a is None or b is None else (a, b)


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
        self.overrides = dict(overrides or {})
        self.out_root = out_root
        self._task: Task | None = None
        self._plan_task: Task | None = None
        self.plan: dict[str, Planned] = {}
        self._t0 = 0.0
        self._events: list[tuple[float, str, str]] = []  # (t, variant, phase)
        self._finished_variants: set[str] = set()
        self.report: BenchReport | None = None
        self.last_message = ""

        layout = QVBoxLayout(self)
        layout.addWidget(self._build_choices())
        layout.addLayout(self._build_buttons())
        self.status = QLabel("Choose the variants and press Run benchmark.")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.banner = QLabel()
        self.banner.setWordWrap(True)
        self.banner.setTextFormat(Qt.TextFormat.RichText)
        self.banner.setStyleSheet(BANNER_STYLE)
        self.banner.hide()
        layout.addWidget(self.banner)
        self.stack = QStackedWidget()
        self.method = QLabel()
        self.method.setWordWrap(True)
        self.method.setTextFormat(Qt.TextFormat.RichText)
        self.method.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.stack.addWidget(self.method)
        self.stack.addWidget(self._build_results())
        layout.addWidget(self.stack, 1)
        self.report_label = QLabel()
        self.report_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        self.report_label.setOpenExternalLinks(True)
        self.report_label.setWordWrap(True)
        layout.addWidget(self.report_label)
        self.update_method()

    # -- building ------------------------------------------------------------------------

    def _build_choices(self) -> QGroupBox:
        self.checks: dict[str, QCheckBox] = {}
        choose = QGroupBox("Variants")
        grid = QGridLayout(choose)
        for i, (key, variant) in enumerate(VARIANTS.items()):
            box = QCheckBox(variant.label)
            box.setChecked(key in DEFAULT_CHOICE)
            box.setToolTip("checking whether it can run here…")
            box.toggled.connect(self.update_method)
            self.checks[key] = box
            grid.addWidget(box, i // 3, i % 3)
        self.unavailable = QLabel()
        self.unavailable.setWordWrap(True)
        self.unavailable.setStyleSheet("color:#495057")
        self.unavailable.hide()
        grid.addWidget(self.unavailable, 2, 0, 1, 3)
        self.quick = QCheckBox("Quick: 3 rounds of 1 s per batch size (1, 16), 100 images")
        self.quick.setChecked(True)
        self.quick.toggled.connect(self.update_method)
        grid.addWidget(self.quick, 3, 0, 1, 3)
        return choose

    def _build_buttons(self) -> QHBoxLayout:
        self.run_button = QPushButton("Run benchmark")
        self.run_button.setDefault(True)
        self.run_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.progress.setFormat("%v / %m variants")
        self.progress.setRange(0, len(DEFAULT_CHOICE))
        self.progress.setValue(0)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.progress, 1)
        return buttons

    def _build_results(self) -> QScrollArea:
        """Timeline, table and charts one under the other, each at a readable height; the
        area scrolls on a small screen (1366×768) rather than squeezing them."""
        self.timeline = Timeline()
        self.timeline.setFixedHeight(160)
        self.table = FittedTable()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.throughput_chart = BarChart("Throughput (images/s)")
        self.energy_chart = BarChart("Energy per image (mJ)")
        charts = QWidget()
        row = QHBoxLayout(charts)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.throughput_chart)
        row.addWidget(self.energy_chart)
        self.charts_placeholder = QLabel("The charts appear here when the run has finished.")
        self.charts_placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.charts = QStackedWidget()
        self.charts.addWidget(self.charts_placeholder)
        self.charts.addWidget(charts)
        self.charts.setFixedHeight(320)
        content = QWidget()
        column = QVBoxLayout(content)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.timeline)
        column.addWidget(self.table)
        column.addWidget(self.charts)
        column.addStretch(1)
        self.results_area = QScrollArea()
        self.results_area.setWidgetResizable(True)
        self.results_area.setFrameShape(QFrame.Shape.NoFrame)
        self.results_area.setWidget(content)
        return self.results_area

    # -- before a run --------------------------------------------------------------------

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        if self._plan_task is None:
            self.check_variants()

    def check_variants(self) -> None:
        """Find which variants can run here, off the GUI thread (it may import runtimes
        and probe the GPU); unavailable ones are then disabled with their reason."""
        model = self.overrides.get("model")
        self._plan_task = Task(
            lambda _progress: plan_variants(Path(model) if model else None),
            what="checking the variants",
            name="phytoscope-bench-plan",
        )
        self._plan_task.result.connect(self._on_plan)
        self._plan_task.failed.connect(self._on_plan_failed)
        self._plan_task.start()

    def _on_plan(self, plan: list[Planned]) -> None:
        self.plan = {p.variant.key: p for p in plan}
        for key, planned in self.plan.items():
            box = self.checks[key]
            box.blockSignals(True)
            if planned.available:
                box.setEnabled(True)
                box.setText(planned.variant.label)
                box.setToolTip(f"runs {planned.card.label}")
            else:
                reason = planned.reason or ""
                box.setChecked(False)
                box.setEnabled(False)
                box.setText(f"{planned.variant.label} (not available here)")
                box.setToolTip(reason)
            box.blockSignals(False)
        missing = [p for p in plan if not p.available]
        self.unavailable.setText(
            "Not available here: "
            + "; ".join(
                f"{p.variant.label}: {html.escape((p.reason or '').split(';')[0])}" for p in missing
            )
            + " (hover a variant for what to install)."
        )
        self.unavailable.setVisible(bool(missing))
        self.update_method()

    def _on_plan_failed(self, message: str) -> None:
        self._set_status(f"could not check which variants run here ({message})", error=True)

    def update_method(self) -> None:
        """The method text for the current choice (shown until a run starts)."""
        config = self.make_config(stamp=False)
        if not self.running:
            self.progress.setRange(0, max(1, len(config.variants)))
        paragraphs = "".join(f"<p>{html.escape(p)}</p>" for p in method(config))
        self.method.setText(
            "<h3>What the benchmark measures</h3>"
            + paragraphs
            + f"<p>Results (report, CSV, JSON, plots) go to {html.escape(str(config.out_dir))}.</p>"
        )

    # -- running -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._task is not None and self._task.running

    def selected_variants(self) -> tuple[str, ...]:
        return tuple(k for k, box in self.checks.items() if box.isChecked())

    def make_config(self, stamp: bool = True) -> BenchConfig:
        from phytoscope.config import data_dir

        root = self.out_root or data_dir() / "bench"
        out = root / (datetime.now().strftime("%Y%m%d-%H%M%S") if stamp else "<time of the run>")
        options: dict[str, Any] = {
            "variants": self.selected_variants(),
            "command_line": "phytoscope gui (benchmark page)",
        }
        options.update(self.overrides)
        if self.quick.isChecked():
            return BenchConfig.quick_settings(out, **options)
        return BenchConfig(out_dir=out, **options)

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
        self._finished_variants = set()
        self._t0 = time.monotonic()
        self.stack.setCurrentIndex(1)
        self.charts.setCurrentIndex(0)
        self.banner.hide()
        self.report_label.clear()
        self.table.setRowCount(0)
        self.progress.setRange(0, len(config.variants))
        self.progress.setValue(0)
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self._set_status(f"starting: results go to {config.out_dir}")
        # every event is delivered (min_interval 0): the phase timeline needs them all
        self._task = Task(
            bench_work(config), "benchmark", min_interval=0.0, name="phytoscope-bench"
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
            self._task = None
        if self._plan_task is not None:
            self._plan_task.join()

    def _join(self) -> None:
        if self._task is not None:
            self._task.join()
            self._task = None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def _set_status(self, text: str, error: bool = False) -> None:
        self.last_message = text
        self.status.setText(
            f"<span style='color:#c92a2a'>{html.escape(text)}</span>"
            if error
            else html.escape(text)
        )

    # -- progress and results ------------------------------------------------------------

    def _on_progress(self, event: ProgressEvent) -> None:
        step = stages.read(event)
        if step is None:
            return
        t = time.monotonic() - self._t0
        variant = step.variant or ""
        last = next((p for _, v, p in reversed(self._events) if v == variant), None)
        if step.phase != last and step.phase not in ("report", "done"):
            self._events.append((t, variant, step.phase))
        label = VARIANTS[step.variant].label if step.variant in VARIANTS else event.stage
        self._set_status(f"{label}: {step.message}", error=step.phase == "failed")
        if step.finished and step.variant in VARIANTS:
            self._finished_variants.add(step.variant)
        self.progress.setValue(min(len(self._finished_variants), self.progress.maximum()))
        self.timeline.draw(self._events, t)

    def _on_finished(self, report: BenchReport) -> None:
        self._join()
        self.report = report
        self.progress.setValue(self.progress.maximum())
        self.timeline.draw(self._events, time.monotonic() - self._t0)
        result = report.result
        self.show_result(result)
        failed = report.failed
        self._set_status(
            f"done in {result.duration_s:.0f} s"
            + (f"; failed: {', '.join(failed)}" if failed else ""),
            error=bool(failed),
        )
        page = report.files.get("report_html")
        self.report_label.setText(
            f"Report: <a href='{Path(page).as_uri()}'>{html.escape(str(page))}</a> "
            f"(with results.json, summary.csv, timelines and plots in {html.escape(str(report.out_dir))})"
            if page
            else f"Report: {html.escape(str(report.out_dir))}"
        )
        self.finished.emit(report)

    def _on_failed(self, message: str) -> None:
        self._join()
        self._set_status(message, error=True)
        self.finished.emit(None)

    def show_result(self, result: BenchResult) -> None:
        """Table, warnings and charts of a finished run (also for a loaded results.json)."""
        self.stack.setCurrentIndex(1)
        self.table.show_table(summary_table(result))
        self.timeline.setVisible(bool(self._events))  # no empty plot for a loaded result
        warnings = notices(result)
        self.banner.setText(
            "<br>".join(f"<b>{html.escape(n.title)}</b>{html.escape(n.text)}" for n in warnings)
        )
        self.banner.setVisible(bool(warnings))
        ran = result.ran
        if not ran:
            self.charts_placeholder.setText("No variant ran here: nothing to chart.")
            self.charts.setCurrentIndex(0)
            return
        self._show_throughput(ran, result.settings.rounds)
        self._show_energy(ran, result.estimated)
        self.charts.setCurrentIndex(1)

    def _show_throughput(self, ran: list[VariantResult], rounds: int) -> None:
        best = [v.best.throughput_fps if v.best else None for v in ran]
        one = [v.engine[1].throughput_fps if 1 in v.engine else None for v in ran]
        self.throughput_chart.set_title("Throughput (images/s; higher is faster)")
        self.throughput_chart.show_bars(
            [_short(v.label) for v in ran],
            [
                Series(
                    "engine-only, best batch",
                    "#1c7ed6",
                    [v.fps for v in ran],
                    [_range(s, "q1", "q3") if s else None for s in best],
                    [_range(s, "min", "max") if s else None for s in best],
                ),
                Series(
                    "engine-only, batch 1",
                    "#74c0fc",
                    [v.fps_batch1 for v in ran],
                    [_range(s, "q1", "q3") if s else None for s in one],
                    [_range(s, "min", "max") if s else None for s in one],
                ),
                Series("end-to-end, best batch (one pass)", "#f08c00", [v.e2e_fps for v in ran]),
            ],
            f"Bars: medians of {rounds} rounds; thick line: interquartile range; whiskers: "
            "min–max. End-to-end (decode + pre-processing + inference) is one pass: no spread.",
        )

    def _show_energy(self, ran: list[VariantResult], estimated: bool) -> None:
        share = all(v.power is not None and v.power.process_share for v in ran)

        def mj(v: VariantResult, name: str) -> float | None:
            figures = (v.power.process_share if share else v.power) if v.power else None
            value = getattr(figures, name, None)
            return None if value is None else value * 1e3

        whose = "this process's CPU share" if share else "machine"
        title = f"Energy per image (mJ, {whose}; lower is better)"
        if estimated:
            title = f"ESTIMATED energy per image (mJ, {whose}) — not a measurement"
        self.energy_chart.set_title(title, warn=estimated)
        note = (
            "Hatched: " + ESTIMATED_TIP
            if estimated
            else "Measured by the power sensor, over each phase."
        )
        self.energy_chart.show_bars(
            [_short(v.label) for v in ran],
            [
                Series(
                    "engine-only",
                    "#1c7ed6",
                    [mj(v, "energy_per_image_engine_j") for v in ran],
                    hatched=estimated,
                ),
                Series(
                    "end-to-end",
                    "#f08c00",
                    [mj(v, "energy_per_image_e2e_j") for v in ran],
                    hatched=estimated,
                ),
            ],
            note,
        )
        if not self.energy_chart.series:
            self.energy_chart.set_title("Energy per image: no power figure on this machine")


__all__ = ["BenchPage", "bench_work"]
