"""Interleaved ONNX Runtime CPU latency per input size, for models/evaluation/size_comparison.json.

Usage: python models/size_latency.py FOLDER [ROUNDS], FOLDER holding genus_96.onnx,
genus_128.onnx and genus_160.onnx (ONNX exports of build/sizes/size_*/genus.keras from
`phytoscope train ... --compare-sizes 96,128,160`). Sizes and batches are interleaved round by
round so a change in the machine's load hits all of them alike; run it pinned to the cores
you want to model (taskset -c 0,1). Prints JSON.
"""
import json
import os
import platform
import sys
import time

import numpy as np
import onnxruntime as ort

folder = sys.argv[1]
sizes = (96, 128, 160)
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 30
out = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "onnxruntime": ort.__version__, "rounds": rounds, "results": {}}
for threads in (1, 2):
    sessions = {}
    for s in sizes:
        o = ort.SessionOptions()
        o.intra_op_num_threads = threads
        o.inter_op_num_threads = 1
        o.log_severity_level = 3
        sess = ort.InferenceSession(f"{folder}/genus_{s}.onnx", o, providers=["CPUExecutionProvider"])
        sessions[s] = (sess, sess.get_inputs()[0].name)
    times = {(s, b): [] for s in sizes for b in (1, 16)}
    x = {(s, b): np.random.default_rng(0).uniform(-1, 1, (b, s, s, 3)).astype(np.float32) for s in sizes for b in (1, 16)}
    for (s, _b), arr in x.items():  # warm-up
        sessions[s][0].run(None, {sessions[s][1]: arr})
    for _ in range(rounds):
        for s in sizes:
            for b in (1, 16):
                sess, name = sessions[s]
                t0 = time.perf_counter()
                sess.run(None, {name: x[(s, b)]})
                times[(s, b)].append(time.perf_counter() - t0)
    for (s, b), t in times.items():
        t = np.array(t) * 1000 / b
        out["results"][f"threads{threads}_size{s}_batch{b}"] = {"median_ms_per_image": round(float(np.median(t)), 3), "min_ms_per_image": round(float(t.min()), 3), "p90_ms_per_image": round(float(np.percentile(t, 90)), 3)}
print(json.dumps(out, indent=1))  # noqa: T201 - a measuring script, not library code
