"""The results database under faults: full disk, locks, read-only, foreign files, races.

Issue #19 findings 6, 7 and 10. Faults are real SQLite conditions: the full disk is
SQLite's own size limit (``PRAGMA max_page_count``: the same SQLITE_FULL error a full
disk gives, see also tests/test_bad_inputs.py for a real full file system), the lock is
a second connection holding an exclusive transaction, the concurrent creation is real
processes, and the read-only file is really unwritable (chmod, or ``chattr +i`` for root).
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from phytoscope.errors import StorageError
from phytoscope.storage import Store
from phytoscope.storage.database import APPLICATION_ID
from phytoscope.storage.migrations import MIGRATIONS
from phytoscope.types import Prediction


def _pred(i: int, source: str = "f.png") -> Prediction:
    return Prediction(source, i, "A", 0.9, (("A", 0.9), ("B", 0.1)))


def _count(path: Path, table: str = "predictions") -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        db.close()


def test_new_database_is_stamped(tmp_path):
    with Store(tmp_path / "r.sqlite") as store:
        assert store.db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID


def test_full_disk_gives_one_clear_message_and_keeps_what_was_committed(tmp_path):
    """#19.6: a full disk gave sqlite3's "cannot rollback - no transaction is active"."""
    store = Store(tmp_path / "r.sqlite")
    run = store.start_run("onnxruntime", "m", "abc")
    store.add_predictions(run, [_pred(i) for i in range(10)])
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count = {pages}")  # no room for one more page
    with pytest.raises(StorageError) as err:
        store.add_predictions(run, [_pred(i, "x" * 500) for i in range(200)])
    message = str(err.value)
    assert "the disk is full" in message and "what was stored before is kept" in message
    assert "rollback" not in message and not store.db.in_transaction
    store.close()
    assert _count(tmp_path / "r.sqlite") == 10


def test_locked_database_says_who_to_wait_for(tmp_path):
    path = tmp_path / "r.sqlite"
    Store(path).close()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        store = Store(path, timeout=0.2)
        with pytest.raises(StorageError, match="locked by another program .* 0.2 s"):
            store.start_run("onnxruntime", "m", "abc")
        store.close()
    finally:
        other.execute("ROLLBACK")
        other.close()


@pytest.fixture
def read_only(tmp_path):
    """Make a file unwritable for this process: chmod, or for root the immutable attribute."""
    made: list[Path] = []

    def make(path: Path) -> None:
        if os.geteuid() != 0:
            path.chmod(0o444)
            path.parent.chmod(0o555)
        else:
            if shutil.which("chattr") is None:
                pytest.skip("root ignores file modes and chattr is not installed")
            if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode:
                pytest.skip("root ignores file modes and this file system has no immutable flag")
        made.append(path)

    yield make
    for path in made:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(path)], capture_output=True)
        else:
            path.parent.chmod(0o755)
            path.chmod(0o644)


def test_read_only_database_reads_and_refuses_writes_clearly(tmp_path, read_only):
    path = tmp_path / "r.sqlite"
    with Store(path) as store:
        run = store.start_run("onnxruntime", "m", "abc")
        store.add_predictions(run, [_pred(0)])
    read_only(path)
    with Store(path) as store:
        assert store.read_only and store.predictions(run) == [_pred(0)]  # reports still work
        with pytest.raises(StorageError, match="is read-only"):
            store.start_run("onnxruntime", "m", "abc")


def test_foreign_database_is_refused_and_left_unchanged(tmp_path):
    """#19.10: --db on another program's file added tables and switched it to WAL."""
    path = tmp_path / "notes.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE notes (text TEXT)")
    db.execute("INSERT INTO notes VALUES ('mine')")
    db.commit()
    db.close()
    before = path.read_bytes()
    with pytest.raises(StorageError, match="another program's SQLite database .*notes"):
        Store(path)
    assert path.read_bytes() == before
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert [r[0] for r in db.execute("SELECT name FROM sqlite_master")] == ["notes"]
    db.close()


def test_database_of_a_program_with_an_application_id(tmp_path):
    path = tmp_path / "map.gpkg"
    db = sqlite3.connect(path)
    db.execute("PRAGMA application_id = 1196444487")  # GeoPackage, "GPKG"
    db.close()
    with pytest.raises(StorageError, match='0x47504b47 \\("GPKG"\\)'):
        Store(path)


@pytest.mark.parametrize(
    "content, message",
    [(b"just some text, not a database at all", "not a SQLite database"), (None, "is a folder")],
)
def test_not_a_database(tmp_path, content, message):
    path = tmp_path / "r.sqlite"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    with pytest.raises(StorageError, match=message):
        Store(path)
    if content is not None:
        assert path.read_bytes() == content


def test_old_phytoscope_database_without_the_stamp_opens(tmp_path):
    """A database of an earlier phytoscope (no application id) is recognised by its tables."""
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    for number, script in enumerate(MIGRATIONS[:2], start=1):  # as phytoscope 0.1 left it
        db.executescript(script)
        db.execute(f"PRAGMA user_version = {number}")
    db.execute(
        "INSERT INTO runs(started_at, backend, model, model_sha256) VALUES ('t','b','m','s')"
    )
    db.close()
    with Store(path) as store:
        assert store.schema_version == len(MIGRATIONS)
        assert store.db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert len(store.runs()) == 1


def _start_run(path: str, barrier, out) -> None:
    barrier.wait(timeout=120)  # all processes are up: they open the new file at once
    try:
        store = Store(path)
        run = store.start_run("onnxruntime", "m", "abc")
        store.add_predictions(run, [_pred(run)])
        store.finish_run(run)
        store.close()
        out.put(("ok", run))
    except Exception as exc:  # noqa: BLE001 - reported to the test
        out.put(("error", f"{type(exc).__name__}: {exc}"))


def test_runs_starting_at_once_on_a_new_database_all_store(tmp_path):
    """#19.7: concurrent starts clashed ("table runs already exists") and stored nothing."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    path = str(tmp_path / "new.sqlite")
    for _ in range(2):  # two rounds of six at once: the race is not always lost
        barrier = ctx.Barrier(6)
        procs = [ctx.Process(target=_start_run, args=(path, barrier, out)) for _ in range(6)]
        for p in procs:
            p.start()
        results = [out.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(timeout=60)
        assert all(kind == "ok" for kind, _ in results), results
        os.remove(path)
        for suffix in ("-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)


def test_non_utf8_source_names_are_stored(tmp_path):
    name = os.fsdecode(b"/data/caf\xe9.png")
    with Store(tmp_path / "r.sqlite") as store:
        run = store.start_run("onnxruntime", "m", "abc")
        store.add_predictions(run, [_pred(0, name)])
        assert store.predictions(run)[0].source == "/data/caf\\xe9.png"
