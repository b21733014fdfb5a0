"""Memory and CPU figures: the watched process (psutil) and the whole machine (/proc/meminfo).

RAM "used" is ``MemTotal - MemAvailable``, the figure ``psutil.virtual_memory().percent``
uses; page cache the kernel can drop on demand is not counted as used. On a Jetson the GPU
allocates from the same RAM, so it is inside these figures; the GPU-mapped part is shown on
its own where the kernel reports it (``NvMapMemUsed`` in ``/proc/meminfo``, nvgpu kernels).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from phytoscope.errors import SensorError
from phytoscope.telemetry.base import Reader, read_text

log = logging.getLogger(__name__)


def parse_meminfo(text: str) -> dict[str, int]:
    """``/proc/meminfo`` as {key: bytes} (the file's kB are KiB)."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if not parts:
            continue
        try:
            number = int(parts[0])
        except ValueError:
            continue
        values[key.strip()] = (
            number * 1024 if len(parts) > 1 and parts[1].lower() == "kb" else number
        )
    return values


@dataclass(frozen=True)
class MemoryReading:
    rss_bytes: int
    ram_used_bytes: int
    ram_total_bytes: int
    process_cpu_percent: float | None
    gpu_shared_bytes: int | None


class MemoryReader:
    """RSS and CPU of one process plus system RAM.

    Parameters
    ----------
    pid
        process to watch (default: this one). If it ends, RSS reads 0 and CPU None.
    procfs_root
        where ``meminfo`` lives (``/proc``); tests pass a fake tree.
    """

    def __init__(
        self, pid: int | None = None, procfs_root: str | Path = "/proc", reader: Reader = read_text
    ) -> None:
        self.pid = os.getpid() if pid is None else int(pid)
        try:
            self._process: psutil.Process | None = psutil.Process(self.pid)
        except psutil.Error as exc:
            raise SensorError(f"no process with pid {self.pid}: {exc}") from exc
        # Process CPU from cpu_times deltas over at least MIN_CPU_INTERVAL_S: psutil's own
        # cpu_percent over a few milliseconds answers nonsense like 480 %.
        self._cpu_last = (time.monotonic(), self._cpu_seconds())
        self._cpu_percent: float | None = None
        self._meminfo = Path(procfs_root) / "meminfo"
        self._reader = reader
        self.process_gone = False

    MIN_CPU_INTERVAL_S = 0.05

    def _cpu_seconds(self) -> float:
        assert self._process is not None
        times = self._process.cpu_times()
        return times.user + times.system

    def _process_cpu(self) -> float | None:
        now, spent = time.monotonic(), self._cpu_seconds()
        dt = now - self._cpu_last[0]
        if dt >= self.MIN_CPU_INTERVAL_S:
            self._cpu_percent = max(0.0, 100.0 * (spent - self._cpu_last[1]) / dt)
            self._cpu_last = (now, spent)
        return self._cpu_percent

    def system_ram(self) -> tuple[int, int, int | None]:
        """(used, total, GPU-mapped or None) in bytes."""
        try:
            info = parse_meminfo(self._reader(self._meminfo))
            total = info["MemTotal"]
            available = info.get("MemAvailable", info.get("MemFree", 0))
            return total - available, total, info.get("NvMapMemUsed")
        except (OSError, KeyError):
            vm = psutil.virtual_memory()  # not Linux, or /proc hidden: psutil knows the OS way
            return vm.total - vm.available, vm.total, None

    def read(self) -> MemoryReading:
        used, total, gpu = self.system_ram()
        rss, cpu = 0, None
        if self._process is not None:
            try:
                with self._process.oneshot():
                    rss = self._process.memory_info().rss
                    cpu = self._process_cpu()
            except psutil.Error:
                log.warning("process %s has ended; its RSS now reads 0", self.pid)
                self._process, self.process_gone = None, True
        return MemoryReading(rss, used, total, cpu, gpu)
