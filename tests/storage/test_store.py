from __future__ import annotations

import sqlite3

import pytest

from phytoscope.errors import StorageError
from phytoscope.storage import Store
from phytoscope.storage.migrations import MIGRATIONS
from phytoscope.types import Prediction, Skipped


def _pred(i, label="A"):
    return Prediction(
        "f.png", i, label, 0.9, (("A", 0.9), ("B", 0.1)), box=(1, 2, 3, 4), flags=("edge",)
    )


def test_round_trip_and_wal(tmp_path):
    with Store(tmp_path / "r.sqlite") as store:
        assert store.schema_version == len(MIGRATIONS)
        assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        run = store.start_run("onnxruntime", "m 1 onnx/fp32", "abc")
        store.add_predictions(run, [_pred(0), _pred(1, "B")])
        store.add_skipped(run, [Skipped("bad.png", "not an image")])
        store.finish_run(run)
        assert store.predictions(run) == [_pred(0), _pred(1, "B")]


def test_novelty_and_unknown_reason_are_stored(tmp_path):
    from dataclasses import replace

    novel = replace(_pred(0, "unknown"), novelty=7.25, unknown_reason="novel")
    with Store(tmp_path / "r.sqlite") as store:
        run = store.start_run("onnxruntime", "m", "abc")
        store.add_predictions(run, [novel, _pred(1)])
        stored = store.predictions(run)
    assert stored == [novel, _pred(1)]
    assert stored[1].novelty is None and stored[1].unknown_reason == ""


def test_batches_already_committed_survive_a_crash(tmp_path):
    path = tmp_path / "r.sqlite"
    store = Store(path)
    run = store.start_run("onnxruntime", "m", "abc")
    store.add_predictions(run, [_pred(0)])
    # a second connection (another process, after a crash) sees the committed batch
    other = sqlite3.connect(path)
    assert other.execute("SELECT count(*) FROM predictions").fetchone()[0] == 1
    other.close()
    store.close()


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "r.sqlite"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
    db.close()
    with pytest.raises(StorageError, match="newer phytoscope"):
        Store(path)
