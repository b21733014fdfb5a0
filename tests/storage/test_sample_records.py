"""Migration 5 (one record per sample, acknowledgements that cover a concentration, run
keys): a database written with the schema of the previous release opens, keeps every row
and acknowledgement, and takes updates."""

from __future__ import annotations

import sqlite3

from phytoscope.storage import Store
from phytoscope.storage.migrations import MIGRATIONS
from phytoscope.types import Alert, Sample, Volume


def _previous_release_database(path) -> None:
    """Schema 4 (migrations 1-4) with a sample, an alert and its acknowledgement, written
    with the SQL the previous release used."""
    db = sqlite3.connect(path)
    for script in MIGRATIONS[:4]:
        db.executescript(script)
    db.execute("PRAGMA user_version = 4")
    db.execute(
        "INSERT INTO runs(started_at, backend, model, model_sha256, settings)"
        " VALUES ('2026-01-01T00:00:00+00:00', 'onnxruntime', 'm', 'abc', '{}')"
    )
    db.execute(
        "INSERT INTO samples(created_at, kind, site, sampled_at, sources, ml_analyzed,"
        " volume_method, volume_details, run_id, model, rule_set, summary, notes) VALUES"
        " ('2026-01-01T00:00:00+00:00', 'ifcb', 'Loch Creran', '2022-05-22T00:30:51+00:00',"
        " '[\"b\"]', 2.98, 'ifcb', '[[\"b\", 2.98]]', 1, 'm', 'scotland_habreports', '{}', '')"
    )
    db.execute("INSERT INTO sample_counts VALUES (1, 'Dinophysis', 2, 'cells/L')")
    db.execute(
        "INSERT INTO alerts(sample_id, raised_at, taxon, level, threshold_per_l,"
        " concentration_per_l, low_per_l, high_per_l, count, unit, lower_bound, rule_set,"
        " rule_set_version, model) VALUES (1, '2026-01-01T00:00:00+00:00', 'Dinophysis',"
        " 'red', 100, 671.0, 81.0, 2420.0, 2, 'cells/L', 0, 'scotland_habreports', 'v', 'm')"
    )
    db.execute(
        "INSERT INTO acknowledgements(alert_id, who, at, note) VALUES"
        " (1, 'A. Tester', '2026-01-01T01:00:00+00:00', 'seen')"
    )
    db.commit()
    db.close()


def test_a_database_of_the_previous_release_opens_and_keeps_its_acknowledgements(tmp_path):
    path = tmp_path / "old.sqlite"
    _previous_release_database(path)
    with Store(path) as store:
        assert store.schema_version == len(MIGRATIONS) >= 5
        sample = store.sample(1)
        assert (sample.site, sample.revision, sample.flags, sample.unidentified) == (
            "Loch Creran", 1, (), 0,
        )  # fmt: skip
        (alert,) = store.alerts(1)
        assert alert.acknowledged_by == "A. Tester" and alert.ack_note == "seen" and not alert.open
        assert store.open_alerts() == []
        # the old sample takes an update as its revision 2, and its acknowledged alert is
        # re-opened when the concentration changes
        store.update_sample(
            1,
            Sample("ifcb", ("b",), Volume(2.98, "ifcb", (("b", 2.98),)), site="Loch Creran"),
            {"Dinophysis": 3},
            reason="corrected",
        )
        changed = Alert("Dinophysis", "red", 100.0, 1006.7, 200.0, 2940.0, 3, "cells/L",
                        "scotland_habreports", "v", "m")  # fmt: skip
        (after,) = store.sync_alerts(1, [changed], revision=2)
        assert after.id == alert.id and after.open and "A. Tester" in after.reopened
        assert store.sample(1).revision == 2
        assert store.sample_revisions(1)[0]["reason"] == "corrected"


def test_runs_are_found_by_their_inputs_key(tmp_path):
    with Store(tmp_path / "r.sqlite") as store:
        assert store.last_run_of("k") is None
        first = store.start_run("onnxruntime", "m", "abc")
        store.set_run_key(first, "k")
        second = store.start_run("onnxruntime", "m", "abc")
        store.set_run_key(second, "k")
        assert store.last_run_of("k")["id"] == second
        assert store.prediction_count(second) == 0
