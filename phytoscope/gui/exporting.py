"""The window's *File → Export…* actions: a report of the sample on show (HTML, PDF or CSV,
the files ``phytoscope report`` writes) and its organisms as an EcoTaxa import zip (the
writer of ``phytoscope classify --ecotaxa``).

Nothing here formats a report or an EcoTaxa row: the core writers do
(:func:`phytoscope.core.reports.write_report`,
:func:`phytoscope.core.formats.ecotaxa.write_export` with
:func:`~phytoscope.core.formats.ecotaxa.roi_sample_facts`). This module picks the sample,
asks where to write, and runs the writer on a worker thread: a PDF or an EcoTaxa zip reads
every organism's pixels again, which must not freeze the window.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog

from phytoscope.core.formats import ecotaxa
from phytoscope.core.reports import REPORT_FORMATS, read_rois, write_report
from phytoscope.core.samples import SampleDraft
from phytoscope.gui.shell import Task

REPORT_FILTERS = {
    "html": "HTML page, one file to e-mail (*.html)",
    "pdf": "PDF, to print (*.pdf)",
    "csv": "CSV table, England & Wales style (*.csv)",
}


def report_format(path: Path, chosen_filter: str = "") -> str:
    """The format a report path asks for: its suffix, else the filter chosen, else HTML."""
    suffix = path.suffix.lower().lstrip(".")
    if suffix in REPORT_FORMATS:
        return suffix
    for fmt, text in REPORT_FILTERS.items():
        if text == chosen_filter:
            return fmt
    return "html"


class ReportExports(QObject):
    """Exports of the sample on show; ``written`` says what landed where (tests wait on it)."""

    written = Signal(object)  # Path of the file written

    def __init__(self, window: Any):
        super().__init__(window)
        self.window = window

    # -- the sample on show ----------------------------------------------------------------

    def _draft(self) -> SampleDraft | None:
        draft = self.window.samples.draft
        if draft is None or not draft.organisms:
            self.window.report_error("nothing to export yet: open a sample first")
            return None
        return draft

    def _saved_sample(self) -> int | None:
        """The id of the sample on show as stored now: a report is of the stored sample,
        so a sample not saved (or changed since) is saved first."""
        draft = self._draft()
        if draft is None:
            return None
        if draft.sample_id is None or not draft.saved:
            self.window.save_sample()
            draft = self.window.samples.draft
        if draft is None or draft.sample_id is None:
            self.window.report_error(
                "the report is of a saved sample: give the site (and the time and volume "
                "for images that are not IFCB bins), then export again"
            )
            return None
        return int(draft.sample_id)

    def _ask(self, title: str, name: str, filters: str) -> tuple[Path | None, str]:
        path, chosen = QFileDialog.getSaveFileName(self.window, title, name, filters)
        return (Path(path) if path else None), chosen

    # -- report ----------------------------------------------------------------------------

    def report_dialog(self) -> None:
        sample_id = self._saved_sample()
        if sample_id is None:
            return
        path, chosen = self._ask(
            "Export report", f"sample-{sample_id}.html", ";;".join(REPORT_FILTERS.values())
        )
        if path is not None:
            fmt = report_format(path, chosen)
            self.write_report(path if path.suffix else path.with_suffix(f".{fmt}"), sample_id)

    def write_report(self, path: Path, sample_id: int | None = None) -> Task | None:
        """Write the report of ``sample_id`` (default: the sample on show, saved first) to
        ``path``, in the format its suffix names; returns the running task."""
        if sample_id is None:
            sample_id = self._saved_sample()
            if sample_id is None:
                return None
        fmt = report_format(path)
        database = self.window.database

        def work(progress: Any) -> Path:
            from phytoscope.storage import Store

            with Store(database) as store:  # its own connection: this is another thread
                return write_report(store, sample_id, path, fmt)

        return self._run(work, f"report of sample {sample_id}", "phytoscope-report")

    # -- EcoTaxa ---------------------------------------------------------------------------

    def ecotaxa_dialog(self) -> None:
        draft = self._draft()
        if draft is None:
            return
        name = f"ecotaxa_{draft.sample_id}" if draft.sample_id is not None else "ecotaxa"
        path, _ = self._ask("Export to EcoTaxa", f"{name}.zip", "EcoTaxa import zip (*.zip)")
        if path is not None:
            self.write_ecotaxa(path if path.suffix else path.with_suffix(".zip"))

    def write_ecotaxa(self, path: Path) -> Task | None:
        """The organisms of the sample on show, with the technician's corrections, as an
        EcoTaxa import zip; returns the running task."""
        draft = self._draft()
        info = self.window.backend_info
        if draft is None:
            return None
        if info is None or info.card is None:
            self.window.report_error("EcoTaxa needs the model's classes: no model is loaded")
            return None
        session = self.window.sample_session
        settings = session.settings
        facts = {
            (p.source, p.roi_index): session.facts_of(p.source, p.roi_index)
            for p in draft.predictions
        }

        def facts_of(p: Any) -> ecotaxa.SampleFacts:
            fact = facts.get((p.source, p.roi_index))
            name = getattr(fact, "path", "") or p.source
            return ecotaxa.roi_sample_facts(fact, name, settings.site, settings.sampled_at)

        predictions, label = list(draft.predictions), info.card.label

        def work(progress: Any) -> Path:
            done = ecotaxa.write_export(
                path, predictions, facts_of, label, images=read_rois, progress=progress
            )
            return Path(done.path)

        return self._run(work, "EcoTaxa export", "phytoscope-ecotaxa")

    # -- corrections -----------------------------------------------------------------------

    def corrections(self, folder: str | None = None) -> dict[str, int] | None:
        """Every correction as a training folder (asked for when not given)."""
        if not folder:
            folder = QFileDialog.getExistingDirectory(
                self.window, "Export corrections as a training folder"
            )
        return self.window.samples.export_corrections(Path(folder)) if folder else None

    # -- running ---------------------------------------------------------------------------

    def _run(self, work: Any, what: str, name: str) -> Task:
        window = self.window
        window.statusBar().showMessage(f"writing the {what}…")

        def done(path: Path) -> None:
            window._message(f"{what} written to {path}")
            self.written.emit(path)

        task: Task = window.run_task(work, what, name, done)
        return task
