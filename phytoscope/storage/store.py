"""The results store: one SQLite file in WAL mode.

Each batch of predictions is committed as it arrives, so a crash or power cut mid-run
loses at most the batch in flight; WAL lets the GUI read while a worker writes.
A connection belongs to the thread that opened it (sqlite3's rule): each worker opens its
own :class:`Store` on the same file. Whose file it is, how it is created when several
runs start at once, and how failures are reported: :mod:`phytoscope.storage.database`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from phytoscope.errors import StorageError
from phytoscope.storage import database
from phytoscope.types import Alert, Prediction, Sample, Skipped, Volume


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _text(value: str) -> str:
    """Text SQLite can store: a file name that is not valid UTF-8 (surrogate escapes on
    POSIX) is kept with its odd bytes written as ``\\xNN`` instead of failing the batch."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class Store:
    """The results database.

    Parameters
    ----------
    path
        The SQLite file (created with its folder if missing), or ``":memory:"``.
    timeout
        Seconds a write waits while another program writes the same file.

    Raises
    ------
    StorageError
        The file is another program's database or not a database, is read-only and needs
        creating, was written by a newer phytoscope, or cannot be opened.
    """

    def __init__(self, path: Path | str, timeout: float = database.BUSY_TIMEOUT_S):
        self.path = Path(path)
        self.timeout = timeout
        self.db, self.read_only = database.connect(path, timeout)
        try:
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA foreign_keys=ON")
            self._version = database.prepare(self.db, path, self.read_only)
        except sqlite3.Error as exc:
            self.db.close()
            raise database.describe(exc, path, "opening") from exc
        except BaseException:
            self.db.close()
            raise

    @property
    def schema_version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> None:
        """Bring the schema up to date (done on open; safe to call again)."""
        self._version = database.prepare(self.db, self.path, self.read_only)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Commit on success, roll back on error, and turn SQLite errors into StorageError.

        What earlier transactions committed stays: a failure (disk full, locked, read-only)
        loses only the work of this one.
        """
        with database.write_transaction(self.db, self.path, waited=self.timeout) as db:
            yield db

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- runs and predictions ------------------------------------------------------------

    def start_run(
        self, backend: str, model: str, model_sha256: str, settings: dict[str, Any] | None = None
    ) -> int:
        with self.transaction() as db:
            cur = db.execute(
                "INSERT INTO runs(started_at, backend, model, model_sha256, settings) VALUES (?,?,?,?,?)",
                (utc_now(), backend, model, model_sha256, json.dumps(settings or {})),
            )
        return int(cur.lastrowid or 0)

    def finish_run(self, run_id: int) -> None:
        with self.transaction() as db:
            db.execute("UPDATE runs SET finished_at=? WHERE id=?", (utc_now(), run_id))

    def add_predictions(self, run_id: int, predictions: Iterable[Prediction]) -> None:
        rows = [
            (
                run_id,
                _text(p.source),
                p.roi_index,
                *(p.box if p.box else (None, None, None, None)),
                p.label,
                p.confidence,
                json.dumps(p.top_k),
                json.dumps(list(p.flags)),
                p.novelty,
                p.unknown_reason,
            )
            for p in predictions
        ]
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO predictions(run_id, source, roi_index, x, y, w, h, label, confidence,"
                " top_k, flags, novelty, unknown_reason) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                rows,
            )

    def add_skipped(self, run_id: int, skipped: Iterable[Skipped]) -> None:
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO skipped(run_id, source, reason) VALUES (?,?,?)",
                [(run_id, _text(s.source), _text(s.reason)) for s in skipped],
            )

    def predictions(self, run_id: int) -> list[Prediction]:
        rows = self.db.execute(
            "SELECT * FROM predictions WHERE run_id=? ORDER BY id", (run_id,)
        ).fetchall()
        return [
            Prediction(
                source=r["source"],
                roi_index=r["roi_index"],
                label=r["label"],
                confidence=r["confidence"],
                top_k=tuple((name, float(p)) for name, p in json.loads(r["top_k"])),
                box=(r["x"], r["y"], r["w"], r["h"]) if r["x"] is not None else None,
                flags=tuple(json.loads(r["flags"])),
                novelty=r["novelty"],
                unknown_reason=r["unknown_reason"],
            )
            for r in rows
        ]

    def runs(self) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM runs ORDER BY id").fetchall()

    # -- samples, counts, alerts, acknowledgements (migration 2) -------------------------

    def save_sample(
        self,
        sample: Sample,
        counts: Mapping[str, int],
        units: Mapping[str, str] | None = None,
        summary: Mapping[str, Any] | None = None,
    ) -> int:
        """Store a sample and its per-class counts in one transaction; returns its id.

        ``summary`` is the JSON-able HAB assessment (every taxon's level, the taxa not
        monitored) so a report shows exactly what was decided when the sample was taken.
        """
        units = units or {}
        with self.transaction() as db:
            cur = db.execute(
                "INSERT INTO samples(created_at, kind, site, sampled_at, sources, ml_analyzed, volume_method,"
                " volume_details, run_id, model, rule_set, summary, notes) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    sample.created_at or utc_now(),
                    sample.kind,
                    sample.site,
                    sample.sampled_at,
                    json.dumps([_text(s) for s in sample.sources]),
                    sample.volume.ml_analyzed,
                    sample.volume.method,
                    json.dumps([list(d) for d in sample.volume.details]),
                    sample.run_id,
                    sample.model,
                    sample.rule_set,
                    json.dumps(summary or {}),
                    sample.notes,
                ),
            )
            sample_id = int(cur.lastrowid or 0)
            db.executemany(
                "INSERT INTO sample_counts(sample_id, taxon, count, unit) VALUES (?,?,?,?)",
                [
                    (sample_id, taxon, int(n), units.get(taxon, "cells/L"))
                    for taxon, n in counts.items()
                ],
            )
        return sample_id

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

    def add_alerts(self, sample_id: int, alerts: Iterable[Alert]) -> list[int]:
        """Store alerts of a sample in one transaction; returns their ids in order."""
        ids = []
        with self.transaction() as db:
            for a in alerts:
                cur = db.execute(
                    "INSERT INTO alerts(sample_id, raised_at, taxon, level, threshold_per_l, concentration_per_l,"
                    " low_per_l, high_per_l, count, unit, lower_bound, rule_set, rule_set_version, rule_taxon,"
                    " syndrome, model, flags, evidence) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        sample_id,
                        a.raised_at or utc_now(),
                        a.taxon,
                        a.level,
                        a.threshold_per_l,
                        a.concentration_per_l,
                        a.low_per_l,
                        a.high_per_l,
                        a.count,
                        a.unit,
                        int(a.lower_bound),
                        a.rule_set,
                        a.rule_set_version,
                        a.rule_taxon,
                        a.syndrome,
                        a.model,
                        json.dumps(list(a.flags)),
                        json.dumps([list(e) for e in a.evidence]),
                    ),
                )
                ids.append(int(cur.lastrowid or 0))
        return ids

    _ALERTS = (
        "SELECT a.*, k.who AS ack_who, k.at AS ack_at FROM alerts a"
        " LEFT JOIN acknowledgements k ON k.alert_id = a.id"
    )

    @staticmethod
    def _alert_from_row(r: sqlite3.Row) -> Alert:
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
            acknowledged_by=r["ack_who"],
            acknowledged_at=r["ack_at"],
        )

    def alerts(self, sample_id: int | None = None) -> list[Alert]:
        """Alerts of one sample (or all), acknowledged or not, oldest first."""
        if sample_id is None:
            rows = self.db.execute(self._ALERTS + " ORDER BY a.id")
        else:
            rows = self.db.execute(
                self._ALERTS + " WHERE a.sample_id=? ORDER BY a.id", (sample_id,)
            )
        return [self._alert_from_row(r) for r in rows]

    def open_alerts(self) -> list[Alert]:
        """Alerts nobody has acknowledged yet: what the alert panel shows on start-up."""
        rows = self.db.execute(self._ALERTS + " WHERE k.alert_id IS NULL ORDER BY a.id")
        return [self._alert_from_row(r) for r in rows]

    def acknowledge(self, alert_id: int, who: str, note: str = "", at: str | None = None) -> Alert:
        """Record who acknowledged an alert and when; the first acknowledgement stands.

        The alert row itself is never changed, so its evidence stays as it was raised.
        """
        if not who or not who.strip():
            raise StorageError("an acknowledgement needs the name of who acknowledges the alert")
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM alerts WHERE id=?", (alert_id,)).fetchone() is None:
                raise StorageError(f"no alert {alert_id} in {self.path}")
            db.execute(
                "INSERT OR IGNORE INTO acknowledgements(alert_id, who, at, note) VALUES (?,?,?,?)",
                (alert_id, who.strip(), at or utc_now(), note),
            )
        row = self.db.execute(self._ALERTS + " WHERE a.id=?", (alert_id,)).fetchone()
        return self._alert_from_row(row)
