"""``phytoscope classify PATH...``: genus of every organism in images, folders and IFCB bins.

An argparse adapter over the core session (the same path the window takes):
:class:`~phytoscope.core.analysis.Analysis` classifies and stores batch by batch, and a
:class:`~phytoscope.core.session.SampleSession` turns the organisms into samples, cells/L
and HAB alerts by the rules of :mod:`phytoscope.core.samples`. This module parses options,
checks everything that can fail before the work starts (output file, database, rule set,
volume and time), writes rows and summaries, and says what was kept when a run stops.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phytoscope.commands.classify_output import (
    FORMATS,
    ClassifyResult,
    OutputTarget,
    summary_text,
    write_rows,
)
from phytoscope.commands.exports import (
    ExportRequest,
    add_export_arguments,
    export_hook,
    video_sampling,
)
from phytoscope.commands.progressbar import add_progress_option

log = logging.getLogger(__name__)

HELP = "classify images, folders and IFCB bins by genus (table, CSV or JSON; --db to store)"

__all__ = ["FORMATS", "ClassifyRequest", "ClassifyResult", "configure", "execute", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    from phytoscope.config import BACKEND_CHOICES, PRECISION_CHOICES

    parser.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="image files, folders (recursive) or IFCB bins (.roi/.adc/.hdr or stem)",
    )
    parser.add_argument("--backend", choices=BACKEND_CHOICES, default="auto",
                        help="inference engine (default: the fastest available)")  # fmt: skip
    parser.add_argument("--precision", choices=PRECISION_CHOICES, default="fp32",
                        help="model precision (int8 needs genus_int8.onnx or TensorRT)")  # fmt: skip
    parser.add_argument("--model", help="model card, model file or folder (default: installed)")
    parser.add_argument("--batch-size", type=int, default=16, help="ROIs per inference call")
    parser.add_argument("--segment", choices=("auto", "always", "never"), default="auto",
                        help="cut whole microscope frames into ROIs: auto (large images), always, never")  # fmt: skip
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format")
    parser.add_argument("--output", "-o", metavar="FILE",
                        help="write rows to FILE instead of stdout (checked before the run)")  # fmt: skip
    parser.add_argument("--db", nargs="?", const="", default=None, metavar="PATH",
                        help="store the results in a SQLite file, batch by batch (default path "
                        "if PATH is omitted); checked before the run")  # fmt: skip
    run_group = parser.add_mutually_exclusive_group()
    run_group.add_argument("--resume", action="store_true", default=None,
                           help="continue the unfinished run of the same inputs in --db "
                           "(organisms already stored are not classified again)")  # fmt: skip
    run_group.add_argument("--new-run", dest="resume", action="store_false",
                           help="start a new run even if one on the same inputs never finished")  # fmt: skip
    parser.add_argument("--top-k", type=int, default=3, help="ranked classes kept per ROI")
    add_progress_option(parser)
    add_sample_arguments(parser)
    add_export_arguments(parser)  # --class-scores, --ecotaxa, --every/--fps (video)


def add_sample_arguments(parser: argparse.ArgumentParser) -> None:
    """Options that turn a run into stored samples with concentrations and alerts."""
    g = parser.add_argument_group(
        "sample (cells/L and HAB alerts; any of these stores samples in --db or the default "
        "database: IFCB bins take volume and time from their files, other images need "
        "--sample-volume or the Utermöhl options and --sampled-at)"
    )
    g.add_argument("--sample", action="store_true", help="store samples without other options")
    g.add_argument("--site", default=None, help="where the water was taken")
    g.add_argument("--sampled-at", metavar="ISO",
                   help="when the water was taken (images; ISO 8601, local time without a zone)")  # fmt: skip
    g.add_argument("--rules", metavar="NAME", help="HAB rule set (default: settings)")
    g.add_argument("--rules-overrides", metavar="CSV", help="site thresholds overriding the rules")
    g.add_argument("--sample-volume", type=float, metavar="ML",
                   help="mL of water the (non-IFCB) images stand for")  # fmt: skip
    g.add_argument("--settled-ml", type=float, metavar="ML", help="Utermöhl: mL settled")
    g.add_argument("--chamber-area", type=float, metavar="MM2", help="Utermöhl: chamber area")
    g.add_argument("--counted-area", type=float, metavar="MM2", help="Utermöhl: area counted")
    g.add_argument("--fields", type=int, metavar="N", help="Utermöhl: fields of view counted")
    g.add_argument("--field-area", type=float, metavar="MM2", help="Utermöhl: area of one field")
    g.add_argument("--sample-ml", type=float, metavar="ML", help="water the preservative went in")
    g.add_argument("--preservative-ml", type=float, metavar="ML", help="Lugol's etc. added")
    g.add_argument("--dilution", type=float, help="further dilution factor before settling")
    pooling = g.add_mutually_exclusive_group()
    pooling.add_argument("--per-bin", action="store_true",
                         help="one sample per IFCB bin (default: bins of one instrument and day "
                         "are pooled; bins of different days or instruments never are)")  # fmt: skip
    pooling.add_argument("--pool", action="store_true",
                         help="pool every IFCB bin into one sample, even across days/instruments")  # fmt: skip
    g.add_argument("--partial-bins", choices=("scale", "exclude"), default="scale",
                   help="a bin read only in part: scale its volume to the ROIs classified "
                   "(default; flagged partial) or leave it out")  # fmt: skip


_SAMPLE_OPTIONS = ("site", "sampled_at", "rules", "rules_overrides", "sample_volume", "settled_ml")


def wants_sample(args: argparse.Namespace) -> bool:
    return bool(
        getattr(args, "sample", False)
        or getattr(args, "per_bin", False)
        or getattr(args, "pool", False)
        or any(getattr(args, k, None) is not None for k in _SAMPLE_OPTIONS)
    )


def sample_settings(args: argparse.Namespace) -> Any:
    """The session's settings from the options, checked now (before any work)."""
    from phytoscope.core.samples import VolumeSpec, parse_time
    from phytoscope.core.session import SampleSettings
    from phytoscope.errors import ConfigError

    if args.sample_volume is not None and args.settled_ml is not None:
        raise ConfigError("give either --sample-volume or the Utermöhl volumes, not both")
    volume = VolumeSpec.of(
        given_ml=args.sample_volume,
        settled_ml=args.settled_ml,
        chamber_area_mm2=args.chamber_area,
        counted_area_mm2=args.counted_area,
        fields=args.fields,
        field_area_mm2=args.field_area,
        sample_ml=args.sample_ml,
        preservative_ml=args.preservative_ml,
        dilution=args.dilution,
    )
    volume.volume()  # a clear error now, not after an hour of classifying
    return SampleSettings(
        site=args.site or "",
        sampled_at=parse_time(args.sampled_at) if args.sampled_at else None,
        volume=volume,
        grouping="per-bin" if args.per_bin else ("pool" if args.pool else "auto"),
        partial=args.partial_bins,
    )


@dataclass
class ClassifyRequest:
    """Everything one classify run needs; ``phytoscope gui`` without a display builds one
    from the user's settings (no argv round trip)."""

    paths: list[str]
    backend: str = "auto"
    precision: str = "fp32"
    model: str | None = None
    batch_size: int = 16
    segment: str = "auto"
    top_k: int = 3
    format: str = "table"
    output: str | None = None
    rows: bool = True
    """False: summaries only (no row per organism)"""
    db: str | None = None
    """None: no store; "": the default database"""
    resume: bool | None = None
    progress: bool | None = None
    sample: Any = None
    """SampleSettings, or None when no sample is wanted"""
    require_sample: bool = True
    """an asked-for sample that cannot be saved makes the run fail (exit 1)"""
    rules: str | None = None
    rules_overrides: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    video: Any = None
    """VideoSampling of video inputs (None: every frame)"""
    exports: Any = None
    """ExportRequest: IFCB Dashboard class scores, EcoTaxa (None: no files for other tools)"""


def run(args: argparse.Namespace) -> int:
    return execute(
        ClassifyRequest(
            paths=[str(p) for p in args.paths],
            backend=args.backend,
            precision=args.precision,
            model=args.model,
            batch_size=args.batch_size,
            segment=args.segment,
            top_k=args.top_k,
            format=args.format,
            output=args.output,
            db=args.db,
            resume=args.resume,
            progress=args.progress,
            sample=sample_settings(args) if wants_sample(args) else None,
            rules=args.rules,
            rules_overrides=args.rules_overrides,
            video=video_sampling(args),
            exports=ExportRequest.from_args(args),
        )
    )


def estimate_total(paths: list[str], segment: str) -> int | None:
    """ROIs to expect, from a cheap listing (bins: ADC rows; images: one each); None when
    frames are segmented, since a frame holds any number of ROIs."""
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


def _check(req: ClassifyRequest) -> None:
    from phytoscope import config, modelcard
    from phytoscope.errors import ConfigError, ModelError

    if req.batch_size < 1 or req.batch_size > 1024:
        raise ConfigError(f"--batch-size must be between 1 and 1024, not {req.batch_size}")
    if req.top_k < 1:
        raise ConfigError(f"--top-k must be at least 1, not {req.top_k}")
    if req.model is None and not modelcard.discover(config.models_dir()):
        raise ModelError(
            f"no model installed: {config.models_dir()} holds no model card. Install the "
            "shipped model (models/genus.onnx + genus.onnx.json), train one with "
            "`phytoscope train`, or pass --model PATH"
        )


def execute(req: ClassifyRequest) -> int:
    """Run a classify request: check, classify and store, write, then save the samples."""
    from phytoscope import backends, config
    from phytoscope.backends.options import TrtOptions
    from phytoscope.commands.progressbar import terminal_progress
    from phytoscope.core.analysis import Analysis, RunFailed, inputs_key, open_run
    from phytoscope.core.classifier import Classifier
    from phytoscope.core.hab import load_rule_set
    from phytoscope.core.pipeline import STAGE, engine_options
    from phytoscope.core.session import SampleSession
    from phytoscope.errors import Cancelled, ExitCode, PhytoscopeError
    from phytoscope.storage import Store

    _check(req)
    started = time.perf_counter()
    # everything that can refuse the run refuses it now, before any image is read
    output = OutputTarget(req.output) if req.rows else None
    rule_set = None
    if req.sample is not None:
        rule_set = load_rule_set(
            req.rules or config.Settings.load().rule_set, overrides_path=req.rules_overrides
        )
    db = req.db if req.db is not None else ("" if req.sample is not None else None)
    store = Store(Path(db) if db else config.default_database()) if db is not None else None
    result = ClassifyResult()
    stopped: str | None = None
    code = ExitCode.OK
    try:
        with terminal_progress(
            req.progress, units={STAGE: "ROIs"}, interrupt_cancels=True
        ) as progress:
            backend = backends.create(
                req.backend,
                req.precision,
                model=req.model,
                # TensorRT builds its engine's optimisation profile for this batch size
                options=(engine_options(), TrtOptions(batch=req.batch_size)),
            )
            with backend:
                card = backend.card
                result.backend, result.model, result.card = backend.name, card.label, card
                done: dict = {}
                if store is not None:
                    key = inputs_key(req.paths, req.segment, card.sha256, backend.name)
                    settings = {"paths": req.paths, "segment": req.segment,
                                "batch_size": req.batch_size, "precision": req.precision,
                                "command": "classify", **req.settings}  # fmt: skip
                    start = open_run(store, backend.name, card, settings, key, req.resume)
                    result.run_id, done = start.run_id, start.done
                    if start.note:
                        print(f"phytoscope: {start.note}", file=sys.stderr)
                session = SampleSession(card, rule_set, req.sample)
                session.add_run(result.run_id)
                analysis = Analysis(
                    Classifier(backend, top_k=req.top_k),
                    paths=req.paths,
                    store=store,
                    run_id=result.run_id,
                    segment=req.segment,
                    batch_size=req.batch_size,
                    done=done,
                    video=req.video,
                )
                total = estimate_total(req.paths, req.segment) if progress.callback else None
                try:
                    for batch in analysis.batches(progress, total):
                        result.add(batch)
                        session.add(batch)
                except (KeyboardInterrupt, Cancelled):
                    stopped, code = "interrupted", ExitCode.CANCELLED
                except RunFailed as exc:
                    stopped, code = f"stopped: {exc}", ExitCode.ERROR
                except PhytoscopeError as exc:  # an engine failing mid-run, ...
                    stopped, code = f"stopped: {exc}", ExitCode.ERROR
                except Exception as exc:  # noqa: BLE001 - say what was kept, then the cause
                    log.debug("classify stopped", exc_info=True)
                    stopped = f"stopped by an unexpected error ({type(exc).__name__}: {exc})"
                    code = ExitCode.ERROR
                if stopped is None and store is not None and result.run_id is not None:
                    store.finish_run(result.run_id)
                result.rows_stored = analysis.rows_stored + len(done)
                if stopped is not None and store is not None and result.run_id is not None:
                    # an interrupt can land between a batch's commit and its count: say
                    # what the database holds, the number a resume starts from
                    result.rows_stored = store.rows_of_run(result.run_id, result.rows_stored)
        result.seconds = time.perf_counter() - started
        return _report(req, result, session, store, output, stopped, code)
    finally:
        if output is not None:
            output.discard()  # only left when the run failed before writing
        if store is not None:
            store.close()


def _report(
    req: ClassifyRequest,
    result: ClassifyResult,
    session: Any,
    store: Any,
    output: OutputTarget | None,
    stopped: str | None,
    code: int,
) -> int:
    """Write what was classified (also after a stop), then the summaries and the samples."""
    from phytoscope.core.sample_text import describe
    from phytoscope.errors import ExitCode

    for s in result.skipped:
        print(f"skipped: {s.source}: {s.reason}", file=sys.stderr)
    if output is not None:
        output.write(lambda out: write_rows(req.format, result, out))
    if stopped is not None:
        where = ""
        if store is not None:
            where = (
                f"; run {result.run_id}: {result.rows_stored} rows stored in {store.path} "
                f"(`phytoscope classify ... --db {store.path} --resume` continues it)"
            )
        else:
            where = "; nothing was stored (no --db)"
        print(
            f"phytoscope: {stopped}; {len(result.predictions)} organisms classified"
            + (f", written to {req.output}" if req.output and output is not None else "")
            + where,
            file=sys.stderr,
        )
        return code
    if not result.predictions and not result.skipped:
        print("phytoscope: no images or IFCB bins found in " + ", ".join(req.paths),
              file=sys.stderr)  # fmt: skip
        return ExitCode.ERROR
    # the summary goes where it cannot corrupt machine-readable output
    text_out = sys.stdout if (req.format == "table" or req.output or not req.rows) else sys.stderr
    print(summary_text(result), end="", file=text_out)
    # files first: a sample that cannot be stored (no volume given) must not lose the exports
    exported = export_hook(req.exports, result) if req.exports is not None else None
    if exported:
        print(exported, file=text_out)
    if req.sample is not None and store is not None:
        saved = {s.key: s for s in session.save(store, reason="phytoscope classify")}
        for notice in session.notices():
            print(f"WARNING: {notice}", file=text_out)
        drafts = session.samples()
        for draft in drafts:
            print(describe(draft, saved.get(draft.key)), file=text_out)
        stored = [s for s in saved.values() if s.sample_id is not None and not s.problems]
        if stored:
            ids = " ".join(str(s.sample_id) for s in stored)
            print(f"report: phytoscope report {ids} --db {store.path}", file=text_out)
        elif drafts and req.require_sample:
            code = ExitCode.ERROR
    if store is not None:
        print(f"stored as run {result.run_id} in {store.path}", file=sys.stderr)
    if code == ExitCode.OK and result.skipped:
        code = ExitCode.PARTIAL
    return code


def counts_by_label(result: ClassifyResult) -> Counter[str]:
    return Counter(p.label for p in result.predictions)
