"""Soak: classify 10,000 real images with ``--db`` while the process's memory is sampled.

Not collected by pytest (nothing here is asserted by time). It copies real plankton images
from ``../shared/data`` (``manifest.csv``; repeated, as distinct files, until there are
``--images`` of them) and the raw IFCB bins into a temporary folder, runs

    python -m phytoscope classify FOLDER --db DB --format csv -o OUT

as a user would, samples that process's resident memory (RSS) every ``--interval`` s with
psutil, and records to a JSON file:

* RSS over time; RSS after 20 % and after 90 % of the run (model loaded, pipeline warm)
  and the growth between them per 1,000 images (a leak shows as a steady slope);
* the peak RSS, the exit status, the wall time (a shared machine's figure, labelled so);
* whether anything was lost or doubled: rows in the database vs rows in the CSV, every
  input file accounted for (classified or reported as skipped), no (source, ROI) twice.

Usage::

    python tests/benchmarks/soak.py --images 10000 --out results/soak/<machine>.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent.parent / "shared" / "data"


def shared_data() -> Path:
    """../shared/data next to the checkout (main or a worktree), or $PHYTOSCOPE_SHARED_DATA."""
    env = os.environ.get("PHYTOSCOPE_SHARED_DATA")
    for candidate in filter(
        None, [env, SHARED, REPO.parent / "shared" / "data", Path("/work/shared/data")]
    ):
        if (Path(candidate) / "manifest.csv").is_file():
            return Path(candidate)
    raise SystemExit("no shared data (manifest.csv) found; set PHYTOSCOPE_SHARED_DATA")


def build_inputs(data: Path, folder: Path, images: int) -> tuple[int, int]:
    """Copy ``images`` real images (repeated as distinct files) and the raw bins."""
    with open(data / "manifest.csv", newline="") as fh:
        paths = [data / row["path"] for row in csv.DictReader(fh)]
    paths = [p for p in paths if p.is_file()]
    out = folder / "images"
    out.mkdir(parents=True)
    for i in range(images):
        src = paths[i % len(paths)]
        # a copy, not a link: phytoscope reads a file reached twice only once
        shutil.copyfile(src, out / f"{i:05d}_{src.name}")
    bins = 0
    for roi in sorted((data / "ifcb" / "raw").glob("*.roi")):
        for suffix in (".adc", ".hdr", ".roi"):
            shutil.copyfile(roi.with_suffix(suffix), folder / (roi.stem + suffix))
        bins += 1
    return images, bins


def sample_rss(proc: subprocess.Popen, interval: float, samples: list) -> None:
    start = time.monotonic()
    try:
        ps = psutil.Process(proc.pid)
        while proc.poll() is None:
            samples.append((round(time.monotonic() - start, 2), ps.memory_info().rss))
            time.sleep(interval)
    except psutil.NoSuchProcess:
        pass


def rss_at(samples: list, fraction: float, seconds: float) -> int:
    t = fraction * seconds
    return min(samples, key=lambda s: abs(s[0] - t))[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--interval", type=float, default=0.25)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()

    data = shared_data()
    work = Path(tempfile.mkdtemp(prefix="phytoscope-soak-"))
    try:
        images, bins = build_inputs(data, work / "in", args.images)
        db, out_csv = work / "results.sqlite", work / "out.csv"
        cmd = [
            sys.executable,
            "-m",
            "phytoscope",
            "classify",
            str(work / "in"),
            "--db",
            str(db),
            "--format",
            "csv",
            "-o",
            str(out_csv),
            "--batch-size",
            str(args.batch_size),
            "--no-progress",
        ]
        samples: list = []
        started = time.perf_counter()
        proc = subprocess.Popen(
            cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        sampler = threading.Thread(target=sample_rss, args=(proc, args.interval, samples))
        sampler.start()
        stdout, stderr = proc.communicate()
        sampler.join()
        seconds = time.perf_counter() - started

        with open(out_csv, newline="") as fh:
            csv_rows = list(csv.DictReader(fh))
        con = sqlite3.connect(db)
        (run_id,) = con.execute("SELECT max(id) FROM runs").fetchone()
        stored = con.execute(
            "SELECT count(*) FROM predictions WHERE run_id=?", (run_id,)
        ).fetchone()[0]
        distinct = con.execute(
            "SELECT count(*) FROM (SELECT DISTINCT source, roi_index FROM predictions WHERE run_id=?)",
            (run_id,),
        ).fetchone()[0]
        skipped = [
            r[0] for r in con.execute("SELECT source FROM skipped WHERE run_id=?", (run_id,))
        ]
        finished = con.execute("SELECT finished_at FROM runs WHERE id=?", (run_id,)).fetchone()[0]
        sources = {
            r[0]
            for r in con.execute(
                "SELECT DISTINCT source FROM predictions WHERE run_id=?", (run_id,)
            )
        }
        con.close()
        inputs = {str(p) for p in (work / "in" / "images").iterdir()} | {
            str(p.with_suffix("")) for p in (work / "in").glob("*.roi")
        }
        unaccounted = sorted(inputs - sources - {s.split("#")[0] for s in skipped})

        early, late = rss_at(samples, 0.2, seconds), rss_at(samples, 0.9, seconds)
        rows_between = 0.7 * len(csv_rows)
        result = {
            "what": "soak: phytoscope classify --db on real images, RSS sampled (psutil)",
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": {
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
                "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
                "note": "shared machine: other engineers' jobs ran at the same time; wall time is not a speed figure",
            },
            "command": " ".join(cmd[1:]).replace(str(work), "<tmp>"),
            "inputs": {"image_files": images, "ifcb_bins": bins, "source": str(data)},
            "exit_status": proc.returncode,
            "wall_s": round(seconds, 1),
            "rows": {
                "csv": len(csv_rows),
                "database": stored,
                "distinct_source_roi_in_database": distinct,
                "skipped_reported": len(skipped),
                "inputs_unaccounted_for": unaccounted[:20],
                "run_finished": finished is not None,
            },
            "rss_mb": {
                "at_20_percent": round(early / 2**20, 1),
                "at_90_percent": round(late / 2**20, 1),
                "peak": round(max(s[1] for s in samples) / 2**20, 1),
                "growth_20_to_90_percent": round((late - early) / 2**20, 1),
                "growth_per_1000_rows": round(
                    (late - early) / 2**20 / max(rows_between / 1000, 1e-9), 2
                ),
            },
            "rss_samples": [
                [t, round(r / 2**20, 1)] for t, r in samples[:: max(1, len(samples) // 400)]
            ],
            "stderr_tail": stderr[-1500:],
        }
        text = json.dumps(result, indent=2)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(text + "\n")
        print(
            json.dumps(
                {k: v for k, v in result.items() if k not in ("rss_samples", "stderr_tail")},
                indent=2,
            )
        )
        ok = stored == len(csv_rows) == distinct and not unaccounted and finished is not None
        return 0 if ok else 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
