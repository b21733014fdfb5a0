"""``phytoscope telemetry``: read power, memory and CPU for a while and print them."""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time

from phytoscope.errors import ConfigError, ExitCode, SensorError
from phytoscope.telemetry import Sampler, integrate
from phytoscope.telemetry.meter import MeterCsvSource, estimate_offset
from phytoscope.types import TelemetrySample

HELP = "print power (with its source, or 'estimated'), memory and CPU for N seconds"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="how long to sample (default 10)"
    )
    parser.add_argument(
        "--rate", type=float, default=2.0, metavar="HZ", help="samples per second (default 2)"
    )
    parser.add_argument("--csv", metavar="FILE", help="also append every sample to this CSV log")
    parser.add_argument(
        "--source",
        default="auto",
        choices=("auto", "jtop", "ina3221", "rapl", "nvml", "estimate"),
        help="power source (default: the best one found)",
    )
    parser.add_argument(
        "--meter-csv",
        metavar="LOG",
        help="use an external USB meter's CSV log (time, watts) as the power source",
    )
    parser.add_argument(
        "--meter-offset",
        type=float,
        default=0.0,
        metavar="S",
        help="seconds to add to the meter log's timestamps to match this clock",
    )
    parser.add_argument(
        "--align-meter",
        action="store_true",
        help="with --meter-csv: run a marker (idle, CPU burst on every core, idle) and print the "
        "--meter-offset that lines the meter's log up with this clock",
    )
    parser.add_argument(
        "--marker-seconds",
        type=float,
        default=5.0,
        metavar="S",
        help="length of each marker part (default 5)",
    )
    parser.add_argument(
        "--cpu-tdp",
        type=float,
        metavar="W",
        help="rated CPU power for the estimate (default $PHYTOSCOPE_CPU_TDP_W or 15 W)",
    )
    parser.add_argument("--pid", type=int, help="process whose RSS/CPU to show (default: this one)")
    parser.add_argument("--quiet", action="store_true", help="print only the summary")
    parser.add_argument(
        "--sysfs-root", default="/sys", help=argparse.SUPPRESS
    )  # fake trees in tests
    parser.add_argument("--procfs-root", default="/proc", help=argparse.SUPPRESS)


def _mib(n: int) -> str:
    return f"{n / 2**20:8.1f}"


def format_sample(s: TelemetrySample, t0: float) -> str:
    if s.power_w is None:
        power = "      -  W"
    else:
        power = f"{s.power_w:7.3f} W"
    kind = "estimated" if s.estimated else "measured"
    ram_pct = 100.0 * s.ram_used_bytes / s.ram_total_bytes if s.ram_total_bytes else math.nan
    cpu = "   -" if math.isnan(s.cpu_percent) else f"{s.cpu_percent:5.1f}"
    line = (
        f"{s.t - t0:7.2f} s  {power} ({kind})  RSS {_mib(s.rss_bytes)} MiB  "
        f"RAM {ram_pct:5.1f} %  CPU {cpu} %"
    )
    if s.gpu_mem_used_bytes is not None:
        line += f"  GPU mem {_mib(s.gpu_mem_used_bytes).strip()} MiB"
    if s.rails_w:
        line += "  [" + ", ".join(f"{n} {w:.3f} W" for n, w in s.rails_w) + "]"
    return line


def _burst(seconds: float) -> None:
    """Every core busy for ``seconds`` (one spinning process per CPU)."""
    code = f"import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass"
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(os.cpu_count() or 1)]
    for proc in procs:
        proc.wait()


def align_meter(args: argparse.Namespace) -> int:
    """Marker run: idle, burst, idle while the meter logs; print the offset that fits best."""
    if not args.meter_csv:
        raise ConfigError("--align-meter needs --meter-csv LOG (the meter must be logging now)")
    part = args.marker_seconds
    if part <= 0:
        raise ConfigError(f"--marker-seconds must be positive, not {part}")
    meter = MeterCsvSource(args.meter_csv, offset_s=args.meter_offset)
    sampler = Sampler(rate_hz=10, source=meter, procfs_root=args.procfs_root)
    print(f"marker: {part:g} s idle, {part:g} s every core busy, {part:g} s idle ...", flush=True)
    sampler.start()
    try:
        time.sleep(part)
        sampler.mark("burst")
        _burst(part)
        sampler.mark("idle")
        time.sleep(part)
    finally:
        sampler.close()
    meter.read(sampler.now())  # take the rows the meter logged meanwhile
    samples = sampler.snapshot()
    found = estimate_offset(
        meter,
        [s.wall for s in samples],
        [s.cpu_percent for s in samples],
        search_s=max(30.0, 3 * part),
        min_pairs=5,
    )
    if found is None:
        print(
            f"fewer than 5 of {len(samples)} samples overlap the meter log: is the meter "
            "logging, to this file, now?"
        )
        return ExitCode.UNAVAILABLE
    offset, r = found
    verdict = "good" if r >= 0.8 else "the marker did not show on the meter: do not trust it"
    print(f"meter offset: {offset:+.2f} s (correlation {r:.2f}, {verdict})")
    print(f"use: --meter-csv {args.meter_csv} --meter-offset {offset:.2f}")
    return ExitCode.OK if r >= 0.8 else ExitCode.PARTIAL


def run(args: argparse.Namespace) -> int:
    if args.align_meter:
        return align_meter(args)
    if args.seconds <= 0:
        raise ConfigError(f"--seconds must be positive, not {args.seconds}")
    try:
        sampler = Sampler(
            rate_hz=args.rate,
            csv_path=args.csv,
            pid=args.pid,
            sysfs_root=args.sysfs_root,
            procfs_root=args.procfs_root,
            source=args.source,
            cpu_tdp_w=args.cpu_tdp,
            meter_csv=args.meter_csv,
            meter_offset_s=args.meter_offset,
        )
    except SensorError as exc:
        print(f"phytoscope: {exc}", file=sys.stderr)
        return ExitCode.UNAVAILABLE
    print(f"power source: {sampler.power_label}")
    if sampler.estimated:
        print(
            "note: no power sensor readable here; power is ESTIMATED from CPU load "
            "(use --meter-csv with a USB meter log to measure)"
        )
    for status in sampler.source_statuses:
        if status.state != "found" and status.name != "estimate":
            print(f"  {status.name}: {status.line()}")
    t_start = sampler.now()
    if not args.quiet:
        sampler.on_sample = lambda s: print(format_sample(s, t_start), flush=True)
    sampler.start()
    try:
        time.sleep(args.seconds)
    except KeyboardInterrupt:
        print("interrupted: summary of what was read", file=sys.stderr)
    finally:
        sampler.stop()
    try:  # a closing sample, so the run is integrated up to its very end
        last = sampler.read_once()
        if not args.quiet:
            print(format_sample(last, t_start))
    finally:
        sampler.close()
    samples = sampler.snapshot()
    summary = integrate(samples)
    peak_rss = max((s.rss_bytes for s in samples), default=0)
    print(
        f"samples: {len(samples)} at {args.rate:g} Hz; peak RSS {peak_rss / 2**20:.1f} MiB; "
        f"sampler CPU {sampler.own_cpu_s * 1000:.1f} ms"
    )
    if summary is None:
        print("energy: - (fewer than two samples with power)")
    else:
        kind = "estimated" if summary.estimated else "measured"
        print(f"energy: {summary.energy_j:.3f} J ({kind}) over {summary.duration_s:.2f} s")
        print(f"mean power: {summary.mean_w:.3f} W ({kind}; {summary.source}; {summary.method})")
    if sampler.errors:
        print(f"power read errors: {sampler.errors} (last: {sampler.last_error})", file=sys.stderr)
    if args.csv:
        print(f"log: {args.csv}")
    return ExitCode.OK
