"""Opening the results database safely: whose file it is, creating it once, clear failures.

Why each rule:

* **Identity.** ``--db`` may point at any file. A new database is stamped with
  :data:`APPLICATION_ID` (SQLite's ``PRAGMA application_id``, the field that tells
  programs' files apart, as GeoPackage and Fossil use it) in the transaction that creates
  the tables. An existing file is used only if it carries that stamp, or is an older
  phytoscope database (no stamp yet, but phytoscope's tables: it gets the stamp), or holds
  no table at all. Anything else is another program's database: it is refused *before*
  anything is written, so its journal mode stays as it was and no table is added.
* **Creation under concurrent starts.** Several runs may start on a new database at once.
  The schema version is read again inside a ``BEGIN IMMEDIATE`` transaction (one writer at
  a time, others wait up to the busy timeout), and only the migrations still missing are
  applied, all in that one transaction: the loser of the race finds the tables there.
* **Failures.** SQLite rolls a transaction back by itself on some errors (a full disk), so
  a second ``ROLLBACK`` would fail with "no transaction is active" and hide the real cause:
  the rollback is only issued while a transaction is open. Every SQLite error becomes a
  :class:`~phytoscope.errors.StorageError` saying what happened, that what was committed
  before is kept, and what to do.
* **Read-only files** (a results database on a read-only share) open read-only, so reports
  still work; any attempt to write says the file is read-only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from phytoscope.errors import StorageError
from phytoscope.storage.migrations import MIGRATIONS

log = logging.getLogger(__name__)

APPLICATION_ID = int.from_bytes(b"PhSc", "big")
"""``PRAGMA application_id`` of a phytoscope results database (0x50685363, "PhSc")."""

PHYTOSCOPE_TABLES = frozenset({"runs", "predictions", "skipped"})
"""Tables of schema 1: a database without the stamp but with these is an old phytoscope one."""

BUSY_TIMEOUT_S = 30.0
"""How long a write waits for another program's transaction on the same file."""

_SQLITE_HEADER = b"SQLite format 3\x00"


def _code(exc: sqlite3.Error) -> str:
    """SQLite's error name (Python 3.11+), or one guessed from the message (3.10)."""
    name = getattr(exc, "sqlite_errorname", None)
    if name:
        return str(name)
    text = str(exc).lower()
    for fragment, guess in (
        ("disk is full", "SQLITE_FULL"),
        ("database is locked", "SQLITE_BUSY"),
        ("table is locked", "SQLITE_LOCKED"),
        ("readonly", "SQLITE_READONLY"),
        ("disk i/o error", "SQLITE_IOERR"),
        ("not a database", "SQLITE_NOTADB"),
        ("malformed", "SQLITE_CORRUPT"),
        ("unable to open", "SQLITE_CANTOPEN"),
    ):
        if fragment in text:
            return guess
    return "SQLITE_ERROR"


def describe(
    exc: sqlite3.Error, path: Path | str, doing: str = "", waited: float = BUSY_TIMEOUT_S
) -> StorageError:
    """One clear :class:`StorageError` for a SQLite failure on the results database."""
    code = _code(exc)
    kept = "what was stored before is kept"
    where = f"results database {path}"
    if code.startswith("SQLITE_FULL"):
        text = (
            f"{where}: the disk is full; the batch being written was not stored ({kept}). "
            "Free some space (or use --db on another disk) and run again"
        )
    elif code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        text = (
            f"{where} is locked by another program (another phytoscope run, or a program "
            f"holding it open) and stayed locked for {waited:g} s ({kept}). "
            "Wait for it to finish, or use another --db file"
        )
    elif code.startswith("SQLITE_READONLY"):
        text = (
            f"{where} is read-only (file or folder permissions, or a read-only disk): nothing "
            "can be stored in it. Use --db with a writable file"
        )
    elif code.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")):
        text = (
            f"{where} is damaged or is not a SQLite database ({exc}). Use --db with a new "
            "file name; keep this one for inspection"
        )
    elif code.startswith("SQLITE_CANTOPEN"):
        text = f"{where} cannot be opened ({exc}): check that its folder exists and is writable"
    elif code.startswith("SQLITE_IOERR"):
        text = f"{where}: the disk reported an error ({exc}) ({kept}). Check the disk"
    else:
        text = f"{where}: {exc}"
    if doing:
        text = text.replace(f"{where}", f"{where} ({doing})", 1)
    return StorageError(text)


def _check_file(path: Path) -> None:
    """Refuse, before SQLite touches it, what cannot be a results database."""
    if path.is_dir():
        raise StorageError(
            f"results database {path} is a folder; give a file name, e.g. {path / 'results.sqlite'}"
        )
    if not path.exists():
        return
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(_SQLITE_HEADER))
    except OSError as exc:
        raise StorageError(
            f"results database {path} cannot be read: {exc.strerror or exc}"
        ) from exc
    if head and head != _SQLITE_HEADER:
        raise StorageError(
            f"{path} is not a SQLite database (it is some other kind of file): phytoscope "
            "will not write into it. Use --db with a new file name"
        )


def _writable(path: Path) -> bool:
    """Whether SQLite can write the file and create its journal beside it.

    Opening the file for writing is the test that also holds for root (``os.access``
    says yes to root for a file without write permission, but a read-only mount or an
    immutable file still refuse).
    """
    folder = path.parent if str(path.parent) else Path(".")
    try:
        os.close(os.open(path, os.O_RDWR))
    except OSError:
        return False
    return os.access(folder, os.W_OK | os.X_OK)


def connect(path: Path | str, timeout: float = BUSY_TIMEOUT_S) -> tuple[sqlite3.Connection, bool]:
    """A connection in autocommit mode (transactions are explicit) and whether it is read-only."""
    if str(path) == ":memory:":
        db = sqlite3.connect(":memory:", timeout=timeout, isolation_level=None)
        return db, False
    path = Path(path)
    _check_file(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(
            f"cannot create the folder of results database {path}: {exc.strerror or exc}"
        ) from exc
    read_only = path.exists() and not _writable(path)
    try:
        if read_only:
            uri = f"{path.resolve().as_uri()}?mode=ro"
            db = sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None)
        else:
            db = sqlite3.connect(str(path), timeout=timeout, isolation_level=None)
    except sqlite3.Error as exc:
        raise describe(exc, path, "opening") from exc
    return db, read_only


def _tables(db: sqlite3.Connection) -> set[str]:
    rows = db.execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
    ).fetchall()
    return {str(r[0]) for r in rows}


def _owner(db: sqlite3.Connection, path: Path | str) -> str:
    """``"ours"``, ``"old"`` (phytoscope's tables, no stamp yet), ``"new"`` (no table) or
    raise for another program's database."""
    app_id = int(db.execute("PRAGMA application_id").fetchone()[0])
    if app_id == APPLICATION_ID:
        return "ours"
    tables = _tables(db)
    if app_id == 0 and not tables:
        return "new"
    if app_id == 0 and PHYTOSCOPE_TABLES <= tables:
        return "old"
    tag = app_id.to_bytes(4, "big", signed=app_id < 0)
    who = (
        f"application id 0x{app_id & 0xFFFFFFFF:08x}"
        + (f' ("{tag.decode()}")' if tag.isascii() and tag.decode().isprintable() else "")
        if app_id
        else f"tables {', '.join(sorted(tables)[:6])}"
    )
    raise StorageError(
        f"{path} is another program's SQLite database ({who}), not a phytoscope results "
        "database: phytoscope leaves it unchanged. Use --db with a new file name"
    )


@contextlib.contextmanager
def write_transaction(
    db: sqlite3.Connection, path: Path | str, doing: str = "", waited: float = BUSY_TIMEOUT_S
) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``; rollback only while a transaction is open.

    IMMEDIATE takes the write lock at the start, so two writers queue on the busy timeout
    instead of one failing at once when it upgrades a read lock.
    """
    try:
        db.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        raise describe(exc, path, doing, waited) from exc
    try:
        yield db
        db.execute("COMMIT")
    except BaseException as exc:
        if db.in_transaction:
            try:
                db.execute("ROLLBACK")
            except sqlite3.Error:
                log.debug("rollback of %s failed", path, exc_info=True)
        if isinstance(exc, sqlite3.Error):
            raise describe(exc, path, doing, waited) from exc
        raise


def prepare(db: sqlite3.Connection, path: Path | str, read_only: bool) -> int:
    """Check whose database it is, create or upgrade its schema, then switch to WAL.

    Returns the schema version. Safe when several processes do it at once on a new file.
    """
    try:
        owner = _owner(db, path)
        current = int(db.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.Error as exc:
        raise describe(exc, path, "opening") from exc
    if current > len(MIGRATIONS):
        raise StorageError(
            f"{path} was written by a newer phytoscope (schema {current}); upgrade phytoscope"
        )
    if read_only:
        if owner == "new" or current < len(MIGRATIONS):
            raise StorageError(
                f"results database {path} is read-only and needs "
                f"{'creating' if owner == 'new' else 'an upgrade to schema ' + str(len(MIGRATIONS))}"
                ": use it from a writable copy, or use --db with a writable file"
            )
        return current
    if owner != "ours" or current < len(MIGRATIONS):
        current = _create_or_upgrade(db, path)
    _switch_to_wal(db, path)
    return current


def _switch_to_wal(db: sqlite3.Connection, path: Path | str) -> None:
    """WAL journal and normal sync, retried while other processes hold the file.

    Changing the journal mode needs the file to itself for a moment; SQLite may answer
    "locked" at once instead of waiting, when several runs open a new file together.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            if str(path) != ":memory:":
                db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise describe(exc, path, "opening") from exc
            time.sleep(0.05)
        except sqlite3.Error as exc:
            raise describe(exc, path, "opening") from exc


def _create_or_upgrade(db: sqlite3.Connection, path: Path | str) -> int:
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            with write_transaction(db, path, "creating its tables"):
                # again, now that this connection is the only writer: another process may
                # have created or stamped it in the meantime
                _owner(db, path)
                current = int(db.execute("PRAGMA user_version").fetchone()[0])
                for number, script in enumerate(MIGRATIONS[current:], start=current + 1):
                    for statement in filter(str.strip, script.split(";")):
                        db.execute(statement)
                    db.execute(f"PRAGMA user_version = {number}")
                db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                return max(current, len(MIGRATIONS))
        except StorageError as exc:
            # a busy timeout that ran out while journal modes were being switched by
            # another starting process: try again until our own deadline
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
