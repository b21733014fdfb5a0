"""The benchmark page runs the real benchmark (a child process per variant) from one click,
says what it measures before a run, and shows the spread and the warnings after it."""

from __future__ import annotations

import shutil
from dataclasses import replace

import pytest

from phytoscope.bench.results import BusyProcess
from tests.bench.factory import ran, result

from .conftest import DATA, close_window, open_window


@pytest.fixture
def labelled(tmp_path, hab_model_dir):
    """A tiny labelled folder: real plankton images filed under two of the model's classes."""
    folder = tmp_path / "labelled"
    for cls, source in (("Alexandrium", "Mesodinium"), ("Dinophysis", "ciliate")):
        (folder / cls).mkdir(parents=True)
        for image in sorted((DATA / "training" / source).glob("*.png"))[:2]:
            shutil.copy(image, folder / cls / image.name)
    return folder


def tiny_budget(model_dir, images):
    return dict(
        model=model_dir,
        images=images,
        batch_sizes=(1, 2),
        rounds=2,
        round_s=0.2,
        warmup_cap_s=0.5,
        warmup_window=3,
        idle_s=0.3,
        limit=4,
        plots=False,
        variants=("ort_fp32",),
        rate_hz=10.0,
    )


def _wait_for_plan(qtbot, page):
    qtbot.waitUntil(lambda: bool(page.plan), timeout=60000)


def test_before_a_run_the_page_explains_the_method_and_disables_what_cannot_run(
    qtbot, tmp_path, hab_model_dir
):
    window = open_window(
        qtbot,
        tmp_path,
        hab_model_dir,
        start_telemetry=False,
        bench_overrides={"model": hab_model_dir},
    )
    page = window.bench_page
    window.tabs.setCurrentWidget(page)  # the availability check starts when shown
    _wait_for_plan(qtbot, page)
    # no plots before a run: the method text instead
    assert page.stack.currentWidget() is page.method
    text = page.method.text()
    for words in ("engine-only", "End-to-end", "3 rounds", "batch sizes 1, 16", "ESTIMATED"):
        assert words in text, words
    page.quick.setChecked(False)
    assert "5 rounds" in page.method.text() and "batch sizes 1, 8, 32" in page.method.text()
    # the tiny model has no INT8 form: that variant is disabled, unticked, with its reason
    int8 = page.checks["ort_int8"]
    assert not int8.isEnabled() and not int8.isChecked()
    assert "not available here" in int8.text() and "int8" in int8.toolTip()
    assert page.checks["ort_fp32"].isEnabled()
    if page.plan["trt_fp32"].reason:  # no TensorRT on this machine
        assert not page.checks["trt_fp32"].isEnabled()
        assert page.plan["trt_fp32"].reason in page.checks["trt_fp32"].toolTip()
    assert "ort_int8" not in page.selected_variants()
    close_window(window)


def test_results_show_spread_warnings_and_estimates(qtbot, tmp_path, hab_model_dir, artefacts):
    """A hand-made result with a busy machine and rounds that disagree 9-fold."""
    window = open_window(qtbot, tmp_path, hab_model_dir, start_telemetry=False)
    page = window.bench_page
    window.tabs.setCurrentWidget(page)
    noisy = ran("ort_fp32", 100.0, 0.9, 7.0, 8.5, 300, rounds=(11.0, 60.0, 100.0))
    r = result(idle_cpu=85.0)
    r = replace(
        r,
        variants=(r.variants[0], noisy, r.variants[3]),
        idle=replace(r.idle, busy_processes=(BusyProcess("make test", 7, 180.0),)),
    )
    page.show_result(r)
    banner = page.banner.text()
    assert page.banner.isVisible()
    assert "The machine was not idle" in banner and "make test" in banner
    assert "The measured rounds disagree" in banner and "11.0–100.0" in banner
    assert "ESTIMATED" in banner
    headers = [page.table.horizontalHeaderItem(i).text() for i in range(page.table.columnCount())]
    assert any("spread over rounds" in h for h in headers)
    assert any("engine-only" in h for h in headers) and any("end-to-end" in h for h in headers)
    fpsw = next(i for i, h in enumerate(headers) if h.startswith("FPS/W"))
    assert "(estimated)" in headers[fpsw]
    cell = page.table.item(1, fpsw)
    assert cell.font().italic() and "not a measurement" in cell.toolTip()
    spread = next(i for i, h in enumerate(headers) if h.startswith("spread"))
    assert page.table.item(1, spread).text() == "IQR 44.5; 11.0–100.0"
    assert page.table.item(2, 1).text() == "not available here"
    # charts: whiskers and IQR on the engine-only bars; estimated energy hatched and titled
    assert page.charts.currentIndex() == 1
    assert page.throughput_chart.series[0].span[1] == (11.0, 100.0)
    assert "ESTIMATED" in page.energy_chart.plot.getPlotItem().titleLabel.text
    assert all(s.hatched for s in page.energy_chart.series)
    assert "not a measurement" in page.energy_chart.legend.text()
    window.resize(1366, 768)
    qtbot.wait(50)
    assert page.minimumSizeHint().width() <= 1366
    assert window.grab().save(str(artefacts / "benchmark_page_warnings_1366x768.png"))
    bar = page.results_area.verticalScrollBar()
    bar.setValue(bar.maximum())  # the charts, below the table on a small screen
    qtbot.wait(50)
    assert window.grab().save(str(artefacts / "benchmark_page_charts_1366x768.png"))
    close_window(window)


def test_quick_benchmark_from_the_page(qtbot, tmp_path, hab_model_dir, labelled, artefacts):
    window = open_window(
        qtbot,
        tmp_path,
        hab_model_dir,
        start_telemetry=False,
        bench_overrides=tiny_budget(hab_model_dir, labelled),
    )
    page = window.bench_page
    window.tabs.setCurrentWidget(page)
    assert page.charts.currentIndex() == 0  # nothing plotted yet
    with qtbot.waitSignal(page.finished, timeout=240000) as blocker:
        page.run_button.click()
        assert page.running and not page.run_button.isEnabled() and page.cancel_button.isEnabled()
    report = blocker.args[0]
    assert report is not None, page.last_message
    assert report.variant("ort_fp32").status == "ok"
    assert page.table.rowCount() == 1 and page.table.item(0, 1).text() == "ran"
    top1 = float(page.table.item(0, 2).text())  # top-1 on the labelled images, in %
    assert 0 <= top1 <= 100
    assert "IQR" in page.table.item(0, 4).text()  # the spread of the 2 rounds
    phases = {phase for _, _, phase in page._events}
    assert {"idle", "load", "warmup", "measured", "measured_e2e"} <= phases
    assert page.timeline.items  # the live timeline drew the phases
    assert page.progress.value() == page.progress.maximum() == 1
    assert page.charts.currentIndex() == 1 and page.throughput_chart.series
    assert (report.out_dir / "results.json").exists()
    assert "report.html" in page.report_label.text()
    assert not page.running and page.run_button.isEnabled()
    window.resize(1366, 768)
    qtbot.wait(50)
    assert window.grab().save(str(artefacts / "benchmark_page.png"))
    close_window(window)


def test_benchmark_can_be_cancelled(qtbot, tmp_path, hab_model_dir, labelled):
    budget = tiny_budget(hab_model_dir, labelled) | {"idle_s": 120.0}  # long enough to cancel in
    window = open_window(
        qtbot, tmp_path, hab_model_dir, start_telemetry=False, bench_overrides=budget
    )
    page = window.bench_page
    with qtbot.waitSignal(page.finished, timeout=60000) as blocker:
        page.run_button.click()
        qtbot.waitUntil(lambda: bool(page._events), timeout=30000)  # the idle phase has begun
        page.cancel_button.click()
    assert blocker.args[0] is None
    assert "cancel" in page.last_message
    assert not page.running
    close_window(window)


def test_closing_the_window_during_a_benchmark_stops_it(qtbot, tmp_path, hab_model_dir, labelled):
    budget = tiny_budget(hab_model_dir, labelled) | {"idle_s": 120.0}
    window = open_window(qtbot, tmp_path, hab_model_dir, bench_overrides=budget)
    page = window.bench_page
    page.run_button.click()
    qtbot.waitUntil(lambda: bool(page._events), timeout=30000)
    close_window(window)  # cancels the run and joins its thread (asserted inside)
    assert not page.running
