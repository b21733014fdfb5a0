"""Samples, their revisions, alerts and acknowledgements in the results store.

A mixin of :class:`~phytoscope.storage.store.Store` (it uses the store's connection and
``transaction()``), kept apart from the connection code. The rules it keeps:

- **One record per sample.** :meth:`SampleRecords.insert_sample` creates it (revision 1);
  :meth:`SampleRecords.update_sample` rewrites it in place (revision + 1) and replaces its
  counts. Every saved state is also kept whole in ``sample_revisions``, so nothing a
  technician signed is ever lost.
- **Alerts follow their sample.** :meth:`SampleRecords.sync_alerts` updates the alert of a
  taxon in place, adds new ones and marks those no longer reached as withdrawn.
- **Manual counts** (a microscopist's count per taxon, with its volume) are rewritten with
  each revision of their sample, like its counts.
- **An acknowledgement covers what it saw.** It stores the alert's level, concentration and
  count; when a later revision changes any of them the alert is open again (``reopened``
  says whose acknowledgement went stale).
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any

from phytoscope.errors import StorageError
from phytoscope.types import Alert, Sample, Volume


def utc_now() -> str:
    from phytoscope.storage.store import utc_now as now

    return now()


_SAMPLE_COLUMNS = (
    "kind", "site", "sampled_at", "sources", "ml_analyzed", "volume_method", "volume_details",
    "run_id", "model", "rule_set", "summary", "notes", "flags", "warnings", "unidentified",
    "time_source", "bins", "run_ids",
)  # fmt: skip

_ALERT_VALUES = (
    "taxon", "level", "threshold_per_l", "concentration_per_l", "low_per_l", "high_per_l",
    "count", "unit", "lower_bound", "rule_set", "rule_set_version", "rule_taxon", "syndrome",
    "model", "flags", "evidence",
)  # fmt: skip

_ALERTS = (
    "SELECT a.*, k.who AS ack_who, k.at AS ack_at, k.note AS ack_note, k.level AS ack_level,"
    " k.concentration_per_l AS ack_per_l, k.count AS ack_count FROM alerts a"
    " LEFT JOIN alert_acks k ON k.id = (SELECT MAX(id) FROM alert_acks WHERE alert_id = a.id)"
)


def _sample_values(
    sample: Sample, summary: Mapping[str, Any] | None, bins: Iterable[Mapping[str, Any]]
) -> tuple[Any, ...]:
    return (
        sample.kind,
        sample.site,
        sample.sampled_at,
        json.dumps(list(sample.sources)),
        sample.volume.ml_analyzed,
        sample.volume.method,
        json.dumps([list(d) for d in sample.volume.details]),
        sample.run_id,
        sample.model,
        sample.rule_set,
        json.dumps(dict(summary or {})),
        sample.notes,
        json.dumps(list(sample.flags)),
        json.dumps(list(sample.warnings)),
        int(sample.unidentified),
        sample.time_source,
        json.dumps(list(bins)),
        json.dumps(list(sample.run_ids)),
    )


def _alert_values(a: Alert) -> tuple[Any, ...]:
    return (
        a.taxon, a.level, a.threshold_per_l, a.concentration_per_l, a.low_per_l, a.high_per_l,
        a.count, a.unit, int(a.lower_bound), a.rule_set, a.rule_set_version, a.rule_taxon,
        a.syndrome, a.model, json.dumps(list(a.flags)), json.dumps([list(e) for e in a.evidence]),
    )  # fmt: skip


def _same_concentration(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


class SampleRecords:
    """Sample, alert and run-lookup methods of the store (see the module docstring)."""

    db: sqlite3.Connection
    path: Any
    transaction: Any

    # -- samples -------------------------------------------------------------------------

    def insert_sample(
        self,
        sample: Sample,
        counts: Mapping[str, int],
        units: Mapping[str, str] | None = None,
        summary: Mapping[str, Any] | None = None,
        bins: Iterable[Mapping[str, Any]] = (),
        reason: str = "",
        manual: Iterable[Mapping[str, Any]] = (),
    ) -> int:
        """Store a new sample (revision 1) and its counts in one transaction; its id."""
        bins, manual = list(bins), list(manual)
        now = utc_now()
        columns = ", ".join(("created_at", "revision", *_SAMPLE_COLUMNS))
        marks = ",".join("?" * (len(_SAMPLE_COLUMNS) + 2))
        with self.transaction() as db:
            cur = db.execute(
                f"INSERT INTO samples({columns}) VALUES ({marks})",
                (sample.created_at or now, 1, *_sample_values(sample, summary, bins)),
            )
            sample_id = int(cur.lastrowid or 0)
            self._write_counts(db, sample_id, counts, units or {}, manual)
            record = (sample, counts, summary, bins, manual)
            self._write_revision(db, sample_id, 1, now, reason, *record)
        return sample_id

    def save_sample(
        self,
        sample: Sample,
        counts: Mapping[str, int],
        units: Mapping[str, str] | None = None,
        summary: Mapping[str, Any] | None = None,
    ) -> int:
        """A new sample record (what earlier versions called; see :meth:`insert_sample`)."""
        return self.insert_sample(sample, counts, units, summary)

    def update_sample(
        self,
        sample_id: int,
        sample: Sample,
        counts: Mapping[str, int],
        units: Mapping[str, str] | None = None,
        summary: Mapping[str, Any] | None = None,
        bins: Iterable[Mapping[str, Any]] = (),
        reason: str = "",
        manual: Iterable[Mapping[str, Any]] = (),
    ) -> int:
        """Rewrite a sample in place as its next revision (kept in the history); returns it."""
        bins, manual = list(bins), list(manual)
        now = utc_now()
        assignments = ", ".join(f"{c}=?" for c in _SAMPLE_COLUMNS)
        with self.transaction() as db:
            row = db.execute("SELECT revision FROM samples WHERE id=?", (sample_id,)).fetchone()
            if row is None:
                raise StorageError(f"no sample {sample_id} in {self.path} to update")
            revision = int(row["revision"]) + 1
            db.execute(
                f"UPDATE samples SET revision=?, updated_at=?, {assignments} WHERE id=?",
                (revision, now, *_sample_values(sample, summary, bins), sample_id),
            )
            db.execute("DELETE FROM sample_counts WHERE sample_id=?", (sample_id,))
            db.execute("DELETE FROM manual_counts WHERE sample_id=?", (sample_id,))
            self._write_counts(db, sample_id, counts, units or {}, manual)
            record = (sample, counts, summary, bins, manual)
            self._write_revision(db, sample_id, revision, now, reason, *record)
        return revision

    @staticmethod
    def _write_counts(
        db: sqlite3.Connection,
        sample_id: int,
        counts: Mapping[str, int],
        units: Mapping[str, str],
        manual: list[Mapping[str, Any]],
    ) -> None:
        db.executemany(
            "INSERT INTO sample_counts(sample_id, taxon, count, unit) VALUES (?,?,?,?)",
            [(sample_id, t, int(n), units.get(t, "cells/L")) for t, n in counts.items()],
        )
        db.executemany(
            "INSERT INTO manual_counts(sample_id, taxon, count, volume_ml, who, at, note)"
            " VALUES (?,?,?,?,?,?,?)",
            [
                (sample_id, m["taxon"], int(m["count"]), float(m["volume_ml"]),
                 m.get("who", ""), m.get("at", ""), m.get("note", ""))
                for m in manual
            ],
        )  # fmt: skip

    @staticmethod
    def _write_revision(
        db: sqlite3.Connection,
        sample_id: int,
        revision: int,
        at: str,
        reason: str,
        sample: Sample,
        counts: Mapping[str, int],
        summary: Mapping[str, Any] | None,
        bins: list[Mapping[str, Any]],
        manual: list[Mapping[str, Any]],
    ) -> None:
        record = {
            "site": sample.site,
            "sampled_at": sample.sampled_at,
            "kind": sample.kind,
            "sources": list(sample.sources),
            "volume": {
                "ml_analyzed": sample.volume.ml_analyzed,
                "method": sample.volume.method,
                "details": [list(d) for d in sample.volume.details],
            },
            "counts": dict(counts),
            "flags": list(sample.flags),
            "warnings": list(sample.warnings),
            "unidentified": sample.unidentified,
            "bins": bins,
            "manual": [dict(m) for m in manual],
            "summary": dict(summary or {}),
        }
        db.execute(
            "INSERT INTO sample_revisions(sample_id, revision, saved_at, reason, record)"
            " VALUES (?,?,?,?,?)",
            (sample_id, revision, at, reason, json.dumps(record)),
        )

    def _sample_from_row(self, r: sqlite3.Row) -> Sample:
        return Sample(
            kind=r["kind"],
            sources=tuple(json.loads(r["sources"])),
            volume=Volume(
                ml_analyzed=r["ml_analyzed"],
                method=r["volume_method"],
                details=tuple((k, v) for k, v in json.loads(r["volume_details"])),
            ),
            site=r["site"],
            sampled_at=r["sampled_at"],
            run_id=r["run_id"],
            model=r["model"],
            rule_set=r["rule_set"],
            notes=r["notes"],
            id=r["id"],
            created_at=r["created_at"],
            revision=int(r["revision"]),
            updated_at=r["updated_at"],
            flags=tuple(json.loads(r["flags"])),
            warnings=tuple(json.loads(r["warnings"])),
            unidentified=int(r["unidentified"]),
            time_source=r["time_source"],
            run_ids=tuple(int(i) for i in json.loads(r["run_ids"])),
        )

    def sample(self, sample_id: int) -> Sample:
        row = self.db.execute("SELECT * FROM samples WHERE id=?", (sample_id,)).fetchone()
        if row is None:
            raise StorageError(
                f"no sample {sample_id} in {self.path}; `phytoscope report --list` shows the samples"
            )
        return self._sample_from_row(row)

    def samples(self) -> list[Sample]:
        return [
            self._sample_from_row(r) for r in self.db.execute("SELECT * FROM samples ORDER BY id")
        ]

    def sample_counts(self, sample_id: int) -> dict[str, tuple[int, str]]:
        """``{taxon: (count, unit)}`` in the order they were stored (the model's class order)."""
        rows = self.db.execute(
            "SELECT taxon, count, unit FROM sample_counts WHERE sample_id=? ORDER BY rowid",
            (sample_id,),
        )
        return {r["taxon"]: (int(r["count"]), r["unit"]) for r in rows}

    def sample_summary(self, sample_id: int) -> dict[str, Any]:
        row = self.db.execute("SELECT summary FROM samples WHERE id=?", (sample_id,)).fetchone()
        if row is None:
            raise StorageError(f"no sample {sample_id} in {self.path}")
        return dict(json.loads(row["summary"]))

    def sample_bins(self, sample_id: int) -> list[dict[str, Any]]:
        """The IFCB bins of a sample as the session saw them (ROIs expected, classified...)."""
        row = self.db.execute("SELECT bins FROM samples WHERE id=?", (sample_id,)).fetchone()
        if row is None:
            raise StorageError(f"no sample {sample_id} in {self.path}")
        return list(json.loads(row["bins"]))

    def manual_counts(self, sample_id: int | None = None) -> list[dict[str, Any]]:
        """A microscopist's counts of one sample (or of all) as dicts: sample_id, taxon,
        count, volume_ml, who, at, note."""
        where, args = ("WHERE sample_id=?", (sample_id,)) if sample_id is not None else ("", ())
        rows = self.db.execute(f"SELECT * FROM manual_counts {where} ORDER BY rowid", args)
        return [dict(r) for r in rows]

    def sample_revisions(self, sample_id: int) -> list[dict[str, Any]]:
        """Every saved state of a sample, oldest first: revision, saved_at, reason, record."""
        rows = self.db.execute(
            "SELECT * FROM sample_revisions WHERE sample_id=? ORDER BY revision", (sample_id,)
        )
        return [
            {
                "revision": r["revision"],
                "saved_at": r["saved_at"],
                "reason": r["reason"],
                "record": json.loads(r["record"]),
            }
            for r in rows
        ]

    # -- alerts --------------------------------------------------------------------------

    def add_alerts(self, sample_id: int, alerts: Iterable[Alert]) -> list[int]:
        """Store new alerts of a sample in one transaction; returns their ids in order."""
        ids = []
        names = ", ".join(("sample_id", "raised_at", "revision", *_ALERT_VALUES))
        marks = ",".join("?" * (len(_ALERT_VALUES) + 3))
        with self.transaction() as db:
            for a in alerts:
                cur = db.execute(
                    f"INSERT INTO alerts({names}) VALUES ({marks})",
                    (sample_id, a.raised_at or utc_now(), a.revision, *_alert_values(a)),
                )
                ids.append(int(cur.lastrowid or 0))
        return ids

    def sync_alerts(self, sample_id: int, alerts: Iterable[Alert], revision: int) -> list[Alert]:
        """Make the sample's alerts those of ``revision``: update each taxon's alert in place
        (keeping when it was first raised), add new taxa, withdraw the ones no longer
        reached. Returns the sample's alerts as stored."""
        now = utc_now()
        alerts = list(alerts)
        names = ", ".join(("sample_id", "raised_at", "revision", *_ALERT_VALUES))
        marks = ",".join("?" * (len(_ALERT_VALUES) + 3))
        assignments = ", ".join(f"{c}=?" for c in _ALERT_VALUES)
        with self.transaction() as db:
            existing = {
                r["taxon"]: r
                for r in db.execute(
                    "SELECT id, taxon, withdrawn_at FROM alerts WHERE sample_id=? ORDER BY id",
                    (sample_id,),
                )
            }
            for a in alerts:
                row = existing.pop(a.taxon, None)
                if row is None:
                    db.execute(
                        f"INSERT INTO alerts({names}) VALUES ({marks})",
                        (sample_id, a.raised_at or now, revision, *_alert_values(a)),
                    )
                else:
                    db.execute(
                        f"UPDATE alerts SET revision=?, updated_at=?, withdrawn_at=NULL,"
                        f" {assignments} WHERE id=?",
                        (revision, now, *_alert_values(a), row["id"]),
                    )
            for row in existing.values():
                if row["withdrawn_at"] is None:
                    db.execute(
                        "UPDATE alerts SET withdrawn_at=?, updated_at=?, revision=? WHERE id=?",
                        (now, now, revision, row["id"]),
                    )
        return self.alerts(sample_id)

    @staticmethod
    def _alert_from_row(r: sqlite3.Row) -> Alert:
        acknowledged = r["ack_who"] is not None and (
            r["ack_level"] == r["level"]
            and int(r["ack_count"]) == int(r["count"])
            and _same_concentration(float(r["ack_per_l"]), float(r["concentration_per_l"]))
        )
        stale = ""
        if r["ack_who"] is not None and not acknowledged:
            stale = (
                f"acknowledged by {r['ack_who']} at {r['ack_at']} for {r['ack_level']} at "
                f"{r['ack_per_l']:.4g} per L (n={r['ack_count']}); the sample has changed since"
            )
        return Alert(
            taxon=r["taxon"],
            level=r["level"],
            threshold_per_l=r["threshold_per_l"],
            concentration_per_l=r["concentration_per_l"],
            low_per_l=r["low_per_l"],
            high_per_l=r["high_per_l"],
            count=r["count"],
            unit=r["unit"],
            rule_set=r["rule_set"],
            rule_set_version=r["rule_set_version"],
            model=r["model"],
            rule_taxon=r["rule_taxon"],
            syndrome=r["syndrome"],
            lower_bound=bool(r["lower_bound"]),
            flags=tuple(json.loads(r["flags"])),
            evidence=tuple((str(s), int(i)) for s, i in json.loads(r["evidence"])),
            sample_id=r["sample_id"],
            raised_at=r["raised_at"],
            id=r["id"],
            acknowledged_by=r["ack_who"] if acknowledged else None,
            acknowledged_at=r["ack_at"] if acknowledged else None,
            revision=int(r["revision"]),
            withdrawn_at=r["withdrawn_at"],
            ack_note=(r["ack_note"] or "") if acknowledged else "",
            reopened=stale,
        )

    def alerts(self, sample_id: int | None = None) -> list[Alert]:
        """Alerts of one sample (or all), open, acknowledged or withdrawn, oldest first."""
        if sample_id is None:
            rows = self.db.execute(_ALERTS + " ORDER BY a.id")
        else:
            rows = self.db.execute(_ALERTS + " WHERE a.sample_id=? ORDER BY a.id", (sample_id,))
        return [self._alert_from_row(r) for r in rows]

    def alert(self, alert_id: int) -> Alert:
        row = self.db.execute(_ALERTS + " WHERE a.id=?", (alert_id,)).fetchone()
        if row is None:
            raise StorageError(f"no alert {alert_id} in {self.path}")
        return self._alert_from_row(row)

    def open_alerts(self) -> list[Alert]:
        """Alerts nobody has acknowledged at their current concentration (and not withdrawn):
        what the alert panel shows on start-up."""
        return [a for a in self.alerts() if a.open]

    def acknowledge(self, alert_id: int, who: str, note: str = "", at: str | None = None) -> Alert:
        """Record who acknowledged an alert, when, and the level and concentration they saw.

        The alert row itself is not changed by this, so its evidence stays as raised. An
        alert already acknowledged at its current concentration keeps that first
        acknowledgement.
        """
        if not who or not who.strip():
            raise StorageError("an acknowledgement needs the name of who acknowledges the alert")
        with self.transaction() as db:
            row = db.execute(_ALERTS + " WHERE a.id=?", (alert_id,)).fetchone()
            if row is None:
                raise StorageError(f"no alert {alert_id} in {self.path}")
            current = self._alert_from_row(row)
            if current.withdrawn_at is not None:
                raise StorageError(
                    f"alert {alert_id} was withdrawn at {current.withdrawn_at}: its sample no "
                    "longer reaches the threshold, so there is nothing to acknowledge"
                )
            if current.acknowledged_at is None:
                db.execute(
                    "INSERT INTO alert_acks(alert_id, who, at, note, level, concentration_per_l,"
                    " count) VALUES (?,?,?,?,?,?,?)",
                    (
                        alert_id,
                        who.strip(),
                        at or utc_now(),
                        note,
                        current.level,
                        current.concentration_per_l,
                        current.count,
                    ),
                )
        return self.alert(alert_id)

    # -- runs (resume) ---------------------------------------------------------------------

    def set_run_key(self, run_id: int, key: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE runs SET inputs_key=? WHERE id=?", (key, run_id))

    def last_run_of(self, key: str) -> sqlite3.Row | None:
        """The latest run of these inputs (see ``core.analysis.inputs_key``), if any."""
        return self.db.execute(
            "SELECT * FROM runs WHERE inputs_key=? ORDER BY id DESC LIMIT 1", (key,)
        ).fetchone()

    def prediction_count(self, run_id: int) -> int:
        row = self.db.execute("SELECT COUNT(*) FROM predictions WHERE run_id=?", (run_id,))
        return int(row.fetchone()[0])

    def skipped_of_run(self, run_id: int) -> set[tuple[str, str]]:
        rows = self.db.execute("SELECT source, reason FROM skipped WHERE run_id=?", (run_id,))
        return {(r["source"], r["reason"]) for r in rows}
