"""Metrics, per-source accuracy, precision thresholds, confusion files (pure logic)."""

from __future__ import annotations

import numpy as np

from phytoscope.training import evaluate as ev

CLASSES = ["A", "B", "C"]


def _probs(rows):
    return np.asarray(rows, dtype=np.float64)


def test_metrics_hand_computed():
    y = np.array([0, 0, 1, 1, 2, 2])
    p = _probs(
        [
            [0.9, 0.1, 0],
            [0.2, 0.7, 0.1],
            [0.1, 0.8, 0.1],
            [0.1, 0.6, 0.3],
            [0.1, 0.1, 0.8],
            [0.5, 0.2, 0.3],
        ]
    )
    sources = ["s1", "s1", "s1", "s2", "s2", "s2"]
    r = ev.metrics(y, p, CLASSES, sources)
    assert r.top1 == 4 / 6
    assert r.confusion == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert r.per_class["B"]["precision"] == 2 / 3 and r.per_class["B"]["recall"] == 1.0
    assert r.per_class["A"]["f1"] == 0.5
    assert r.per_source["s1"]["top1"] == 2 / 3 and r.per_source["s2"]["top1"] == 2 / 3
    assert r.per_source["s2"]["classes"] == ["B", "C"]


def test_precision_thresholds_reach_target():
    rng = np.random.default_rng(0)
    n = 400
    y = rng.integers(0, 3, n)
    conf = rng.uniform(0.34, 1.0, n)
    correct = rng.random(n) < conf  # more confident, more often right
    pred = np.where(correct, y, (y + 1) % 3)
    p = np.full((n, 3), 0.0)
    p[np.arange(n), pred] = conf
    p[np.arange(n), (pred + 1) % 3] = 1 - conf
    t = ev.precision_thresholds(y, p, CLASSES, target=0.9)
    for k, name in enumerate(CLASSES):
        kept = (pred == k) & (conf >= t[name])
        assert kept.sum() > 0
        assert (y[kept] == k).mean() >= 0.9
        # the threshold is the lowest such: every lower cut-off breaks the target
        for c in conf[(pred == k) & (conf < t[name])]:
            assert (y[(pred == k) & (conf >= c)] == k).mean() < 0.9
    cov = ev.apply_thresholds(y, p, CLASSES, t)
    assert 0 < cov["coverage"] < 1 and cov["top1_of_kept"] >= 0.9


def test_perfect_class_gets_zero_threshold():
    y = np.array([0, 0, 1])
    p = _probs([[0.6, 0.4, 0], [0.9, 0.1, 0], [0.2, 0.8, 0]])
    t = ev.precision_thresholds(y, p, CLASSES, 0.95, min_predictions=1)
    assert t == {"A": 0.0, "B": 0.0, "C": 0.0}


def test_too_few_predictions_give_no_threshold():
    y = np.array([0, 1, 1])
    p = _probs([[0.9, 0.1, 0], [0.95, 0.05, 0], [0.2, 0.8, 0]])  # one confident mistake
    assert ev.precision_thresholds(y, p, CLASSES, 0.95, min_predictions=1)["A"] == 0.95
    assert ev.precision_thresholds(y, p, CLASSES, 0.95, min_predictions=20)["A"] == 0.0


def test_report_files(tmp_path):
    y = np.array([0, 1, 2, 2])
    p = _probs([[0.9, 0.1, 0], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.1, 0.6, 0.3]])
    r = ev.evaluate_probabilities(y, p, CLASSES, ["s"] * 4, {"A": 0.5, "B": 0.7, "C": 0.0})
    paths = ev.write_report(r, tmp_path, "t")
    assert paths["confusion_png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = paths["confusion_csv"].read_text().splitlines()
    assert lines[0] == "true \\ predicted,A,B,C" and lines[3] == "C,0,1,1"
    acc = ev.card_accuracy(r)
    assert acc["test_top1"] == 0.75 and acc["per_source"]["s"]["n"] == 4
    # the last image (B at 0.6 < 0.7) goes to "unknown"; the three kept are right
    assert acc["test_with_thresholds"] == {"coverage": 0.75, "top1_of_kept": 1.0}


def test_thresholds_send_low_confidence_to_unknown():
    y = np.array([1, 1])
    p = _probs([[0.1, 0.8, 0.1], [0.1, 0.6, 0.3]])
    cov = ev.apply_thresholds(y, p, CLASSES, {"A": 0, "B": 0.7, "C": 0})
    assert cov["coverage"] == 0.5 and cov["top1_of_kept"] == 1.0
