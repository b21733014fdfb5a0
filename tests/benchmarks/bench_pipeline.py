"""Pipelined decoding benchmark: ``classify_items`` end to end vs engine-only throughput.

Not collected by pytest (speed is measured and recorded, never asserted). Run from the
repository root::

    python tests/benchmarks/bench_pipeline.py                 # shipped model (models/)
    python tests/benchmarks/bench_pipeline.py --representative  # random-weight MobileNetV2

It replicates the licensed images of ``resources/samples`` and ``tests/data`` into a
folder of ``--images`` files (default 3000, under /tmp), or reads an existing folder as it
is with ``--input DIR`` (say a real FlowCam run), then per round measures

* engine-only: ``backend.infer`` on pre-processed float32 batches already in memory, with
  as many calls at once as the backend takes (``concurrent_calls``: the lanes of
  ``core.pipeline.engine_options``), and again with ONNX Runtime's default session (one
  run at a time on every core, busy-waiting): the ratio is taken against the faster;
* pipeline: ``classify_items(iter_inputs(folder))`` - listing, decoding (PNG/JPEG/BMP),
  pre-processing, inference and post-processing, with decode/pre-process overlapping
  inference in background threads (what ``phytoscope classify`` runs);
* sequential: the same work without overlap (decode, pre-process, infer one batch after
  the other, the engine on every core), to show what the overlap buys.

Rounds alternate the measurements so that load from other processes hits all of them alike;
medians and the spread go to ``results/pipeline/<machine>.json``. The target of issue 2 is
pipeline >= 80 % of engine-only throughput.

It also records what bounds that ratio: the CPU time per image of the engine alone (during
the engine-only rounds) and of decoding + pre-processing alone (one thread). When the
engine alone already keeps every core busy, as ONNX Runtime does on a CPU, decoding can
only overlap inference inside the same CPU budget, so no pipeline can beat
``ceiling = min(1, cores / (engine_cpu + decode_cpu) / engine_only_rate)``. Measured on the
2-vCPU machine: small FlowCam crops cost a tenth of the engine's CPU time to decode, the
seed mix (two 842x248 colour JPEGs in 18) a fifth, the PWSSC darkfield PNGs two thirds.
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
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from phytoscope import backends  # noqa: E402
from phytoscope.core.classifier import Classifier  # noqa: E402
from phytoscope.core.pipeline import classify_items, default_workers, engine_options, usable_cpus  # noqa: E402
from phytoscope.imaging.decode import read_image  # noqa: E402
from phytoscope.imaging.preprocess import preprocess_batch  # noqa: E402
from phytoscope.sources import expand_paths, iter_inputs  # noqa: E402

SEED_DIRS = [ROOT / "resources" / "samples" / "images", ROOT / "tests" / "data" / "images"]


def build_folder(folder: Path, count: int) -> Path:
    """``count`` image files copied round-robin from the licensed seed images."""
    seeds = [
        p for kind, p in expand_paths(SEED_DIRS) if kind == "image" and "corrupt" not in p.name
    ]
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
        input_shape=(128, 128, 3),
        alpha=1.0,
        weights=None,
        classes=classes,
        classifier_activation=None,
    )
    model.predict(np.zeros((1, 128, 128, 3), "float32"), verbose=0)  # export needs a built graph
    model.export(str(onnx_path), format="onnx", verbose=False)
    ModelCard(
        name="mobilenetv2-random-bench",
        version="0",
        file=onnx_path.name,
        format="onnx",
        precision="fp32",
        sha256=sha256_of(onnx_path),
        classes=tuple(ClassInfo(f"class{i}") for i in range(classes)),
        input=InputSpec(),
        notes="random weights: for throughput measurement only, not a classifier",
    ).save(card_path_for(onnx_path))
    return folder


def decode_cpu_ms(paths: list[Path], spec) -> float:
    """CPU milliseconds per image to read and pre-process, in one thread (OpenCV single-threaded,
    as in the pipeline)."""
    from phytoscope.core.pipeline import opencv_single_threaded

    with opencv_single_threaded():
        start = time.process_time()
        for i in range(0, len(paths), 16):
            preprocess_batch([read_image(p)[0] for p in paths[i : i + 16]], spec)
        return (time.process_time() - start) * 1000 / len(paths)


def engine_only(backend, batches: list[np.ndarray], n_images: int) -> float:
    """Images per second of ``backend.infer`` alone on ready tensors, from as many threads
    at once as the backend takes (its ``concurrent_calls``), as the pipeline calls it."""
    lanes = backend.concurrent_calls
    done: list[int] = []  # images each lane classified

    def run(lane: int) -> None:
        count, i = 0, lane
        while count < n_images // lanes:
            batch = batches[i % len(batches)]
            backend.logits(batch)
            count += batch.shape[0]
            i += lanes
        done.append(count)

    start = time.perf_counter()
    threads = [threading.Thread(target=run, args=(lane,)) for lane in range(lanes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done) / (time.perf_counter() - start)


def pipelined(classifier, folder: Path, batch_size: int, workers: int | None) -> tuple[float, int]:
    start = time.perf_counter()
    n = 0
    for predictions, skipped in classify_items(
        iter_inputs([folder], segment="never"), classifier, batch_size=batch_size, workers=workers
    ):
        n += len(predictions)
        assert not skipped, skipped
    return n / (time.perf_counter() - start), n


def sequential(backend, folder: Path, batch_size: int) -> float:
    """Decode, pre-process, infer, one after the other (no overlap); the engine may use
    every core for its part (pass ONNX Runtime's default session)."""
    paths = [p for kind, p in expand_paths([folder]) if kind == "image"]
    start = time.perf_counter()
    for i in range(0, len(paths), batch_size):
        images = [read_image(p)[0] for p in paths[i : i + batch_size]]
        backend.logits(preprocess_batch(images, backend.card.input))
    return len(paths) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="model card/file/folder (default: installed model)")
    parser.add_argument(
        "--representative",
        action="store_true",
        help="use a random-weight MobileNetV2 exported to /tmp (throughput only)",
    )
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument(
        "--folder",
        type=Path,
        default=Path("/tmp/phytoscope_bench_images"),
        help="where the replicated seed images go (rebuilt when --images changes)",
    )
    parser.add_argument(
        "--input",
        type=Path,
        default=None,
        help="an existing folder of images to use as it is (never modified), "
        "e.g. ../shared/data/images/flowcam_lake_station40",
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="decoding threads (default: pipeline.default_workers())",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--engine-threads",
        type=int,
        default=None,
        help="one ONNX Runtime run at a time with this many threads (0: every core) "
        "instead of the lanes of pipeline.engine_options(), as classify runs it",
    )
    parser.add_argument(
        "--spin",
        action="store_true",
        help="let ONNX Runtime's pool busy-wait (its default; classify turns it off)",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    model = args.model
    if args.representative:
        model = str(representative_model(Path("/tmp/phytoscope_bench_model")))
    if args.input is not None:
        if not args.input.is_dir():
            raise SystemExit(f"--input {args.input}: not a folder")
        folder = args.input
    else:
        folder = build_folder(args.folder, args.images)
    out = args.out or ROOT / "results" / "pipeline" / f"{socket.gethostname()}.json"

    options: dict[str, object] = engine_options()  # what classify, the GUI and the archive use
    if args.engine_threads is not None:
        options = {"threads": args.engine_threads, "spin": False}
    if args.spin:
        options["spin"] = True
    # ONNX Runtime's own default session, for the strict comparison
    default_engine = None
    if args.backend == "onnxruntime":
        default_engine = backends.create(
            args.backend, model=model, threads=0, spin=True
        )  # opened per round

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
        decode_ms = decode_cpu_ms(paths, spec)  # also warms the page cache
        engine_cpu_ms: list[float] = []
        pipelined(classifier, folder, args.batch_size, args.workers)  # warms the page cache too
        rounds: dict[str, list[float]] = {"engine_only": [], "pipeline": [], "sequential": []}
        if default_engine is not None:
            rounds["engine_only_ort_default"] = []
        for r in range(args.rounds):
            if default_engine is not None:
                with default_engine:
                    engine_only(default_engine, tensors, 10 * args.batch_size)
                    rounds["engine_only_ort_default"].append(
                        engine_only(default_engine, tensors, len(paths))
                    )
                    rounds["sequential"].append(sequential(default_engine, folder, args.batch_size))
            else:
                rounds["sequential"].append(sequential(backend, folder, args.batch_size))
            cpu_start = time.process_time()
            rounds["engine_only"].append(engine_only(backend, tensors, len(paths)))
            engine_cpu_ms.append((time.process_time() - cpu_start) * 1000 / len(paths))
            rate, n = pipelined(classifier, folder, args.batch_size, args.workers)
            rounds["pipeline"].append(rate)
            print(
                f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f} img/s" for k, v in rounds.items())
            )
        describe = backend.describe()
        card = backend.card

    med = {k: statistics.median(v) for k, v in rounds.items()}
    cores = usable_cpus()
    engine_ms = statistics.median(engine_cpu_ms)
    ceiling = min(1.0, cores / ((engine_ms + decode_ms) / 1000) / med["engine_only"])
    best_engine = max(v for k, v in med.items() if k.startswith("engine_only"))
    result = {
        "what": "images/s: classify_items (decode+preprocess overlapping inference) vs engine-only",
        "machine": {
            "host": socket.gethostname(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "load_average_at_end": os.getloadavg() if hasattr(os, "getloadavg") else None,
        },
        "backend": describe,
        "model": {
            "label": card.label,
            "file": card.file,
            "notes": card.notes,
            "representative_random_weights": bool(args.representative),
        },
        "input": str(folder)
        if args.input is not None
        else f"{len(paths)} copies of the seed images",
        "images": len(paths),
        "image_formats": sorted({p.suffix for p in paths}),
        "batch_size": args.batch_size,
        "workers": args.workers or default_workers(),
        "rounds": args.rounds,
        "images_per_s": {
            k: {
                "median": round(med[k], 2),
                "min": round(min(v), 2),
                "max": round(max(v), 2),
                "all": [round(x, 2) for x in v],
            }
            for k, v in rounds.items()
        },
        "pipeline_vs_engine_only": round(med["pipeline"] / med["engine_only"], 3),
        "sequential_vs_engine_only": round(med["sequential"] / med["engine_only"], 3),
        "pipeline_vs_best_engine_only": round(med["pipeline"] / best_engine, 3),
        "cpu_ms_per_image": {
            "engine_only": round(engine_ms, 3),
            "decode_and_preprocess": round(decode_ms, 3),
        },
        "ceiling_for_this_machine": round(ceiling, 3),
        "engine_options": dict(options),
        "target": 0.8,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["images_per_s"], indent=1))
    print(
        f"CPU per image: engine {engine_ms:.2f} ms, decode + pre-process {decode_ms:.2f} ms: "
        f"no pipeline on {cores} cores beats {ceiling:.0%} of engine-only"
    )
    print(
        f"pipeline / engine-only = {result['pipeline_vs_engine_only']:.1%}, / best engine-only = "
        f"{result['pipeline_vs_best_engine_only']:.1%} (target 80 %); written {out}"
    )


if __name__ == "__main__":
    main()
