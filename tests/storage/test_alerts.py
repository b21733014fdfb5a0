"""Samples, counts, alerts and acknowledgements in the store; upgrade from schema 1."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone

import pytest

from phytoscope.core.hab import load_rule_set, record_sample
from phytoscope.core.sample import given_volume
from phytoscope.errors import StorageError
from phytoscope.storage import Store
from phytoscope.storage.migrations import MIGRATIONS
from phytoscope.types import Alert, Prediction, Sample
from tests.cards import SAMPLE_CARD as CARD

CLOCK = lambda: datetime(2026, 5, 1, 9, 0, tzinfo=timezone.utc)  # noqa: E731


def _preds(n_dino=3, n_pn=1):
    out = [
        Prediction("bin_a", i, "Dinophysis", 0.5 + i / 100, (("Dinophysis", 0.9),))
        for i in range(n_dino)
    ]
    out += [
        Prediction("bin_a", 100 + i, "Pseudo-nitzschia", 0.9, (("Pseudo-nitzschia", 0.9),))
        for i in range(n_pn)
    ]
    return out + [Prediction("bin_a", 999, "unknown", 0.2, (("detritus", 0.2),))]


def _sample(run_id=None):
    return Sample(
        kind="ifcb",
        sources=("bin_a",),
        volume=given_volume(10),
        site="Loch Creran",
        sampled_at="2026-05-01T08:00:00+00:00",
        run_id=run_id,
    )


def test_schema_1_database_upgrades_and_keeps_its_rows(tmp_path):
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[0])
    db.execute("PRAGMA user_version = 1")
    db.execute(
        "INSERT INTO runs(started_at, backend, model, model_sha256) VALUES ('2026-01-01', 'onnxruntime', 'm', 'abc')"
    )
    db.execute(
        "INSERT INTO predictions(run_id, source, roi_index, label, confidence, top_k) VALUES (1, 'f.png', 0, 'Dinophysis', 0.9, '[]')"
    )
    db.execute("INSERT INTO skipped(run_id, source, reason) VALUES (1, 'bad.png', 'not an image')")
    db.commit()
    db.close()
    with Store(path) as store:
        assert store.schema_version == len(MIGRATIONS) >= 2
        assert [r["model"] for r in store.runs()] == ["m"]
        assert [p.label for p in store.predictions(1)] == ["Dinophysis"]
        assert store.db.execute("SELECT count(*) FROM skipped").fetchone()[0] == 1
        sample_id = store.save_sample(_sample(run_id=1), {"Dinophysis": 1})
        assert store.sample(sample_id).run_id == 1


def test_record_sample_stores_counts_alerts_and_acknowledgements(tmp_path):
    with Store(tmp_path / "r.sqlite") as store:
        rs = load_rule_set("england_wales_fsa")
        result = record_sample(store, _sample(), _preds(), CARD, rs, clock=CLOCK)
        sample = store.sample(result.sample.id)
        assert sample.site == "Loch Creran" and sample.volume.ml_analyzed == 10
        assert sample.model == CARD.label and sample.rule_set == "england_wales_fsa"
        assert store.sample_counts(sample.id) == {
            "Pseudo-nitzschia": (1, "chains/L"),
            "Dinophysis": (3, "cells/L"),
            "detritus": (0, "cells/L"),
            "unknown": (1, "cells/L"),
        }
        summary = store.sample_summary(sample.id)
        assert summary["rule_set_version"] == rs.version and summary["not_monitored"] == [
            "Alexandrium"
        ]
        # 3 Dinophysis in 10 mL = 300 cells/L >= 100: one alert; PN 100 chains/L is far below
        (alert,) = store.alerts(sample.id)
        assert alert == result.alerts[0]
        assert (alert.taxon, alert.level, alert.concentration_per_l, alert.count) == (
            "Dinophysis",
            "red",
            300,
            3,
        )
        assert alert.evidence == (("bin_a", 2), ("bin_a", 1), ("bin_a", 0))
        assert (
            alert.rule_set_version == rs.version and alert.raised_at == "2026-05-01T09:00:00+00:00"
        )
        assert store.open_alerts() == [alert]
        done = store.acknowledge(
            alert.id, "A. Technician", note="toxin test requested", at="2026-05-01T10:00:00+00:00"
        )
        assert (done.acknowledged_by, done.acknowledged_at) == (
            "A. Technician",
            "2026-05-01T10:00:00+00:00",
        )
        assert not done.open and store.open_alerts() == []
        again = store.acknowledge(alert.id, "someone else")  # the first acknowledgement stands
        assert again.acknowledged_by == "A. Technician"
        assert store.alerts(sample.id)[0].evidence == alert.evidence  # evidence untouched
        with pytest.raises(StorageError, match="name of who"):
            store.acknowledge(alert.id, "  ")
        with pytest.raises(StorageError, match="no alert 99"):
            store.acknowledge(99, "me")
        with pytest.raises(StorageError, match="no sample 42"):
            store.sample(42)


def test_alerts_persist_across_reopening_until_acknowledged(tmp_path):
    path = tmp_path / "r.sqlite"
    with Store(path) as store:
        record_sample(
            store, _sample(), _preds(), CARD, load_rule_set("scotland_habreports"), clock=CLOCK
        )
    with Store(path) as store:
        levels = {(a.taxon, a.level) for a in store.open_alerts()}
        # Scotland: any Dinophysis >= 100/L is red; 1 PN chain in 10 mL = 100 chains/L -> yellow, a lower bound
        assert levels == {("Dinophysis", "red"), ("Pseudo-nitzschia", "yellow")}
        pn = next(a for a in store.open_alerts() if a.taxon == "Pseudo-nitzschia")
        assert pn.lower_bound and pn.unit == "chains/L"


def test_a_failure_while_raising_alerts_keeps_the_sample(tmp_path, monkeypatch):
    with Store(tmp_path / "r.sqlite") as store:

        def broken(sample_id, alerts):
            raise StorageError("disk full")

        monkeypatch.setattr(store, "add_alerts", broken)
        with pytest.raises(StorageError, match="disk full"):
            record_sample(
                store, _sample(), _preds(), CARD, load_rule_set("england_wales_fsa"), clock=CLOCK
            )
        (kept,) = store.samples()
        assert store.sample_counts(kept.id)["Dinophysis"] == (3, "cells/L")


def test_a_bad_alert_rolls_back_the_whole_batch_only(tmp_path):
    with Store(tmp_path / "r.sqlite") as store:
        sample_id = store.save_sample(_sample(), {"Dinophysis": 3})
        good = Alert("Dinophysis", "red", 100.0, 300.0, 60.0, 900.0, 3, "cells/L", "x", "x 1", "m")
        bad = Alert("Dinophysis", None, 100.0, 300.0, 60.0, 900.0, 3, "cells/L", "x", "x 1", "m")  # type: ignore[arg-type]
        with pytest.raises(StorageError):
            store.add_alerts(sample_id, [good, bad])
        assert store.alerts(sample_id) == []
        assert store.sample(sample_id).site == "Loch Creran"
        with pytest.raises(StorageError):  # a sample that does not exist cannot get alerts
            store.add_alerts(12345, [good])
