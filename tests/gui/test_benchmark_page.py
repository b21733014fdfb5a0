"""The benchmark page runs the real benchmark (a child process per variant) from one click."""

from __future__ import annotations

import shutil

import pytest

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
        batch_sizes=(1,),
        rounds=1,
        round_s=0.2,
        warmup_cap_s=0.5,
        warmup_window=3,
        idle_s=0.3,
        limit=4,
        plots=False,
        variants=("ort_fp32",),
        rate_hz=10.0,
    )


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
    with qtbot.waitSignal(page.finished, timeout=240000) as blocker:
        page.run_button.click()
        assert page.running and not page.run_button.isEnabled() and page.cancel_button.isEnabled()
    report = blocker.args[0]
    assert report is not None, page.last_message
    assert report.variant("ort_fp32")["status"] == "ok"
    assert page.table.rowCount() == 1 and page.table.item(0, 1).text() == "ok"
    assert page.table.item(0, 2).text().endswith("%")  # top-1 on the labelled images
    phases = {phase for _, _, phase in page._events}
    assert {"idle", "load", "warmup", "measured"} <= phases  # the live timeline saw the phases
    assert len(page.timeline.listDataItems()) + len(page.timeline.getPlotItem().items) > 0
    assert page.progress.value() == page.progress.maximum()
    assert (report.out_dir / "results.json").exists()
    assert not page.running and page.run_button.isEnabled()
    path = artefacts / "benchmark_page.png"
    assert window.grab().save(str(path))
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
