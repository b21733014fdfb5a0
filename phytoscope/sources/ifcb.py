"""Raw Imaging FlowCytobot bins: a ``.hdr`` / ``.adc`` / ``.roi`` triplet per sample.

pyifcb (WHOI's reader) is not published on PyPI, so this is a small reader of its own,
checked against the ROIs WHOI's tools cut from the same bins. Two layouts exist:

* old instruments (``IFCBn_yyyy_ddd_hhmmss``, IFCB1-6): ADC columns 11/12/13 are
  RoiWidth, RoiHeight, StartByte; the header holds no run time, so the volume analysed is
  computed from the ADC trigger and frame-grab times (the method of WHOI's MATLAB code and
  pyifcb's ``compute_ml_analyzed_s1``);
* new instruments (``DyyyymmddThhmmss_IFCBnnn``): columns 15/16/17; the header gives
  ``runTime`` and ``inhibitTime`` and ml_analyzed = 0.25 mL/min x (run - inhibit) / 60,
  falling back to the ADC's last run/inhibit columns when the header says 0.

A ROI is RoiWidth x RoiHeight uint8 bytes at StartByte (0-based) in the ``.roi`` file,
reshaped to (height, width); ADC rows of width 0 are triggers that produced no image.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from phytoscope.errors import SourceError, number_ranges

SUFFIXES = (".hdr", ".adc", ".roi")
NEW_NAME = re.compile(r"^D\d{8}T\d{6}_IFCB\d+$")
OLD_NAME = re.compile(r"^IFCB\d+_\d{4}_\d{3}_\d{6}$")

FLOW_RATE_ML_PER_MIN = 0.25
"""Syringe pump rate of IFCB007 and later (WHOI's value, used by every IFCB toolkit)."""

# old instruments: syringe steps -> mL (5 mL per 48000 steps, 40 steps/s) and the minimum
# processing time per trigger (WHOI's constants)
_OLD_FLOW_ML_PER_S = 5.0 / 48000.0 * 40.0
_OLD_MIN_PROC_TIME = 0.073


@dataclass(frozen=True)
class IfcbRoi:
    """One image of a bin: its 1-based ROI number (= ADC row) and its pixels."""

    number: int
    image: np.ndarray
    x: int
    y: int


@dataclass
class BinReport:
    """What reading a bin's images gave, against what its ADC file announces.

    Attributes
    ----------
    expected
        ROIs the ADC announces: rows with an image, plus rows that could not be parsed (each
        may have held one), so a bin with lost ROIs is never taken as complete.
    read
        ROIs whose pixels were read.
    bad_rows
        ``(line, problem)`` of ADC rows that could not be parsed; those rows are skipped.
    missing
        ROI numbers whose bytes are not in the ``.roi`` file (truncated or short file).
    roi_bytes
        Size of the ``.roi`` file when it was read.
    """

    expected: int = 0
    read: int = 0
    bad_rows: list[tuple[int, str]] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)
    roi_bytes: int = 0

    @property
    def partial(self) -> bool:
        return self.read < self.expected

    def describe(self, bin_id: str, roi_name: str) -> str:
        """One message for the user: how much was read, what was lost and why."""
        parts = [f"IFCB bin {bin_id}: {self.read} of {self.expected} ROIs read"]
        if self.missing:
            parts.append(
                f"ROI{'s' if len(self.missing) > 1 else ''} {number_ranges(self.missing)} lie "
                f"past the end of {roi_name} ({self.roi_bytes:,} bytes: truncated or still "
                "being copied?)"
            )
        for line, problem in self.bad_rows[:5]:
            parts.append(f"ADC line {line} skipped: {problem}")
        if len(self.bad_rows) > 5:
            parts.append(f"{len(self.bad_rows) - 5} more ADC lines skipped")
        return "; ".join(parts)


def bin_stem(path: Path | str) -> Path:
    """The bin's path without suffix (``.../D2022..._IFCB134``) from any of its files."""
    path = Path(path)
    return path.with_suffix("") if path.suffix.lower() in SUFFIXES else path


def is_bin_name(name: str) -> bool:
    return bool(NEW_NAME.match(name) or OLD_NAME.match(name))


def looks_like_bin(path: Path | str) -> bool:
    """True for a .roi/.adc/.hdr file, or a stem with any file of the triplet beside it."""
    path = Path(path)
    if path.suffix.lower() in SUFFIXES:
        return True
    return any(path.with_name(path.name + suffix).exists() for suffix in SUFFIXES)


def _parse_header(text: str) -> dict[str, str]:
    """``key: value`` lines (new format); the old format's quoted lines are kept raw."""
    header: dict[str, str] = {}
    lines = text.splitlines()
    for line in lines:
        key, sep, value = line.partition(":")
        if sep and key.strip() and not key.startswith('"'):
            header[key.strip()] = value.strip()
    if not header:  # old format: a quoted banner, then names and values lines
        header["raw"] = text
        quoted = [ln.strip().strip('"') for ln in lines if ln.strip()]
        for names, values in zip(quoted, quoted[1:], strict=False):
            keys = names.split()
            vals = [v.strip().strip('"').strip() for v in values.split('","')]
            if len(keys) == len(vals) and len(keys) > 1:
                header.update(dict(zip(keys, vals, strict=True)))
    return header


_MAX_COORD = 1 << 40
"""Larger ADC positions or sizes are damage, not data (a .roi file of a terabyte)."""


def _number(cell: str) -> float | None:
    try:
        value = float(cell)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _whole(row: list[str], column: int, name: str) -> int:
    """An ADC cell as a whole number, or ValueError saying which column holds what."""
    if column >= len(row):
        raise ValueError(f"{len(row)} columns, {name} is column {column + 1}")
    cell = row[column].strip()
    value = _number(cell)
    if value is None or value != int(value) or not -_MAX_COORD < value < _MAX_COORD:
        raise ValueError(f"column {column + 1} ({name}) is {cell[:20]!r}, not a whole number")
    return int(value)


class IfcbBin:
    """One IFCB bin, read lazily: header and ADC on open, ROI pixels on demand.

    A row of the ADC file that cannot be parsed is skipped and reported with its line
    number (:attr:`bad_rows`); the other rows are kept.

    Parameters
    ----------
    path
        Any of the bin's three files, or the stem without suffix.

    Raises
    ------
    SourceError
        A file of the triplet is missing or unreadable, or the ADC file is empty.
    """

    def __init__(self, path: Path | str):
        self.stem = bin_stem(path)
        self.bin_id = self.stem.name
        self.hdr_path = self.stem.with_name(self.bin_id + ".hdr")
        self.adc_path = self.stem.with_name(self.bin_id + ".adc")
        self.roi_path = self.stem.with_name(self.bin_id + ".roi")
        missing = [p.name for p in (self.adc_path, self.roi_path) if not p.is_file()]
        if missing:
            present = [p.name for p in (self.hdr_path, self.adc_path, self.roi_path) if p.is_file()]
            found = f" (found {', '.join(present)})" if present else ""
            raise SourceError(
                f"IFCB bin {self.bin_id}: {' and '.join(missing)} "
                f"{'is' if len(missing) == 1 else 'are'} missing{found}; a bin needs its "
                f".adc and .roi files side by side in {self.stem.parent}"
            )
        self.old_format = bool(OLD_NAME.match(self.bin_id))
        try:
            self.header: dict[str, str] = (
                _parse_header(self.hdr_path.read_text(encoding="latin-1"))
                if self.hdr_path.is_file()
                else {}
            )
            text = self.adc_path.read_text(encoding="latin-1")
        except OSError as exc:
            raise SourceError(
                f"IFCB bin {self.bin_id}: cannot read {exc.filename or 'a file'}: "
                f"{exc.strerror or exc}"
            ) from exc
        if not text.strip():
            raise SourceError(
                f"IFCB bin {self.bin_id}: {self.adc_path.name} is empty (no triggers)"
            )
        self._cols = (11, 12, 13) if self.old_format else (15, 16, 17)
        self._xy = (10, 9) if self.old_format else (13, 14)
        self._adc: list[list[str]] = []
        self._geometry: list[tuple[int, int, int, int, int] | None] = []
        self.bad_rows: list[tuple[int, str]] = []
        self.header_line = False
        for line, raw in enumerate(text.splitlines(), start=1):
            row = raw.split(",")
            if line == 1 and raw.strip() and all(_number(c) is None for c in row if c.strip()):
                self.header_line = True  # column names, as some exports write: not a trigger
                continue
            if not raw.strip("\x00 \t\r"):
                row = [""]  # blank, or NUL padding left by a copy cut short: no image
            try:
                geometry = self._row_geometry(row)
            except ValueError as exc:
                self.bad_rows.append((line, str(exc)))
                geometry = None
            self._adc.append(row)
            self._geometry.append(geometry)

    def _row_geometry(self, row: list[str]) -> tuple[int, int, int, int, int]:
        if not any(cell.strip() for cell in row):
            return (0, 0, 0, 0, 0)
        names = ("RoiWidth", "RoiHeight", "StartByte")
        w, h, start = (_whole(row, c, n) for c, n in zip(self._cols, names, strict=True))
        x, y = (_whole(row, c, n) for c, n in zip(self._xy, ("RoiX", "RoiY"), strict=True))
        if w < 0 or h < 0 or start < 0:
            raise ValueError(f"negative RoiWidth, RoiHeight or StartByte ({w}, {h}, {start})")
        return (w, h, start, x, y)

    def __repr__(self) -> str:
        return f"IfcbBin({self.bin_id!r}, {len(self)} rois)"

    @property
    def rows(self) -> int:
        """ADC rows (triggers), parsed or not; a column header line is not one."""
        return len(self._adc)

    def __len__(self) -> int:
        """Number of ROIs the ADC announces with an image (rows that failed to parse count)."""
        return sum(1 for g in self._geometry if g is None or (g[0] > 0 and g[1] > 0))

    # -- volume --------------------------------------------------------------------------

    @property
    def ml_analyzed(self) -> float:
        """Volume of sample imaged, in mL: what turns a count into a concentration.

        Raises
        ------
        SourceError
            Neither header nor ADC give a usable (finite, positive) volume.
        """
        try:
            ml = self._ml_analyzed_old() if self.old_format else self._ml_analyzed_new()
        except (ValueError, IndexError, OverflowError, ArithmeticError) as exc:
            raise SourceError(
                f"IFCB bin {self.bin_id}: ml_analyzed unknown (run times unreadable: {exc})"
            ) from exc
        if not (math.isfinite(ml) and ml > 0):
            raise SourceError(
                f"IFCB bin {self.bin_id}: ml_analyzed unknown (computed {ml!r} mL from its run times)"
            )
        return ml

    def _ml_analyzed_new(self) -> float:
        run = _number(self.header.get("runTime", "")) or 0.0
        inhibit = _number(self.header.get("inhibitTime", "")) or 0.0
        ml = FLOW_RATE_ML_PER_MIN * (run - inhibit) / 60.0
        if ml > 0:
            return ml
        return self._ml_analyzed_new_adc()

    def _ml_analyzed_new_adc(self) -> float:
        # columns 22/23 (RunTime, InhibitTime) of the last complete row
        for row in reversed(self._adc):
            run = _number(row[22]) if len(row) > 23 else None
            inhibit = _number(row[23]) if len(row) > 23 else None
            if run is None or inhibit is None:
                continue
            ml = FLOW_RATE_ML_PER_MIN * (run - inhibit) / 60.0
            if ml > 0:
                return ml
        raise SourceError(
            f"IFCB bin {self.bin_id}: no run time in header or ADC; ml_analyzed unknown"
        )

    def _ml_analyzed_old(self) -> float:
        seen: set[str] = set()
        trigger_open: list[float] = []
        frame_grab: list[float] = []
        for row in self._adc:
            if len(row) < 9 or row[0] in seen:
                continue  # one trigger can have several ROI rows: count its times once
            t_open, t_grab = _number(row[7]), _number(row[8])
            if t_open is None or t_grab is None:
                continue  # a damaged row (reported by the ROI reading): its times are unknown
            seen.add(row[0])
            day = 24 * 60 * 60.0  # bins spanning midnight have negative times
            trigger_open.append(t_open + (day if t_open < 0 else 0.0))
            frame_grab.append(t_grab + (day if t_grab < 0 else 0.0))
        if not frame_grab:
            raise SourceError(f"IFCB bin {self.bin_id}: empty ADC; ml_analyzed unknown")
        run_time = frame_grab[-1]
        proc = np.asarray(trigger_open[1:]) - np.asarray(frame_grab[:-1])
        proc = np.maximum(proc, _OLD_MIN_PROC_TIME)
        look_time = run_time - float(proc.sum()) - _OLD_MIN_PROC_TIME
        return look_time * _OLD_FLOW_ML_PER_S

    # -- images --------------------------------------------------------------------------

    def rois(self, report: BinReport | None = None) -> Iterator[IfcbRoi]:
        """Every ROI whose pixels are in the ``.roi`` file, in ADC order.

        ROIs past the end of the file (a truncated copy) and ADC rows that could not be
        parsed are left out and recorded in ``report`` (pass one to learn what was lost).
        """
        report = report if report is not None else BinReport()
        report.expected = len(self)
        report.bad_rows = list(self.bad_rows)
        with open(self.roi_path, "rb") as fh:
            size = report.roi_bytes = fh.seek(0, 2)
            for number, geometry in enumerate(self._geometry, start=1):
                if geometry is None:
                    continue
                w, h, start, x, y = geometry
                if w <= 0 or h <= 0:
                    continue
                if start + w * h > size:
                    report.missing.append(number)
                    continue
                fh.seek(start)
                data = fh.read(w * h)
                if len(data) < w * h:  # the file shrank while we read it
                    report.missing.append(number)
                    continue
                report.read += 1
                yield IfcbRoi(number, np.frombuffer(data, np.uint8).reshape(h, w), x, y)

    def roi(self, number: int) -> np.ndarray:
        """Pixels of the ROI with this 1-based number."""
        for item in self.rois():
            if item.number == number:
                return item.image
        raise KeyError(f"{self.bin_id} has no image for ROI {number}")
