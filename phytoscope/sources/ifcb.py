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

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from phytoscope.errors import SourceError

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


def bin_stem(path: Path | str) -> Path:
    """The bin's path without suffix (``.../D2022..._IFCB134``) from any of its files."""
    path = Path(path)
    return path.with_suffix("") if path.suffix.lower() in SUFFIXES else path


def is_bin_name(name: str) -> bool:
    return bool(NEW_NAME.match(name) or OLD_NAME.match(name))


def looks_like_bin(path: Path | str) -> bool:
    """True for a .roi/.adc/.hdr file, or a stem whose .adc and .roi exist beside it."""
    path = Path(path)
    if path.suffix.lower() in SUFFIXES:
        return True
    return (
        path.with_name(path.name + ".adc").exists() and path.with_name(path.name + ".roi").exists()
    )


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


class IfcbBin:
    """One IFCB bin, read lazily: header and ADC on open, ROI pixels on demand.

    Parameters
    ----------
    path
        Any of the bin's three files, or the stem without suffix.

    Raises
    ------
    SourceError
        A file of the triplet is missing or its ADC cannot be parsed.
    """

    def __init__(self, path: Path | str):
        self.stem = bin_stem(path)
        self.bin_id = self.stem.name
        self.hdr_path = self.stem.with_name(self.bin_id + ".hdr")
        self.adc_path = self.stem.with_name(self.bin_id + ".adc")
        self.roi_path = self.stem.with_name(self.bin_id + ".roi")
        for needed in (self.adc_path, self.roi_path):
            if not needed.is_file():
                raise SourceError(f"IFCB bin {self.bin_id}: {needed.name} is missing")
        self.old_format = bool(OLD_NAME.match(self.bin_id))
        try:
            self.header: dict[str, str] = (
                _parse_header(self.hdr_path.read_text(encoding="latin-1"))
                if self.hdr_path.is_file()
                else {}
            )
            with open(self.adc_path, newline="", encoding="latin-1") as fh:
                self._adc = [row for row in csv.reader(fh)]
        except OSError as exc:
            raise SourceError(f"IFCB bin {self.bin_id}: cannot read: {exc}") from exc
        self._cols = (11, 12, 13) if self.old_format else (15, 16, 17)
        self._xy = (10, 9) if self.old_format else (13, 14)
        try:
            self._geometry = [self._row_geometry(row) for row in self._adc]
        except (ValueError, IndexError) as exc:
            raise SourceError(f"IFCB bin {self.bin_id}: malformed ADC file: {exc}") from exc

    def _row_geometry(self, row: list[str]) -> tuple[int, int, int, int, int]:
        if not any(cell.strip() for cell in row):
            return (0, 0, 0, 0, 0)
        w, h, start = (int(float(row[c])) for c in self._cols)
        x, y = (int(float(row[c])) for c in self._xy)
        return (w, h, start, x, y)

    def __repr__(self) -> str:
        return f"IfcbBin({self.bin_id!r}, {len(self)} rois)"

    def __len__(self) -> int:
        """Number of ROIs that carry an image."""
        return sum(1 for w, h, *_ in self._geometry if w > 0 and h > 0)

    # -- volume --------------------------------------------------------------------------

    @property
    def ml_analyzed(self) -> float:
        """Volume of sample imaged, in mL: what turns a count into a concentration."""
        if self.old_format:
            return self._ml_analyzed_old()
        try:
            run = float(self.header["runTime"])
            inhibit = float(self.header["inhibitTime"])
        except (KeyError, ValueError):
            run = inhibit = 0.0
        ml = FLOW_RATE_ML_PER_MIN * (run - inhibit) / 60.0
        if ml > 0:
            return ml
        return self._ml_analyzed_new_adc()

    def _ml_analyzed_new_adc(self) -> float:
        # columns 22/23 (RunTime, InhibitTime) of the last complete row
        for row in reversed(self._adc):
            try:
                run, inhibit = float(row[22]), float(row[23])
            except (IndexError, ValueError):
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
            seen.add(row[0])
            day = 24 * 60 * 60.0  # bins spanning midnight have negative times
            t_open, t_grab = float(row[7]), float(row[8])
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

    def rois(self) -> Iterator[IfcbRoi]:
        """Every ROI with an image, in ADC order; a ROI past the end of the file raises."""
        with open(self.roi_path, "rb") as fh:
            size = fh.seek(0, 2)
            for number, (w, h, start, x, y) in enumerate(self._geometry, start=1):
                if w <= 0 or h <= 0:
                    continue
                if start < 0 or start + w * h > size:
                    raise SourceError(
                        f"IFCB bin {self.bin_id}: ROI {number} lies past the end of "
                        f"{self.roi_path.name} (truncated file?)"
                    )
                fh.seek(start)
                data = fh.read(w * h)
                yield IfcbRoi(number, np.frombuffer(data, np.uint8).reshape(h, w), x, y)

    def roi(self, number: int) -> np.ndarray:
        """Pixels of the ROI with this 1-based number."""
        for item in self.rois():
            if item.number == number:
                return item.image
        raise KeyError(f"{self.bin_id} has no image for ROI {number}")
