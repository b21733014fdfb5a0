"""What ``phytoscope classify`` writes: rows (table, CSV, JSON), per-input counts, and the
output file, checked before the run and replaced in one step after it."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from phytoscope.core.unidentified import describe_unidentified
from phytoscope.errors import ConfigError

FORMATS = ("table", "csv", "json")
COLUMNS = ("sample", "source", "roi", "x", "y", "w", "h", "genus", "confidence", "top3", "flags")


@dataclass
class SampleSummary:
    """Counts of one input: an IFCB bin, or one PATH argument's images."""

    name: str
    rois: int = 0
    counts: Counter = field(default_factory=Counter)
    flagged: Counter = field(default_factory=Counter)
    ml_analyzed: float | None = None
    """volume imaged (mL) for an IFCB bin, else None"""

    def to_dict(self) -> dict[str, Any]:
        return {
            "rois": self.rois,
            "counts": dict(self.counts.most_common()),
            "flags": dict(self.flagged),
            "ml_analyzed": self.ml_analyzed,
        }


@dataclass
class ClassifyResult:
    """Everything a run produced: predictions (restored ones of a resumed run included),
    skips, and each organism's input name (its bin, else its PATH argument)."""

    predictions: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    """per prediction: the bin id or PATH argument it was counted under"""
    facts: list[Any] = field(default_factory=list)
    """per prediction: its :class:`~phytoscope.core.analysis.RoiFacts` (bin, video, time)"""
    card: Any = None
    """the model card of the run (class order of the score vectors)"""
    bins_ml: dict[str, float | None] = field(default_factory=dict)
    bins_expected: dict[str, int | None] = field(default_factory=dict)
    backend: str = ""
    model: str = ""
    run_id: int | None = None
    rows_stored: int = 0
    seconds: float = 0.0

    def add(self, batch: Any) -> None:
        for p, fact in zip(batch.predictions, batch.facts, strict=True):
            self.predictions.append(p)
            self.names.append(fact.bin_id or fact.path or p.source)
            self.facts.append(fact)
        self.skipped.extend(batch.skipped)
        for read in batch.bins:
            self.bins_ml[read.bin_id] = read.ml_analyzed
            self.bins_expected[read.bin_id] = read.rois_expected

    @property
    def samples(self) -> dict[str, SampleSummary]:
        """Counts by genus per input, in the order they first appeared."""
        out: dict[str, SampleSummary] = {}
        for p, name in zip(self.predictions, self.names, strict=True):
            summary = out.setdefault(name, SampleSummary(name, ml_analyzed=self.bins_ml.get(name)))
            summary.rois += 1
            summary.counts[p.label] += 1
            for flag in p.flags:
                summary.flagged[flag] += 1
        return out


def _row(p: Any, sample: str) -> dict[str, Any]:
    x, y, w, h = p.box if p.box else ("", "", "", "")
    return {
        "sample": sample, "source": p.source, "roi": p.roi_index, "x": x, "y": y, "w": w, "h": h,
        "genus": p.label, "confidence": round(p.confidence, 4),
        "top3": ";".join(f"{name}:{prob:.3f}" for name, prob in p.top_k[:3]),
        "flags": ",".join(p.flags),
    }  # fmt: skip


def rows(result: ClassifyResult) -> Iterator[dict[str, Any]]:
    for p, name in zip(result.predictions, result.names, strict=True):
        yield _row(p, name)


def write_table(result: ClassifyResult, out: TextIO) -> None:
    table = [dict(zip(COLUMNS, COLUMNS, strict=True))] + [
        {k: str(v) for k, v in r.items()} for r in rows(result)
    ]
    shown = ("source", "roi", "x", "y", "w", "h", "genus", "confidence", "top3", "flags")
    widths = {c: max(len(r[c]) for r in table) for c in shown}
    for r in table:
        out.write("  ".join(r[c].ljust(widths[c]) for c in shown).rstrip() + "\n")


def write_csv(result: ClassifyResult, out: TextIO) -> None:
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows(result))


def write_json(result: ClassifyResult, out: TextIO) -> None:
    doc = {
        "backend": result.backend,
        "model": result.model,
        "run_id": result.run_id,
        "seconds": round(result.seconds, 3),
        "predictions": [
            {**r, "top_k": [[n, round(pr, 4)] for n, pr in p.top_k], "flags": list(p.flags)}
            for r, p in zip(rows(result), result.predictions, strict=True)
        ],
        "samples": {name: s.to_dict() for name, s in result.samples.items()},
        "skipped": [{"source": s.source, "reason": s.reason} for s in result.skipped],
    }
    json.dump(doc, out, indent=2)
    out.write("\n")


def write_rows(fmt: str, result: ClassifyResult, out: TextIO) -> None:
    {"table": write_table, "csv": write_csv, "json": write_json}[fmt](result, out)


def summary_text(result: ClassifyResult) -> str:
    from phytoscope.modelcard import UNKNOWN

    buf = io.StringIO()
    buf.write(f"\nsummary ({result.backend}, {result.model}):\n")
    for s in result.samples.values():
        volume = f", {s.ml_analyzed:.3f} mL analysed" if s.ml_analyzed is not None else ""
        expected = result.bins_expected.get(s.name)
        of = f" of {expected} (bin read in part)" if expected and expected > s.rois else ""
        buf.write(f"  {s.name}: {s.rois} ROIs{of}{volume}\n")
        for label, n in s.counts.most_common():
            buf.write(f"    {label:<32} {n:>6}\n")
        if s.counts.get(UNKNOWN):
            buf.write(f"    {describe_unidentified(s.counts[UNKNOWN])}\n")
        if s.flagged:
            buf.write("    flags: " + ", ".join(f"{k} {v}" for k, v in s.flagged.items()) + "\n")
    if result.skipped:
        buf.write(f"  skipped: {len(result.skipped)} input(s) (listed on stderr)\n")
    return buf.getvalue()


class OutputTarget:
    """Where the rows go: stdout, or a file checked NOW (before hours of classifying) and
    written in one step at the end (a temporary file beside it, then renamed), so a failed
    run never leaves half a file and an unwritable path is refused before any work."""

    def __init__(self, path: str | None):
        self.path = Path(path) if path else None
        self._tmp: str | None = None
        self._direct = False
        if self.path is None:
            return
        target = self.path
        if target.is_dir():
            raise ConfigError(f"--output {target} is a folder: give a file name")
        if target.exists() and not target.is_file():
            self._direct = True  # /dev/null, a pipe: written in place
            return
        folder = target.parent if str(target.parent) else Path(".")
        try:
            fd, self._tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=folder)
            os.close(fd)
        except OSError as exc:
            raise ConfigError(
                f"cannot write --output {target}: {exc.strerror or exc} (nothing was classified; "
                "choose a file in a folder you can write to)"
            ) from exc
        if target.exists() and not os.access(target, os.W_OK):
            self.discard()
            raise ConfigError(f"cannot write --output {target}: the file is read-only")

    def write(self, render: Callable[[TextIO], None]) -> None:
        if self.path is None:
            render(sys.stdout)
            return
        if self._direct:
            with open(
                self.path, "w", newline="", encoding="utf-8", errors="backslashreplace"
            ) as fh:
                render(fh)
            return
        assert self._tmp is not None
        try:
            with open(
                self._tmp, "w", newline="", encoding="utf-8", errors="backslashreplace"
            ) as fh:
                render(fh)
            os.replace(self._tmp, self.path)
        except OSError as exc:
            self.discard()
            raise ConfigError(f"cannot write --output {self.path}: {exc.strerror or exc}") from exc
        self._tmp = None

    def discard(self) -> None:
        if self._tmp is not None:
            try:
                os.unlink(self._tmp)
            except OSError:
                pass
            self._tmp = None

    def __del__(self) -> None:  # a run that raised before writing leaves no temporary file
        self.discard()
