"""Binds the core sample session to the sample and alert panels (layout-free wiring).

The window's samples are the :class:`~phytoscope.core.session.SampleSession`'s: this view
forwards the user's edits to it (site, time, volume, pooling, corrections,
acknowledgements), asks it to save, and shows the drafts it computes. No sample rule lives
here; ``phytoscope classify`` reaches the same numbers through the same session.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal

from phytoscope.core.sample import evidence_by_label
from phytoscope.core.samples import SampleDraft
from phytoscope.core.session import SampleSession, Saved
from phytoscope.errors import PhytoscopeError
from phytoscope.gui.alerts import AlertPanel
from phytoscope.gui.sample_panel import SamplePanel
from phytoscope.gui.session import Record, Session
from phytoscope.storage.corrections import Correction, add_correction, export_training_folder
from phytoscope.types import Alert

log = logging.getLogger(__name__)


class SampleView(QObject):
    """Parameters
    ----------
    session
        The core session (the window feeds it every analysis batch).
    panel, alerts
        The widgets it fills.
    store
        Returns the open results store (raises :class:`PhytoscopeError` when it cannot).
    thumbnail_of
        Pixels of an organism for the alert evidence, or None.
    message, error
        Where the user is told what happened.
    """

    saved = Signal(object)  # list[Saved]

    def __init__(
        self,
        session: SampleSession,
        panel: SamplePanel,
        alerts: AlertPanel,
        store: Callable[[], Any],
        thumbnail_of: Callable[[tuple[str, int]], np.ndarray | None],
        message: Callable[[str], None],
        error: Callable[[str], None],
    ):
        super().__init__()
        self.session = session
        self.panel = panel
        self.alerts = alerts
        self._store = store
        self._thumbnail_of = thumbnail_of
        self._message = message
        self._error = error
        self._shown = -1
        self._counted: tuple[int, set[tuple[str, int]]] = (-1, set())
        self.draft: SampleDraft | None = None
        """the sample on show"""
        panel.changed.connect(self.forward_edits)
        panel.selected.connect(lambda: self.refresh(force=True))
        alerts.acknowledge_requested.connect(self.acknowledge)

    def counted(self, key: tuple[str, int]) -> bool:
        """Whether a sample of the session counts this organism (a copy of a bin opened
        from a second place, or a bin left out, is not): the gallery's filter, so its counts
        are the sample table's."""
        if self._counted[0] != self.session.version:
            keys = {(p.source, p.roi_index) for d in self.session.samples() for p in d.predictions}
            self._counted = (self.session.version, keys)
        return key in self._counted[1]

    def forward_edits(self) -> None:
        try:
            self.session.update(self.panel.settings())
        except PhytoscopeError as exc:
            self._error(str(exc))
        self.refresh()

    def refresh(self, force: bool = False) -> None:
        """Redraw the panels when the session changed (the window calls this on a timer)."""
        if not force and self.session.version == self._shown:
            return
        self._shown = self.session.version
        self.draft = self.panel.show_samples(self.session.samples(), self.session.notices())
        d = self.draft
        if self.session.rule_set is None or self.session.card is None:
            return
        if d is None or d.hab is None:
            why = "; ".join(d.problems) if d is not None else "no organism classified yet"
            self.alerts.show_message(f"HAB alerts: {why}")
            self.alerts.show_unknown(
                d.unidentified if d is not None else 0,
                d.unidentified_hab if d is not None else None,
            )
            return
        stored = {a.taxon: a for a in d.alerts if a.withdrawn_at is None}
        evidence = evidence_by_label(d.predictions, per_label=self.alerts.evidence_shown)
        self.alerts.show_result(
            d.hab, stored, self._thumbnail_of, d.unidentified, evidence, d.unidentified_hab
        )

    def save(self, manual: bool = True) -> list[Saved]:
        """Save every sample that can be (manual) or may be saved by itself (not manual)."""
        if not len(self.session):
            return []
        try:
            store = self._store()
            results = self.session.save(store) if manual else self.session.auto_save(store)
        except PhytoscopeError as exc:
            self._error(f"the sample could not be saved: {exc} — the results stay in this window")
            return []
        for r in results:
            if r.problems and manual:
                self._error(f"sample not saved: {'; '.join(r.problems)}")
            elif r.sample_id is not None and not r.unchanged and not r.problems:
                what = "saved" if r.created else f"updated (revision {r.revision})"
                n = sum(1 for a in r.alerts if a.withdrawn_at is None)
                self._message(f"sample {r.sample_id} {what} with {n} alert(s)")
        if not manual and not results:
            pending = [d for d in self.session.samples() if d.sample_id is None]
            if pending:
                self._message(
                    "sample not saved yet: give the site (and the time and volume for images "
                    "that are not IFCB bins), then click 'Save sample'"
                )
        self.refresh(force=True)
        self.saved.emit(results)
        return results

    def acknowledge(self, alert: Alert, who: str, note: str = "") -> None:
        """Store an acknowledgement the alert panel confirmed (a name is required there)."""
        if alert.id is None:
            self._error("save the sample first: only a saved alert can be acknowledged")
            return
        try:
            self.session.acknowledge(self._store(), alert.id, who, note)
        except PhytoscopeError as exc:
            self._error(f"acknowledgement not stored: {exc}")
            return
        if not self.panel.technician.text().strip():
            self.panel.technician.setText(who)
        self._message(f"{alert.taxon} alert acknowledged by {who} at its current concentration")
        self.refresh(force=True)

    def correct(
        self, records: list[Record], label: str, shown: Session, model: str
    ) -> list[Record]:
        """Store the technician's label for each organism (with its pixels, for training) and
        give it to the session; returns the records relabelled."""
        done = []
        for record in records:
            if record.label == label:
                continue
            p = record.prediction
            correction = Correction(
                p.source, p.roi_index, p.label, p.confidence, label, model,
                shown.run_ids[-1] if shown.run_ids else None,
                self.panel.technician.text().strip(),
            )  # fmt: skip
            try:
                add_correction(self._store(), correction, record.thumbnail)
            except PhytoscopeError as exc:
                self._error(f"correction not stored: {exc}")
                break
            shown.correct(record, label)
            self.session.correct(p.source, p.roi_index, label)
            done.append(record)
        if done:
            self._message(
                f"{len(done)} organism(s) relabelled as {label}; counts and alerts updated "
                "(click 'Save sample' to update the saved sample)"
            )
        return done

    def export_corrections(self, folder: Path) -> dict[str, int] | None:
        """Every corrected organism as a training folder (one sub-folder per class)."""
        try:
            written = export_training_folder(self._store(), folder)
        except PhytoscopeError as exc:
            self._error(str(exc))
            return None
        self._message(
            f"exported {sum(written.values())} corrected organism(s) into {len(written)} class "
            f"folder(s) in {folder}"
        )
        return written

    def report_open_alerts(self) -> None:
        """Alerts of earlier samples stay open until someone acknowledges them: say so."""
        try:
            store = self._store()
            opened = store.open_alerts()
        except PhytoscopeError as exc:
            self._error(f"cannot read earlier alerts: {exc}")
            return
        if opened:
            taxa = ", ".join(sorted({f"{a.taxon} ({a.level})" for a in opened}))
            self.alerts.show_earlier(
                f"<b>{len(opened)} alert(s) from earlier samples not acknowledged</b>: {taxa} "
                "— see the <b>Samples</b> tab"
            )
            self._message(
                f"{len(opened)} alert(s) from earlier samples are not acknowledged: {taxa}"
            )

    def new_sample(self) -> None:
        """Forget the organisms and the typed time; the saved samples stay in the store."""
        self.session.clear()
        self.panel.set_sampled_at(None)
        self.refresh(force=True)
