"""Wiring of the Samples tab into the window (made by :func:`.samples_tab.install_samples`).

Re-open: the window's analysis is cleared (as *New sample* does) and the stored sample is
loaded into the window's own core session, whose settings are shown in the sample panel.
Manual counts (from the tab, or from the alert panel's "this model cannot see" line): given
to the core session for the sample on show, then saved by the
session's own rule (a sample saved before is updated; a new one once its site is given).
No sample rule lives here.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QObject, QTimer

from phytoscope.core.reports import read_rois, segment_of_run
from phytoscope.core.samples import SampleSettings
from phytoscope.errors import PhytoscopeError
from phytoscope.gui.jobs import THUMB_SIZE, shrink

if TYPE_CHECKING:
    from phytoscope.gui.samples_tab import SamplesTab

log = logging.getLogger(__name__)

SYNC_MS = 300


class SamplesWiring(QObject):
    def __init__(self, window: Any, tab: SamplesTab):
        super().__init__(window)
        self.window = window
        self.tab = tab
        self._shown = (-1, None)
        self._reopened = 0
        """counts re-opens: pictures read for an earlier one are not shown with a later one"""
        tab.reopen_requested.connect(self.reopen)
        tab.manual.entered.connect(self.add_manual)
        tab.manual.remove_requested.connect(self.remove_manual)
        # saved or acknowledged: the list, the open alerts and the series change
        window.sample_session.connect(
            lambda event, _: tab.refresh() if event in ("saved", "acknowledged") else None
        )
        alerts = window.alert_panel  # its "this model cannot see ..." line takes a count too
        if hasattr(alerts, "manual_count_entered"):
            alerts.manual_entry = True
            alerts.manual_count_entered.connect(self.add_manual)
        self.timer = QTimer(self)
        self.timer.setInterval(SYNC_MS)
        self.timer.timeout.connect(self.sync)
        self.timer.start()
        if window.database.exists():
            tab.refresh()

    # -- the sample on show ----------------------------------------------------------------

    def sync(self, force: bool = False) -> None:
        """Show the manual counts of the sample on show (when it or the session changed)."""
        session = self.window.sample_session
        draft = self.window.samples.draft
        state = (session.version, draft.key if draft else None)
        if not force and state == self._shown:
            return
        self._shown = state
        candidates = session.manual_candidates()
        if draft is None:
            self.tab.manual.show_sample(None, candidates, ())
            return
        name = f"sample {draft.sample_id}" if draft.sample_id else "the sample on show (not saved)"
        name += f" ({draft.site})" if draft.site else ""
        self.tab.manual.show_sample(name, candidates, draft.manual)

    def _technician(self) -> str:
        panel = self.window.sample_panel
        return panel.technician.text().strip() if hasattr(panel, "technician") else ""

    def add_manual(self, taxon: str, count: int, volume_ml: float) -> None:
        draft = self.window.samples.draft
        if draft is None:
            self.window.report_error("open or re-open a sample before entering a manual count")
            return
        try:
            self.window.sample_session.add_manual_count(
                taxon, count, volume_ml, key=draft.key, who=self._technician()
            )
        except PhytoscopeError as exc:
            self.window.report_error(f"manual count not added: {exc}")
            return
        self._after_change(f"manual count added: {taxon} {count} in {volume_ml:g} mL")

    def remove_manual(self, taxon: str) -> None:
        draft = self.window.samples.draft
        try:
            key = draft.key if draft else None
            self.window.sample_session.remove_manual_count(taxon, key=key)
        except PhytoscopeError as exc:
            self.window.report_error(f"manual count not removed: {exc}")
            return
        self._after_change(f"manual count of {taxon} removed")

    def _after_change(self, what: str) -> None:
        self.window.samples.refresh(force=True)
        self.window.samples.save(manual=False)  # the session's rule: saved before, or a site
        self.window._message(what + " (alerts updated; it is saved with the sample)")
        self.sync(force=True)

    # -- re-open -----------------------------------------------------------------------------

    def reopen(self, sample_id: int) -> None:
        window = self.window
        if getattr(window, "_jobs", None):
            window.report_error("wait for the analysis to finish (or stop it) before re-opening")
            return
        window.new_sample()
        try:
            window.sample_session.load(window.store(), sample_id)
        except (PhytoscopeError, KeyError) as exc:
            window.report_error(f"sample {sample_id} cannot be re-opened: {exc}")
            return
        show_settings(window.sample_panel, window.sample_session.settings)
        self._list_organisms()
        window.samples.refresh(force=True)
        window.tabs.setCurrentIndex(0)  # the sample and alert panels are on the first page
        n = len(window.sample_session)
        window._message(
            f"sample {sample_id} re-opened: {n} organism(s) from its runs, with corrections and "
            "manual counts; Save sample updates the same record"
        )
        self.sync(force=True)

    def _list_organisms(self) -> None:
        """The re-opened organisms in the table and gallery at once (with the technician's
        labels, so they can be corrected again); their pictures are read again from their
        sources on a worker thread, as the report does (a moved source shows none)."""
        window, core = self.window, self.window.sample_session
        store = window.store()
        found = {}
        for run_id in core.run_ids:
            for p in store.predictions(run_id):
                if core.facts_of(p.source, p.roi_index) is not None:
                    found[(p.source, p.roi_index)] = p
        if not found:
            return
        predictions = tuple(found.values())
        origins = tuple(core.facts_of(p.source, p.roi_index).bin_id for p in predictions)
        for record in window.session.add(predictions, (None,) * len(predictions), origins):
            label = core.label_of(record.prediction.source, record.prediction.roi_index)
            if label != record.label:
                window.session.correct(record, label)
        window.session.run_ids.extend(core.run_ids)
        window.refresh_panels()
        segment = segment_of_run(store, core.run_ids[-1] if core.run_ids else None)
        self._reopened += 1
        token, refs = self._reopened, list(found)

        def read(progress: Any) -> dict[tuple[str, int], np.ndarray]:
            return {
                (s, i): shrink(img, THUMB_SIZE)
                for s, i, img in read_rois(refs, segment)
                if img is not None
            }

        def show(thumbs: dict[tuple[str, int], np.ndarray]) -> None:
            if token != self._reopened:
                return  # another sample was re-opened (or a new one started) meanwhile
            shown = window.session
            for key, thumb in thumbs.items():
                record = shown.by_key.get(key)
                if record is not None and record.thumbnail is None:
                    record.thumbnail = thumb
                    shown.thumbnail_bytes += thumb.nbytes
            shown.version += 1
            window.refresh_panels()

        window.run_task(read, "re-reading the sample's images", "phytoscope-reopen", show)


def show_settings(panel: Any, settings: SampleSettings) -> None:
    """Put a re-opened sample's settings in the sample panel without echoing them back."""
    panel.blockSignals(True)
    try:
        for widget in (panel.site, panel.sampled_at, panel.method, panel.grouping):
            widget.blockSignals(True)
        panel.site.setText(settings.site)
        panel.set_sampled_at(settings.sampled_at)
        index = panel.grouping.findData(settings.grouping)
        if index >= 0:
            panel.grouping.setCurrentIndex(index)
        v = settings.volume
        method = {"given": 1, "utermohl": 2}.get(v.method, 0)
        panel.method.setCurrentIndex(method)
        panel._show_page(method)
        boxes = {
            "given_ml": panel.given_ml, "settled_ml": panel.settled_ml,
            "chamber_area_mm2": panel.chamber_mm2, "counted_area_mm2": panel.counted_mm2,
            "fields": panel.fields, "field_area_mm2": panel.field_mm2,
            "sample_ml": panel.sample_ml, "preservative_ml": panel.preservative_ml,
            "dilution": panel.dilution,
        }  # fmt: skip
        for name, box in boxes.items():
            value = getattr(v, name)
            box.blockSignals(True)
            box.setValue(value if value is not None else box.minimum())
            box.blockSignals(False)
    except AttributeError as exc:  # a panel laid out differently: the session still holds it
        log.warning("the sample panel could not show the re-opened settings: %s", exc)
    finally:
        for widget in (panel.site, panel.sampled_at, panel.method, panel.grouping):
            widget.blockSignals(False)
        panel.blockSignals(False)
