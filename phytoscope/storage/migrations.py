"""Schema migrations, applied in order; ``PRAGMA user_version`` records how many ran.

Append new migrations at the end, never edit a released one: a technician's database from
an older phytoscope must open and upgrade without losing a row.
"""

MIGRATIONS: list[str] = [
    # 1: runs of the classifier, their predictions, and inputs that were skipped
    """
    CREATE TABLE runs (
        id          INTEGER PRIMARY KEY,
        started_at  TEXT NOT NULL,
        finished_at TEXT,
        backend     TEXT NOT NULL,
        model       TEXT NOT NULL,
        model_sha256 TEXT NOT NULL,
        settings    TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE predictions (
        id          INTEGER PRIMARY KEY,
        run_id      INTEGER NOT NULL REFERENCES runs(id),
        source      TEXT NOT NULL,
        roi_index   INTEGER NOT NULL,
        x INTEGER, y INTEGER, w INTEGER, h INTEGER,
        label       TEXT NOT NULL,
        confidence  REAL NOT NULL,
        top_k       TEXT NOT NULL,
        flags       TEXT NOT NULL DEFAULT '[]'
    );
    CREATE INDEX predictions_run ON predictions(run_id);
    CREATE TABLE skipped (
        id      INTEGER PRIMARY KEY,
        run_id  INTEGER NOT NULL REFERENCES runs(id),
        source  TEXT NOT NULL,
        reason  TEXT NOT NULL
    );
    """,
]
