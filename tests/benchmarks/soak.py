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
  input file accounted for (classified or reported as skipped), no (source, ROI) twice;
* the steady slope (median of RSS increments between samples, per 1,000 rows at the run's
  mean rate), which leaves out the one-off steps when a large frame is decoded.

With ``--mode both`` (the default) the same inputs are also run through the pipeline alone
(``iter_inputs`` -> ``classify_items`` -> ``Store.add_predictions`` per batch, nothing kept
in memory), so growth of the command's own in-memory results (``classify`` keeps every row
for its output and summary at the end) can be told apart from growth in reading,
classifying or storing.

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


PIPELINE = """
import sys
from phytoscope import backends
from phytoscope.core.classifier import Classifier
from phytoscope.core.pipeline import classify_items, engine_options
from phytoscope.sources import iter_inputs
from phytoscope.storage import Store

folder, db, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = Store(db)
with backends.create("auto", "fp32", **engine_options()) as backend:
    run = store.start_run(backend.name, backend.card.label, backend.card.sha256, {"soak": "pipeline"})
    for predictions, skipped in classify_items(iter_inputs([folder]), Classifier(backend), batch_size=batch):
        if predictions:
            store.add_predictions(run, predictions)
        if skipped:
            store.add_skipped(run, skipped)
    store.finish_run(run)
store.close()
"""


def steady_slope(samples: list, rows: int, seconds: float) -> float:
    """Median RSS increase per 1,000 rows between consecutive samples (MB)."""
    steps = [
        (b[1] - a[1]) / (b[0] - a[0])
        for a, b in zip(samples, samples[1:], strict=False)
        if b[0] > a[0]
    ]
    if not steps or rows == 0:
        return 0.0
    steps.sort()
    per_second = steps[len(steps) // 2]
    return per_second / 2**20 / (rows / seconds) * 1000


def rss_at(samples: list, fraction: float, seconds: float) -> int:
    t = fraction * seconds
    return min(samples, key=lambda s: abs(s[0] - t))[1]


def run_sampled(cmd: list[str], interval: float) -> tuple[int, str, list, float]:
    """Run ``cmd`` from the checkout, sampling its RSS; (exit status, stderr, samples, s)."""
    samples: list = []
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    sampler = threading.Thread(target=sample_rss, args=(proc, interval, samples))
    sampler.start()
    _, stderr = proc.communicate()
    sampler.join()
    return proc.returncode, stderr, samples, time.perf_counter() - started


def stored_rows(db: Path) -> dict:
    con = sqlite3.connect(db)
    try:
        (run_id,) = con.execute("SELECT max(id) FROM runs").fetchone()
        one = lambda sql: con.execute(sql, (run_id,)).fetchone()[0]  # noqa: E731
        return {
            "database": one("SELECT count(*) FROM predictions WHERE run_id=?"),
            "distinct_source_roi_in_database": one(
                "SELECT count(*) FROM (SELECT DISTINCT source, roi_index FROM predictions WHERE run_id=?)"
            ),
            "skipped_reported": one("SELECT count(*) FROM skipped WHERE run_id=?"),
            "run_finished": one("SELECT finished_at FROM runs WHERE id=?") is not None,
            "sources": {
                r[0]
                for r in con.execute(
                    "SELECT source FROM predictions WHERE run_id=? UNION SELECT source FROM skipped WHERE run_id=?",
                    (run_id, run_id),
                )
            },
        }
    finally:
        con.close()


def memory(samples: list, rows: int, seconds: float) -> dict:
    early, late = rss_at(samples, 0.2, seconds), rss_at(samples, 0.9, seconds)
    return {
        "at_20_percent": round(early / 2**20, 1),
        "at_90_percent": round(late / 2**20, 1),
        "peak": round(max(s[1] for s in samples) / 2**20, 1),
        "growth_20_to_90_percent": round((late - early) / 2**20, 1),
        "growth_per_1000_rows": round((late - early) / 2**20 / max(0.7 * rows / 1000, 1e-9), 2),
        "steady_slope_per_1000_rows": round(steady_slope(samples, rows, seconds), 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--interval", type=float, default=0.25)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--mode", choices=("classify", "pipeline", "both"), default="both")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()

    data = shared_data()
    work = Path(tempfile.mkdtemp(prefix="phytoscope-soak-"))
    try:
        images, bins = build_inputs(data, work / "in", args.images)
        inputs = {str(p) for p in (work / "in" / "images").iterdir()} | {
            str(p.with_suffix("")) for p in (work / "in").glob("*.roi")
        }
        result: dict = {
            "what": "soak: real images classified with --db, RSS of the process sampled (psutil)",
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": {
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
                "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
                "load_average_at_start": [round(x, 1) for x in os.getloadavg()],
                "note": "shared machine: other engineers' jobs ran at the same time; wall time is not a speed figure",
            },
            "inputs": {"image_files": images, "ifcb_bins": bins, "source": str(data)},
        }
        ok = True
        if args.mode in ("classify", "both"):
            db, out_csv = work / "classify.sqlite", work / "out.csv"
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
            code, stderr, samples, seconds = run_sampled(cmd, args.interval)
            with open(out_csv, newline="") as fh:
                csv_rows = sum(1 for _ in csv.DictReader(fh))
            rows = stored_rows(db)
            lost = sorted(inputs - {s.split("#")[0] for s in rows.pop("sources")})
            result["classify"] = {
                "command": " ".join(cmd[1:]).replace(str(work), "<tmp>"),
                "exit_status": code,
                "wall_s": round(seconds, 1),
                "rows": {"csv": csv_rows, **rows, "inputs_unaccounted_for": lost[:20]},
                "rss_mb": memory(samples, csv_rows, seconds),
                "rss_samples": [
                    [t, round(r / 2**20, 1)] for t, r in samples[:: max(1, len(samples) // 400)]
                ],
                "stderr_tail": stderr[-1500:],
            }
            ok &= (
                code == 0
                and csv_rows == rows["database"] == rows["distinct_source_roi_in_database"]
            )
            ok &= not lost and rows["run_finished"]
        if args.mode in ("pipeline", "both"):
            db = work / "pipeline.sqlite"
            cmd = [sys.executable, "-c", PIPELINE, str(work / "in"), str(db), str(args.batch_size)]
            code, stderr, samples, seconds = run_sampled(cmd, args.interval)
            rows = stored_rows(db)
            lost = sorted(inputs - {s.split("#")[0] for s in rows.pop("sources")})
            result["pipeline_only"] = {
                "command": "iter_inputs -> classify_items -> Store.add_predictions per batch (nothing kept)",
                "exit_status": code,
                "wall_s": round(seconds, 1),
                "rows": {**rows, "inputs_unaccounted_for": lost[:20]},
                "rss_mb": memory(samples, rows["database"], seconds),
                "rss_samples": [
                    [t, round(r / 2**20, 1)] for t, r in samples[:: max(1, len(samples) // 400)]
                ],
                "stderr_tail": stderr[-1500:],
            }
            ok &= code == 0 and rows["database"] == rows["distinct_source_roi_in_database"]
            ok &= not lost and rows["run_finished"]
        result["nothing_lost_or_doubled"] = bool(ok)
        text = json.dumps(result, indent=2)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(text + "\n")
        summary = {
            k: (
                {kk: vv for kk, vv in v.items() if kk not in ("rss_samples", "stderr_tail")}
                if isinstance(v, dict)
                else v
            )
            for k, v in result.items()
        }
        print(json.dumps(summary, indent=2))
        return 0 if ok else 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
