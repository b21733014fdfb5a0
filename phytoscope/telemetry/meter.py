"""An external USB power meter's CSV log as the power source.

The honest way to measure a machine without sensors: a USB (or mains) meter logging
``time, watts``. The log may still be growing while phytoscope runs; every read takes the
rows appended since the last one. Each sample gets the meter's power at the sample's wall
time, linearly interpolated between the two meter rows around it.

Clocks: meter timestamps are taken as seconds since the epoch (or ISO 8601; naive times are
local), plus ``offset_s``. Find the offset with a marker phase (a few seconds idle, then a
CPU burst) and line the step up; the meter's time resolution and the offset are the limits of
any per-phase figure.

Accepted columns (header optional, comma, semicolon or tab separated): a time column whose
name contains ``time``, ``date`` or is ``t``/``ts``, and a power column named ``w``,
``watts``, ``power``, ``power_w`` (or ``mw``/``power_mw`` in milliwatts). Without a header
the first column is the time and the second the watts.
"""

from __future__ import annotations

import bisect
import csv
import io
import time
from datetime import datetime
from pathlib import Path

from phytoscope.errors import SensorError
from phytoscope.telemetry.base import PowerReading, PowerSource

MAX_GAP_S = 2.0
"""A sample further than this from the nearest meter row gets no power (None), not a guess."""


def _parse_time(text: str) -> float:
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError as exc:
        raise ValueError(f"time {text!r} is neither epoch seconds nor ISO 8601") from exc


def _columns(header: list[str]) -> tuple[int, int, float] | None:
    """(time column, power column, scale to W) from a header row, or None if not a header."""
    names = [h.strip().lower().replace(" ", "_") for h in header]
    time_col = next(
        (i for i, n in enumerate(names) if "time" in n or "date" in n or n in ("t", "ts", "t_s")),
        None,
    )
    for i, n in enumerate(names):
        if n in ("mw", "power_mw", "milliwatts"):
            power_col, scale = i, 1e-3
            break
        if n in ("w", "watt", "watts", "power", "power_w", "p_w", "p") or "watt" in n:
            power_col, scale = i, 1.0
            break
    else:
        return None
    return (time_col if time_col is not None else 0), power_col, scale


class MeterCsvSource(PowerSource):
    """Power from a meter log, aligned to this machine's clock by time.

    Parameters
    ----------
    path
        the CSV file (it may grow while we read it).
    offset_s
        added to every meter timestamp to bring it onto this machine's wall clock.
    mono_to_wall
        ``time.time() - time.monotonic()``, taken once here so samples and meter rows meet
        on one clock; tests pass a fixed value.
    """

    name = "meter"
    estimated = False

    def __init__(
        self, path: str | Path, offset_s: float = 0.0, mono_to_wall: float | None = None
    ) -> None:
        self.path = Path(path)
        self.offset_s = float(offset_s)
        self.mono_to_wall = time.time() - time.monotonic() if mono_to_wall is None else mono_to_wall
        self.label = f"USB meter log {self.path.name} (measured)"
        self.times: list[float] = []
        self.watts: list[float] = []
        self.bad_rows = 0
        self._pos = 0
        self._pending = ""
        self._layout: tuple[int, int, float] | None = None
        self._header_checked = False
        if not self.path.is_file():
            raise SensorError(f"meter log {self.path} not found")
        self._poll()

    def _poll(self) -> None:
        try:
            with open(self.path, encoding="utf-8", errors="replace", newline="") as handle:
                handle.seek(self._pos)
                chunk = handle.read()
                self._pos = handle.tell()
        except OSError as exc:
            raise SensorError(f"cannot read meter log {self.path}: {exc}") from exc
        text = self._pending + chunk
        lines = text.split("\n")
        self._pending = lines.pop()  # an unfinished last line waits for the next poll
        for row in csv.reader(io.StringIO("\n".join(lines)), self._dialect(text)):
            self._add(row)

    @staticmethod
    def _dialect(sample: str) -> type[csv.Dialect] | csv.Dialect:
        first = sample.split("\n", 1)[0]
        for delimiter in (",", ";", "\t"):
            if delimiter in first:

                class _D(csv.excel):
                    pass

                _D.delimiter = delimiter
                return _D
        return csv.excel

    def _add(self, row: list[str]) -> None:
        if not row or not any(cell.strip() for cell in row) or row[0].lstrip().startswith("#"):
            return
        if not self._header_checked:
            self._header_checked = True
            layout = _columns(row)
            if layout is not None:
                self._layout = layout
                return
            self._layout = (0, 1, 1.0)
        assert self._layout is not None
        time_col, power_col, scale = self._layout
        try:
            t = _parse_time(row[time_col]) + self.offset_s
            w = float(row[power_col]) * scale
        except (ValueError, IndexError):
            self.bad_rows += 1
            return
        if self.times and t < self.times[-1]:
            self.bad_rows += 1  # out of order: the meter clock jumped back
            return
        self.times.append(t)
        self.watts.append(w)

    def power_at_wall(self, wall: float) -> float | None:
        """Meter power at a wall-clock time, interpolated; None outside the log's reach."""
        if not self.times:
            return None
        i = bisect.bisect_left(self.times, wall)
        if i < len(self.times) and self.times[i] == wall:
            return self.watts[i]
        if i == 0:
            return self.watts[0] if self.times[0] - wall <= MAX_GAP_S else None
        if i == len(self.times):
            return self.watts[-1] if wall - self.times[-1] <= MAX_GAP_S else None
        t0, t1 = self.times[i - 1], self.times[i]
        if t1 - t0 > 2 * MAX_GAP_S:
            return None  # a hole in the log
        w0, w1 = self.watts[i - 1], self.watts[i]
        return w0 + (w1 - w0) * (wall - t0) / (t1 - t0)

    def read(self, t: float) -> PowerReading:
        self._poll()
        return PowerReading(self.power_at_wall(t + self.mono_to_wall))


def _pearson(xs: list[float], ys: list[float]) -> float:
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    return sxy / (sxx * syy) ** 0.5 if sxx > 0 and syy > 0 else 0.0


def estimate_offset(
    meter: MeterCsvSource,
    walls: list[float],
    loads: list[float],
    search_s: float = 30.0,
    step_s: float = 0.05,
    min_pairs: int = 10,
) -> tuple[float, float] | None:
    """The meter offset that best lines its power up with this machine's CPU load.

    Run a marker (a few seconds idle, then a CPU burst) while the meter logs, sample CPU %
    at wall times ``walls``, and pass both here: every shift within ±``search_s`` is tried
    and the one whose meter power correlates best with the load wins. Returns
    (offset_s to use, correlation), or None when no shift leaves ``min_pairs`` overlapping
    points. The offset is good to about half the meter's logging interval; a correlation
    well below 0.8 means the marker did not show on the meter: do not trust the offset.
    """
    pairs = [(w, c) for w, c in zip(walls, loads, strict=True) if c == c]  # drop NaN
    best: tuple[float, float] | None = None
    steps = int(round(search_s / step_s))
    # smallest shifts first, so a tie keeps the offset closest to the current one
    for k in sorted(range(-steps, steps + 1), key=abs):
        shift = k * step_s
        xs, ys = [], []
        for wall, load in pairs:
            watts = meter.power_at_wall(wall - shift)
            if watts is not None:
                xs.append(load)
                ys.append(watts)
        if len(xs) < min_pairs:
            continue
        r = _pearson(xs, ys)
        if best is None or r > best[1] + 1e-12:
            best = (meter.offset_s + shift, r)
    return best
