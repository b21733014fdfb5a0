"""``run_benchmark`` and ``phytoscope bench`` on the tiny model, with real child processes
and the real telemetry sampler; budgets are tiny and nothing asserts on timing."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from phytoscope import backends
from phytoscope.bench import stages
from phytoscope.bench.config import PHASES, BenchConfig
from phytoscope.bench.runner import plan_variants, run_benchmark
from phytoscope.errors import Cancelled
from phytoscope.progress import CancelToken, Progress

TINY = dict(
    batch_sizes=(1, 4),
    rounds=2,
    round_s=0.05,
    min_calls=2,
    warmup_cap_s=0.3,
    warmup_window=3,
    idle_s=0.6,
    rate_hz=20.0,
)


@pytest.fixture(scope="module")
def labelled_images(tmp_path_factory) -> Path:
    """Class sub-folders of small synthetic PNGs (grey and colour): enough to exercise
    decoding, pre-processing and the accuracy bookkeeping; the model is random anyway."""
    import cv2

    root = tmp_path_factory.mktemp("labelled")
    rng = np.random.default_rng(0)
    for cls in ("Alpha", "Beta", "Gamma"):
        (root / cls).mkdir()
        for i in range(3):
            shape = (20 + 5 * i, 30) if i % 2 else (25, 18 + 3 * i, 3)
            cv2.imwrite(str(root / cls / f"{i}.png"), rng.integers(0, 255, shape, dtype=np.uint8))
    return root


def _config(tmp_path, model, images, **overrides):
    return BenchConfig(
        out_dir=tmp_path / "out", model=model, images=images, **{**TINY, **overrides}
    )


def test_full_run_on_the_tiny_model_writes_every_output(tmp_path, tiny_model_dir, labelled_images):
    events = []
    report = run_benchmark(
        _config(tmp_path, tiny_model_dir, labelled_images), Progress(events.append)
    )
    res = report.result
    status = {v.key: v.status for v in res.variants}
    assert status["tf_base"] == "ok" and status["ort_fp32"] == "ok"
    # no INT8 model beside the tiny one: not available here, with the reason, not a failure
    assert status["ort_int8"] == "unavailable"
    assert "int8" in (report.variant("ort_int8").reason or "")
    if backends.availability()["tensorrt"] is not None:
        assert {status[k] for k in ("trt_fp32", "trt_fp16", "trt_int8")} == {"unavailable"}
    assert report.failed == []

    ort = report.variant("ort_fp32")
    assert ort.accuracy is not None and ort.accuracy.n == 9
    assert 0 <= ort.accuracy.top1 <= 1
    # the same network through two engines: the same answers
    assert ort.agreement is not None and ort.agreement.top1_agreement == 1.0
    assert (ort.agreement.max_prob_diff or 0) < 1e-4
    assert set(ort.engine) == {1, 4} and ort.best_batch in (1, 4)
    for e in ort.engine.values():
        lat = e.latency_ms
        assert lat.n >= 2 * 2 and lat.p50 <= lat.p95 <= lat.p99
        assert e.throughput_fps.n == 2  # the spread of the rounds is kept
        assert e.throughput_fps.min <= e.throughput_fps.median <= e.throughput_fps.max
    assert ort.e2e["batch1"].images == 9
    phases = ort.phases_s
    assert None not in (
        phases.load,
        phases.first_batch,
        phases.warmup,
        phases.measured,
        phases.measured_e2e,
        phases.whole_run,
    )
    assert ort.other_load is not None and ort.other_load.n > 0
    assert (ort.other_load.cpu_percent_of_a_core_median or 0) >= 0
    assert ort.memory is not None and ort.memory.peak_rss_bytes > 0
    assert 0 < ort.memory.peak_rss_pct_ram < 100

    # progress: one stage per variant whose units are the study's phases, in order
    steps = [stages.read(e) for e in events]
    ort_phases = [s.phase for s in steps if s and s.variant == "ort_fp32"]
    assert [p for p in PHASES if p in ort_phases] == list(PHASES)
    ort_events = [e for e in events if e.stage == "ONNX Runtime FP32"]
    assert ort_events[-1].done == ort_events[-1].total == 5
    assert [e.done for e in ort_events] == sorted(e.done for e in ort_events)
    assert events[0].stage == stages.IDLE and events[-1].stage == stages.REPORT
    assert steps[-1] is not None and steps[-1].phase == "done"

    out = report.out_dir
    for name in (
        "results.json",
        "report.md",
        "report.html",
        "summary.csv",
        "timeline_idle.csv",
        "timeline_tf_base.csv",
        "timeline_ort_fp32.csv",
    ):
        assert (out / name).is_file(), name
    saved = json.loads((out / "results.json").read_text())
    assert saved["variants"][0]["key"] == "tf_base"  # the base runs first
    assert saved["schema"] == 1
    with open(out / "timeline_ort_fp32.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["phase"] for r in rows} >= {"load", "measured"}

    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    for text in (
        "The study's Table 2 beside this run",
        "study: TRT FP32",
        "Accuracy unchanged after optimisation",
        "not available here",
        "Command line",
        "## Summary",
    ):
        assert text in md and text.replace("'", "&#x27;").replace("## ", "") in html
    assert "ONNX Runtime INT8" in md

    # power: where it is estimated, every file that shows it says so
    if saved["power"]["kind"] == "estimated":
        assert "ESTIMATED" in md and "(estimated)" in md
        assert all(r["estimated"] == "1" for r in rows if r["power_w"])
        assert ort.power is not None and ort.power.estimated is True
        with open(out / "summary.csv", newline="") as fh:
            summary = {r["key"]: r for r in csv.DictReader(fh)}
        assert summary["ort_fp32"]["power_estimated"] == "1"
        assert float(summary["ort_fp32"]["fps_engine_best_min"]) <= float(
            summary["ort_fp32"]["fps_engine_best"]
        )
    if res.plots.written:
        assert (out / "timeline_ort_fp32.png").is_file() and (out / "throughput.png").is_file()
    else:
        assert "plots need matplotlib" in md


def test_a_missing_runtime_is_reported_unavailable_not_a_failure(
    tmp_path, tiny_model_dir, labelled_images, monkeypatch
):
    real = backends.availability

    def without_tensorflow():
        reasons = real()
        reasons["tensorflow"] = "TensorFlow is not installed; pip install 'phytoscope[tensorflow]'"
        return reasons

    monkeypatch.setattr(backends, "availability", without_tensorflow)
    cfg = _config(
        tmp_path, tiny_model_dir, labelled_images, variants=("tf_base", "ort_fp32"), plots=False
    )
    report = run_benchmark(cfg)
    tf = report.variant("tf_base")
    assert tf.status == "unavailable" and "TensorFlow is not installed" in (tf.reason or "")
    ort = report.variant("ort_fp32")
    assert ort.status == "ok" and ort.agreement is None
    findings = {f.claim: f.verdict for f in report.result.findings}
    assert findings["Optimised ≈ 2× base throughput"] == "not testable here"
    md = (report.out_dir / "report.md").read_text()
    assert "TensorFlow is not installed" in md and "not available here" in md


def test_cancel_stops_the_running_variant(tmp_path, tiny_model_dir, labelled_images):
    cancel = CancelToken()

    def progress(event):
        step = stages.read(event)
        if step is not None and step.phase == "load":
            cancel.cancel()

    cfg = _config(tmp_path, tiny_model_dir, labelled_images, variants=("ort_fp32",), idle_s=0.1)
    with pytest.raises(Cancelled):
        run_benchmark(cfg, Progress(progress, cancel))


def test_cancel_during_the_idle_baseline(tmp_path, tiny_model_dir, labelled_images):
    cancel = CancelToken()
    cancel.cancel()
    cfg = _config(tmp_path, tiny_model_dir, labelled_images, variants=("ort_fp32",), idle_s=30)
    with pytest.raises(Cancelled, match="idle baseline"):
        run_benchmark(cfg, Progress(cancel=cancel))


def test_plan_says_why_a_variant_cannot_run(tiny_model_dir):
    plan = {p.variant.key: p for p in plan_variants(tiny_model_dir)}
    assert plan["ort_fp32"].available and plan["ort_fp32"].reason is None
    assert not plan["ort_int8"].available and "int8" in (plan["ort_int8"].reason or "")


def test_cli_bench_prints_a_summary_and_writes_the_report(
    tmp_path, tiny_model_dir, labelled_images, capsys
):
    from phytoscope.cli import main

    out = tmp_path / "cli"
    code = main(
        [
            "bench",
            "--model",
            str(tiny_model_dir),
            "--images",
            str(labelled_images),
            "--out",
            str(out),
            "--variants",
            "ort_fp32,trt_fp16",
            "--batch-sizes",
            "1,2",
            "--rounds",
            "1",
            "--round-seconds",
            "0.05",
            "--warmup-cap",
            "0.2",
            "--idle",
            "0.2",
            "--no-plots",
            "--note",
            "test run",
        ]
    )
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "ONNX Runtime FP32" in printed.out and "img/s" in printed.out
    assert "spread over rounds" in printed.out and "end-to-end" in printed.out
    assert "TensorRT FP16: not available here" in printed.out
    # not a terminal: one line per phase on stderr instead of bars
    assert "[ONNX Runtime FP32] 3 warm-up" in printed.err
    results = json.loads((out / "results.json").read_text())
    assert results["settings"]["batch_sizes"] == [1, 2]
    assert results["notes"] == ["test run"]
    assert "Note: test run" in (out / "report.md").read_text()


def test_cli_rejects_an_unknown_variant(tmp_path):
    from phytoscope.cli import main
    from phytoscope.errors import ExitCode

    assert main(["bench", "--variants", "nope", "--out", str(tmp_path)]) == ExitCode.ERROR
