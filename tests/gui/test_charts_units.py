"""Ring buffers and the chart widget's redraw policy (timer-driven, pause keeps data)."""

from __future__ import annotations

import numpy as np

from phytoscope.gui.charts import LiveCharts, RingBuffer
from phytoscope.types import TelemetrySample


def test_ring_buffer_keeps_the_newest_rows_in_time_order():
    ring = RingBuffer(4, 2)
    assert len(ring) == 0 and ring.view().shape == (0, 2)
    for t in range(6):
        ring.append((t, t * 10))
    assert len(ring) == 4
    assert ring.view()[:, 0].tolist() == [2, 3, 4, 5]
    assert ring.view()[:, 1].tolist() == [20, 30, 40, 50]


def sample(t: float, estimated: bool = True) -> TelemetrySample:
    return TelemetrySample(
        t=t,
        wall=1e9 + t,
        power_w=5.0 + t,
        power_source="cpu-load estimate",
        estimated=estimated,
        rss_bytes=200 * 2**20,
        ram_used_bytes=2**30,
        ram_total_bytes=2**32,
        cpu_percent=10.0,
    )


def test_charts_redraw_on_their_timer_not_per_sample_and_say_estimated(qtbot):
    charts = LiveCharts()
    qtbot.addWidget(charts)
    charts.timer.stop()  # drive redraws by hand
    for i in range(50):
        charts.add_classified(3)
        charts.add_sample(sample(float(i)))
    assert charts.redraws == 0  # 50 samples, no redraw yet
    charts.redraw()
    assert charts.redraws == 1
    x, y = charts.power_curve.getData()
    assert len(x) == 50 and x[-1] == 0.0 and np.isclose(y[-1], 54.0)
    tx, ty = charts.throughput_curve.getData()
    assert np.allclose(ty, 3.0)  # 3 organisms per 1-second interval
    assert "estimated" in charts.title.text()
    assert "estimated" in charts.power_plot.plotItem.titleLabel.text
    charts.pause_button.setChecked(True)
    charts.add_sample(sample(50.0))
    charts.redraw()
    assert charts.redraws == 1 and len(charts.power) == 51  # paused: recorded, not drawn
    charts.pause_button.setChecked(False)
    charts.redraw()
    assert charts.redraws == 2 and len(charts.power_curve.getData()[0]) == 51
    charts.stop()


def test_measured_power_is_not_called_estimated(qtbot):
    charts = LiveCharts()
    qtbot.addWidget(charts)
    charts.add_sample(sample(1.0, estimated=False))
    assert "measured" in charts.title.text() and "estimated" not in charts.title.text()
    charts.stop()


def test_binding_refcount_bug_is_neutralised():
    """PySide6 6.12 on Python < 3.12 drops a reference to None on every void call; the GUI
    package makes the 3.12-immortal objects immortal here so live charts cannot abort."""
    import sys

    import phytoscope.gui  # noqa: F401 - applies the guard
    from phytoscope.gui.qtcompat import none_refcount_leak_per_call

    if sys.version_info < (3, 12) and none_refcount_leak_per_call() > 0.5:
        assert sys.getrefcount(None) > 2**39 and sys.getrefcount(True) > 2**39


def test_legends_live_in_the_titles_so_no_curve_is_covered(qtbot):
    charts = LiveCharts()
    qtbot.addWidget(charts)
    assert charts.memory_plot.plotItem.legend is None  # no box drawn over the plot area
    title = charts.memory_plot.plotItem.titleLabel.text
    assert "phytoscope" in title and "system RAM used" in title
    charts.stop()


def test_plots_sit_side_by_side_when_wide_and_stack_when_tall(qtbot):
    from PySide6.QtWidgets import QBoxLayout

    charts = LiveCharts()
    qtbot.addWidget(charts)
    charts.show()
    charts.resize(1200, 200)  # a dock under the analysis
    qtbot.waitUntil(lambda: charts.plots.direction() == QBoxLayout.Direction.LeftToRight)
    charts.resize(330, 700)  # a dock beside it
    qtbot.waitUntil(lambda: charts.plots.direction() == QBoxLayout.Direction.TopToBottom)
    # small enough for a laptop dock: a quarter of a 768-pixel screen holds it
    assert charts.minimumSizeHint().height() <= 192
    charts.stop()


def test_summary_of_the_latest_readings_for_a_closed_dock(qtbot):
    charts = LiveCharts()
    qtbot.addWidget(charts)
    charts.timer.stop()
    for i in range(3):
        charts.add_classified(3)
        charts.add_sample(sample(float(i)))
    with qtbot.waitSignal(charts.summary_changed) as changed:
        charts.redraw()
    assert changed.args[0] == "7.0 W (estimated) · phytoscope 200 MiB · 3.0 organisms/s"
    assert charts.summary.text() == changed.args[0]
    charts.stop()


def test_charts_dock_is_one_click_away(qtbot):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QLabel, QMainWindow

    from phytoscope.gui.charts import charts_dock

    window = QMainWindow()
    qtbot.addWidget(window)
    window.setCentralWidget(QLabel("analysis"))
    charts = LiveCharts()
    dock = charts_dock(charts, window)
    window.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
    window.resize(1366, 700)
    window.show()
    qtbot.waitExposed(window)
    assert dock.isVisible() and dock.objectName() == "charts-dock"
    action = dock.toggleViewAction()
    assert action.text() == "Power and memory charts"
    action.trigger()
    assert not dock.isVisible()
    action.trigger()  # one click brings it back
    assert dock.isVisible() and dock.widget() is charts
    charts.stop()
