"""Typed results: results.json of earlier versions loads, round-trips and re-renders the
same report; the one summary table renders alike in text, Markdown and the window."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from phytoscope.bench.jsonable import SchemaError, from_jsonable
from phytoscope.bench.output import rerender
from phytoscope.bench.results import BenchResult, Spread, VariantResult
from phytoscope.bench.summary import summary_table
from phytoscope.bench.table import ESTIMATED_TIP, render_text
from phytoscope.errors import ConfigError
from tests.bench.factory import result

SCHEMA1 = Path(__file__).parent / "data" / "schema1"


def _sections(markdown: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for chunk in markdown.split("\n## "):
        title, _, body = chunk.partition("\n")
        out[title] = body
    return out


def test_a_schema_1_results_file_loads_typed():
    r = BenchResult.load(SCHEMA1 / "results.json")
    assert [v.status for v in r.variants] == ["ok"] * 3 + ["unavailable"] * 3
    ort = r.variant("ort_fp32")
    assert ort.best_batch == 16 and ort.best is not None
    assert ort.best.throughput_fps.n == 3 and ort.fps == ort.best.throughput_fps.median
    assert ort.agreement is not None and ort.agreement.top1_agreement == 1.0
    assert ort.power is not None and ort.power.estimated and ort.power.process_share is not None
    assert r.settings.batch_sizes == (1, 16) and r.settings.quick is True
    assert r.estimated and r.idle.seconds > 0


def _same(old, new, where=""):
    """Every value written before is written again under the same key; keys added since
    hold nothing (None or empty)."""
    if isinstance(old, dict):
        assert isinstance(new, dict), where
        for key, value in old.items():
            _same(value, new[key], f"{where}.{key}")
        for key in set(new) - set(old):
            assert new[key] in (None, "", [], {}) or all(v is None for v in new[key].values()), (
                f"{where}.{key}"
            )
    elif isinstance(old, list):
        assert len(old) == len(new), where
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            _same(a, b, f"{where}[{i}]")
    else:
        assert old == new, where


def test_results_round_trip_to_the_same_json():
    original = json.loads((SCHEMA1 / "results.json").read_text())
    back = BenchResult.load(SCHEMA1 / "results.json").to_dict()
    _same(original, back)
    assert list(back) == list(original)  # the same order of sections
    assert "engine" not in back["variants"][-1]  # a variant that did not run stays short


def test_re_rendering_an_old_run_reproduces_its_report(tmp_path):
    """Every section of the report written before the results were typed comes out the
    same; the new report only adds the Summary."""
    shutil.copy(SCHEMA1 / "results.json", tmp_path / "results.json")
    rerender(tmp_path)
    old = _sections((SCHEMA1 / "report.md").read_text())
    new = _sections((tmp_path / "report.md").read_text())
    assert set(new) - set(old) == {"Summary"}
    for title, body in old.items():
        assert new[title] == body, title


def test_unreadable_or_newer_results_are_clear_errors(tmp_path):
    path = tmp_path / "results.json"
    with pytest.raises(ConfigError, match="not a benchmark's results file"):
        BenchResult.load(path)
    path.write_text('{"schema": 99, "variants": []}')
    with pytest.raises(ConfigError, match="newer phytoscope"):
        BenchResult.load(path)
    data = json.loads((SCHEMA1 / "results.json").read_text())
    del data["idle"]["seconds"]
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="cannot be read"):
        BenchResult.load(path)


def test_json_values_are_checked_against_the_types():
    assert from_jsonable(Spread, {"n": 2, "median": 3, "extra": 1}) == Spread(2, median=3.0)
    assert from_jsonable(dict[int, float], {"8": 1}) == {8: 1.0}
    assert from_jsonable(tuple[str, ...], ["a"]) == ("a",)
    with pytest.raises(SchemaError, match="variants"):
        from_jsonable(dict[str, list[int]], {"variants": "x"})
    with pytest.raises(SchemaError, match=r"n: 'many' is not a int"):
        from_jsonable(Spread, {"n": "many"})
    with pytest.raises(SchemaError):
        from_jsonable(VariantResult, {"key": "x"})  # required fields missing


def test_summary_table_says_scope_spread_and_estimate():
    table = summary_table(result())
    titles = table.headers
    assert "throughput, engine-only, best batch (img/s, median of rounds)" in titles
    assert "throughput, end-to-end, best batch (img/s, one pass)" in titles
    assert "energy per image, end-to-end (mJ) (estimated)" in titles
    scopes = {c.title: c.scope for c in table.columns}
    assert scopes["energy per image, engine-only (mJ) (estimated)"] == "engine-only"
    assert scopes["energy per image, end-to-end (mJ) (estimated)"] == "end-to-end"
    spread = table.column("spread over rounds, engine-only best batch (IQR; min–max img/s)")
    assert spread[1].text == "IQR 2.0; 98.0–102.0"  # ORT FP32's rounds 98, 100, 102
    fpsw = table.column("FPS/W, engine-only best-batch throughput ÷ phase-4 power (estimated)")
    assert fpsw[0].estimated and fpsw[0].tooltip == ESTIMATED_TIP
    status = table.column("status")
    assert [c.text for c in status] == ["ran", "ran", "ran", "not available here"]
    assert status[3].tone == "muted"


def test_summary_table_with_measured_power_has_no_estimate_marks():
    table = summary_table(result(kind="measured"))
    assert not any("estimated" in h for h in table.headers)
    assert not any(c.estimated for row in table.rows for c in row)


def test_the_command_line_renders_the_summary_side_by_side():
    r = result()
    table = summary_table(r)
    text = render_text(table.where([v.ok for v in r.variants]).transposed(), width=100)
    lines = text.splitlines()
    assert lines[0].split()[:2] == ["variant", "TensorFlow"]
    assert "TensorRT" not in text  # what did not run is listed apart, with its reason
    assert all(len(line) <= 100 for line in lines)
    assert "100.0 (b8)" in text and "IQR 2.0; 98.0–102.0" in text
    assert "* estimated — CPU load × rated power" in text


def test_a_result_is_frozen():
    r = result()
    with pytest.raises(AttributeError):
        r.duration_s = 1.0  # type: ignore[misc]
    assert replace(r, duration_s=1.0).duration_s == 1.0
