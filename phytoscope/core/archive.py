"""Archive re-analysis: classify whole trees of IFCB bins and image folders, resumably.

A monitoring agency re-classifies years of imaging-flow-cytometer archives when a model
improves. The work splits naturally into *units*: one IFCB bin, or one folder of image
files. Each unit is processed by :class:`UnitProcessor` (the same pipeline, classifier and
HAB logic as ``phytoscope classify`` and the desktop app), which writes

- ``rois/bin=<unit>/part-0.parquet``: one row per ROI (bin, ROI id, genus, confidence,
  top-k), written to a temporary name and renamed, so a crash never leaves half a partition;
- ``class_scores/<bin>_class.h5`` when asked (``ArchiveConfig.class_scores``): the IFCB
  Dashboard's per-bin class scores (:mod:`phytoscope.core.formats.class_scores`);
- ``units/<unit>.json``: the unit's summary (counts, ml_analyzed, concentrations with
  95 % intervals, alert levels of the chosen rule set), written last: its presence is what
  "done" means, so a re-run skips finished units and redoes anything interrupted (and a
  finished bin whose class scores are asked for but missing);

and :func:`run_archive` gathers the summaries into ``bins.parquet`` / ``bins.csv`` and the
failed units into ``failures.jsonl``. A failed unit is recorded and never stops the run.

Runners: Ray Data (a pool of actors, each loading the backend once; local by default or an
existing cluster by address) when Ray is installed, else a local process pool with the same
per-process initialisation (:mod:`.archive_runners`). The runners only schedule; all the
work is in UnitProcessor.
Progress and cancellation go through the one contract, :class:`phytoscope.progress.Progress`
(stage :data:`STAGE`, one step per unit), so ``phytoscope archive`` draws it with tqdm and
the window could drive it alike.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from phytoscope.core.formats.class_scores import class_scores_path, write_class_scores
from phytoscope.errors import BackendUnavailable, Cancelled, ConfigError
from phytoscope.progress import Progress

log = logging.getLogger(__name__)

STAGE = "archive"
"""The progress stage of :func:`run_archive`: units finished (done or failed) of those to do."""

RAY_HINT = "pip install 'phytoscope[archive]' (Ray Data and pyarrow)"
ARROW_HINT = "pip install pyarrow (or 'phytoscope[archive]')"


@dataclass(frozen=True)
class Unit:
    """One output partition: an IFCB bin, or the image files directly inside one folder."""

    key: str
    kind: str
    paths: tuple[str, ...]


@dataclass(frozen=True)
class ArchiveConfig:
    """Everything a worker needs to build its own classifier (it must be picklable)."""

    out_dir: str
    backend: str = "onnxruntime"
    precision: str = "fp32"
    model: str | None = None
    rule_set: str = "scotland_habreports"
    batch_size: int = 32
    segment: str = "auto"
    threads_per_worker: int = 1
    class_scores: str | None = None
    """folder for IFCB Dashboard class scores (``<bin>_class.h5``), or None for none"""


@dataclass
class UnitResult:
    key: str
    kind: str
    rois: int = 0
    skipped: int = 0
    seconds: float = 0.0
    ml_analyzed: float | None = None
    counts: dict[str, int] = field(default_factory=dict)
    concentrations: dict[str, dict[str, Any]] = field(default_factory=dict)
    levels: dict[str, str] = field(default_factory=dict)
    model: str = ""
    rule_set_version: str = ""
    error: str | None = None
    flags: list[str] = field(default_factory=list)
    """``partial``: the bin was read only in part and its volume scaled (see warnings)"""
    warnings: list[str] = field(default_factory=list)
    sampled_at: str | None = None


@dataclass
class ArchiveSummary:
    out_dir: Path
    runner: str
    workers: int
    planned: int
    skipped_done: int
    results: list[UnitResult]
    seconds: float

    @property
    def failed(self) -> list[UnitResult]:
        return [r for r in self.results if r.error]

    @property
    def rois(self) -> int:
        return sum(r.rois for r in self.results)

    @property
    def rois_per_s(self) -> float:
        return self.rois / self.seconds if self.seconds > 0 else 0.0


def safe_key(text: str) -> str:
    """A partition name that is a valid file name on every system, stable across runs."""
    key = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_.")
    return key or "root"


def plan_units(paths: Iterable[Path | str]) -> list[Unit]:
    """Split inputs into units: one per IFCB bin, one per folder of image files.

    Missing or unsupported paths raise: an archive run over a mistyped path should stop
    before it starts, not report success over nothing.
    """
    from phytoscope.sources import expand_paths

    bins: list[Unit] = []
    folders: dict[Path, list[str]] = {}
    for kind, path in expand_paths(paths):
        if kind == "bin":
            bins.append(Unit(key=safe_key(path.name), kind="bin", paths=(str(path),)))
        elif kind == "image":
            folders.setdefault(path.parent, []).append(str(path))
        else:
            raise ConfigError(
                f"{path}: {'no such file or folder' if kind == 'missing' else 'not an image or IFCB bin'}"
            )
    units = bins + [
        Unit(
            key=safe_key("images_" + "_".join(folder.resolve().parts[-2:])),
            kind="images",
            paths=tuple(files),
        )
        for folder, files in sorted(folders.items())
    ]
    keys = Counter(u.key for u in units)
    if any(n > 1 for n in keys.values()):
        dupes = ", ".join(k for k, n in keys.items() if n > 1)
        raise ConfigError(
            f"two inputs map to the same output partition ({dupes}); archive them separately"
        )
    return units


def unit_summary_path(out_dir: Path, key: str) -> Path:
    return out_dir / "units" / f"{key}.json"


def done_keys(out_dir: Path) -> set[str]:
    folder = out_dir / "units"
    return {p.stem for p in folder.glob("*.json")} if folder.is_dir() else set()


def _bin_id(unit: Unit) -> str:
    return Path(unit.paths[0]).name


def _needs_class_scores(unit: Unit, config: ArchiveConfig) -> bool:
    return (
        config.class_scores is not None
        and unit.kind == "bin"
        and not class_scores_path(config.class_scores, _bin_id(unit)).exists()
    )


def _write_parquet(rows: list[dict[str, Any]], path: Path) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise BackendUnavailable(f"writing Parquet needs pyarrow: {ARROW_HINT}") from exc
    schema = pa.schema(
        [
            ("bin", pa.string()),
            ("roi_id", pa.string()),
            ("source", pa.string()),
            ("roi_index", pa.int64()),
            ("genus", pa.string()),
            ("confidence", pa.float64()),
            ("top_k_labels", pa.list_(pa.string())),
            ("top_k_probs", pa.list_(pa.float64())),
            ("flags", pa.list_(pa.string())),
        ]
    )
    table = pa.Table.from_pylist(rows, schema=schema)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


class UnitProcessor:
    """Loads the backend once per worker process, then classifies unit after unit.

    Ray's actors and the process pool's initialiser both create one of these, so there is a
    single implementation of "classify a bin and write its partition".
    """

    def __init__(self, config: ArchiveConfig):
        from phytoscope import backends
        from phytoscope.core import hab
        from phytoscope.core.classifier import Classifier
        from phytoscope.core.pipeline import engine_options

        self.config = config
        self.out_dir = Path(config.out_dir)
        self.backend = backends.create(
            config.backend,
            config.precision,
            model=config.model,
            options=engine_options(cpus=config.threads_per_worker),
        ).load()
        self.classifier = Classifier(self.backend)
        self.rule_set = hab.load_rule_set(config.rule_set)

    def close(self) -> None:
        self.backend.close()

    def __call__(self, unit: Unit) -> UnitResult:
        started = time.perf_counter()
        result = UnitResult(
            key=unit.key,
            kind=unit.kind,
            model=self.classifier.card.label,
            rule_set_version=self.rule_set.version,
        )
        try:
            self._process(unit, result)
        except Exception as exc:  # noqa: BLE001 - one bad bin must not stop the archive
            log.warning("unit %s failed: %s", unit.key, exc)
            result.error = f"{type(exc).__name__}: {exc}"
        result.seconds = time.perf_counter() - started
        if result.error is None:
            path = unit_summary_path(self.out_dir, unit.key)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(json.dumps(asdict(result), indent=1))
            os.replace(tmp, path)  # the summary is the "done" marker: written last, atomically
        return result

    def _process(self, unit: Unit, result: UnitResult) -> None:
        """One unit through the core session, as ``phytoscope classify`` runs it: the same
        analysis, and for a bin the same sample rules (volume from its header, scaled and
        flagged when the bin was read only in part; plausibility warnings; time)."""
        from phytoscope.core.analysis import Analysis
        from phytoscope.core.session import SampleSession, SampleSettings

        session = SampleSession(self.classifier.card, self.rule_set, SampleSettings())
        analysis = Analysis(
            self.classifier,
            paths=list(unit.paths),
            segment=self.config.segment,
            batch_size=self.config.batch_size,
            workers=1,
        )
        predictions: list[Any] = []
        skipped: list[Any] = []
        for batch in analysis.batches():
            session.add(batch)
            predictions.extend(batch.predictions)
            skipped.extend(batch.skipped)
        if skipped and not predictions:
            raise ValueError("; ".join(f"{s.source}: {s.reason}" for s in skipped[:3]))
        rows = [
            {
                "bin": unit.key,
                "roi_id": f"{Path(p.source).name}_{p.roi_index:05d}",
                "source": p.source,
                "roi_index": p.roi_index,
                "genus": p.label,
                "confidence": p.confidence,
                "top_k_labels": [name for name, _ in p.top_k],
                "top_k_probs": [prob for _, prob in p.top_k],
                "flags": list(p.flags),
            }
            for p in predictions
        ]
        _write_parquet(rows, self.out_dir / "rois" / f"bin={unit.key}" / "part-0.parquet")
        if self.config.class_scores is not None and unit.kind == "bin":
            bin_id = _bin_id(unit)
            write_class_scores(
                class_scores_path(self.config.class_scores, bin_id),
                bin_id,
                predictions,
                self.classifier.card,
            )
        result.rois, result.skipped = len(predictions), len(skipped)
        result.counts = dict(sorted(Counter(p.label for p in predictions).items()))
        drafts = [d for d in session.samples() if d.bins] if unit.kind == "bin" else []
        if not drafts or drafts[0].volume is None:
            return
        d = drafts[0]
        result.ml_analyzed = d.volume.ml_analyzed if d.volume else None
        result.flags, result.warnings, result.sampled_at = (
            list(d.flags),
            list(d.warnings),
            d.sampled_at,
        )
        result.concentrations = {
            c.taxon: {
                "count": c.count,
                "per_l": c.per_l,
                "low_per_l": c.low_per_l,
                "high_per_l": c.high_per_l,
                "detection_limit_per_l": c.detection_limit_per_l,
                "unit": c.unit,
            }
            for c in d.concentrations
        }
        if d.hab is not None:
            result.levels = {a.taxon: a.describe_level() for a in d.hab.assessments}


def preflight(config: ArchiveConfig) -> None:
    """Check the model, backend and rule set here, before any worker starts.

    A worker that fails in its initialiser surfaces as an opaque pool or actor error; the
    same check in the parent gives the user the real message (no model, no runtime...).
    """
    from phytoscope import backends
    from phytoscope.core import hab

    backends.create(config.backend, config.precision, model=config.model).card.verify_file()
    hab.load_rule_set(config.rule_set)


def run_archive(
    paths: Sequence[Path | str],
    config: ArchiveConfig,
    runner: str = "auto",
    workers: int | None = None,
    address: str | None = None,
    progress: Progress | None = None,
) -> ArchiveSummary:
    """Classify every unit not already done, then write the per-bin tables.

    Parameters
    ----------
    runner
        ``"ray"``, ``"local"`` (process pool) or ``"auto"`` (Ray when installed).
    workers
        Worker processes / Ray actors (default: CPU count; with ``address``, 2).
    progress
        The one progress/cancel contract: stage :data:`STAGE` after each unit (message: the
        unit and whether it failed; metrics ``rois`` and ``failed`` so far). Its cancel is
        checked between units: no further unit is started, units already handed to a
        worker finish and are kept, the tables are written for the units finished, then
        :class:`~phytoscope.errors.Cancelled` is raised (a re-run resumes).
    """
    preflight(config)
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    units = plan_units(paths)
    finished = done_keys(out_dir)
    todo = [u for u in units if u.key not in finished or _needs_class_scores(u, config)]
    # imported here: the runners import this module (UnitProcessor, the value types)
    from phytoscope.core.archive_runners import ray_available, run_local, run_ray

    if runner == "auto":
        runner = "ray" if ray_available() is None else "local"
    if runner == "ray" and (reason := ray_available()):
        raise BackendUnavailable(f"{reason}; or use --runner local")
    if runner not in ("ray", "local"):
        raise ConfigError(f"runner must be ray, local or auto, not {runner!r}")
    workers = max(1, workers or (2 if address else (os.cpu_count() or 1)))
    started = time.perf_counter()
    results: list[UnitResult] = []
    progress = Progress.of(progress)
    rois = failed = 0
    progress.update(STAGE, 0, len(todo), f"{len(units) - len(todo)} already done")
    if todo:
        stream = (
            run_ray(todo, config, workers, address)
            if runner == "ray"
            else run_local(todo, config, workers)
        )
        for result in stream:
            results.append(result)
            if result.error:
                with open(out_dir / "failures.jsonl", "a", encoding="utf-8") as fh:
                    fh.write(json.dumps({"unit": result.key, "error": result.error}) + "\n")
            rois += result.rois
            failed += 1 if result.error else 0
            note = f"{result.key} FAILED" if result.error else result.key
            progress.update(STAGE, len(results), len(todo), note, rois=rois, failed=failed)
            if progress.cancelled:
                write_tables(out_dir)  # the finished units' rows are in the tables too
                raise Cancelled(
                    f"stopped after {len(results)} of {len(todo)} units; re-run to resume"
                )
    seconds = time.perf_counter() - started
    write_tables(out_dir)
    return ArchiveSummary(
        out_dir, runner, workers, len(units), len(units) - len(todo), results, seconds
    )


def load_unit_summaries(out_dir: Path) -> list[UnitResult]:
    folder = out_dir / "units"
    return (
        [UnitResult(**json.loads(p.read_text())) for p in sorted(folder.glob("*.json"))]
        if folder.is_dir()
        else []
    )


def write_tables(out_dir: Path) -> None:
    """``bins.csv`` (and ``bins.parquet`` with pyarrow): one row per finished unit and taxon."""
    rows = []
    for unit in load_unit_summaries(out_dir):
        taxa = sorted(set(unit.counts) | set(unit.concentrations) | set(unit.levels))
        for taxon in taxa:
            conc = unit.concentrations.get(taxon, {})
            rows.append(
                {
                    "bin": unit.key,
                    "kind": unit.kind,
                    "taxon": taxon,
                    "count": int(unit.counts.get(taxon, conc.get("count", 0))),
                    "ml_analyzed": unit.ml_analyzed,
                    "per_l": conc.get("per_l"),
                    "low_per_l": conc.get("low_per_l"),
                    "high_per_l": conc.get("high_per_l"),
                    "detection_limit_per_l": conc.get("detection_limit_per_l"),
                    "unit": conc.get("unit", ""),
                    "level": unit.levels.get(taxon, ""),
                    "flags": ";".join(unit.flags),
                    "model": unit.model,
                    "rule_set_version": unit.rule_set_version,
                }
            )
    if not rows:
        return
    with open(out_dir / "bins.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return
    pq.write_table(pa.Table.from_pylist(rows), out_dir / "bins.parquet")
