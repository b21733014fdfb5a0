"""The sample session: the one path from classified organisms to saved samples and alerts.

``phytoscope classify``, the window and the archive all drive a :class:`SampleSession`
(pymmcore-plus drives its widgets from such a core object): batches of an
:class:`~phytoscope.core.analysis.Analysis` go in (:meth:`SampleSession.add`), the user's
edits go in (:meth:`~SampleSession.update`: site, time, volume, pooling;
:meth:`~SampleSession.correct`; a microscopist's counts,
:meth:`~phytoscope.core.manual.ManualCounts.add_manual_count`), and out come :class:`SampleDraft` values (kind, volume,
time, flags, warnings, counts, concentrations, HAB assessment) computed by the rules of
:mod:`phytoscope.core.samples`, which :meth:`~SampleSession.save` writes to the store.
Listeners (:meth:`~SampleSession.connect`) hear ``"changed"``, ``"saved"``,
``"acknowledged"`` and ``"cleared"``; a front end only shows drafts and forwards edits.

Saving, decided here once for both front ends:

- A sample is saved only when it has a volume and a sampling time (from its IFCB bins or
  typed by the user); its problems say what is missing otherwise.
- Each sample has ONE record. Saving again (after corrections, more bins of the same
  sample, a new volume) updates that record as its next revision; an unchanged sample is
  not rewritten. Alerts follow (updated, added, withdrawn); an acknowledgement covers the
  concentration it saw, so a change re-opens the alert.
- :meth:`~SampleSession.auto_save` (the window, when an analysis ends) saves a sample by
  itself only once the user has given a site, or the sample was saved before; the command
  line saves when sample options are given (the user asked for a sample).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from phytoscope.core.analysis import AnalysisBatch, BinRead, RoiFacts
from phytoscope.core.hab import RuleSet, make_alerts, utc_now
from phytoscope.core.manual import ManualCounts
from phytoscope.core.sample import ManualCount, evidence_by_label
from phytoscope.core.samples import (
    GROUPINGS,
    PARTIAL_POLICIES,
    BinFacts,
    SampleDraft,
    SampleSettings,
    VolumeSpec,
    build_draft,
    group_bins,
)
from phytoscope.errors import ConfigError
from phytoscope.modelcard import UNKNOWN, ModelCard
from phytoscope.storage.corrections import list_corrections
from phytoscope.types import Alert, Prediction, Sample

log = logging.getLogger(__name__)

IMAGES = "images"
"""Key of the sample of every input that is not an IFCB bin."""


@dataclass(frozen=True)
class Saved:
    """What :meth:`SampleSession.save` did with one sample."""

    key: str
    sample_id: int | None
    revision: int = 0
    created: bool = False
    unchanged: bool = False
    alerts: tuple[Alert, ...] = ()
    problems: tuple[str, ...] = ()


@dataclass
class _Entry:
    prediction: Prediction
    facts: RoiFacts
    corrected: str | None = None

    @property
    def effective(self) -> Prediction:
        if self.corrected is None:
            return self.prediction
        return replace(self.prediction, label=self.corrected, confidence=1.0, unknown_reason="")


@dataclass
class _Record:
    sample_id: int
    revision: int
    fingerprint: str
    alerts: tuple[Alert, ...]


def _fingerprint(d: SampleDraft, rule_set: str) -> str:
    volume = [d.volume.ml_analyzed, d.volume.method, list(d.volume.details)] if d.volume else None
    manual = [(m.taxon, m.count, m.volume_ml, m.note) for m in d.manual]
    doc = [d.kind, d.sources, volume, d.sampled_at, d.site, d.counts, d.flags, rule_set, manual]
    return json.dumps(doc, sort_keys=True, default=str)


class SampleSession(ManualCounts):
    """Organisms classified so far, the user's sample settings, and their saved records.

    Parameters
    ----------
    card
        The model card (class names, chain-forming flags); None until a model is loaded.
    rule_set
        HAB thresholds; None: no assessment (counts and concentrations only).
    settings
        Site, time, volume, pooling and partial-bin choices.
    clock
        Stamps alerts (injected by tests).
    """

    def __init__(
        self,
        card: ModelCard | None = None,
        rule_set: RuleSet | None = None,
        settings: SampleSettings | None = None,
        clock: Callable[[], datetime] = utc_now,
    ):
        self.card = card
        self.rule_set = rule_set
        self.settings = settings or SampleSettings()
        self.clock = clock
        self._listeners: list[Callable[[str, Any], None]] = []
        self._drafts: list[SampleDraft] | None = None
        self._notices: list[str] = []
        self.version = 0  # counts on across clear() and load(): views compare it with theirs
        self._reset()

    # -- events --------------------------------------------------------------------------

    def connect(self, listener: Callable[[str, Any], None]) -> None:
        """Call ``listener(event, payload)`` on every change (see the module docstring)."""
        self._listeners.append(listener)

    def _emit(self, event: str, payload: Any = None) -> None:
        if event == "changed":
            self.version += 1
            self._drafts = None
        for listener in list(self._listeners):
            listener(event, payload)

    # -- input ---------------------------------------------------------------------------

    def clear(self) -> None:
        """A new sample: organisms, bins, records and the typed time are forgotten (the site
        and volume stay, as the next sample is often from the same place and method)."""
        self._reset()
        self.settings = replace(self.settings, sampled_at=None)
        self._emit("cleared")
        self._emit("changed")

    def _reset(self) -> None:
        self._entries: dict[tuple[str, int], _Entry] = {}
        self._bins: dict[str, BinRead] = {}
        self._copies: dict[str, set[str]] = {}
        self._records: dict[str, _Record] = {}
        self._manual = {}
        self.skipped: list[Any] = []
        self.run_ids: list[int] = []
        self._drafts = None

    def add(self, batch: AnalysisBatch) -> None:
        """One batch of an analysis. An organism already in the session (the same input
        opened twice) replaces its earlier entry rather than counting twice."""
        facts = batch.facts or (RoiFacts(""),) * len(batch.predictions)
        for p, fact in zip(batch.predictions, facts, strict=True):
            key = (p.source, p.roi_index)
            old = self._entries.get(key)
            self._entries[key] = _Entry(p, fact, old.corrected if old else None)
        for read in batch.bins:
            first = self._bins.get(read.bin_id)
            if first is not None and first.source != read.source:
                # the same bin in two places (a copy): its organisms count once, from the
                # first place it was read, and a notice names the other
                self._copies.setdefault(read.bin_id, set()).add(read.source)
                continue
            self._bins[read.bin_id] = read
            if read.copies:
                self._copies.setdefault(read.bin_id, set()).update(read.copies)
        self.skipped.extend(batch.skipped)
        self._emit("changed")

    def add_run(self, run_id: int | None) -> None:
        if run_id is not None and run_id not in self.run_ids:
            self.run_ids.append(run_id)

    def set_model(self, card: ModelCard | None) -> None:
        self.card = card
        self._emit("changed")

    def set_rule_set(self, rule_set: RuleSet | None) -> None:
        self.rule_set = rule_set
        self._emit("changed")

    def update(self, settings: SampleSettings | None = None, **changes: Any) -> None:
        """New sample settings (all of them, or some fields)."""
        new = replace(settings or self.settings, **changes)
        if new.grouping not in GROUPINGS:
            raise ConfigError(f"grouping must be one of {', '.join(GROUPINGS)}")
        if new.partial not in PARTIAL_POLICIES:
            raise ConfigError(f"partial bins: choose one of {', '.join(PARTIAL_POLICIES)}")
        if new != self.settings:
            self.settings = new
            self._emit("changed")

    def correct(self, source: str, roi_index: int, label: str) -> None:
        """The technician's label for one organism (the model's own label undoes it)."""
        entry = self._entries.get((source, roi_index))
        if entry is None:
            raise KeyError(f"no organism {source}#{roi_index} in this session")
        entry.corrected = None if label == entry.prediction.label else label
        self._emit("changed")

    def label_of(self, source: str, roi_index: int) -> str:
        return self._entries[(source, roi_index)].effective.label

    def __len__(self) -> int:
        return len(self._entries)

    def facts_of(self, source: str, roi_index: int) -> RoiFacts | None:
        """Where an organism was found (its input, IFCB bin, video), for exports."""
        entry = self._entries.get((source, roi_index))
        return entry.facts if entry is not None else None

    # -- drafts --------------------------------------------------------------------------

    def notices(self) -> list[str]:
        """Warnings about the session as a whole (pooling decisions, excluded bins, mixed
        inputs): they stay visible until the inputs or choices change."""
        return self._compute()[1]

    def samples(self) -> list[SampleDraft]:
        """The samples the session holds now, bins first (by the pooling rule), then images."""
        return self._compute()[0]

    def _compute(self) -> tuple[list[SampleDraft], list[str]]:
        if self._drafts is not None:
            return self._drafts, self._notices
        by_bin: dict[str, list[_Entry]] = {}
        others: list[_Entry] = []
        for entry in self._entries.values():
            bin_id = entry.facts.bin_id
            if bin_id is None:
                others.append(entry)
            elif bin_id not in self._bins or entry.prediction.source == self._bins[bin_id].source:
                by_bin.setdefault(bin_id, []).append(entry)
        notices: list[str] = [
            f"IFCB bin {b} was opened from more than one place ({', '.join(sorted(c))} besides "
            f"{self._bins[b].source}): it is counted once"
            for b, c in self._copies.items()
        ]
        usable: list[BinFacts] = []
        # bins in input order (the order of their organisms), whatever order the decoding
        # threads met them in, so both front ends name and group samples alike
        order = list(dict.fromkeys([*by_bin, *self._bins]))
        for bin_id in order:
            read = self._bins.get(bin_id)
            if read is None:
                continue
            facts = BinFacts(
                bin_id,
                read.source,
                read.ml_analyzed,
                read.rois_expected,
                len(by_bin.get(bin_id, ())),
                read.problems,
            )
            if facts.rois_classified == 0:
                why = "; ".join(read.problems) or "no ROI classified"
                notices.append(f"IFCB bin {bin_id} is left out of every sample: {why}")
            elif facts.partial and self.settings.partial == "exclude":
                notices.append(
                    f"IFCB bin {bin_id} is left out (partial bins excluded by choice): "
                    + facts.describe_partial()
                )
            else:
                usable.append(facts)
        groups, note = group_bins(usable, self.settings.grouping)
        if note:
            notices.append(note)
        if usable and others:
            notices.append(
                "these inputs mix IFCB bins and other images: they are separate samples (the "
                "bins' volume comes from their headers; the images need the volume you give)"
            )
        drafts = [
            self._draft(f"bin:{g[0].bin_id}", [e for b in g for e in by_bin[b.bin_id]], g)
            for g in groups
        ]
        if others:
            drafts.append(self._draft(IMAGES, others, []))
        self._drafts, self._notices = drafts, notices
        return drafts, notices

    def _draft(self, key: str, entries: list[_Entry], bins: list[BinFacts]) -> SampleDraft:
        sources = tuple(dict.fromkeys(e.facts.path or e.prediction.source for e in entries))
        draft = build_draft(
            key,
            tuple(e.effective for e in entries),
            bins,
            sources,
            self.settings,
            self.card,
            self.rule_set,
            self.manual_counts(key),
        )
        record = self._records.get(key)
        if record is None:
            return draft
        rule_name = self.rule_set.name if self.rule_set else ""
        return replace(
            draft,
            sample_id=record.sample_id,
            revision=record.revision,
            saved=record.fingerprint == _fingerprint(draft, rule_name),
            alerts=record.alerts,
        )

    # -- saving ----------------------------------------------------------------------------

    def _sample_of(self, d: SampleDraft) -> Sample:
        assert d.volume is not None and self.card is not None
        return Sample(
            kind=d.kind,
            sources=d.sources,
            volume=d.volume,
            site=d.site,
            sampled_at=d.sampled_at,
            run_id=self.run_ids[-1] if self.run_ids else None,
            model=self.card.label,
            rule_set=self.rule_set.name if self.rule_set else "",
            notes=self.settings.notes,
            flags=d.flags,
            warnings=d.warnings,
            unidentified=d.n_unidentified,
            time_source=d.time_source,
            run_ids=tuple(self.run_ids),
        )

    def save(
        self, store: Any, keys: Iterable[str] | None = None, reason: str = "saved"
    ) -> list[Saved]:
        """Write the samples (all, or those of ``keys``) that can be saved: a new record the
        first time, the next revision of the same record after that (unchanged: untouched).
        Samples with problems are not written; their :class:`Saved` lists the problems."""
        wanted = set(keys) if keys is not None else None
        results = []
        for d in self.samples():
            if wanted is not None and d.key not in wanted:
                continue
            if d.problems:
                results.append(Saved(d.key, d.sample_id, d.revision, problems=d.problems))
                continue
            if d.saved and d.sample_id is not None:
                results.append(
                    Saved(d.key, d.sample_id, d.revision, unchanged=True, alerts=d.alerts)
                )
                continue
            results.append(self._write(store, d, reason))
        if any(not r.problems and not r.unchanged for r in results):
            self._emit("changed")
            self._emit("saved", results)
        return results

    def _write(self, store: Any, d: SampleDraft, reason: str) -> Saved:
        sample = self._sample_of(d)
        units = {c.taxon: c.unit for c in d.concentrations}
        summary: dict[str, Any] = d.hab.to_dict() if d.hab else {}
        summary.update(
            manual=[m.to_dict() for m in d.manual],
            unidentified=d.n_unidentified,
            unidentified_reasons=d.unidentified,
            unidentified_hab=d.unidentified_hab,
            flags=list(d.flags),
            warnings=list(d.warnings),
            notices=self.notices(),
        )
        record = (sample, d.counts, units, summary, [b.to_dict() for b in d.bins], reason)
        manual = [m.to_dict() for m in d.manual]
        if d.sample_id is None:
            sample_id = store.insert_sample(*record, manual=manual)
            revision, created = 1, True
        else:
            sample_id = d.sample_id
            revision = store.update_sample(sample_id, *record, manual=manual)
            created = False
        alerts: tuple[Alert, ...] = ()
        if d.hab is not None and self.card is not None:
            raised = make_alerts(
                d.hab,
                self.card.label,
                evidence_by_label(d.predictions),
                sample_id=sample_id,
                clock=self.clock,
            )
            raised = [replace(a, revision=revision) for a in raised]
            alerts = tuple(store.sync_alerts(sample_id, raised, revision))
        rule_name = self.rule_set.name if self.rule_set else ""
        self._records[d.key] = _Record(sample_id, revision, _fingerprint(d, rule_name), alerts)
        return Saved(d.key, sample_id, revision, created=created, alerts=alerts)

    def auto_save(self, store: Any) -> list[Saved]:
        """Save what may be saved without asking: samples saved before (their next
        revision), and new ones once the user has given a site (see the module docstring)."""
        site = bool(self.settings.site.strip())
        keys = [d.key for d in self.samples() if d.sample_id is not None or site]
        return self.save(store, keys, reason="analysis finished") if keys else []

    def acknowledge(self, store: Any, alert_id: int, who: str, note: str = "") -> Alert:
        """Record who acknowledged an alert and the concentration they saw."""
        alert = store.acknowledge(alert_id, who, note=note)
        for record in self._records.values():
            if any(a.id == alert_id for a in record.alerts):
                record.alerts = tuple(alert if a.id == alert_id else a for a in record.alerts)
        self._drafts = None
        self._emit("acknowledged", alert)
        return alert

    # -- re-opening ------------------------------------------------------------------------

    @classmethod
    def reopen(
        cls,
        store: Any,
        sample_id: int,
        card: ModelCard | None = None,
        rule_set: RuleSet | None = None,
    ) -> SampleSession:
        """A session holding a stored sample again: its organisms (from its runs, with the
        technician's corrections), bins, settings and manual counts, tied to the same
        record, so a save updates it."""
        session = cls(card, rule_set)
        session.load(store, sample_id)
        return session

    def load(self, store: Any, sample_id: int) -> None:
        """Hold a stored sample in this session instead of what it held (the window's
        *Re-open*); see :meth:`reopen`."""
        stored = store.sample(sample_id)
        bins = [BinFacts.from_dict(b) for b in store.sample_bins(sample_id)]
        self._reset()
        self.settings = SampleSettings(
            site=stored.site,
            sampled_at=stored.sampled_at if stored.time_source == "user" else None,
            volume=VolumeSpec.from_volume(stored.volume),
            grouping="pool" if len(bins) > 1 else "auto",
        )
        self._emit("cleared")
        run_ids = stored.run_ids or ((stored.run_id,) if stored.run_id is not None else ())
        bin_of = {b.source: b.bin_id for b in bins}
        corrected = {(c.source, c.roi_index): c.corrected for c in list_corrections(store)}
        predictions, facts = [], []
        for run_id in run_ids:
            self.add_run(run_id)
            for p in store.predictions(run_id):
                path = _source_path(p.source, bin_of, stored.sources)
                if path is not None:
                    predictions.append(p)
                    facts.append(RoiFacts(path, bin_of.get(p.source)))
        reads = tuple(
            BinRead(b.bin_id, b.source, b.ml_analyzed, b.rois_expected, b.problems) for b in bins
        )
        self.add(AnalysisBatch(tuple(predictions), facts=tuple(facts), bins=reads))
        for key, label in corrected.items():
            if key in self._entries:
                entry = self._entries[key]
                entry.corrected = None if label == entry.prediction.label else label
        manual = [ManualCount.from_dict(m) for m in store.manual_counts(sample_id)]
        for d in self.samples():
            self._manual[d.key] = {m.taxon: m for m in manual}
        self._emit("changed")
        rule_name, alerts = self.rule_set.name if self.rule_set else "", store.alerts(sample_id)
        for d in self.samples():
            fingerprint = _fingerprint(d, rule_name)
            self._records[d.key] = _Record(sample_id, stored.revision, fingerprint, tuple(alerts))
        self._emit("changed")


def _source_path(source: str, bin_of: dict[str, str], sources: Sequence[str]) -> str | None:
    if source in bin_of:
        return source
    for path in sources:
        if source == path or source.startswith(path.rstrip(os.sep) + os.sep):
            return path
    return None


__all__ = ["IMAGES", "UNKNOWN", "SampleDraft", "SampleSession", "SampleSettings", "Saved"]
