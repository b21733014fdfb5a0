"""The sampler: power, memory and CPU at a steady rate, stamped, buffered and logged.

Drive it either way:

- ``start()`` / ``stop()``: its own daemon thread reads at ``rate_hz`` and calls
  ``on_sample(sample)`` on that thread (the GUI turns that into a queued signal);
- ``read_once()``: the caller decides when (a Qt timer, a benchmark loop).

Every sample lands in a bounded ring buffer (``snapshot()``) and, with ``csv_path``, in a CSV
log appended and flushed row by row, so a crash loses at most the row being written.
"""

from __future__ import annotations

import csv
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from phytoscope.errors import ConfigError, SensorError
from phytoscope.telemetry.base import PowerReading, PowerSource, Reader, SourceStatus, read_text
from phytoscope.telemetry.discovery import select_source
from phytoscope.telemetry.energy import PowerSummary, integrate
from phytoscope.telemetry.estimate import CpuLoad
from phytoscope.telemetry.memory import MemoryReader
from phytoscope.types import TelemetrySample

log = logging.getLogger(__name__)


def csv_columns(estimated: bool) -> list[str]:
    """Column names of the CSV log; the power column itself says "estimated" when it is."""
    return [
        "kind",
        "wall_time",
        "t_monotonic_s",
        "phase",
        "power_w_estimated" if estimated else "power_w",
        "power_source",
        "estimated",
        "energy_j",
        "rss_bytes",
        "ram_used_bytes",
        "ram_total_bytes",
        "cpu_percent",
        "process_cpu_percent",
        "gpu_mem_used_bytes",
        "rails_w",
    ]


class Sampler:
    """Samples the best power source present plus memory and CPU.

    Parameters
    ----------
    rate_hz
        samples per second for the thread (0.1-100).
    capacity
        samples the ring buffer keeps (36000 = 5 h at 2 Hz).
    csv_path
        append every sample (and every phase mark) to this CSV file.
    pid
        process whose RSS and CPU are recorded (default: this one).
    sysfs_root, procfs_root
        where sensors and ``meminfo`` are read; tests pass fake trees.
    source
        ``"auto"`` (default), a name from ``SOURCE_CHOICES``, or a ready PowerSource.
    cpu_tdp_w
        rated power for the estimate (else ``$PHYTOSCOPE_CPU_TDP_W``, else 15 W).
    meter_csv, meter_offset_s
        an external meter's log (time, watts) as the power source, and the seconds to add
        to its clock.
    clock, wall_clock
        timestamp functions (tests pass fake clocks); scheduling of the thread always uses
        the real monotonic clock.

    Notes
    -----
    The machine's CPU % needs an interval: a sample taken within ~10 ms of the sampler's
    creation has ``cpu_percent`` NaN and, with the estimate as source, ``power_w`` None.
    """

    def __init__(
        self,
        rate_hz: float = 2.0,
        capacity: int = 36000,
        csv_path: str | Path | None = None,
        pid: int | None = None,
        sysfs_root: str | Path = "/sys",
        procfs_root: str | Path = "/proc",
        *,
        source: str | PowerSource = "auto",
        cpu_tdp_w: float | None = None,
        meter_csv: str | Path | None = None,
        meter_offset_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        reader: Reader = read_text,
        cpu_load: CpuLoad | None = None,
    ) -> None:
        if not 0.1 <= float(rate_hz) <= 100:
            raise ConfigError(f"telemetry rate must be between 0.1 and 100 Hz, not {rate_hz}")
        if int(capacity) < 2:
            raise ConfigError(f"telemetry buffer must hold at least 2 samples, not {capacity}")
        self.rate_hz = float(rate_hz)
        self.capacity = int(capacity)
        self.csv_path = Path(csv_path) if csv_path else None
        self._clock, self._wall = clock, wall_clock
        self._cpu = cpu_load or CpuLoad()
        self._memory = MemoryReader(pid, procfs_root, reader)
        self.pid = self._memory.pid
        self.source_statuses: list[SourceStatus]
        if isinstance(source, PowerSource):
            self.source, self.source_statuses = (
                source,
                [SourceStatus(source.name, "found", source.label)],
            )
        else:
            self.source, self.source_statuses = select_source(
                source,
                sysfs_root=sysfs_root,
                reader=reader,
                cpu_tdp_w=cpu_tdp_w,
                utilisation_percent=lambda: self._cpu.last_percent,
                meter_csv=meter_csv,
                meter_offset_s=meter_offset_s,
                rate_hz=self.rate_hz,
                clock=clock,
            )
        self.power_label: str = self.source.label
        self.estimated: bool = self.source.estimated
        self.on_sample: Callable[[TelemetrySample], None] | None = None
        self.errors = 0
        self.last_error: str | None = None
        self.own_cpu_s = 0.0
        """CPU seconds the sampler thread has used (``time.thread_time``): its own cost"""
        self._buffer: deque[TelemetrySample] = deque(maxlen=self.capacity)
        self._marks: list[tuple[float, str]] = []
        self._lock = threading.Lock()  # buffer and marks
        self._read_lock = threading.Lock()  # sources hold counter state: one reader at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._csv_lock = threading.Lock()  # rows from the thread and from mark() interleave
        self._csv_file: IO[str] | None = None
        self._csv: csv.writer | None = None  # type: ignore[valid-type]

    # --- reading -------------------------------------------------------------------------

    def read_once(self) -> TelemetrySample:
        """Take one sample now, buffer it and log it; does not call ``on_sample``."""
        with self._read_lock:
            t, wall = self._clock(), self._wall()
            load = self._cpu.update()
            cpu = math.nan if load is None else load
            mem = self._memory.read()
            try:
                reading = self.source.read(t)
            except SensorError as exc:
                reading = PowerReading(None)
                self._note_error(str(exc))
            sample = TelemetrySample(
                t=t,
                wall=wall,
                power_w=reading.power_w,
                power_source=self.power_label,
                estimated=self.estimated,
                rss_bytes=mem.rss_bytes,
                ram_used_bytes=mem.ram_used_bytes,
                ram_total_bytes=mem.ram_total_bytes,
                cpu_percent=cpu,
                rails_w=reading.rails_w,
                gpu_mem_used_bytes=(
                    reading.gpu_mem_used_bytes
                    if reading.gpu_mem_used_bytes is not None
                    else mem.gpu_shared_bytes
                ),
                energy_j=reading.energy_j,
                process_cpu_percent=mem.process_cpu_percent,
            )
            with self._lock:
                self._buffer.append(sample)
                phase = self._marks[-1][1] if self._marks else ""
            self._log_sample(sample, phase)
        return sample

    def _note_error(self, message: str) -> None:
        self.errors += 1
        if message != self.last_error:  # once per distinct failure, not 10 times a second
            log.warning("power reading failed: %s", message)
        self.last_error = message

    def mark(self, phase: str) -> float:
        """Stamp the start of a phase (load, warm-up, inference ...); returns its time."""
        t = self._clock()
        with self._lock:
            self._marks.append((t, str(phase)))
        if self._csv is not None:
            self._write_row(["mark", f"{self._wall():.3f}", f"{t:.6f}", phase])
        return t

    def marks(self) -> list[tuple[float, str]]:
        with self._lock:
            return list(self._marks)

    def snapshot(self) -> list[TelemetrySample]:
        """A copy of the ring buffer, oldest first."""
        with self._lock:
            return list(self._buffer)

    def latest(self) -> TelemetrySample | None:
        with self._lock:
            return self._buffer[-1] if self._buffer else None

    def summary(self, t0: float | None = None, t1: float | None = None) -> PowerSummary | None:
        """Energy and mean power over [t0, t1] of the buffered samples (see ``integrate``)."""
        return integrate(self.snapshot(), t0, t1)

    def now(self) -> float:
        """The sampler's clock (monotonic seconds), for windows given to ``summary``."""
        return self._clock()

    # --- thread --------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Sample on a daemon thread until ``stop()``; a second call does nothing."""
        if self.running:
            return
        self._open_csv()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="phytoscope-telemetry", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread (waiting for the sample in progress) and close the CSV log."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("telemetry thread did not stop within %.1f s", timeout)
            self._thread = None
        self._close_csv()

    def close(self) -> None:
        """Stop, and release the power source (jtop socket, NVML)."""
        self.stop()
        self.source.close()

    def __enter__(self) -> Sampler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        period = 1.0 / self.rate_hz
        cpu0 = time.thread_time()
        next_tick = time.monotonic()
        while True:  # at least one sample per start(), however soon stop() follows
            try:
                sample = self.read_once()
            except Exception as exc:  # noqa: BLE001 - the thread must outlive any one failure
                self._note_error(f"{type(exc).__name__}: {exc}")
            else:
                callback = self.on_sample
                if callback is not None:
                    try:
                        callback(sample)
                    except Exception:  # noqa: BLE001
                        log.exception("telemetry on_sample callback failed")
            self.own_cpu_s = time.thread_time() - cpu0
            next_tick += period
            delay = next_tick - time.monotonic()
            if delay < 0:  # fell behind (machine busy): skip the missed ticks, do not burst
                next_tick = time.monotonic()
                delay = 0.0
            if self._stop.wait(delay):
                break

    # --- CSV log -------------------------------------------------------------------------

    def _open_csv(self) -> None:
        if self.csv_path is None or self._csv is not None:
            return
        columns = csv_columns(self.estimated)
        path = self.csv_path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fresh = not path.exists() or path.stat().st_size == 0
            if not fresh:
                with open(path, newline="", encoding="utf-8") as handle:
                    header = next(csv.reader(handle), [])
                if header != columns:
                    raise ConfigError(
                        f"telemetry log {path} has other columns ({', '.join(header[:6])} ...); "
                        "choose a new file or move the old one away"
                    )
            self._csv_file = open(path, "a", newline="", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise ConfigError(f"cannot write telemetry log {path}: {exc}") from exc
        self._csv = csv.writer(self._csv_file)
        if fresh:
            self._write_row(columns)

    def _write_row(self, row: Sequence[object]) -> None:
        with self._csv_lock:
            if self._csv is None or self._csv_file is None:
                return
            try:
                self._csv.writerow(row)  # type: ignore[attr-defined]
                self._csv_file.flush()
                return
            except (OSError, ValueError) as exc:
                error = f"telemetry log {self.csv_path}: {exc}; logging stopped"
        self._note_error(error)
        self._close_csv()

    def _log_sample(self, s: TelemetrySample, phase: str) -> None:
        if self.csv_path is None:
            return
        if self._csv is None:
            self._open_csv()
        self._write_row(
            [
                "sample",
                f"{s.wall:.3f}",
                f"{s.t:.6f}",
                phase,
                "" if s.power_w is None else f"{s.power_w:.4f}",
                s.power_source,
                "estimated" if s.estimated else "measured",
                "" if s.energy_j is None else f"{s.energy_j:.6f}",
                s.rss_bytes,
                s.ram_used_bytes,
                s.ram_total_bytes,
                "" if math.isnan(s.cpu_percent) else f"{s.cpu_percent:.1f}",
                "" if s.process_cpu_percent is None else f"{s.process_cpu_percent:.1f}",
                "" if s.gpu_mem_used_bytes is None else s.gpu_mem_used_bytes,
                ";".join(f"{name}={w:.4f}" for name, w in s.rails_w),
            ]
        )

    def _close_csv(self) -> None:
        with self._csv_lock:
            if self._csv_file is not None:
                try:
                    self._csv_file.close()
                except OSError:
                    pass
            self._csv_file, self._csv = None, None


def idle_baseline(
    seconds: float = 5.0,
    sampler: Sampler | None = None,
    cancelled: Callable[[], bool] | None = None,
    **sampler_kwargs: object,
) -> PowerSummary | None:
    """Mean power while nothing of ours runs: the floor every benchmark figure sits on.

    With a running ``sampler`` it marks an ``"idle"`` phase on it and integrates its samples
    over the next ``seconds``; otherwise it runs a sampler of its own (``sampler_kwargs``).
    ``cancelled`` is polled every 0.1 s. The summary says whether it is estimated.
    """
    own = sampler is None
    if sampler is None:
        sampler = Sampler(**sampler_kwargs)  # type: ignore[arg-type]
    was_running = sampler.running
    if not was_running:
        sampler.start()
    try:
        t0 = sampler.mark("idle")
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if cancelled is not None and cancelled():
                return None
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
        t1 = sampler.now()
        if sampler.rate_hz * seconds < 2:  # too short for the thread: take the closing sample
            sampler.read_once()
        return sampler.summary(t0, t1)
    finally:
        if not was_running:
            sampler.stop()
        if own:
            sampler.close()
