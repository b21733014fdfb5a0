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
    # 2: samples (what was analysed, where, when, how much water), their per-class counts,
    #    HAB alerts with evidence, and acknowledgements (who and when), kept apart from the
    #    alert so an acknowledgement never rewrites the evidence
    """
    CREATE TABLE samples (
        id              INTEGER PRIMARY KEY,
        created_at      TEXT NOT NULL,
        kind            TEXT NOT NULL,
        site            TEXT NOT NULL DEFAULT '',
        sampled_at      TEXT,
        sources         TEXT NOT NULL DEFAULT '[]',
        ml_analyzed     REAL NOT NULL CHECK (ml_analyzed > 0),
        volume_method   TEXT NOT NULL,
        volume_details  TEXT NOT NULL DEFAULT '[]',
        run_id          INTEGER REFERENCES runs(id),
        model           TEXT NOT NULL DEFAULT '',
        rule_set        TEXT NOT NULL DEFAULT '',
        summary         TEXT NOT NULL DEFAULT '{}',
        notes           TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE sample_counts (
        sample_id   INTEGER NOT NULL REFERENCES samples(id),
        taxon       TEXT NOT NULL,
        count       INTEGER NOT NULL CHECK (count >= 0),
        unit        TEXT NOT NULL DEFAULT 'cells/L',
        PRIMARY KEY (sample_id, taxon)
    );
    CREATE TABLE alerts (
        id                  INTEGER PRIMARY KEY,
        sample_id           INTEGER NOT NULL REFERENCES samples(id),
        raised_at           TEXT NOT NULL,
        taxon               TEXT NOT NULL,
        level               TEXT NOT NULL,
        threshold_per_l     REAL NOT NULL,
        concentration_per_l REAL NOT NULL,
        low_per_l           REAL NOT NULL,
        high_per_l          REAL NOT NULL,
        count               INTEGER NOT NULL,
        unit                TEXT NOT NULL,
        lower_bound         INTEGER NOT NULL DEFAULT 0,
        rule_set            TEXT NOT NULL,
        rule_set_version    TEXT NOT NULL,
        rule_taxon          TEXT NOT NULL DEFAULT '',
        syndrome            TEXT NOT NULL DEFAULT '',
        model               TEXT NOT NULL,
        flags               TEXT NOT NULL DEFAULT '[]',
        evidence            TEXT NOT NULL DEFAULT '[]'
    );
    CREATE INDEX alerts_sample ON alerts(sample_id);
    CREATE TABLE acknowledgements (
        alert_id    INTEGER PRIMARY KEY REFERENCES alerts(id),
        who         TEXT NOT NULL,
        at          TEXT NOT NULL,
        note        TEXT NOT NULL DEFAULT ''
    );
    """,
    # 3: label corrections made by a technician in the GUI gallery, with the ROI pixels as
    #    PNG (longest side <= 128 px, the model's input) so they export as a training folder
    #    even after the source files are gone
    """
    CREATE TABLE corrections (
        id          INTEGER PRIMARY KEY,
        created_at  TEXT NOT NULL,
        source      TEXT NOT NULL,
        roi_index   INTEGER NOT NULL,
        predicted   TEXT NOT NULL,
        confidence  REAL NOT NULL,
        corrected   TEXT NOT NULL,
        model       TEXT NOT NULL DEFAULT '',
        run_id      INTEGER REFERENCES runs(id),
        who         TEXT NOT NULL DEFAULT '',
        image_png   BLOB
    );
    CREATE INDEX corrections_roi ON corrections(source, roi_index);
    """,
    # 4: the open-set score of each prediction and why an organism is "unknown" ("novel":
    #    unlike every training class; "unsure": below its class's confidence threshold)
    """
    ALTER TABLE predictions ADD COLUMN novelty REAL;
    ALTER TABLE predictions ADD COLUMN unknown_reason TEXT NOT NULL DEFAULT '';
    """,
    # 5: one record per sample. A sample is updated in place (revision + 1, the earlier
    #    state kept in sample_revisions) when corrections, more bins or a new volume change
    #    it; it carries its flags (partial bins), warnings, organisms not identified, bins
    #    and runs. An alert is updated with its sample (withdrawn when no longer reached); an
    #    acknowledgement records the level and concentration it saw, so a later change
    #    re-opens the alert (several acknowledgements per alert, hence a new table). Runs
    #    record a key of their inputs, so an unfinished run can be resumed.
    """
    ALTER TABLE samples ADD COLUMN revision INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE samples ADD COLUMN updated_at TEXT;
    ALTER TABLE samples ADD COLUMN flags TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE samples ADD COLUMN warnings TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE samples ADD COLUMN unidentified INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE samples ADD COLUMN time_source TEXT NOT NULL DEFAULT '';
    ALTER TABLE samples ADD COLUMN bins TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE samples ADD COLUMN run_ids TEXT NOT NULL DEFAULT '[]';
    CREATE TABLE sample_revisions (
        sample_id   INTEGER NOT NULL REFERENCES samples(id),
        revision    INTEGER NOT NULL,
        saved_at    TEXT NOT NULL,
        reason      TEXT NOT NULL DEFAULT '',
        record      TEXT NOT NULL,
        PRIMARY KEY (sample_id, revision)
    );
    ALTER TABLE alerts ADD COLUMN revision INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE alerts ADD COLUMN updated_at TEXT;
    ALTER TABLE alerts ADD COLUMN withdrawn_at TEXT;
    CREATE TABLE alert_acks (
        id                  INTEGER PRIMARY KEY,
        alert_id            INTEGER NOT NULL REFERENCES alerts(id),
        who                 TEXT NOT NULL,
        at                  TEXT NOT NULL,
        note                TEXT NOT NULL DEFAULT '',
        level               TEXT NOT NULL,
        concentration_per_l REAL NOT NULL,
        count               INTEGER NOT NULL
    );
    CREATE INDEX alert_acks_alert ON alert_acks(alert_id);
    INSERT INTO alert_acks(alert_id, who, at, note, level, concentration_per_l, count)
        SELECT k.alert_id, k.who, k.at, k.note, a.level, a.concentration_per_l, a.count
        FROM acknowledgements k JOIN alerts a ON a.id = k.alert_id;
    DROP TABLE acknowledgements;
    ALTER TABLE runs ADD COLUMN inputs_key TEXT;
    CREATE INDEX runs_inputs ON runs(inputs_key);
    CREATE INDEX predictions_roi ON predictions(run_id, source, roi_index)
    """,
    # 6: a microscopist's counts of taxa the model cannot see, each over its own volume,
    #    stored with their sample (one per taxon; replaced with each revision, whose record
    #    keeps them too) and assessed by the alerts like the model's counts
    """
    CREATE TABLE manual_counts (
        sample_id   INTEGER NOT NULL REFERENCES samples(id),
        taxon       TEXT NOT NULL,
        count       INTEGER NOT NULL CHECK (count >= 0),
        volume_ml   REAL NOT NULL CHECK (volume_ml > 0),
        who         TEXT NOT NULL DEFAULT '',
        at          TEXT NOT NULL DEFAULT '',
        note        TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (sample_id, taxon)
    );
    """,
]
