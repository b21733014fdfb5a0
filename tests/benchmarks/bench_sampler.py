"""Measure what the telemetry sampler itself costs (CPU), and write it to a JSON file.

    python tests/benchmarks/bench_sampler.py [--seconds 20] [--rounds 3] [--rate 10]
        [--out results/telemetry/sampler_cost.json]

Two figures, each repeated and reported as median and range:

- per sample: CPU time (``time.thread_time``) and wall time of one ``read_once()``, over
  many calls, for the source this machine has and for fake Jetson (INA3221) and RAPL trees
  (file reads of the same shape as the real sysfs, from a temporary folder);
- running: the sampler thread at ``--rate`` Hz for ``--seconds``, its own CPU seconds
  (``Sampler.own_cpu_s``, thread CPU time) divided by the wall time = the share of one core
  it keeps busy, and the whole process's CPU over the same time (the main thread sleeps).

Not a test (pytest does not collect it); no figure here is asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from phytoscope.telemetry import Sampler  # noqa: E402
from tests.telemetry import fakesys  # noqa: E402


def spread(values: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def per_sample(make_sampler, calls: int) -> dict[str, object]:
    sampler = make_sampler()
    sampler.read_once()
    cpu, wall = [], []
    for _ in range(calls):
        c0, w0 = time.thread_time(), time.perf_counter()
        sampler.read_once()
        cpu.append((time.thread_time() - c0) * 1e6)
        wall.append((time.perf_counter() - w0) * 1e6)
    label = sampler.power_label
    sampler.close()
    cpu.sort()
    return {
        "source": label,
        "calls": calls,
        "cpu_us_per_sample": {**spread(cpu), "p95": cpu[int(0.95 * (len(cpu) - 1))]},
        "wall_us_per_sample": spread(wall),
    }


def running(make_sampler, rate: float, seconds: float, rounds: int) -> dict[str, object]:
    own, process, counts = [], [], []
    label = ""
    for _ in range(rounds):
        sampler = make_sampler(rate)
        label = sampler.power_label
        p0, w0 = time.process_time(), time.monotonic()
        sampler.start()
        time.sleep(seconds)
        sampler.stop()
        wall = time.monotonic() - w0
        process.append(100.0 * (time.process_time() - p0) / wall)
        own.append(100.0 * sampler.own_cpu_s / wall)
        counts.append(len(sampler.snapshot()))
        sampler.close()
    return {
        "source": label,
        "rate_hz": rate,
        "seconds_per_round": seconds,
        "rounds": rounds,
        "samples_per_round": counts,
        "sampler_thread_cpu_percent_of_one_core": spread(own),
        "process_cpu_percent_of_one_core": spread(process),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--out", default=str(REPO / "results" / "telemetry" / "sampler_cost.json"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        orin, rapl = Path(tmp) / "orin", Path(tmp) / "rapl"
        fakesys.orin_nano(orin)
        fakesys.rapl(rapl, package_uj=1_000_000, dram_uj=100_000)
        makers = {
            "this machine": lambda rate=args.rate: Sampler(rate_hz=rate),
            "fake Orin Nano INA3221 tree": lambda rate=args.rate: Sampler(
                rate_hz=rate, sysfs_root=orin
            ),
            "fake RAPL tree": lambda rate=args.rate: Sampler(rate_hz=rate, sysfs_root=rapl),
        }
        load_before = os.getloadavg()
        result = {
            "what": "CPU cost of phytoscope's telemetry sampler (tests/benchmarks/bench_sampler.py)",
            "when_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": {
                "platform": platform.platform(),
                "python": sys.version.split()[0],
                "cpus": os.cpu_count(),
                "load_average_before": load_before,
                "note": "shared machine (other jobs running): figures are upper bounds of the "
                "sampler's own cost; fake trees are files in a temporary folder, real "
                "sysfs attributes are driver calls and may cost more",
            },
            "per_sample": {name: per_sample(make, args.calls) for name, make in makers.items()},
            "running": {
                name: running(make, args.rate, args.seconds, args.rounds)
                for name, make in makers.items()
            },
        }
        result["machine"]["load_average_after"] = os.getloadavg()

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    for name in result["per_sample"]:
        ps, rn = result["per_sample"][name], result["running"][name]
        print(
            f"{name} [{ps['source']}]: {ps['cpu_us_per_sample']['median']:.0f} us CPU per sample "
            f"(p95 {ps['cpu_us_per_sample']['p95']:.0f}); at {args.rate:g} Hz the thread uses "
            f"{rn['sampler_thread_cpu_percent_of_one_core']['median']:.3f} % of one core "
            f"(range {rn['sampler_thread_cpu_percent_of_one_core']['min']:.3f}-"
            f"{rn['sampler_thread_cpu_percent_of_one_core']['max']:.3f})"
        )
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
