"""One benchmark variant in a fresh process, so its memory figures are its own.

The parent (:func:`phytoscope.bench.runner.run_benchmark`) starts::

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
    from phytoscope.bench.runner import is_stable

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
    from phytoscope import backends
    from phytoscope.core.classifier import softmax
    from phytoscope.imaging.preprocess import preprocess_batch

    images: list[str] = [p for p, _ in spec["images"]]
    batch_sizes: list[int] = list(spec["batch_sizes"])
    options = {"threads": spec["threads"]} if spec.get("threads") else {}
    out: dict[str, Any] = {"phases": {}}

    # -- phase 1: load (started by the parent at spawn) ----------------------------------
    backend = backends.create(spec["backend"], spec["precision"], model=spec["model"], **options)
    backend.load()
    out["runtime"] = backend.describe()
    spec_in = backend.input_spec

    # -- phase 2: engine extraction / first batch ----------------------------------------
    emit("phase", phase="first_batch")
    t0 = time.perf_counter()
    first = preprocess_batch([decode(images[0])], spec_in)
    backend.infer(first)
    out["first_batch_ms"] = (time.perf_counter() - t0) * 1e3

    # Engine-only input: real pre-processed images, cycled up to the largest batch.
    pool_n = min(len(images), max(batch_sizes))
    pool = preprocess_batch([decode(p) for p in images[:pool_n]], spec_in)
    tensors = {
        bs: np.ascontiguousarray(np.concatenate([pool] * (-(-bs // pool_n)))[:bs])
        for bs in batch_sizes
    }

    # -- phase 3: warm-up until latency is stable ----------------------------------------
    emit("phase", phase="warmup")
    out["warmup"] = warm_until_stable(
        lambda: backend.infer(tensors[1] if 1 in tensors else tensors[batch_sizes[0]]),
        int(spec["warmup_window"]),
        float(spec["warmup_tolerance"]),
        float(spec["warmup_cap_s"]),
    )
    for bs in batch_sizes:  # first call at a new shape may allocate or retrace
        for _ in range(2):
            backend.infer(tensors[bs])

    # -- phase 4a: engine-only measured rounds -------------------------------------------
    emit("phase", phase="measured")
    engine: dict[str, dict[str, Any]] = {
        str(bs): {"latencies_s": [], "round_fps": []} for bs in batch_sizes
    }
    images_done = 0
    for r in range(int(spec["rounds"])):
        for bs in batch_sizes:  # interleaved, so a slow drift touches every batch size alike
            record = engine[str(bs)]
            calls = 0
            start = time.perf_counter()
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
    out["engine"] = engine
    out["engine_images"] = images_done
    best = max(batch_sizes, key=lambda bs: float(np.median(engine[str(bs)]["round_fps"])))
    out["best_batch"] = best

    # -- phase 4b: end-to-end over the labelled images ----------------------------------
    emit("phase", phase="measured_e2e")
    e2e: dict[str, Any] = {}
    probabilities: list[list[float]] = []
    e2e_images = 0
    for name, bs in (("batch1", 1), ("best", best)):
        if name == "best" and best == 1:
            e2e["best"] = e2e["batch1"]
            break
        decode_s = prep_s = infer_s = 0.0
        per_call: list[float] = []
        probs: list[np.ndarray] = []
        start = time.perf_counter()
        for i in range(0, len(images), bs):
            t0 = time.perf_counter()
            pixels = [decode(p) for p in images[i : i + bs]]
            t1 = time.perf_counter()
            batch = preprocess_batch(pixels, spec_in)
            t2 = time.perf_counter()
            probs.append(softmax(backend.logits(batch).astype(np.float64)))
            t3 = time.perf_counter()
            decode_s, prep_s, infer_s = decode_s + t1 - t0, prep_s + t2 - t1, infer_s + t3 - t2
            per_call.append(t3 - t0)
        total = time.perf_counter() - start
        e2e_images += len(images)
        e2e[name] = {
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
        if name == "batch1" or not probabilities:
            probabilities = np.concatenate(probs).tolist()
    out["e2e"] = e2e
    out["e2e_images"] = e2e_images
    out["probabilities"] = probabilities
    out["class_names"] = list(backend.card.class_names)
    out["peak_rss_bytes"] = _rss_peak_bytes()
    emit("phase", phase="end")
    backend.close()
    return out


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
