"""Check the NVML reader on a real NVIDIA GPU: idle, a matmul burst, idle again.

    python tests/benchmarks/check_nvml.py [--out results/telemetry/nvml_check.json]

Runs the Sampler (auto source: NVML on a GPU workstation) at 10 Hz, marks three phases,
and beside it polls the driver's own ``nvmlDeviceGetPowerUsage`` (its averaged board power)
on the main thread. Per phase it writes both means, so the energy-counter path can be
compared with the driver's figure. The burst needs torch with CUDA; without it the run is
idle only. Needs a GPU: not a test, nothing asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from phytoscope.telemetry import Sampler, by_phase  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--idle", type=float, default=4.0)
    parser.add_argument("--burst", type=float, default=5.0)
    parser.add_argument("--out", default=str(REPO / "results" / "telemetry" / "nvml_check.json"))
    parser.add_argument("--csv", default=None)
    args = parser.parse_args()

    import pynvml

    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    driver: list[tuple[float, float]] = []

    def poll(seconds: float, work=None) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if work is not None:
                work()
            driver.append((time.monotonic(), pynvml.nvmlDeviceGetPowerUsage(handle) / 1000.0))
            if work is None:
                time.sleep(0.1)

    work = None
    try:
        import torch

        if torch.cuda.is_available():
            a = torch.randn(8192, 8192, device="cuda")
            b = torch.randn(8192, 8192, device="cuda")
            (a @ b).sum().item()  # CUDA context and kernels loaded before the idle phase

            def work() -> None:
                (a @ b).sum().item()
    except ImportError:
        pass

    sampler = Sampler(rate_hz=10, csv_path=args.csv)
    sampler.start()
    sampler.mark("idle-1")
    poll(args.idle)
    if work is not None:
        sampler.mark("burst")
        poll(args.burst, work)
    sampler.mark("idle-2")
    poll(args.idle)
    sampler.stop()
    sampler.read_once()
    end = sampler.now()
    sampler.close()
    samples = sampler.snapshot()
    phases = {}
    marks = sampler.marks()
    for (name, summary), (t0, _) in zip(by_phase(samples, marks, end).items(), marks, strict=True):
        t1 = next((t for t, _ in marks if t > t0), end)
        drv = [w for t, w in driver if t0 <= t <= t1]
        phases[name] = {
            "sampler_mean_w": None if summary is None else round(summary.mean_w, 2),
            "sampler_energy_j": None if summary is None else round(summary.energy_j, 2),
            "sampler_method": None if summary is None else summary.method,
            "seconds": round(t1 - t0, 2),
            "driver_power_usage_mean_w": round(statistics.mean(drv), 2) if drv else None,
            "driver_polls": len(drv),
        }
    result = {
        "what": "NVML reader vs the driver's nvmlDeviceGetPowerUsage (tests/benchmarks/check_nvml.py)",
        "when_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "gpu": pynvml.nvmlDeviceGetName(handle),
        "source": sampler.power_label,
        "estimated": sampler.estimated,
        "samples": len(samples),
        "samples_without_power": sum(s.power_w is None for s in samples),
        "sampler_thread_cpu_s": round(sampler.own_cpu_s, 3),
        "phases": phases,
        "note": "nvmlDeviceGetPowerUsage is the driver's averaged reading (about 1 s window), "
        "polled unevenly (between matmuls in the burst), so it lags steps and its mean "
        "is a plain average of polls",
    }
    pynvml.nvmlShutdown()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
