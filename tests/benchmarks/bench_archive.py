"""Benchmark: archive re-analysis ROIs/s with 1 and 2 workers vs plain `phytoscope classify`.

Not collected by pytest (speed is measured, never asserted). Builds a tree of IFCB bins by
copying the bins given (default: tests/data/ifcb and resources/samples/ifcb) N times, then
times, on the same tree and model:

- ``classify``: the single-process pipeline (``classify_items``) over every bin,
- ``archive --runner ray`` with 1 and 2 actors, and ``--runner local`` with 1 and 2 processes
  (fresh output folder each, so nothing is skipped as already done).

Usage::

    python tests/benchmarks/bench_archive.py --copies 40 --out results/archive/<machine>.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # run from a checkout without installing


def build_tree(root: Path, sources: list[Path], copies: int) -> Path:
    tree = root / "tree"
    tree.mkdir(parents=True)
    stems = sorted({p.with_suffix("") for src in sources for p in src.glob("*.roi")})
    for i in range(copies):
        for j, stem in enumerate(stems):
            # a distinct, valid bin name per copy (same format as the original) keeps
            # partitions apart: only the time-of-day digits change
            name = (
                re.sub(r"\d{6}$", f"{i:04d}{j:02d}", stem.name)
                if stem.name.startswith("IFCB")
                else re.sub(r"T\d{6}_", f"T{i:04d}{j:02d}_", stem.name)
            )
            for suffix in (".adc", ".hdr", ".roi"):
                shutil.copy(stem.with_suffix(suffix), tree / f"{name}{suffix}")
    return tree


def time_classify(tree: Path) -> dict:
    from phytoscope import backends
    from phytoscope.core.classifier import Classifier
    from phytoscope.core.pipeline import classify_items
    from phytoscope.sources import iter_inputs

    with backends.create("onnxruntime") as backend:
        classifier = Classifier(backend)
        start = time.perf_counter()
        n = sum(len(p) for p, _ in classify_items(iter_inputs([tree]), classifier, batch_size=32))
        seconds = time.perf_counter() - start
    return {"rois": n, "seconds": seconds, "rois_per_s": n / seconds}


def time_archive(tree: Path, out: Path, runner: str, workers: int) -> dict:
    from phytoscope.core.archive import ArchiveConfig, run_archive

    threads = max(1, (os.cpu_count() or 1) // workers)
    config = ArchiveConfig(out_dir=str(out), threads_per_worker=threads)
    start = time.perf_counter()
    summary = run_archive([tree], config, runner=runner, workers=workers)
    total = time.perf_counter() - start  # includes worker start-up and model loading
    return {
        "rois": summary.rois,
        "units": len(summary.results),
        "failed": len(summary.failed),
        "seconds_total": total,
        "rois_per_s_total": summary.rois / total,
        "threads_per_worker": threads,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=40)
    parser.add_argument(
        "--bins",
        nargs="*",
        default=[str(REPO / "tests/data/ifcb"), str(REPO / "resources/samples/ifcb")],
    )
    parser.add_argument(
        "--out", default=str(REPO / "results/archive" / f"{platform.node() or 'machine'}.json")
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tree = build_tree(root, [Path(b) for b in args.bins], args.copies)
        n_bins = len(list(tree.glob("*.roi")))
        results = {"classify": time_classify(tree)}
        for runner in ("ray", "local"):
            for workers in (1, 2):
                key = f"archive_{runner}_{workers}"
                results[key] = time_archive(tree, root / key, runner, workers)
                if runner == "ray":
                    import ray

                    ray.shutdown()
                print(key, results[key], flush=True)
    record = {
        "machine": {
            "node": platform.node(),
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
        },
        "bins": n_bins,
        "method": "same tree of copied real IFCB bins; archive figures include worker start-up and model load",
        "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2))
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
