"""Pipelined decoding benchmark: ``classify_items`` end to end vs engine-only throughput.

Not collected by pytest (speed is measured and recorded, never asserted). Run from the
repository root::

    python tests/benchmarks/bench_pipeline.py                 # shipped model (models/)
    python tests/benchmarks/bench_pipeline.py --representative  # random-weight MobileNetV2

It replicates the licensed images of ``resources/samples`` and ``tests/data`` into a
folder of ``--images`` files (default 3000, under /tmp), then per round measures

* engine-only: ``backend.infer`` on pre-processed float32 batches already in memory;
* pipeline: ``classify_items(iter_inputs(folder))`` - listing, decoding (PNG/JPEG/BMP),
  pre-processing, inference and post-processing, with decode/pre-process overlapping
  inference in background threads (what ``phytoscope classify`` runs);
* sequential: the same work without overlap (decode, pre-process, infer one batch after
  the other), to show what the overlap buys.

Rounds alternate the three so that load from other processes hits all of them alike;
medians and the spread go to ``results/pipeline/<machine>.json``. The target of issue 2 is
pipeline >= 80 % of engine-only throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from phytoscope import backends  # noqa: E402
from phytoscope.core.classifier import Classifier  # noqa: E402
from phytoscope.core.pipeline import classify_items, default_workers  # noqa: E402
from phytoscope.core.preprocess import preprocess_batch  # noqa: E402
from phytoscope.sources import expand_paths, iter_inputs  # noqa: E402
from phytoscope.sources.files import read_image  # noqa: E402

SEED_DIRS = [ROOT / "resources" / "samples" / "images", ROOT / "tests" / "data" / "images"]


def build_folder(folder: Path, count: int) -> Path:
    """``count`` image files copied round-robin from the licensed seed images."""
    seeds = [p for kind, p in expand_paths(SEED_DIRS) if kind == "image" and "corrupt" not in p.name]
    if not seeds:
        raise SystemExit("no seed images found under resources/samples or tests/data")
    existing = sorted(folder.glob("*")) if folder.is_dir() else []
    if len(existing) == count:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for i in range(count):
        src = seeds[i % len(seeds)]
        shutil.copyfile(src, folder / f"{i:06d}{src.suffix.lower()}")
    return folder


def representative_model(folder: Path, classes: int = 8) -> Path:
    """A MobileNetV2 (alpha 1.0, 128x128x3) with random weights, exported to ONNX with a card.

    The same graph, input size and batch shapes as the shipped model, so its throughput is
    representative; its predictions are meaningless and are never shown as results.
    """
    onnx_path = folder / "mobilenetv2_random.onnx"
    if onnx_path.exists():
        return folder
    import keras

    from phytoscope.modelcard import ClassInfo, InputSpec, ModelCard, card_path_for, sha256_of

    folder.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(
        input_shape=(128, 128, 3), alpha=1.0, weights=None, classes=classes, classifier_activation=None
    )
    model.predict(np.zeros((1, 128, 128, 3), "float32"), verbose=0)  # export needs a built graph
    model.export(str(onnx_path), format="onnx", verbose=False)
    ModelCard(
        name="mobilenetv2-random-bench", version="0", file=onnx_path.name, format="onnx", precision="fp32",
        sha256=sha256_of(onnx_path), classes=tuple(ClassInfo(f"class{i}") for i in range(classes)),
        input=InputSpec(), notes="random weights: for throughput measurement only, not a classifier",
    ).save(card_path_for(onnx_path))
    return folder


def engine_only(backend, batches: list[np.ndarray], n_images: int) -> float:
    """Images per second of ``backend.infer`` alone on ready tensors."""
    done, i = 0, 0
    start = time.perf_counter()
    while done < n_images:
        batch = batches[i % len(batches)]
        backend.infer(batch)
        done += batch.shape[0]
        i += 1
    return done / (time.perf_counter() - start)


def pipelined(classifier, folder: Path, batch_size: int, workers: int | None) -> tuple[float, int]:
    start = time.perf_counter()
    n = 0
    for predictions, skipped in classify_items(iter_inputs([folder], segment="never"), classifier,
                                               batch_size=batch_size, workers=workers):
        n += len(predictions)
        assert not skipped, skipped
    return n / (time.perf_counter() - start), n


def sequential(classifier, folder: Path, batch_size: int) -> float:
    """Decode, pre-process, infer, one after the other in one thread (no overlap)."""
    paths = [p for kind, p in expand_paths([folder]) if kind == "image"]
    start = time.perf_counter()
    for i in range(0, len(paths), batch_size):
        images = [read_image(p)[0] for p in paths[i : i + batch_size]]
        classifier.backend.infer(preprocess_batch(images, classifier.card.input))
    return len(paths) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="model card/file/folder (default: installed model)")
    parser.add_argument("--representative", action="store_true",
                        help="use a random-weight MobileNetV2 exported to /tmp (throughput only)")
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/phytoscope_bench_images"))
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=None, help="decoding threads (default: pipeline.default_workers())")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--engine-threads", type=int, default=None,
                        help="ONNX Runtime intra-op threads for the pipeline (default: 0, every core)")
    spin = parser.add_mutually_exclusive_group()
    spin.add_argument("--no-spin", dest="spin", action="store_false",
                      help="ONNX Runtime without busy-waiting (session.intra_op.allow_spinning=0), as `phytoscope classify` runs it (default)")
    spin.add_argument("--spin", dest="spin", action="store_true", help="ONNX Runtime's default busy-waiting pool")
    parser.set_defaults(spin=False)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    model = args.model
    if args.representative:
        model = str(representative_model(Path("/tmp/phytoscope_bench_model")))
    folder = build_folder(args.folder, args.images)
    out = args.out or ROOT / "results" / "pipeline" / f"{socket.gethostname()}.json"

    engine_threads = args.engine_threads if args.engine_threads is not None else 0
    options = {"threads": engine_threads} if args.backend == "onnxruntime" else {}
    if options and not args.spin:
        options["spin"] = False
    # the engine alone with every core (runtime default), for the strict comparison
    full_engine = None
    if options and (engine_threads != 0 or not args.spin):
        full_engine = backends.create(args.backend, model=model, threads=0)  # opened per round

    with backends.create(args.backend, model=model, **options) as backend:
        classifier = Classifier(backend)
        spec = backend.card.input
        paths = [p for kind, p in expand_paths([folder]) if kind == "image"]
        # ready tensors from the same images, cycled: engine-only sees the same content
        tensors = [
            preprocess_batch([read_image(p)[0] for p in paths[i : i + args.batch_size]], spec)
            for i in range(0, min(len(paths), 32 * args.batch_size), args.batch_size)
        ]
        tensors = [t for t in tensors if t.shape[0] == args.batch_size]
        engine_only(backend, tensors, 10 * args.batch_size)  # warm-up (allocations, caches)
        pipelined(classifier, folder, args.batch_size, args.workers)  # warms the page cache too
        rounds: dict[str, list[float]] = {"engine_only": [], "pipeline": [], "sequential": []}
        if full_engine is not None:
            rounds["engine_only_all_cores"] = []
        for r in range(args.rounds):
            if full_engine is not None:
                with full_engine:
                    engine_only(full_engine, tensors, 10 * args.batch_size)
                    rounds["engine_only_all_cores"].append(engine_only(full_engine, tensors, len(paths)))
            rounds["engine_only"].append(engine_only(backend, tensors, len(paths)))
            rate, n = pipelined(classifier, folder, args.batch_size, args.workers)
            rounds["pipeline"].append(rate)
            rounds["sequential"].append(sequential(classifier, folder, args.batch_size))
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f} img/s" for k, v in rounds.items()))
        describe = backend.describe()
        card = backend.card

    med = {k: statistics.median(v) for k, v in rounds.items()}
    result = {
        "what": "images/s: classify_items (decode+preprocess overlapping inference) vs engine-only",
        "machine": {
            "host": socket.gethostname(), "platform": platform.platform(), "python": platform.python_version(),
            "cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine(),
            "load_average_at_end": os.getloadavg() if hasattr(os, "getloadavg") else None,
        },
        "backend": describe,
        "model": {"label": card.label, "file": card.file, "notes": card.notes,
                  "representative_random_weights": bool(args.representative)},
        "images": len(paths), "image_formats": sorted({p.suffix for p in paths}),
        "batch_size": args.batch_size, "workers": args.workers or default_workers(), "rounds": args.rounds,
        "images_per_s": {k: {"median": round(med[k], 2), "min": round(min(v), 2), "max": round(max(v), 2),
                             "all": [round(x, 2) for x in v]} for k, v in rounds.items()},
        "pipeline_vs_engine_only": round(med["pipeline"] / med["engine_only"], 3),
        "sequential_vs_engine_only": round(med["sequential"] / med["engine_only"], 3),
        "pipeline_vs_engine_only_all_cores": (
            round(med["pipeline"] / med["engine_only_all_cores"], 3) if "engine_only_all_cores" in med else None
        ),
        "engine_threads": engine_threads,
        "engine_spin": args.spin,
        "target": 0.8,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["images_per_s"], indent=1))
    print(f"pipeline / engine-only = {result['pipeline_vs_engine_only']:.1%} (target 80 %); "
          f"vs engine with all cores: {result['pipeline_vs_engine_only_all_cores']}; written {out}")


if __name__ == "__main__":
    main()
