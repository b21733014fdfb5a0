"""``phytoscope classify PATH...``: genus of every organism in images, folders and IFCB bins.

The run is :func:`phytoscope.core.pipeline.classify_items` (the same function the GUI's
worker calls) over :func:`phytoscope.sources.iter_inputs`; this module only parses options,
writes rows and summaries, and appends to the results database batch by batch.

Extending: a later option that needs every prediction with its input's facts (cells/L
from the IFCB volume, HAB alerts) adds a function to :data:`SUMMARY_HOOKS`; it receives
the parsed arguments and the finished :class:`ClassifyResult` and returns text to print
(or ``None``) — no change to the run loop is needed.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

HELP = "classify images, folders and IFCB bins by genus (table, CSV or JSON; --db to store)"

FORMATS = ("table", "csv", "json")
COLUMNS = ("sample", "source", "roi", "x", "y", "w", "h", "genus", "confidence", "top3", "flags")


def configure(parser: argparse.ArgumentParser) -> None:
    from phytoscope.config import BACKEND_CHOICES, PRECISION_CHOICES

    parser.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="image files, folders (recursive) or IFCB bins (.roi/.adc/.hdr or stem)",
    )
    parser.add_argument(
        "--backend",
        choices=BACKEND_CHOICES,
        default="auto",
        help="inference engine (default: the fastest available)",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISION_CHOICES,
        default="fp32",
        help="model precision (int8 needs genus_int8.onnx or TensorRT)",
    )
    parser.add_argument(
        "--model", help="model card, model file or folder (default: installed model)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=16, help="ROIs per inference call (default 16)"
    )
    parser.add_argument(
        "--segment",
        choices=("auto", "always", "never"),
        default="auto",
        help="cut whole microscope frames into ROIs: auto (large images), always, never",
    )
    parser.add_argument(
        "--format", choices=FORMATS, default="table", help="output format (default table)"
    )
    parser.add_argument(
        "--output", "-o", metavar="FILE", help="write rows to FILE instead of stdout"
    )
    parser.add_argument(
        "--db",
        nargs="?",
        const="",
        default=None,
        metavar="PATH",
        help="append the results to a SQLite store (default path if PATH is omitted)",
    )
    parser.add_argument(
        "--top-k", type=int, default=3, help="ranked classes kept per ROI (default 3)"
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar on stderr (default: when stderr is a terminal)",
    )
    from phytoscope.commands.report import add_sample_arguments

    add_sample_arguments(
        parser
    )  # --site/--rules/--sample-volume...: store a sample, raise HAB alerts
    from phytoscope.commands.exports import add_export_arguments

    add_export_arguments(parser)  # --class-scores, --ecotaxa, --every/--fps (video)


# -- results -------------------------------------------------------------------------------


@dataclass
class SampleSummary:
    """Counts of one sample: an IFCB bin, or one PATH argument's images."""

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
    """Everything a run produced, handed to the summary hooks.

    ``meta`` maps ``(source, roi_index)`` to the sample name and the source's facts
    (``{"sample": ..., "bin": ..., "ml_analyzed": ...}``) of each classified ROI.
    """

    predictions: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    meta: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    samples: dict[str, SampleSummary] = field(default_factory=dict)
    backend: str = ""
    model: str = ""
    card: Any = None
    run_id: int | None = None
    seconds: float = 0.0


SummaryHook = Callable[[argparse.Namespace, ClassifyResult], "str | None"]
SUMMARY_HOOKS: list[SummaryHook] = []
"""Functions run after classification; each returns text for stdout or None."""


def _sample_hook(args: argparse.Namespace, result: ClassifyResult) -> str | None:
    from phytoscope.commands.report import classify_hook  # cells/L, HAB alerts, stored sample

    return classify_hook(args, result)


def _export_hook(args: argparse.Namespace, result: ClassifyResult) -> str | None:
    from phytoscope.commands.exports import export_hook  # --class-scores, --ecotaxa

    return export_hook(args, result)


# files first: a sample that cannot be stored (no volume given) must not lose the exports
SUMMARY_HOOKS.extend([_export_hook, _sample_hook])


def summarise(result: ClassifyResult) -> dict[str, SampleSummary]:
    """Counts by genus per sample, in the order samples first appeared."""
    samples: dict[str, SampleSummary] = {}
    for p in result.predictions:
        info = result.meta.get((p.source, p.roi_index), {})
        name = info.get("sample", p.source)
        summary = samples.setdefault(name, SampleSummary(name))
        summary.rois += 1
        summary.counts[p.label] += 1
        for flag in p.flags:
            summary.flagged[flag] += 1
        ml = info.get("ml_analyzed")
        if isinstance(ml, float) and not math.isnan(ml):
            summary.ml_analyzed = ml
    return samples


# -- progress ------------------------------------------------------------------------------


def estimate_total(paths: list[str], segment: str) -> int | None:
    """ROIs to expect, from a cheap listing (bins: ADC rows; images: one each).

    Unknown (None) when frames are segmented, because a frame holds any number of ROIs.
    """
    if segment == "always":
        return None
    from phytoscope.sources import expand_paths
    from phytoscope.sources.ifcb import IfcbBin

    total = 0
    for kind, path in expand_paths(paths):
        if kind == "bin":
            try:
                total += len(IfcbBin(path))
            except Exception:  # noqa: BLE001 - it is reported as skipped during the run
                total += 1
        elif kind == "video":
            return None  # its frames are segmented: any number of organisms
        else:
            total += 1
    return total


# -- output --------------------------------------------------------------------------------


def _row(p, sample: str) -> dict[str, Any]:
    x, y, w, h = p.box if p.box else ("", "", "", "")
    return {
        "sample": sample,
        "source": p.source,
        "roi": p.roi_index,
        "x": x,
        "y": y,
        "w": w,
        "h": h,
        "genus": p.label,
        "confidence": round(p.confidence, 4),
        "top3": ";".join(f"{name}:{prob:.3f}" for name, prob in p.top_k[:3]),
        "flags": ",".join(p.flags),
    }


def rows(result: ClassifyResult) -> Iterator[dict[str, Any]]:
    for p in result.predictions:
        yield _row(p, result.meta.get((p.source, p.roi_index), {}).get("sample", p.source))


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


def summary_text(result: ClassifyResult) -> str:
    buf = io.StringIO()
    buf.write(f"\nsummary ({result.backend}, {result.model}):\n")
    for s in result.samples.values():
        volume = f", {s.ml_analyzed:.3f} mL analysed" if s.ml_analyzed is not None else ""
        buf.write(f"  {s.name}: {s.rois} ROIs{volume}\n")
        for label, n in s.counts.most_common():
            buf.write(f"    {label:<32} {n:>6}\n")
        if s.flagged:
            buf.write("    flags: " + ", ".join(f"{k} {v}" for k, v in s.flagged.items()) + "\n")
    if result.skipped:
        buf.write(f"  skipped: {len(result.skipped)} input(s) (listed on stderr)\n")
    return buf.getvalue()


# -- run -----------------------------------------------------------------------------------


class TaggedInputs:
    """``iter_inputs`` per PATH argument, remembering each ROI's sample and source facts.

    A PATH is one sample; inside it, every IFCB bin is its own sample (it has its own
    volume). Only small facts are kept, never pixels. Offers ``units()`` like
    :class:`phytoscope.sources.InputStream`, so files are still decoded in parallel; the
    units run in pool threads and only set dict items (atomic under the GIL).
    """

    def __init__(
        self,
        paths: list[str],
        segment: str,
        meta: dict[tuple[str, int], dict[str, Any]],
        video: Any = None,
    ):
        from phytoscope.sources import iter_inputs

        self.streams = [(path, iter_inputs([path], segment=segment, video=video)) for path in paths]
        self.meta = meta

    def _record(self, path: str, items: list) -> list:
        from phytoscope.types import Roi

        for item in items:
            if isinstance(item, Roi):
                info = {k: v for k, v in item.meta.items() if isinstance(v, (str, int, float))}
                info["sample"] = item.meta.get("bin", path)
                self.meta[(item.source, item.index)] = info
        return items

    def units(self) -> Iterator[Callable[[], list]]:
        for path, stream in self.streams:
            for unit in stream.units():

                def recorded(unit: Callable[[], list] = unit, path: str = path) -> list:
                    return self._record(path, unit())

                yield recorded

    def __iter__(self) -> Iterator:
        for unit in self.units():
            yield from unit()


def run(args: argparse.Namespace) -> int:
    from phytoscope import backends, config, modelcard
    from phytoscope.commands.progressbar import terminal_progress
    from phytoscope.core.classifier import Classifier
    from phytoscope.core.pipeline import STAGE, classify_items, engine_options
    from phytoscope.errors import ConfigError, ExitCode, ModelError

    if args.batch_size < 1 or args.batch_size > 1024:
        raise ConfigError(f"--batch-size must be between 1 and 1024, not {args.batch_size}")
    if args.top_k < 1:
        raise ConfigError(f"--top-k must be at least 1, not {args.top_k}")
    if args.model is None and not modelcard.discover(config.models_dir()):
        raise ModelError(
            f"no model installed: {config.models_dir()} holds no model card. Install the "
            "shipped model (models/genus.onnx + genus.onnx.json), train one with "
            "`phytoscope train`, or pass --model PATH"
        )

    store = None
    if args.db is not None:
        from phytoscope.storage import Store

        store = Store(Path(args.db) if args.db else config.default_database())

    result = ClassifyResult()
    started = time.perf_counter()
    try:
        with terminal_progress(args.progress, units={STAGE: "ROIs"}) as progress:
            backend = backends.create(
                args.backend, args.precision, model=args.model, **engine_options()
            )
            with backend:
                card = backend.card
                result.backend, result.model, result.card = backend.name, card.label, card
                if store is not None:
                    result.run_id = store.start_run(
                        backend.name,
                        card.label,
                        card.sha256,
                        settings={
                            "paths": [str(p) for p in args.paths],
                            "segment": args.segment,
                            "batch_size": args.batch_size,
                            "precision": args.precision,
                            "command": "classify",
                        },
                    )
                total = estimate_total(args.paths, args.segment) if progress.callback else None
                from phytoscope.commands.exports import video_sampling

                items = TaggedInputs(args.paths, args.segment, result.meta, video_sampling(args))
                for predictions, skipped in classify_items(
                    items,
                    Classifier(backend, top_k=args.top_k),
                    batch_size=args.batch_size,
                    progress=progress,
                    total=total,
                ):
                    # written batch by batch: a crash or Ctrl-C keeps everything classified so far
                    if store is not None and result.run_id is not None:
                        if predictions:
                            store.add_predictions(result.run_id, predictions)
                        if skipped:
                            store.add_skipped(result.run_id, skipped)
                    result.predictions.extend(predictions)
                    result.skipped.extend(skipped)
                if store is not None and result.run_id is not None:
                    store.finish_run(result.run_id)
    finally:
        if store is not None:
            store.close()
    result.seconds = time.perf_counter() - started
    result.samples = summarise(result)

    for s in result.skipped:
        print(f"skipped: {s.source}: {s.reason}", file=sys.stderr)
    if not result.predictions and not result.skipped:
        print(
            "phytoscope: no images or IFCB bins found in " + ", ".join(args.paths), file=sys.stderr
        )
        return ExitCode.ERROR

    out: TextIO
    out = open(args.output, "w", newline="", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
    try:
        {"table": write_table, "csv": write_csv, "json": write_json}[args.format](result, out)
    finally:
        if args.output:
            out.close()
    # the summary goes where it cannot corrupt machine-readable output
    if args.format == "table" or args.output:
        print(summary_text(result), end="")
    elif args.format == "csv":
        print(summary_text(result), end="", file=sys.stderr)
    for hook in SUMMARY_HOOKS:
        text = hook(args, result)
        if text:
            print(text, file=sys.stdout if args.format == "table" or args.output else sys.stderr)
    if store is not None:
        print(f"stored as run {result.run_id} in {store.path}", file=sys.stderr)
    return ExitCode.PARTIAL if result.skipped else ExitCode.OK
