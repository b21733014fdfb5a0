"""Manual counts (#17) and unknowns in plain view (#14.5): a microscopist's count per taxon
with its own volume, assessed like the model's counts and marked "manual" in the summary,
the store, the alerts and the reports; organisms not identified in no alert but said
everywhere. Labels by hand, numbers checked by hand. No model, no Qt."""

from __future__ import annotations

import csv
import sqlite3
from datetime import datetime, timezone

import pytest

from phytoscope.core import reports
from phytoscope.core.analysis import AnalysisBatch, RoiFacts
from phytoscope.core.hab import assess, load_rule_set, manual_candidates
from phytoscope.core.sample import MANUAL, ManualCount
from phytoscope.core.sample_text import describe, overview
from phytoscope.core.samples import VolumeSpec
from phytoscope.core.session import IMAGES, SampleSession, SampleSettings
from phytoscope.errors import ConfigError
from phytoscope.modelcard import UNKNOWN, ClassInfo
from phytoscope.storage import Store
from phytoscope.storage.migrations import MIGRATIONS
from phytoscope.types import Prediction, Volume
from tests.cards import card_of

CARD = card_of(
    ClassInfo("Pseudo-nitzschia", chain_forming=True),
    ClassInfo("Dinophysis"),
    ClassInfo("detritus"),
)
RULES = load_rule_set("scotland_habreports")
CLOCK = lambda: datetime(2026, 5, 1, 9, 0, tzinfo=timezone.utc)  # noqa: E731
FIVE_ML = Volume(5.0, "given")


def _session(store: Store | None = None) -> SampleSession:
    """Five images in 5 mL: a Dinophysis, a detritus and three unknowns (two novel, one
    unsure); their run stored when a store is given (so the sample can be re-opened)."""
    settings = SampleSettings(
        site="Loch Creran",
        sampled_at="2026-04-30T08:00Z",
        volume=VolumeSpec(method="given", given_ml=5.0),
    )
    s = SampleSession(CARD, RULES, settings, clock=CLOCK)
    labels = ["Dinophysis", "detritus", UNKNOWN, UNKNOWN, UNKNOWN]
    reasons = ["", "", "novel", "novel", "unsure"]
    preds = tuple(
        Prediction(f"/x/img{i}.png", 0, lab, 0.9, ((lab, 0.9),), unknown_reason=why)
        for i, (lab, why) in enumerate(zip(labels, reasons, strict=True))
    )
    if store is not None:
        run_id = store.start_run("onnxruntime", CARD.label, CARD.sha256)
        store.add_predictions(run_id, preds)
        s.add_run(run_id)
    s.add(AnalysisBatch(preds, facts=(RoiFacts("/x"),) * len(preds)))
    return s


# -- assessment --------------------------------------------------------------------------


def test_the_candidates_are_the_rule_set_taxa_the_model_cannot_see():
    candidates = manual_candidates(RULES, CARD)
    assert "Alexandrium" in candidates and "Karenia mikimotoi" in candidates
    assert "Dinophysis" not in candidates and "Pseudo-nitzschia" not in candidates
    assert _session().manual_candidates() == candidates


def test_a_manual_count_is_assessed_over_its_own_volume_and_marked_manual():
    # Scotland: Alexandrium is red from 40 cells/L; 12 in 50 mL = 240 cells/L
    m = ManualCount("Alexandrium", 12, 50.0, who="A. Tech")
    hab = assess({"Dinophysis": 1}, FIVE_ML, CARD, RULES, [m])
    (a,) = [a for a in hab.assessments if a.manual]
    assert a.taxon == "Alexandrium" and a.level == "red" and a.is_alert
    assert a.concentration.per_l == pytest.approx(12 * 1000 / 50)
    assert a.concentration.detection_limit_per_l == pytest.approx(20.0)  # its volume, not 5 mL
    assert a.flags[0] == "manual count: 12 in 50 mL (A. Tech)"
    assert "Alexandrium" not in hab.not_monitored  # counted now, by hand
    assert "Karenia mikimotoi" in hab.not_monitored
    model = next(x for x in hab.assessments if x.taxon == "Dinophysis")
    assert not model.manual and model.concentration.per_l == pytest.approx(200.0)
    assert hab.to_dict()["manual"][0]["taxon"] == "Alexandrium"


def test_a_genus_count_takes_the_species_threshold_and_a_model_taxon_keeps_its_own_row():
    hab = assess(
        {"Pseudo-nitzschia": 1},
        FIVE_ML,
        CARD,
        RULES,
        [ManualCount("Prorocentrum", 1, 10.0), ManualCount("Pseudo-nitzschia", 3, 1.0)],
    )
    by_taxon = {a.taxon: a for a in hab.assessments}
    pro = by_taxon["Prorocentrum"]
    assert (
        pro.manual
        and pro.rule_taxon == "Prorocentrum lima"
        and any("species threshold" in f for f in pro.flags)
    )
    # a cell count by hand of a taxon the model also sees is a row of its own
    assert by_taxon["Pseudo-nitzschia (manual)"].manual
    assert not by_taxon["Pseudo-nitzschia"].manual


def test_a_taxon_outside_the_rule_set_is_kept_but_not_assessed():
    hab = assess({}, FIVE_ML, CARD, RULES, [ManualCount("Noctiluca", 4, 10.0)])
    assert not any(a.manual for a in hab.assessments)
    assert [m.taxon for m in hab.manual] == ["Noctiluca"]


@pytest.mark.parametrize(
    ("taxon", "count", "ml"),
    [("", 1, 1.0), ("Alexandrium", -1, 1.0), ("Alexandrium", 1.5, 1.0), ("Alexandrium", 1, 0.0)],
)
def test_a_manual_count_needs_a_taxon_a_whole_count_and_a_volume(taxon, count, ml):
    with pytest.raises(ConfigError):
        ManualCount(taxon, count, ml)


# -- unknowns ------------------------------------------------------------------------------


def test_unknowns_are_in_no_alert_and_said_in_the_summary_and_assessment():
    (d,) = _session().samples()
    assert d.n_unidentified == 3 and d.unidentified == {"novel": 2, "unsure": 1}
    assert d.hab is not None and d.hab.unidentified == 3
    assert all(UNKNOWN not in a.classes for a in d.hab.assessments)
    text = describe(d)
    assert "3 organisms not identified: check by microscope" in text
    assert "3 not identified" in text  # beside the alerts line


# -- the session, the store and the reports ---------------------------------------------


def test_session_stores_the_count_alerts_on_it_and_reopen_and_remove_follow(tmp_path):
    with Store(tmp_path / "r.sqlite") as store:
        s = _session(store)
        s.add_manual_count("Alexandrium", 12, 50.0, who="A. Tech", note="Lugol, 50 mL settled")
        (d,) = s.samples()
        assert [m.taxon for m in d.manual] == ["Alexandrium"]
        assert "Alexandrium (manual)" in describe(d)
        (saved,) = s.save(store)
        sid = saved.sample_id
        alert = next(a for a in saved.alerts if a.taxon == "Alexandrium")
        assert alert.model == MANUAL and alert.evidence == ()
        assert any(f.startswith(MANUAL) for f in alert.flags)
        (row,) = store.manual_counts(sid)
        assert (row["taxon"], row["count"], row["volume_ml"], row["who"]) == (
            "Alexandrium", 12, 50.0, "A. Tech",
        )  # fmt: skip
        assert store.sample_revisions(sid)[0]["record"]["manual"][0]["count"] == 12
        assert store.sample_summary(sid)["unidentified"] == 3
        assert "manual counts" in overview(store) and "3 not identified" in overview(store)
        assert s.save(store)[0].unchanged  # nothing changed: not rewritten

        again = SampleSession.reopen(store, sid, CARD, RULES)
        (d2,) = again.samples()
        assert d2.saved and [m.count for m in d2.manual] == [12]
        again.add_manual_count("Alexandrium", 1, 50.0)  # replaces: 20 cells/L, below red
        again.remove_manual_count("Alexandrium")
        (r,) = again.save(store)
        assert r.revision == 2 and store.manual_counts(sid) == []
        gone = next(a for a in store.alerts(sid) if a.taxon == "Alexandrium")
        assert gone.withdrawn_at is not None
        with pytest.raises(ConfigError, match="no manual count"):
            again.remove_manual_count("Alexandrium")


def test_a_count_needs_to_know_its_sample_when_the_session_holds_several():
    s = SampleSession(CARD, RULES, clock=CLOCK)
    with pytest.raises(ConfigError, match="no sample yet"):
        s.add_manual_count("Alexandrium", 1, 1.0)
    s = _session()
    with pytest.raises(ConfigError, match="no sample"):
        s.add_manual_count("Alexandrium", 1, 1.0, key="bin:nope")
    assert s.add_manual_count("Alexandrium", 1, 1.0, key=IMAGES).taxon == "Alexandrium"


def test_reports_mark_the_manual_count_and_say_what_was_not_identified(tmp_path):
    s = _session()
    s.add_manual_count("Alexandrium", 12, 50.0, who="A. Tech")
    with Store(tmp_path / "r.sqlite") as store:
        (saved,) = s.save(store)
        sid = saved.sample_id
        page = reports.html_report(store, sid)
        assert 'id="manual"' in page and "<b>(manual)</b>" in page
        assert "3 organisms not identified: check by microscope" in page
        path = reports.write_csv(store, [sid], tmp_path / "s.csv")
        (row,) = csv.DictReader(path.read_text(encoding="utf-8").splitlines())
        assert row["Alexandrium (manual)"] == "240" and row["unknown_rois"] == "3"
        assert "Alexandrium red (manual)" in row["open_alerts"]


def test_the_migration_is_appended_and_an_old_database_upgrades(tmp_path):
    db = tmp_path / "old.sqlite"
    con = sqlite3.connect(db)
    for n, script in enumerate(MIGRATIONS[:5], start=1):
        con.executescript(script)
        con.execute(f"PRAGMA user_version = {n}")
    con.commit()
    con.close()
    with Store(db) as store:
        assert store.manual_counts() == []
        version = store.db.execute("PRAGMA user_version").fetchone()[0]
        assert version == len(MIGRATIONS) >= 6
