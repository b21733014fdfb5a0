"""Findings, tables and the rendering of the benchmark report from hand-made results (tier 1)."""

from __future__ import annotations

import json
from dataclasses import replace

from phytoscope.bench import output, report
from phytoscope.bench.findings import findings
from phytoscope.bench.notes import notices
from phytoscope.bench.results import BusyProcess, Finding
from phytoscope.bench.table import Cell, Table
from phytoscope.bench.tables import comparison_table
from tests.bench.factory import ran, result


def test_findings_say_which_of_the_studys_claims_hold():
    verdicts = {f.claim: f for f in findings(result())}
    # 100 / 40 = 2.5x (int8 150 / 40 = 3.75x but the claim is judged on FP32 forms)
    assert verdicts["Optimised ≈ 2× base throughput"].verdict == "holds"
    assert "2.50×" in verdicts["Optimised ≈ 2× base throughput"].here
    # fp32 unchanged, int8 loses 2 points: more than 1 pp
    accuracy = verdicts["Accuracy unchanged after optimisation"].verdict
    assert accuracy.startswith("partly") and "2.0 pp" in accuracy
    # int8 / fp32 = 1.5x: reduced precision adds a lot here
    precision = verdicts["Reduced precision adds little throughput over optimised FP32"]
    assert precision.verdict == "does not hold" and "1.50×" in precision.here
    power = verdicts["Optimised variants draw less mean power over the whole run (estimated)"]
    assert power.verdict == "holds"
    # FPS/W: (100/7) / (40/8) = 2.857x, judged on the FP32 form; int8's 4.29x listed beside
    fpsw = verdicts["Performance-watt roughly doubles with optimisation (estimated)"]
    assert fpsw.verdict == "holds"
    assert "2.86×" in fpsw.here and "4.29×" in fpsw.here
    memory = verdicts["Optimised variants need more peak memory than the base"]
    assert memory.verdict == "does not hold"
    inference = verdicts["The inference phase draws more power than the whole-run mean (estimated)"]
    assert inference.verdict == "holds"


def test_findings_without_the_base_are_not_testable():
    r = result()
    r = replace(r, variants=r.variants[1:])
    verdicts = {f.claim: f.verdict for f in findings(r)}
    assert verdicts["Optimised ≈ 2× base throughput"] == "not testable here"
    assert verdicts["Accuracy unchanged after optimisation"] == "not testable here"


def test_table_puts_the_study_beside_this_run_and_labels_estimates():
    table = comparison_table(result())
    assert table.headers[1:4] == ["study: TF base", "study: TRT FP32", "study: TRT FP16"]
    assert table.headers[4:] == [
        "here: TensorFlow base (Keras)",
        "here: ONNX Runtime FP32",
        "here: ONNX Runtime INT8",
    ]
    by_title = {row[0].text: row for row in table.rows}
    fps = [c.text for c in by_title["throughput, engine, best batch (FPS)"]]
    assert fps[1:4] == ["41", "82", "84"] and fps[5].startswith("100.0")
    power_rows = [
        r for title, r in by_title.items() if any(w in title for w in ("power", "FPS/W", "energy"))
    ]
    assert power_rows and all("estimated" in r[0].text for r in power_rows)
    assert all(c.estimated for r in power_rows for c in r[4:])  # the window greys them
    assert [c.text for c in by_title["FPS/W, whole run (estimated)"][1:4]] == [
        "12.10",
        "25.74",
        "26.01",
    ]


def test_markdown_and_html_render_the_same_blocks():
    table = Table.of(["a", "b|c"], [["1", Cell("2", strong=True, estimated=True, tooltip="why")]])
    blocks = [
        ("h1", "Title"),
        ("p", "a **bold** <claim>"),
        ("table", table),
        ("img", "x.png", "plot"),
        ("code", "phytoscope bench --quick"),
    ]
    md = report.to_markdown(blocks)
    assert "# Title" in md and "| a | b\\|c |" in md and "| 1 | **2** |" in md
    assert "![plot](x.png)" in md and "```\nphytoscope bench --quick\n```" in md
    html = report.to_html(blocks, "t")
    assert "<strong>bold</strong> &lt;claim&gt;" in html
    assert "<th>b|c</th>" in html and "<img src='x.png'" in html
    assert "<td class='estimated' title='why'><strong>2</strong></td>" in html
    assert "<pre>phytoscope bench --quick</pre>" in html


def test_report_marks_unavailable_variants_estimates_and_a_busy_machine():
    r = result(idle_cpu=90.0)
    r = replace(
        r,
        findings=findings(r),
        idle=replace(r.idle, busy_processes=(BusyProcess("python -m pytest", 42, 95.0),)),
    )
    md = report.to_markdown(report.report_blocks(r, {}))
    assert "Power on this machine is ESTIMATED" in md
    assert "TensorRT is not installed" in md and "not available here" in md
    assert "The machine was not idle" in md and "python -m pytest (pid 42, 95 % of a core)" in md
    assert md.index("## Summary") < md.index("## The study's Table 2")


def test_not_idle_is_reported_with_measured_power_too():
    # it distorts throughput and net-of-idle energy whatever the power source
    r = result(idle_cpu=90.0, kind="measured")
    kinds = [n.kind for n in notices(r)]
    assert kinds == ["not_idle"]
    md = report.to_markdown(report.report_blocks(r, {}))
    assert "The machine was not idle" in md and "ESTIMATED" not in md
    assert "Power was measured by rapl." in md


def test_rounds_that_disagree_are_a_warning_with_their_spread():
    tight = result()
    assert "noisy" not in [n.kind for n in notices(tight)]
    noisy_variant = ran("ort_fp32", 100.0, 0.9, 7.0, 8.5, 300, rounds=(11.0, 100.0, 104.0))
    noisy = replace(tight, variants=(tight.variants[0], noisy_variant))
    [notice] = [n for n in notices(noisy) if n.kind == "noisy"]
    assert "ONNX Runtime FP32 100.0 img/s median" in notice.text
    assert "range 11.0–104.0" in notice.text


def test_without_matplotlib_the_report_says_plots_need_it(tmp_path, monkeypatch):
    import sys

    # import matplotlib (or any of its modules, even if already loaded) -> ImportError
    for name in [n for n in sys.modules if n.split(".")[0] == "matplotlib"] + ["matplotlib"]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "phytoscope.bench.plots", raising=False)
    r = result()
    r, files = output.write_all(replace(r, findings=findings(r)), {}, tmp_path, plots=True)
    assert r.plots.written is False
    assert "plots need matplotlib" in files["report_md"].read_text()
    assert not list(tmp_path.glob("*.png"))
    saved = json.loads((tmp_path / "results.json").read_text())
    assert "plots need matplotlib" in saved["plots"]["note"]


def test_a_finished_run_can_be_re_reported_without_measuring(tmp_path):
    from phytoscope.cli import main

    r = replace(result(), findings=(Finding("stale", "", "", "old"),))
    output.write_all(r, {}, tmp_path, plots=False)
    assert "stale" in (tmp_path / "report.md").read_text()
    assert main(["bench", "--report-from", str(tmp_path)]) == 0
    md = (tmp_path / "report.md").read_text()
    assert "stale" not in md and "Accuracy unchanged after optimisation" in md
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["findings"][0]["claim"] == "Optimised ≈ 2× base throughput"
    assert main(["bench", "--report-from", str(tmp_path / "nothing")]) == 1
