"""Volumes, concentrations and exact Poisson intervals against hand-computed values."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from phytoscope.core.sample import (
    CELLS,
    CELLS_UNDERESTIMATED,
    CHAINS,
    concentration,
    concentrations,
    count_labels,
    describe_volume,
    evidence_by_label,
    format_per_l,
    given_volume,
    ifcb_volume,
    poisson_interval,
    utermohl_volume,
    volume_from_meta,
)
from phytoscope.errors import ConfigError
from phytoscope.types import Prediction
from tests.cards import SAMPLE_CARD as CARD

DATA = Path(__file__).resolve().parents[1] / "data"

# Garwood 95 % limits as tabulated (e.g. Ulm 1990, Am J Epidemiol 131:373)
GARWOOD = [
    (0, 0.0, 3.689),
    (1, 0.0253, 5.572),
    (2, 0.2422, 7.225),
    (3, 0.6187, 8.767),
    (5, 1.6235, 11.668),
    (10, 4.7954, 18.390),
    (20, 12.217, 30.889),
    (100, 81.364, 121.627),
]


@pytest.mark.parametrize(("n", "low", "high"), GARWOOD)
def test_poisson_interval_matches_garwood_tables(n, low, high):
    got_low, got_high = poisson_interval(n)
    assert got_low == pytest.approx(low, abs=5e-4 * max(1, low))
    assert got_high == pytest.approx(high, rel=2e-4)


def test_poisson_interval_closed_forms():
    # N = 0: upper solves exp(-m) = 0.025; N = 1: lower solves 1 - exp(-m) = 0.025
    assert poisson_interval(0)[1] == pytest.approx(-math.log(0.025), rel=1e-10)
    assert poisson_interval(1)[0] == pytest.approx(-math.log(0.975), rel=1e-10)
    # large counts approach N +- 1.96 sqrt(N)
    low, high = poisson_interval(1_000_000)
    assert low == pytest.approx(1e6 - 1.96 * 1000, abs=5) and high == pytest.approx(
        1e6 + 1.96 * 1000, abs=5
    )
    with pytest.raises(ValueError):
        poisson_interval(-1)


def test_utermohl_whole_chamber_detection_limit_is_40_cells_per_litre():
    volume = utermohl_volume(settled_ml=25)
    assert volume.ml_analyzed == 25
    c = concentration("Alexandrium", 0, volume)
    assert c.detection_limit_per_l == 40 and c.per_l == 0 and not c.detected
    assert c.high_per_l == pytest.approx(40 * 3.6889, rel=1e-4)
    assert c.describe().startswith("ND (< 40 cells/L")


def test_microscope_sample_with_given_volumes():
    # 10 mL settled in a 26 mm chamber (530.9 mm²), 20 fields of 0.5 mm² counted,
    # 100 mL of water + 1 mL Lugol: cells/L = N x (530.9 / 10) x (1000 / 10) x (101 / 100)
    volume = utermohl_volume(
        settled_ml=10,
        chamber_area_mm2=530.9,
        fields=20,
        field_area_mm2=0.5,
        sample_ml=100,
        preservative_ml=1,
    )
    c = concentration("Dinophysis", 12, volume)
    assert c.per_l == pytest.approx(12 * 53.09 * 100 * 1.01)  # 64,345 cells/L
    assert c.detection_limit_per_l == pytest.approx(53.09 * 100 * 1.01)
    low, high = poisson_interval(12)
    assert (c.low_per_l, c.high_per_l) == pytest.approx((low * 5362.09, high * 5362.09))
    text = describe_volume(volume)
    assert "10 mL settled" in text and "20 fields" in text and "1 mL preservative" in text
    # the same counted area given directly, and an extra 1:2 dilution doubles the result
    same = utermohl_volume(
        10, chamber_area_mm2=530.9, counted_area_mm2=10, sample_ml=100, preservative_ml=1
    )
    assert same.ml_analyzed == pytest.approx(volume.ml_analyzed)
    halved = utermohl_volume(10, 530.9, 10, sample_ml=100, preservative_ml=1, dilution=2)
    assert concentration("x", 12, halved).per_l == pytest.approx(2 * c.per_l)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"settled_ml": 0},
        {"settled_ml": 10, "chamber_area_mm2": 500},
        {"settled_ml": 10, "chamber_area_mm2": 500, "counted_area_mm2": 600},
        {"settled_ml": 10, "fields": 20},
        {"settled_ml": 10, "preservative_ml": 1},
    ],
)
def test_impossible_microscope_volumes_are_refused(kwargs):
    with pytest.raises(ConfigError):
        utermohl_volume(**kwargs)


def test_pooled_ifcb_bins_add_their_volumes_once_each():
    metas = [
        {"bin": "D20240501T120000_IFCB010", "ml_analyzed": 4.0},
        {"bin": "D20240501T120000_IFCB010", "ml_analyzed": 4.0},  # second ROI of the same bin
        {"bin": "D20240501T123000_IFCB010", "ml_analyzed": 1.0},
    ]
    volume = volume_from_meta(metas)
    assert volume is not None and volume.ml_analyzed == 5.0 and volume.method == "ifcb"
    # "one ROI in 5 mL is already 200 cells/L"
    assert concentration("Alexandrium", 1, volume).per_l == 200
    assert volume_from_meta([{"roi_number": 1}]) is None
    with pytest.raises(ConfigError, match="no usable runTime"):
        ifcb_volume({"bad": math.nan})
    assert "2 IFCB bin(s)" in describe_volume(volume)


def _hdr_ml_analyzed(hdr_text: str) -> float:
    """By hand, as the IFCB documentation writes it: 0.25 mL/min x (runTime - inhibitTime) / 60."""
    run = float(re.search(r"^runTime:\s*([\d.]+)", hdr_text, re.M).group(1))
    inhibit = float(re.search(r"^inhibitTime:\s*([\d.]+)", hdr_text, re.M).group(1))
    return 0.25 * (run - inhibit) / 60


def test_ifcb_bin_from_tests_data_gives_ml_analyzed_and_concentrations():
    headers = sorted(p for p in DATA.rglob("*.hdr") if "runTime" in p.read_text(encoding="latin-1"))
    if not headers:
        pytest.skip("no IFCB bin with a runTime header in tests/data")
    from phytoscope.sources import iter_inputs
    from phytoscope.types import Roi

    hdr = headers[0]
    expected_ml = _hdr_ml_analyzed(hdr.read_text(encoding="latin-1"))
    rois = [r for r in iter_inputs([hdr]) if isinstance(r, Roi)]
    assert rois
    volume = volume_from_meta(r.meta for r in rois)
    assert volume is not None
    assert volume.ml_analyzed == pytest.approx(expected_ml, rel=1e-9)
    c = concentration("all ROIs", len(rois), volume)
    assert c.per_l == pytest.approx(len(rois) * 1000 / expected_ml)
    assert c.detection_limit_per_l == pytest.approx(1000 / expected_ml)


def _p(label, i, conf=0.9, source="bin"):
    return Prediction(source, i, label, conf, ((label, conf),))


def test_concentrations_for_every_class_zeros_included_chains_flagged():
    preds = [
        _p("Pseudo-nitzschia", 1),
        _p("Pseudo-nitzschia", 2),
        _p("unknown", 3),
        _p("Dinophysis", 4),
    ]
    counts = count_labels(preds)
    assert counts == {"Pseudo-nitzschia": 2, "unknown": 1, "Dinophysis": 1}
    out = {c.taxon: c for c in concentrations(counts, given_volume(2.0), CARD)}
    assert list(out) == ["Pseudo-nitzschia", "Dinophysis", "detritus"]
    assert out["Pseudo-nitzschia"].unit == CHAINS and out["Pseudo-nitzschia"].flags == (
        CELLS_UNDERESTIMATED,
    )
    assert out["Pseudo-nitzschia"].per_l == 1000
    assert out["Dinophysis"].unit == CELLS and out["Dinophysis"].per_l == 500
    assert out["detritus"].count == 0 and out["detritus"].detection_limit_per_l == 500
    assert "ND (< 500 cells/L" in out["detritus"].describe()
    assert "1,000 chains/L" in out["Pseudo-nitzschia"].describe()


def test_evidence_is_most_confident_first_and_capped():
    preds = [_p("Dinophysis", i, conf=i / 10) for i in range(1, 8)]
    ev = evidence_by_label(preds, per_label=3)
    assert ev == {"Dinophysis": [("bin", 7), ("bin", 6), ("bin", 5)]}


def test_numbers_are_shown_to_three_significant_figures():
    assert format_per_l(64345.08) == "64,300"
    assert format_per_l(40) == "40"
    assert format_per_l(5.0634) == "5.06"
    assert format_per_l(0) == "0"
    with pytest.raises(ConfigError):
        given_volume(0)
