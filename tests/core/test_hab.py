"""HAB rule sets and levels against hand-computed cases, boundaries included, for every rule set.

Most cases use a 1000 mL volume, so one organism is exactly 1 cell/L and a count equal to a
threshold puts the concentration exactly on it (no floating-point doubt about boundaries).
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from phytoscope.core import hab
from phytoscope.core.hab import (
    NOT_MONITORED,
    assess,
    available_rule_sets,
    load_rule_set,
    make_alerts,
)
from phytoscope.core.sample import CELLS_UNDERESTIMATED, CHAINS, given_volume
from phytoscope.errors import ConfigError
from phytoscope.modelcard import ClassInfo
from tests.cards import card_of as card

RULE_SETS = (
    "scotland_habreports",
    "england_wales_fsa",
    "france_rephy",
    "denmark_fvst",
    "sweden_algaware",
    "norway_mattilsynet",
    "florida_fwc",
    "who_recreational_cyanobacteria",
)


# a genus-only card that knows every genus the rule sets name (chain_forming off, so
# boundaries are compared per cell), plus two cyanobacteria for the WHO group rule
GENERA = card(
    ClassInfo("Alexandrium", hab=True),
    ClassInfo("Dinophysis", hab=True),
    ClassInfo("Pseudo-nitzschia", hab=True),
    ClassInfo("Karenia", hab=True),
    ClassInfo("Prorocentrum", hab=True),
    ClassInfo("Protoceratium", hab=True),
    ClassInfo("Lingulodinium", hab=True),
    ClassInfo("Gymnodinium", hab=True),
    ClassInfo("Dolichospermum", group="Cyanobacteria"),
    ClassInfo("Microcystis", group="Cyanobacteria"),
    ClassInfo("detritus"),
)

# what the shipped model knows (see models/genus.onnx.json): no Alexandrium, no Karenia
SHIPPED_LIKE = card(
    ClassInfo("Pseudo-nitzschia", hab=True, chain_forming=True),
    ClassInfo("Aulacoseira"),
    ClassInfo("Dolichospermum", hab=True, group="Cyanobacteria"),
    ClassInfo("Tripos"),
    ClassInfo("Mesodinium"),
    ClassInfo("ciliate"),
    ClassInfo("detritus"),
    ClassInfo("zooplankton"),
)


def level_of(rule_set: str, counts: dict[str, int], taxon: str, ml: float = 1000.0):
    result = assess(counts, given_volume(ml), GENERA, load_rule_set(rule_set))
    found = [a for a in result.assessments if a.taxon == taxon]
    assert len(found) == 1, [a.taxon for a in result.assessments]
    return found[0]


# (rule set, class, count, volume mL, expected level, rule row that decided it)
CASES = [
    # Scotland HABreports traffic lights: green below the first band, ">=" at each edge
    ("scotland_habreports", "Alexandrium", 0, 1000, "green", "Alexandrium"),
    ("scotland_habreports", "Alexandrium", 1, 1000, "yellow", "Alexandrium"),
    ("scotland_habreports", "Alexandrium", 19, 1000, "yellow", "Alexandrium"),
    ("scotland_habreports", "Alexandrium", 20, 1000, "orange", "Alexandrium"),
    ("scotland_habreports", "Alexandrium", 39, 1000, "orange", "Alexandrium"),
    ("scotland_habreports", "Alexandrium", 40, 1000, "red", "Alexandrium"),
    ("scotland_habreports", "Alexandrium", 1, 25, "red", "Alexandrium"),  # 1 cell in 25 mL = 40/L
    ("scotland_habreports", "Dinophysis", 0, 1000, "green", "Dinophysis"),
    ("scotland_habreports", "Dinophysis", 1, 1000, "yellow", "Dinophysis"),
    ("scotland_habreports", "Dinophysis", 79, 1000, "yellow", "Dinophysis"),
    ("scotland_habreports", "Dinophysis", 80, 1000, "orange", "Dinophysis"),
    ("scotland_habreports", "Dinophysis", 99, 1000, "orange", "Dinophysis"),
    ("scotland_habreports", "Dinophysis", 100, 1000, "red", "Dinophysis"),
    ("scotland_habreports", "Pseudo-nitzschia", 39999, 1000, "yellow", "Pseudo-nitzschia"),
    ("scotland_habreports", "Pseudo-nitzschia", 40000, 1000, "orange", "Pseudo-nitzschia"),
    ("scotland_habreports", "Pseudo-nitzschia", 49999, 1000, "orange", "Pseudo-nitzschia"),
    ("scotland_habreports", "Pseudo-nitzschia", 50000, 1000, "red", "Pseudo-nitzschia"),
    # genus-only class against species rows: Karenia -> K. mikimotoi, Prorocentrum -> P. lima
    ("scotland_habreports", "Karenia", 2499, 1000, "yellow", "Karenia mikimotoi"),
    ("scotland_habreports", "Karenia", 2500, 1000, "orange", "Karenia mikimotoi"),
    ("scotland_habreports", "Karenia", 5000, 1000, "red", "Karenia mikimotoi"),
    ("scotland_habreports", "Prorocentrum", 80, 1000, "orange", "Prorocentrum lima"),
    # England & Wales: one action level each
    ("england_wales_fsa", "Alexandrium", 39, 1000, "below_alert_level", "Alexandrium"),
    ("england_wales_fsa", "Alexandrium", 40, 1000, "red", "Alexandrium"),
    ("england_wales_fsa", "Dinophysis", 99, 1000, "below_alert_level", "Dinophysis"),
    ("england_wales_fsa", "Dinophysis", 100, 1000, "red", "Dinophysis"),
    (
        "england_wales_fsa",
        "Pseudo-nitzschia",
        149999,
        1000,
        "below_alert_level",
        "Pseudo-nitzschia",
    ),
    ("england_wales_fsa", "Pseudo-nitzschia", 150000, 1000, "red", "Pseudo-nitzschia"),
    # France REPHY: any Dinophysis; Alexandrium gets the A. catenella threshold (5,000 < 10,000)
    ("france_rephy", "Dinophysis", 0, 1000, "below_alert_threshold", "Dinophysis"),
    ("france_rephy", "Dinophysis", 1, 1000, "red", "Dinophysis"),
    ("france_rephy", "Alexandrium", 4999, 1000, "below_alert_threshold", "Alexandrium catenella"),
    ("france_rephy", "Alexandrium", 5000, 1000, "red", "Alexandrium catenella"),
    ("france_rephy", "Pseudo-nitzschia", 99999, 1000, "below_alert_threshold", "Pseudo-nitzschia"),
    ("france_rephy", "Pseudo-nitzschia", 100000, 1000, "red", "Pseudo-nitzschia"),
    # Denmark: Dinophysis genus -> D. acuta (100), the most conservative of 100/500/1000
    ("denmark_fvst", "Dinophysis", 99, 1000, "below_action_value", "Dinophysis acuta"),
    ("denmark_fvst", "Dinophysis", 100, 1000, "red", "Dinophysis acuta"),
    ("denmark_fvst", "Alexandrium", 499, 1000, "below_action_value", "Alexandrium"),
    ("denmark_fvst", "Alexandrium", 500, 1000, "red", "Alexandrium"),
    ("denmark_fvst", "Gymnodinium", 500, 1000, "red", "Gymnodinium catenatum"),
    ("denmark_fvst", "Prorocentrum", 500, 1000, "red", "Prorocentrum lima"),
    ("denmark_fvst", "Protoceratium", 999, 1000, "below_action_value", "Protoceratium reticulatum"),
    ("denmark_fvst", "Lingulodinium", 1000, 1000, "red", "Lingulodinium polyedra"),
    ("denmark_fvst", "Pseudo-nitzschia", 199999, 1000, "below_action_value", "Pseudo-nitzschia"),
    ("denmark_fvst", "Pseudo-nitzschia", 200000, 1000, "red", "Pseudo-nitzschia"),
    # Sweden: species rows only; Dinophysis genus -> D. acuta (200)
    ("sweden_algaware", "Dinophysis", 199, 1000, "below_warning_level", "Dinophysis acuta"),
    ("sweden_algaware", "Dinophysis", 200, 1000, "red", "Dinophysis acuta"),
    ("sweden_algaware", "Pseudo-nitzschia", 99999, 1000, "below_warning_level", "Pseudo-nitzschia"),
    ("sweden_algaware", "Pseudo-nitzschia", 100000, 1000, "red", "Pseudo-nitzschia"),
    # Norway: Dinophysis genus -> D. acuminata (1,000 < D. norvegica 4,000)
    ("norway_mattilsynet", "Dinophysis", 999, 1000, "below_advisory_level", "Dinophysis acuminata"),
    ("norway_mattilsynet", "Dinophysis", 1000, 1000, "red", "Dinophysis acuminata"),
    ("norway_mattilsynet", "Alexandrium", 199, 1000, "below_advisory_level", "Alexandrium"),
    ("norway_mattilsynet", "Alexandrium", 200, 1000, "red", "Alexandrium"),
    ("norway_mattilsynet", "Protoceratium", 1000, 1000, "red", "Protoceratium reticulatum"),
    ("norway_mattilsynet", "Pseudo-nitzschia", 999, 1, "below_advisory_level", "Pseudo-nitzschia"),
    ("norway_mattilsynet", "Pseudo-nitzschia", 1000, 1, "red", "Pseudo-nitzschia"),  # 1,000,000/L
    # Florida FWC writes ">1,000-10,000": a value exactly on an edge stays in the lower category
    ("florida_fwc", "Karenia", 0, 1000, "background", "Karenia brevis"),
    ("florida_fwc", "Karenia", 1000, 1000, "background", "Karenia brevis"),
    ("florida_fwc", "Karenia", 1001, 1000, "very_low", "Karenia brevis"),
    ("florida_fwc", "Karenia", 10000, 1000, "very_low", "Karenia brevis"),
    ("florida_fwc", "Karenia", 10001, 1000, "low", "Karenia brevis"),
    ("florida_fwc", "Karenia", 100000, 1000, "low", "Karenia brevis"),
    ("florida_fwc", "Karenia", 100001, 1000, "medium", "Karenia brevis"),
    ("florida_fwc", "Karenia", 1000, 1, "medium", "Karenia brevis"),  # exactly 1,000,000/L
    ("florida_fwc", "Karenia", 1001, 1, "high", "Karenia brevis"),
]


@pytest.mark.parametrize(("rule_set", "taxon", "count", "ml", "level", "rule_taxon"), CASES)
def test_levels_and_boundaries(rule_set, taxon, count, ml, level, rule_taxon):
    a = level_of(rule_set, {taxon: count}, taxon, ml)
    assert a.concentration.per_l == pytest.approx(count * 1000.0 / ml)
    assert (a.level, a.rule_taxon) == (level, rule_taxon)
    rs = load_rule_set(rule_set)
    assert a.is_alert == (level != rs.below_level)
    if a.is_alert:
        assert a.threshold_per_l is not None and a.threshold_per_l <= a.concentration.per_l


def test_every_rule_set_has_cases_including_a_count_exactly_on_a_threshold():
    assert set(available_rule_sets()) == set(RULE_SETS)
    covered = {c[0] for c in CASES} | {"who_recreational_cyanobacteria"}  # WHO below
    assert covered == set(RULE_SETS)
    for name in RULE_SETS[:-1]:  # WHO: see test_who_group_rule_sums_all_cyanobacteria
        rs = load_rule_set(name)
        edges = {b.min_per_l for t in rs.taxa for b in t.bands}
        on_edge = {c[2] * 1000.0 / c[3] for c in CASES if c[0] == name}
        assert edges & on_edge, name


@pytest.mark.parametrize(
    ("dolicho", "microcystis", "level", "per_l"),
    [
        (10000, 9999, "below_guideline_values", 19_999_000),
        (10000, 10000, "low_probability", 20_000_000),  # exactly 20,000 cells/mL
        (99999, 0, "low_probability", 99_999_000),
        (50000, 50000, "moderate_probability", 100_000_000),
    ],
)
def test_who_group_rule_sums_all_cyanobacteria(dolicho, microcystis, level, per_l):
    # 1 mL: one organism is 1,000 cells/L; the WHO guideline is about total cyanobacteria
    a = level_of(
        "who_recreational_cyanobacteria",
        {"Dolichospermum": dolicho, "Microcystis": microcystis},
        "Cyanobacteria",
        ml=1.0,
    )
    assert a.level == level
    assert a.concentration.per_l == per_l
    assert a.classes == ("Dolichospermum", "Microcystis")
    assert a.concentration.count == dolicho + microcystis


def test_taxa_the_model_cannot_recognise_are_listed_not_monitored():
    result = assess(
        {"Pseudo-nitzschia": 3}, given_volume(5), SHIPPED_LIKE, load_rule_set("scotland_habreports")
    )
    assert result.not_monitored == (
        "Alexandrium",
        "Dinophysis",
        "Prorocentrum lima",
        "Karenia mikimotoi",
    )
    assert [a.taxon for a in result.assessments] == ["Pseudo-nitzschia"]
    florida = assess({}, given_volume(5), SHIPPED_LIKE, load_rule_set("florida_fwc"))
    assert florida.assessments == () and florida.not_monitored == ("Karenia brevis",)
    assert NOT_MONITORED == "not monitored by this model"


def test_chain_forming_is_compared_but_marked_as_a_lower_bound():
    rs = load_rule_set("scotland_habreports")
    # 250 chains in 5 mL = 50,000 chains/L: cells >= chains, so "red" is certain
    a = assess({"Pseudo-nitzschia": 250}, given_volume(5), SHIPPED_LIKE, rs).assessments[0]
    assert a.concentration.unit == CHAINS and a.concentration.per_l == 50000
    assert a.level == "red" and a.lower_bound and a.describe_level() == "at least red"
    assert CELLS_UNDERESTIMATED in a.flags
    # below the per-cell threshold in chains/L: not an alert, but never silently "fine"
    fsa = assess(
        {"Pseudo-nitzschia": 10}, given_volume(5), SHIPPED_LIKE, load_rule_set("england_wales_fsa")
    )
    b = fsa.assessments[0]
    assert b.level == "below_alert_level" and b.lower_bound and not b.is_alert
    assert b.describe_level() == "below_alert_level (chains/L: cells may be higher)"
    assert any("count cells per chain" in f for f in b.flags)


def test_zero_with_a_detection_limit_above_the_threshold_is_flagged():
    # 5 mL: one Alexandrium would be 200 cells/L, above the 40 cells/L action level
    a = level_of("england_wales_fsa", {}, "Alexandrium", ml=5.0)
    assert a.level == "below_alert_level" and a.concentration.count == 0
    assert a.concentration.detection_limit_per_l == 200
    assert any("one organism" in f for f in a.flags)
    big = level_of("england_wales_fsa", {}, "Alexandrium", ml=1000.0)  # 1 cell/L < 40: ruled out
    assert not any("one organism" in f for f in big.flags)


def test_interval_crossing_a_threshold_is_flagged():
    # 1 Dinophysis in 10 mL = 100 cells/L: on the E&W threshold, but the 95 % interval is 2.5-557
    a = level_of("england_wales_fsa", {"Dinophysis": 1}, "Dinophysis", ml=10.0)
    assert a.level == "red"
    assert a.concentration.low_per_l == pytest.approx(2.5318, rel=1e-4)
    assert any("reaches below" in f for f in a.flags)


def test_alerts_carry_evidence_versions_and_injected_time():
    rs = load_rule_set("denmark_fvst")
    result = assess(
        {"Dinophysis": 2}, given_volume(10), GENERA, rs
    )  # 200 cells/L >= 100 (D. acuta)
    clock = lambda: datetime(2026, 5, 1, 8, 30, tzinfo=timezone.utc)  # noqa: E731
    evidence = {"Dinophysis": [("bin1", 7), ("bin1", 9)], "detritus": [("bin1", 1)]}
    (alert,) = make_alerts(
        result, "phytoscope-genus 1.0.0 onnx/fp32", evidence, sample_id=3, clock=clock
    )
    assert (alert.taxon, alert.level, alert.threshold_per_l) == ("Dinophysis", "red", 100.0)
    assert alert.rule_taxon == "Dinophysis acuta" and alert.syndrome == "DSP"
    assert alert.concentration_per_l == 200 and alert.count == 2
    assert alert.low_per_l == pytest.approx(24.22, rel=1e-3) and alert.high_per_l == pytest.approx(
        722.5, rel=1e-3
    )
    assert alert.evidence == (("bin1", 7), ("bin1", 9))
    assert alert.rule_set_version == rs.version and rs.version.startswith("denmark_fvst 2026.11 [")
    assert alert.raised_at == "2026-05-01T08:30:00+00:00" and alert.open
    assert "RED Dinophysis" in hab.describe_alert(alert)


def test_user_overrides_replace_rows_and_change_the_version(tmp_path):
    header = "rule_set,taxon,rank,syndrome,level,min_cells_per_l,max_cells_per_l,source\n"
    path = tmp_path / "site.csv"
    path.write_text(
        header
        + "scotland_habreports,Pseudo-nitzschia,genus,ASP,red,20000,,site rule\n"
        + "loch_x,Dinophysis,genus,DSP,watch,50,200,site\n"
        + "loch_x,Dinophysis,genus,DSP,close,200,,site\n"
    )
    shipped = load_rule_set("scotland_habreports")
    site = load_rule_set("scotland_habreports", overrides_path=path)
    assert site.version != shipped.version and "overrides site.csv" in site.version
    assert site.overridden == ("Pseudo-nitzschia",)
    assert [b.level for b in site.taxon("Pseudo-nitzschia").bands] == ["red"]
    assert site.taxon("Alexandrium") == shipped.taxon("Alexandrium")  # untouched rows kept
    result = assess({"Pseudo-nitzschia": 20000}, given_volume(1000), GENERA, site)
    assert [a.level for a in result.assessments if a.taxon == "Pseudo-nitzschia"] == ["red"]
    # a new rule set defined only by the site's file
    assert "loch_x" in available_rule_sets(path)
    loch = load_rule_set("loch_x", overrides_path=path)
    assert loch.levels == ("below_threshold", "watch", "close") and loch.boundary == ">="
    assert level_of_rs(loch, 200) == "close" and level_of_rs(loch, 199) == "watch"


def level_of_rs(rs, count):
    return assess({"Dinophysis": count}, given_volume(1000), GENERA, rs).assessments[0].level


def test_overrides_in_the_user_config_dir_are_read_automatically(monkeypatch, tmp_path):
    monkeypatch.setenv("PHYTOSCOPE_CONFIG", str(tmp_path))
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "hab_thresholds.csv").write_text(
        "rule_set,taxon,rank,syndrome,level,min_cells_per_l,max_cells_per_l,source\n"
        "england_wales_fsa,Alexandrium,genus,PSP,red,1,,site\n"
    )
    rs = load_rule_set("england_wales_fsa")
    assert "overrides" in rs.version and rs.taxon("Alexandrium").bands[0].min_per_l == 1


def test_bad_rule_sets_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown rule set 'atlantis'.*scotland_habreports"):
        load_rule_set("atlantis")
    with pytest.raises(ConfigError, match="does not exist"):
        load_rule_set("scotland_habreports", overrides_path=tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "rule_set,taxon,rank,syndrome,level,min_cells_per_l,max_cells_per_l,source\n"
        "scotland_habreports,Alexandrium,genus,PSP,red,lots,,x\n"
    )
    with pytest.raises(ConfigError, match="line 2: thresholds must be numbers"):
        load_rule_set("scotland_habreports", overrides_path=bad)
    wrong_level = tmp_path / "level.csv"
    wrong_level.write_text(
        "rule_set,taxon,rank,syndrome,level,min_cells_per_l,max_cells_per_l,source\n"
        "scotland_habreports,Alexandrium,genus,PSP,purple,5,,x\n"
    )
    with pytest.raises(ConfigError, match="'purple'"):
        load_rule_set("scotland_habreports", overrides_path=wrong_level)


def test_shipped_rules_keep_the_published_format():
    text = (hab.rules_dir() / "hab_thresholds.csv").read_text(encoding="utf-8")
    assert text.splitlines()[0] == ",".join(hab.COLUMNS)
    for name in RULE_SETS:
        rs = load_rule_set(name)
        assert rs.taxa and rs.version and rs.title
        for t in rs.taxa:  # contiguous bands: each max is the next band's min
            for lower, upper in zip(t.bands, t.bands[1:], strict=False):
                assert lower.max_per_l == upper.min_per_l, (name, t.taxon)
            assert t.bands[-1].max_per_l is None
