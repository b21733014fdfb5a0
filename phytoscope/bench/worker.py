"""One benchmark variant in a fresh process, so its memory figures are its own.

The parent (:func:`phytoscope.bench.child.run_variant`) starts::

    python -m phytoscope.bench.worker SPEC.json RESULT.json

samples the telemetry of this process from outside, and stamps the study's phases when this
process announces them on stdout as ``@@bench {json}`` lines (anything else on stdout is
ignored, so a runtime that prints cannot break the protocol). Phase 1 (load) starts when the
parent spawns the process: interpreter start and importing the runtime are part of loading
a model, as on the study's Jetson.

Phases: ``first_batch`` (engine extraction: the first real image decoded, pre-processed and
inferred), ``warmup`` (batch-1 rounds until latency is stable, with a time cap, then a few
calls at every batch size), ``measured`` (engine-only rounds: every batch size in turn for a
fixed time, repeated), ``measured_e2e`` (the labelled images decoded, pre-processed and
classified at batch 1 and at the best batch), ``end``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from phytoscope.bench.stats import is_stable

PREFIX = "@@bench "


def emit(event: str, **fields: Any) -> None:
    """One protocol line to the parent (monotonic time: the same clock as telemetry)."""
    line = json.dumps({"event": event, "t": time.monotonic(), **fields})
    sys.stdout.write(PREFIX + line + "\n")
    sys.stdout.flush()


def decode(path: str) -> np.ndarray:
    """Pixels of one labelled crop, read as the analyser reads inputs (first page; no
    segmentation: a labelled crop is one organism)."""
    from phytoscope.errors import SourceError
    from phytoscope.imaging.decode import read_image

    try:
        return read_image(Path(path))[0]
    except SourceError as exc:
        raise ValueError(str(exc)) from exc


def warm_until_stable(
    call: Any, window: int, tolerance: float, cap_s: float, clock: Any = time.perf_counter
) -> dict[str, Any]:
    """Call ``call()`` in windows of ``window`` calls until the median latency of a window is
    within ``tolerance`` (relative) of the previous window's, or ``cap_s`` seconds pass."""
    latencies: list[float] = []
    start = clock()
    while True:
        for _ in range(window):
            t0 = clock()
            call()
            latencies.append(clock() - t0)
        stable = is_stable(latencies, window, tolerance)
        if stable or clock() - start >= cap_s:
            return {
                "iterations": len(latencies),
                "stable": stable,
                "seconds": clock() - start,
                "last_window_median_ms": float(np.median(latencies[-window:]) * 1e3),
            }


def _rss_peak_bytes() -> int:
    """This process's peak resident memory (0 where the OS does not say)."""
    try:
        import resource
    except ImportError:  # not Unix
        return 0
    peak = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, kB on Linux


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Load the variant's model and run phases 2-4 on it; the figures the parent needs."""
    from phytoscope import backends
    from phytoscope.backends.options import OrtOptions, TrtOptions

    images: list[str] = [p for p, _ in spec["images"]]
    batch_sizes: list[int] = list(spec["batch_sizes"])
    # ONNX Runtime's threads when the benchmark fixes them; TensorRT's profile covers the
    # largest batch measured
    options = (
        OrtOptions(threads=spec["threads"]) if spec.get("threads") else OrtOptions(),
        TrtOptions(batch=max(batch_sizes)),
    )
    out: dict[str, Any] = {"phases": {}}

    # -- phase 1: load (started by the parent at spawn) ----------------------------------
    backend = backends.create(
        spec["backend"], spec["precision"], model=spec["model"], options=options
    )
    backend.load()
    out["runtime"] = backend.describe()

    emit("phase", phase="first_batch")
    tensors = _first_batch(backend, images, batch_sizes, out)
    emit("phase", phase="warmup")
    out["warmup"] = _warm_up(backend, tensors, batch_sizes, spec)
    emit("phase", phase="measured")
    out.update(_engine_rounds(backend, tensors, batch_sizes, spec))
    emit("phase", phase="measured_e2e")
    out.update(_end_to_end(backend, images, int(out["best_batch"])))
    out["class_names"] = list(backend.card.class_names)
    out["peak_rss_bytes"] = _rss_peak_bytes()
    emit("phase", phase="end")
    backend.close()
    return out


def _first_batch(
    backend: Any, images: list[str], batch_sizes: list[int], out: dict[str, Any]
) -> dict[int, np.ndarray]:
    """Phase 2, engine extraction: the first real image decoded, pre-processed and
    inferred; then the engine-only input tensors, real images cycled up to each batch."""
    from phytoscope.imaging.preprocess import preprocess_batch

    t0 = time.perf_counter()
    first = preprocess_batch([decode(images[0])], backend.input_spec)
    backend.infer(first)
    out["first_batch_ms"] = (time.perf_counter() - t0) * 1e3
    pool_n = min(len(images), max(batch_sizes))
    pool = preprocess_batch([decode(p) for p in images[:pool_n]], backend.input_spec)
    return {
        bs: np.ascontiguousarray(np.concatenate([pool] * (-(-bs // pool_n)))[:bs])
        for bs in batch_sizes
    }


def _warm_up(
    backend: Any, tensors: dict[int, np.ndarray], batch_sizes: list[int], spec: dict[str, Any]
) -> dict[str, Any]:
    """Phase 3: batch-1 calls until latency is stable, then a few at every batch size."""
    warm = warm_until_stable(
        lambda: backend.infer(tensors[1] if 1 in tensors else tensors[batch_sizes[0]]),
        int(spec["warmup_window"]),
        float(spec["warmup_tolerance"]),
        float(spec["warmup_cap_s"]),
    )
    for bs in batch_sizes:  # first call at a new shape may allocate or retrace
        for _ in range(2):
            backend.infer(tensors[bs])
    return warm


def _engine_rounds(
    backend: Any, tensors: dict[int, np.ndarray], batch_sizes: list[int], spec: dict[str, Any]
) -> dict[str, Any]:
    """Phase 4a: every batch size in turn for ``round_s`` seconds, ``rounds`` times."""
    engine: dict[str, dict[str, Any]] = {
        str(bs): {"latencies_s": [], "round_fps": []} for bs in batch_sizes
    }
    images_done = 0
    for r in range(int(spec["rounds"])):
        for bs in batch_sizes:  # interleaved, so a slow drift touches every batch size alike
            record = engine[str(bs)]
            calls = 0
            start = t1 = time.perf_counter()
            while True:
                t0 = time.perf_counter()
                backend.infer(tensors[bs])
                t1 = time.perf_counter()
                record["latencies_s"].append(t1 - t0)
                calls += 1
                elapsed = t1 - start
                # min_calls gives fast engines a sample; 3 x round_s caps slow ones
                if elapsed >= spec["round_s"] and (
                    calls >= spec["min_calls"] or elapsed >= 3 * spec["round_s"]
                ):
                    break
            record["round_fps"].append(calls * bs / (t1 - start))
            images_done += calls * bs
        emit("progress", message=f"round {r + 1}/{spec['rounds']}")
    best = max(batch_sizes, key=lambda bs: float(np.median(engine[str(bs)]["round_fps"])))
    return {"engine": engine, "engine_images": images_done, "best_batch": best}


def _end_to_end(backend: Any, images: list[str], best: int) -> dict[str, Any]:
    """Phase 4b: the labelled images decoded, pre-processed and classified, one pass at
    batch 1 and one at the best batch; the probabilities of the batch-1 pass."""
    e2e: dict[str, Any] = {}
    probabilities: list[list[float]] = []
    e2e_images = 0
    for name, bs in (("batch1", 1), ("best", best)):
        if name == "best" and best == 1:
            e2e["best"] = e2e["batch1"]
            break
        e2e[name], probs = _one_pass(backend, images, bs)
        e2e_images += len(images)
        if name == "batch1" or not probabilities:
            probabilities = probs
    return {"e2e": e2e, "e2e_images": e2e_images, "probabilities": probabilities}


def _one_pass(backend: Any, images: list[str], bs: int) -> tuple[dict[str, Any], list]:
    from phytoscope.core.classifier import softmax
    from phytoscope.imaging.preprocess import preprocess_batch

    decode_s = prep_s = infer_s = 0.0
    per_call: list[float] = []
    probs: list[np.ndarray] = []
    start = time.perf_counter()
    for i in range(0, len(images), bs):
        t0 = time.perf_counter()
        pixels = [decode(p) for p in images[i : i + bs]]
        t1 = time.perf_counter()
        batch = preprocess_batch(pixels, backend.input_spec)
        t2 = time.perf_counter()
        probs.append(softmax(backend.logits(batch).astype(np.float64)))
        t3 = time.perf_counter()
        decode_s, prep_s, infer_s = decode_s + t1 - t0, prep_s + t2 - t1, infer_s + t3 - t2
        per_call.append(t3 - t0)
    total = time.perf_counter() - start
    record = {
        "batch_size": bs,
        "images": len(images),
        "seconds": total,
        "fps": len(images) / total,
        "latencies_s": per_call,
        "share": {
            "decode": decode_s / total,
            "preprocess": prep_s / total,
            "inference": infer_s / total,
        },
    }
    return record, np.concatenate(probs).tolist()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 2:
        sys.stderr.write("usage: python -m phytoscope.bench.worker SPEC.json RESULT.json\n")
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    try:
        result = run(spec)
    except Exception as exc:  # noqa: BLE001 - the parent reports it as this variant's failure
        import traceback

        traceback.print_exc()
        Path(argv[1]).write_text(
            json.dumps({"error": f"{type(exc).__name__}: {exc}"}), encoding="utf-8"
        )
        return 1
    tmp = Path(argv[1] + ".tmp")
    tmp.write_text(json.dumps(result), encoding="utf-8")
    tmp.replace(argv[1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
