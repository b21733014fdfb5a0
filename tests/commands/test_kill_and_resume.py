"""Kill and resume (#19.8) and Ctrl-C (#19.9) on a real ``phytoscope classify`` process.

The command runs in a child process on 2,000 image files (copies of one real SMHI fixture
image: copies, not links, since an input linked twice is read once) with a small batch,
and is killed or
interrupted once rows are in the database. Nothing here is mocked: the kill is SIGKILL,
the interrupt is SIGINT, and the store is the real SQLite file.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import DATA, REPO

N_IMAGES = 2000

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


@pytest.fixture
def folder(tmp_path) -> Path:
    images = tmp_path / "images"
    images.mkdir()
    data = (DATA / "images" / "smhi_cryptomonadales.png").read_bytes()
    for i in range(N_IMAGES):
        (images / f"img{i:05d}.png").write_bytes(data)
    return images


def _classify(args: list[str], tmp_path: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PHYTOSCOPE_DATA": str(tmp_path / "data")}
    return subprocess.Popen(
        [sys.executable, "-m", "phytoscope", "classify", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _rows(db: Path) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db, timeout=30) as con:
        try:
            return int(con.execute("SELECT COUNT(*) FROM predictions").fetchone()[0])
        except sqlite3.OperationalError:  # tables not created yet
            return 0


def _wait_for_rows(proc: subprocess.Popen, db: Path, at_least: int = 16) -> None:
    deadline = time.monotonic() + 120
    while _rows(db) < at_least:
        assert proc.poll() is None, (
            f"classify ended before it could be stopped: {proc.stderr.read()}"
        )
        assert time.monotonic() < deadline, "no rows stored within 2 minutes"
        time.sleep(0.02)


def test_a_killed_run_resumes_without_losing_or_duplicating_a_row(folder, tmp_path, tiny_model_dir):
    db = tmp_path / "r.sqlite"
    args = [str(folder), "--db", str(db), "--model", str(tiny_model_dir), "--backend",
            "onnxruntime", "--batch-size", "4", "--format", "csv", "-o", str(tmp_path / "o.csv")]  # fmt: skip
    proc = _classify(args, tmp_path)
    _wait_for_rows(proc, db)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    kept = _rows(db)
    assert 0 < kept < N_IMAGES
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT finished_at FROM runs").fetchall() == [(None,)]
    assert not (tmp_path / "o.csv").exists()  # no half-written output

    # the same command again does not start over: it says how to choose
    again = _classify(args, tmp_path)
    _, err = again.communicate(timeout=300)
    assert again.returncode == 1, err
    assert "run 1 on these inputs did not finish" in err and "--resume" in err
    assert _rows(db) == kept

    resumed = _classify([*args, "--resume"], tmp_path)
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    assert "resuming run 1" in err and f"{kept} organisms already stored" in err
    with sqlite3.connect(db) as con:
        (runs,) = con.execute("SELECT COUNT(*) FROM runs").fetchone()
        (finished,) = con.execute("SELECT finished_at FROM runs WHERE id=1").fetchone()
        total, distinct = con.execute(
            "SELECT COUNT(*), COUNT(DISTINCT source || '#' || roi_index) FROM predictions"
        ).fetchone()
    assert runs == 1 and finished is not None
    assert total == distinct == N_IMAGES  # nothing lost, nothing twice
    # the output of the resumed run holds every organism, the restored ones included
    lines = (tmp_path / "o.csv").read_text().splitlines()
    assert len(lines) == 1 + N_IMAGES


def test_ctrl_c_prints_the_run_and_the_rows_stored(folder, tmp_path, tiny_model_dir):
    db = tmp_path / "r.sqlite"
    out_csv = tmp_path / "o.csv"
    args = [str(folder), "--db", str(db), "--model", str(tiny_model_dir), "--backend",
            "onnxruntime", "--batch-size", "4", "--format", "csv", "-o", str(out_csv)]  # fmt: skip
    proc = _classify(args, tmp_path)
    _wait_for_rows(proc, db)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    stored = _rows(db)
    assert f"run 1: {stored} rows stored in {db}" in err and "--resume" in err
    assert "Traceback" not in err
    # what was classified before the interrupt is in the output file
    assert len(out_csv.read_text().splitlines()) - 1 >= stored > 0
