"""Findings and rendering of the benchmark report from hand-made results (tier 1)."""

from __future__ import annotations

from phytoscope.bench import report as bench_report
from phytoscope.bench.runner import study_table, summarize


def _variant(key, label, optimised, precision, fps, acc, power_whole, power_inf, rss, agree=None):
    return {
        "key": key,
        "label": label,
        "status": "ok",
        "optimised": optimised,
        "precision": precision,
        "fps": fps,
        "fps_batch1": fps / 2,
        "e2e_fps": fps / 3,
        "best_batch": 8,
        "accuracy": {"top1": acc, "correct": int(acc * 100), "n": 100},
        "agreement": agree,
        "memory": {"peak_rss_bytes": rss, "peak_rss_pct_ram": 1.0},
        "power": {
            "estimated": True,
            "source": "estimated: CPU load x 10 W",
            "mean_w_whole_run": power_whole,
            "mean_w_inference": power_inf,
            "fps_per_w_whole_run": fps / power_whole,
            "fps_per_w_inference": fps / power_inf,
        },
        "engine": {
            "1": {"latency_ms": summarize([1.0, 2.0, 3.0]), "throughput_fps": summarize([fps / 2])}
        },
    }


def _results():
    return {
        "power": {"kind": "estimated", "sources": ["estimated: CPU load x 10 W"]},
        "study": study_table(),
        "variants": [
            _variant(
                "tf_base", "TensorFlow base", False, "fp32", 40.0, 0.90, 8.0, 9.0, 900 * 2**20
            ),
            _variant(
                "ort_fp32",
                "ONNX Runtime FP32",
                True,
                "fp32",
                100.0,
                0.90,
                7.0,
                8.5,
                300 * 2**20,
                {"top1_agreement": 1.0, "max_prob_diff": 1e-6, "flips": 0},
            ),
            _variant(
                "ort_int8",
                "ONNX Runtime INT8",
                True,
                "int8",
                150.0,
                0.88,
                7.0,
                8.0,
                250 * 2**20,
                {"top1_agreement": 0.97, "max_prob_diff": 0.2, "flips": 3},
            ),
            {
                "key": "trt_fp32",
                "label": "TensorRT FP32",
                "status": "unavailable",
                "reason": "TensorRT is not installed",
            },
        ],
    }


def test_findings_say_which_of_the_studys_claims_hold():
    verdicts = {f["claim"]: f for f in bench_report.findings(_results())}
    # 100 / 40 = 2.5x (int8 150 / 40 = 3.75x but the claim is judged on FP32 forms)
    assert verdicts["Optimised ≈ 2× base throughput"]["verdict"] == "holds"
    assert "2.50×" in verdicts["Optimised ≈ 2× base throughput"]["here"]
    # fp32 unchanged, int8 loses 2 points: more than 1 pp
    accuracy = verdicts["Accuracy unchanged after optimisation"]["verdict"]
    assert accuracy.startswith("partly") and "2.0 pp" in accuracy
    # int8 / fp32 = 1.5x: reduced precision adds a lot here
    assert (
        verdicts["Reduced precision adds little throughput over optimised FP32"]["verdict"]
        == "does not hold"
    )
    assert (
        "1.50×" in verdicts["Reduced precision adds little throughput over optimised FP32"]["here"]
    )
    power = verdicts["Optimised variants draw less mean power over the whole run (estimated)"]
    assert power["verdict"] == "holds"
    # FPS/W: (100/7) / (40/8) = 2.857x
    fpsw = verdicts["Performance-watt roughly doubles with optimisation (estimated)"]
    # judged on the FP32 form (2.86x: holds); int8's 4.29x is listed beside it
    assert fpsw["verdict"] == "holds"
    assert "2.86×" in fpsw["here"] and "4.29×" in fpsw["here"]
    assert (
        verdicts["Optimised variants need more peak memory than the base"]["verdict"]
        == "does not hold"
    )
    inference = verdicts["The inference phase draws more power than the whole-run mean (estimated)"]
    assert inference["verdict"] == "holds"


def test_findings_without_the_base_are_not_testable():
    results = _results()
    results["variants"] = results["variants"][1:]
    verdicts = {f["claim"]: f["verdict"] for f in bench_report.findings(results)}
    assert verdicts["Optimised ≈ 2× base throughput"] == "not testable here"
    assert verdicts["Accuracy unchanged after optimisation"] == "not testable here"


def test_table_puts_the_study_beside_this_run_and_labels_estimates():
    headers, rows = bench_report.comparison_table(_results())
    assert headers[1:4] == ["study: TF base", "study: TRT FP32", "study: TRT FP16"]
    assert headers[4:] == [
        "here: TensorFlow base",
        "here: ONNX Runtime FP32",
        "here: ONNX Runtime INT8",
    ]
    by_title = {r[0]: r for r in rows}
    fps = by_title["throughput, engine, best batch (FPS)"]
    assert fps[1:4] == ["41", "82", "84"] and fps[5].startswith("100.0")
    power_rows = [r for r in rows if "power" in r[0] or "FPS/W" in r[0] or "energy" in r[0]]
    assert power_rows and all("estimated" in r[0] for r in power_rows)
    assert by_title["FPS/W, whole run (estimated)"][1:4] == ["12.10", "25.74", "26.01"]


def test_markdown_and_html_render_the_same_blocks():
    blocks = [
        ("h1", "Title"),
        ("p", "a **bold** <claim>"),
        ("table", ["a", "b|c"], [["1", "2"]]),
        ("img", "x.png", "plot"),
        ("code", "phytoscope bench --quick"),
    ]
    md = bench_report.to_markdown(blocks)
    assert "# Title" in md and "| a | b\\|c |" in md and "![plot](x.png)" in md
    assert "```\nphytoscope bench --quick\n```" in md
    html = bench_report.to_html(blocks, "t")
    assert "<strong>bold</strong> &lt;claim&gt;" in html
    assert "<th>b|c</th>" in html and "<img src='x.png'" in html
    assert "<pre>phytoscope bench --quick</pre>" in html


def test_report_blocks_mark_unavailable_variants_and_estimates():
    results = _results()
    results.update(
        findings=bench_report.findings(results), idle={"machine_cpu_percent_median": 90.0}
    )
    md = bench_report.to_markdown(bench_report.report_blocks(results, {}))
    assert "Power on this machine is ESTIMATED" in md
    assert "TensorRT is not installed" in md and "not available here" in md
    assert "The machine was not idle" in md


def test_without_matplotlib_the_report_says_plots_need_it(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    monkeypatch.delitem(sys.modules, "phytoscope.bench.plots", raising=False)
    results = _results()
    results["findings"] = bench_report.findings(results)
    files = bench_report.write_all(results, {}, tmp_path, plots=True)
    assert results["plots"]["written"] is False
    assert "plots need matplotlib" in files["report_md"].read_text()
    assert not list(tmp_path.glob("*.png"))
    saved = (tmp_path / "results.json").read_text()
    assert "plots need matplotlib" in saved


def test_a_finished_run_can_be_re_reported_without_measuring(tmp_path):
    import json

    from phytoscope.cli import main

    results = _results()
    results["findings"] = [{"claim": "stale", "study": "", "here": "", "verdict": "old"}]
    bench_report.write_all(results, {}, tmp_path, plots=False)
    assert "stale" in (tmp_path / "report.md").read_text()
    assert main(["bench", "--report-from", str(tmp_path)]) == 0
    md = (tmp_path / "report.md").read_text()
    assert "stale" not in md and "Accuracy unchanged after optimisation" in md
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["findings"][0]["claim"] == "Optimised ≈ 2× base throughput"
    assert main(["bench", "--report-from", str(tmp_path / "nothing")]) == 1
