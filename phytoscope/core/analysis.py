"""One analysis run: inputs -> classify -> store per batch (the first half of a session).

:class:`Analysis` reads the inputs (``phytoscope.sources``), classifies them with
:func:`~phytoscope.core.pipeline.classify_items` and commits every batch to the results
store as it comes, so a crash, a Ctrl-C or a full disk loses at most the batch in flight.
It hands each batch on as an :class:`AnalysisBatch` with the facts the sample rules need
(which input and which IFCB bin each organism came from, how many ROIs each bin holds and
why reading stopped). ``phytoscope classify`` iterates it in its main thread, the window's
inference worker in its thread (forwarding the batches to the GUI thread), and the archive
per bin; every batch then goes into a :class:`~phytoscope.core.session.SampleSession`.

Resuming (:func:`open_run`): a run records a key of its inputs and model; when the last run
of the same key never finished (killed, power cut), the next one either continues it (the
organisms already stored are not classified or stored again, but are handed on as
``restored`` predictions so the sample is complete) or stops and says how to choose.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phytoscope.core.classifier import Classifier
from phytoscope.core.pipeline import classify_items
from phytoscope.errors import ConfigError, SourceError, StorageError
from phytoscope.progress import Progress
from phytoscope.sources import ifcb as ifcb_source
from phytoscope.sources import iter_inputs
from phytoscope.sources.paths import InputIndex
from phytoscope.sources.video import VideoSampling
from phytoscope.types import Prediction, Roi, Skipped

log = logging.getLogger(__name__)

Key = tuple[str, int]


@dataclass(frozen=True)
class RoiFacts:
    """Where one organism came from: the input it was found under, and its IFCB bin."""

    path: str
    bin_id: str | None = None
    video: str | None = None
    """the video file a frame came from (None for images and bins)"""
    recorded_at: str | None = None
    """when a video frame was recorded (ISO 8601), where the file says"""


@dataclass(frozen=True)
class BinRead:
    """One IFCB bin as read so far: its volume, ROIs it holds, and what went wrong."""

    bin_id: str
    source: str
    ml_analyzed: float | None
    rois_expected: int | None
    problems: tuple[str, ...] = ()
    copies: tuple[str, ...] = ()
    """other places the same bin was opened from (counted once, from ``source``)"""


@dataclass(frozen=True)
class AnalysisBatch:
    """A batch of organisms with their facts; ``restored`` came from the store (resume)."""

    predictions: tuple[Prediction, ...]
    skipped: tuple[Skipped, ...] = ()
    facts: tuple[RoiFacts, ...] = ()
    """one per prediction"""
    bins: tuple[BinRead, ...] = ()
    """every bin seen so far, in the order first seen"""
    restored: tuple[bool, ...] = ()
    """one per prediction: True when it was classified by an earlier, resumed run"""


class RunFailed(StorageError):
    """The results store failed mid-run; ``rows_stored`` rows of ``run_id`` are safe."""

    def __init__(self, message: str, run_id: int | None, rows_stored: int):
        super().__init__(message)
        self.run_id = run_id
        self.rows_stored = rows_stored


def _finite_ml(value: Any) -> float | None:
    try:
        ml = float(value)
    except (TypeError, ValueError):
        return None
    return ml if ml == ml and ml not in (float("inf"), float("-inf")) else None


class _Tagger:
    """Passes inputs through, recording each ROI's facts and each bin's state, and drops
    the ROIs a resumed run already stored (remembering them, in order).

    Units run in ``classify_items``' decoding threads, so every shared container is
    updated under one lock.
    """

    def __init__(self, streams: Sequence[tuple[str, Iterable[Roi | Skipped]]], done: Mapping):
        self.streams = list(streams)
        self.done = done
        self.lock = threading.Lock()
        self.facts: dict[Key, RoiFacts] = {}
        self.bins: dict[str, dict[str, Any]] = {}
        self.by_source: dict[str, str] = {}
        self.restored: list[Key] = []
        if all(callable(getattr(s, "units", None)) for _, s in self.streams):
            self.units = self._units

    def _bin(self, bin_id: str, source: str, meta: Mapping[str, Any]) -> dict[str, Any]:
        state = self.bins.get(bin_id)
        if state is None:
            expected = meta.get("rois_expected")
            if not isinstance(expected, int):
                try:
                    expected = len(ifcb_source.IfcbBin(source))
                except (SourceError, OSError, ValueError):
                    expected = None
            state = {"source": source, "ml": None, "expected": expected, "problems": [],
                     "copies": []}  # fmt: skip
            self.bins[bin_id] = state
            self.by_source[source] = bin_id
        elif source != state["source"] and source not in state["copies"]:
            state["copies"].append(source)
        if state["ml"] is None and "ml_analyzed" in meta:
            state["ml"] = _finite_ml(meta["ml_analyzed"])
        return state

    def _see(self, path: str, items: Iterable[Roi | Skipped]) -> list[Roi | Skipped]:
        kept: list[Roi | Skipped] = []
        for item in items:
            if isinstance(item, Skipped):
                base = item.source.split("#")[0]
                if item.kind == "duplicate":
                    # the sources read the input once, from its first naming; the repeat
                    # is said on its own and must not taint (or stand for) the bin
                    kept.append(item)
                    continue
                with self.lock:
                    bin_id = self.by_source.get(base)
                    if bin_id is None and ifcb_source.is_bin_name(Path(base).name):
                        bin_id = Path(base).name
                        self._bin(bin_id, base, {})
                    # a copy of a bin read elsewhere does not make the original partial
                    if bin_id is not None and self.bins[bin_id]["source"] == base:
                        self.bins[bin_id]["problems"].append(item.reason)
                kept.append(item)
                continue
            key = (item.source, item.index)
            meta = item.meta or {}
            bin_id = str(meta["bin"]) if "bin" in meta else None
            with self.lock:
                self.facts[key] = RoiFacts(path, bin_id, meta.get("video"), meta.get("recorded_at"))
                if bin_id is not None:
                    self._bin(bin_id, item.source, meta)
                if key in self.done:
                    self.restored.append(key)
                    continue
            kept.append(item)
        return kept

    def _units(self) -> Iterator[Callable[[], list[Roi | Skipped]]]:
        for path, stream in self.streams:
            for unit in stream.units():  # type: ignore[attr-defined]

                def seen(unit: Callable[[], list] = unit, path: str = path) -> list:
                    return self._see(path, unit())

                yield seen

    def __iter__(self) -> Iterator[Roi | Skipped]:
        for path, stream in self.streams:
            for item in stream:
                yield from self._see(path, [item])

    def bin_reads(self) -> tuple[BinRead, ...]:
        with self.lock:
            return tuple(
                BinRead(
                    b, s["source"], s["ml"], s["expected"], tuple(s["problems"]), tuple(s["copies"])
                )
                for b, s in self.bins.items()
            )

    def take_restored(self) -> list[Key]:
        with self.lock:
            taken, self.restored = self.restored, []
        return taken


class Analysis:
    """Classify inputs and store them batch by batch (see the module docstring).

    Parameters
    ----------
    classifier
        Holds a loaded backend.
    paths
        Files, folders and IFCB bins; each organism's facts name the path it came from.
    items
        Instead of ``paths``: a stream of ROIs (a camera), facts with path ``""``.
    store, run_id
        Where each batch is committed (None: nothing is stored).
    done
        Predictions a resumed run already stored, by (source, ROI index).
    wrap
        Applied to the input stream before classification (the window keeps thumbnails).
    video
        How the frames of video inputs are sampled (default: every frame).
    """

    def __init__(
        self,
        classifier: Classifier,
        *,
        paths: Sequence[str | Path] | None = None,
        items: Iterable[Roi | Skipped] | None = None,
        store: Any = None,
        run_id: int | None = None,
        segment: str = "auto",
        batch_size: int = 16,
        done: Mapping[Key, Prediction] | None = None,
        wrap: Callable[[Any], Any] | None = None,
        workers: int | None = None,
        video: VideoSampling | None = None,
    ):
        if (paths is None) == (items is None):
            raise ValueError("give either paths or items")
        streams: list[tuple[str, Iterable[Roi | Skipped]]]
        if paths is not None:
            # one index for the whole run: an input named twice (a bin by its stem and by its
            # folder, a symbolic link beside its target) is read once, and the repeat said
            index = InputIndex()
            streams = [
                (str(p), iter_inputs([p], segment=segment, video=video, index=index)) for p in paths
            ]
        else:
            streams = [("", items or ())]
        self.classifier = classifier
        self.store = store
        self.run_id = run_id
        self.batch_size = batch_size
        self.workers = workers
        self.done = dict(done or {})
        self.tagger = _Tagger(streams, self.done)
        self.items: Any = wrap(self.tagger) if wrap else self.tagger
        self.rows_stored = 0
        """rows this run committed (restored rows not included)"""
        self.classified = 0
        self._known_skips: set[tuple[str, str]] = set()
        if store is not None and run_id is not None and self.done:
            self._known_skips = store.skipped_of_run(run_id)

    def _store(self, predictions: list[Prediction], skipped: list[Skipped]) -> None:
        if self.store is None or self.run_id is None:
            return
        new_skips = [s for s in skipped if (s.source, s.reason) not in self._known_skips]
        try:
            if predictions:
                self.store.add_predictions(self.run_id, predictions)
            if new_skips:
                self.store.add_skipped(self.run_id, new_skips)
        except StorageError as exc:
            raise RunFailed(
                f"{exc} (run {self.run_id}: {self.rows_stored + len(self.done)} rows stored "
                "before the failure are kept)",
                self.run_id,
                self.rows_stored + len(self.done),
            ) from exc
        self.rows_stored += len(predictions)

    def _batch(self, predictions: list[Prediction], skipped: list[Skipped]) -> AnalysisBatch:
        restored = [self.done[k] for k in self.tagger.take_restored()]
        if skipped:
            with self.tagger.lock:
                for s in skipped:
                    bin_id = self.tagger.by_source.get(s.source.split("#")[0])
                    if bin_id is not None and "#" in s.source:
                        self.tagger.bins[bin_id]["problems"].append(
                            f"ROI {s.source.rsplit('#', 1)[1]}: {s.reason}"
                        )
        both = restored + predictions
        facts = self.tagger.facts
        return AnalysisBatch(
            predictions=tuple(both),
            skipped=tuple(skipped),
            facts=tuple(facts.get((p.source, p.roi_index), RoiFacts("")) for p in both),
            bins=self.tagger.bin_reads(),
            restored=(True,) * len(restored) + (False,) * len(predictions),
        )

    def batches(
        self, progress: Progress | None = None, total: int | None = None
    ) -> Iterator[AnalysisBatch]:
        """Classify, store and yield batch by batch; the last batch carries any restored
        organisms not yet handed on. Raises :class:`RunFailed` when the store fails and
        :class:`~phytoscope.errors.Cancelled` when the progress's token is set."""
        for predictions, skipped in classify_items(
            self.items,
            self.classifier,
            batch_size=self.batch_size,
            progress=progress,
            total=total,
            workers=self.workers,
        ):
            failure: RunFailed | None = None
            try:
                self._store(predictions, skipped)
            except RunFailed as exc:
                failure = exc
            self.classified += len(predictions)
            # a batch the store refused is still handed on (shown, written to the output),
            # then the run stops: classified results are never dropped
            yield self._batch(predictions, skipped)
            if failure is not None:
                raise failure
        rest = self._batch([], [])
        if rest.predictions or rest.bins:
            yield rest


# -- runs: start, or resume an unfinished one -----------------------------------------------


def inputs_key(paths: Sequence[str | Path], segment: str, model_sha256: str, backend: str) -> str:
    """What makes two runs "the same": resolved inputs, segmentation, model and engine."""
    doc = {
        "paths": [_resolved(p) for p in paths],
        "segment": segment,
        "model": model_sha256,
        "backend": backend,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _resolved(path: str | Path) -> str:
    """The absolute path, links followed where they can be (a link loop is reported by the
    sources as that input's problem; here it keys the run as it was typed)."""
    try:
        return str(Path(path).resolve())
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop (Python < 3.13)
        return str(Path(path).absolute())


@dataclass
class RunStart:
    """The run a front end writes to, and what an earlier unfinished run already stored."""

    run_id: int
    done: dict[Key, Prediction] = field(default_factory=dict)
    resumed: bool = False
    note: str = ""


def open_run(
    store: Any,
    backend: str,
    card: Any,
    settings: dict[str, Any],
    key: str,
    resume: bool | None,
) -> RunStart:
    """Start a run, or resume the last run of the same inputs when it never finished.

    Parameters
    ----------
    resume
        True: continue an unfinished run (a new run when there is none); False: start a new
        run whatever came before; None: start a new run unless an unfinished one exists, in
        which case stop with a message that says how to choose (nothing is duplicated
        silently).
    """
    last = store.last_run_of(key)
    unfinished = last is not None and last["finished_at"] is None
    if unfinished and resume:
        run_id = int(last["id"])
        done = {(p.source, p.roi_index): p for p in store.predictions(run_id)}
        return RunStart(
            run_id,
            done,
            True,
            f"resuming run {run_id} (started {last['started_at']}): {len(done)} organisms "
            "already stored are not classified again",
        )
    if unfinished and resume is None:
        n = store.prediction_count(int(last["id"]))
        raise ConfigError(
            f"run {last['id']} on these inputs did not finish (started {last['started_at']}, "
            f"{n} rows stored): add --resume to continue it without duplicating rows, or "
            "--new-run to classify everything again in a new run"
        )
    run_id = store.start_run(backend, card.label, card.sha256, settings={**settings})
    store.set_run_key(run_id, key)
    note = ""
    if unfinished:
        note = f"run {last['id']} on these inputs did not finish; it is kept as it is"
    return RunStart(run_id, note=note)
