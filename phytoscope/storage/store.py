"""The results store: one SQLite file in WAL mode.

Each batch of predictions is committed as it arrives, so a crash or power cut mid-run
loses at most the batch in flight; WAL lets the GUI read while a worker writes.
A connection belongs to the thread that opened it (sqlite3's rule): each worker opens its
own :class:`Store` on the same file. Whose file it is, how it is created when several
runs start at once, and how failures are reported: :mod:`phytoscope.storage.database`.
Samples, alerts and acknowledgements are in :mod:`phytoscope.storage.samples` (a mixin of
:class:`Store`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from phytoscope.storage import database
from phytoscope.storage.samples import SampleRecords
from phytoscope.types import Prediction, Skipped


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


class Store(SampleRecords):
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

    def rows_of_run(self, run_id: int, default: int = 0) -> int:
        """Predictions stored for a run (``default`` if the database cannot say)."""
        try:
            row = self.db.execute(
                "SELECT count(*) FROM predictions WHERE run_id=?", (run_id,)
            ).fetchone()
        except sqlite3.Error:
            return default
        return int(row[0])

    def runs(self) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM runs ORDER BY id").fetchall()
