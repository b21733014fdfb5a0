"""Tools → *Add genus / improve model…*: teach the model a lab's genera from the window.

The dialog only gathers the request and shows what comes back: the learning itself is
:func:`phytoscope.training.learn.learn`, the function ``phytoscope learn`` calls, run on the
one worker shell (:class:`phytoscope.gui.shell.Task`) with its progress and Cancel. After a
run the per-class result is shown, and *Use this model* switches the analysis to the new
model through the window's settings; the model used until then stays selectable under
Tools → Settings → Recent.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from phytoscope.config import data_dir
from phytoscope.gui.shell import Outcome, Task
from phytoscope.progress import ProgressEvent
from phytoscope.training.learn import LearnRequest, LearnResult, learn

STAGES = {"read": "reading images", "embed": "embedding", "fit": "fitting", "write": "writing"}
COLUMNS = ("class", "origin", "images", "top-1 (cross-validated)", "kept", "note")


def default_out_dir() -> Path:
    """A new folder under the user's data folder for each run (never the base model's)."""
    return data_dir() / "models" / datetime.now().strftime("learnt-%Y%m%d-%H%M%S")


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


class LearnDialog(QDialog):
    """Pick class folders (and/or stored corrections), learn, look, and switch.

    Parameters
    ----------
    model
        The base model (folder or card) the window runs, "" for the installed one.
    database
        The window's results database: its corrections can be learnt from.
    use_model
        Called with the new model folder when the user clicks *Use this model*.
    """

    def __init__(
        self,
        model: str,
        database: Path | None,
        use_model: Any,
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        self.setWindowTitle("Add genus / improve model")
        self.setMinimumWidth(720)
        self.model = model
        self.database = database
        self.use_model = use_model
        self.task: Task | None = None
        self.learnt: LearnResult | None = None

        intro = QLabel(
            "Teach the model genera it does not know, or give one of its classes more "
            "examples. Each folder holds one sub-folder per class, named after the class "
            "(<i>Alexandrium/</i>, <i>Karenia/</i>): the layout <i>File → Export "
            "corrections…</i> writes. A new class needs at least 5 images; 20 or more give "
            "a trustworthy figure. The current model is never changed."
        )
        intro.setWordWrap(True)
        self.folders = QListWidget()
        self.folders.setMaximumHeight(110)
        add = QPushButton("Add folder…")
        add.clicked.connect(self._add_folder)
        remove = QPushButton("Remove")
        remove.clicked.connect(lambda: self.folders.takeItem(self.folders.currentRow()))
        folder_buttons = QVBoxLayout()
        folder_buttons.addWidget(add)
        folder_buttons.addWidget(remove)
        folder_buttons.addStretch(1)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folders, 1)
        folder_row.addLayout(folder_buttons)
        have_db = database is not None and Path(database).exists()
        self.corrections = QCheckBox("Also learn from the corrections made in the gallery")
        self.corrections.setEnabled(have_db)
        self.corrections.setChecked(have_db)
        self.out_dir = QLineEdit(str(default_out_dir()))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse_out)
        out_row = QHBoxLayout()
        out_row.addWidget(QLabel("New model folder"))
        out_row.addWidget(self.out_dir, 1)
        out_row.addWidget(browse)
        self.int8 = QCheckBox("Also write the INT8 form (faster on CPUs)")

        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.stage = QLabel("")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.summary = QLabel("")
        self.summary.setWordWrap(True)

        self.start_button = QPushButton("Learn")
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.use_button = QPushButton("Use this model")
        self.use_button.setEnabled(False)
        self.use_button.clicked.connect(self._use)
        close = QPushButton("Close")
        close.clicked.connect(self.reject)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)
        buttons.addWidget(self.use_button)
        buttons.addWidget(close)

        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(folder_row)
        layout.addWidget(self.corrections)
        layout.addLayout(out_row)
        layout.addWidget(self.int8)
        layout.addWidget(self.progress)
        layout.addWidget(self.stage)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.summary)
        layout.addLayout(buttons)
        if parent is not None:  # closing the window stops a run first
            parent.installEventFilter(self)

    # -- input -------------------------------------------------------------------------

    def add_folder(self, folder: Path | str) -> None:
        self.folders.addItem(str(folder))

    def _add_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of class sub-folders")
        if folder:
            self.add_folder(folder)

    def _browse_out(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "New model folder", self.out_dir.text())
        if folder:
            self.out_dir.setText(folder)

    def request(self) -> LearnRequest:
        folders = tuple(Path(self.folders.item(i).text()) for i in range(self.folders.count()))
        return LearnRequest(
            folders=folders,
            out_dir=Path(self.out_dir.text().strip()),
            model=Path(self.model) if self.model else None,
            int8=self.int8.isChecked(),
            corrections_db=self.database if self.corrections.isChecked() else None,
        )

    # -- the run ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.task is not None and self.task.running

    def start(self) -> Task | None:
        """Start learning on the worker shell; None when there is nothing to learn from."""
        if self.running:
            return None
        request = self.request()
        if not request.folders and request.corrections_db is None:
            self.summary.setText("Add a folder of class sub-folders, or use the corrections.")
            return None
        self.learnt = None
        self.table.setRowCount(0)
        self.summary.setText("")
        self.use_button.setEnabled(False)
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setRange(0, 0)
        task = Task(
            lambda progress: learn(request, progress), what="learning", name="phytoscope-learn"
        )
        task.progress.connect(self._on_progress)
        task.result.connect(self.show_result)
        task.failed.connect(self.summary.setText)
        task.finished.connect(self._on_finished)
        self.task = task.start()
        return task

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.stage.setText("cancelling…")

    def _on_progress(self, event: ProgressEvent) -> None:
        self.stage.setText(event.message or STAGES.get(event.stage, event.stage))
        if event.total:
            self.progress.setRange(0, event.total)
            self.progress.setValue(event.done)
        else:
            self.progress.setRange(0, 0)

    def _on_finished(self, outcome: Outcome) -> None:
        self.start_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if outcome.ok else 0)
        self.stage.setText("done" if outcome.ok else "")
        if outcome.ok:  # a second run must not overwrite this one's folder
            self.out_dir.setText(str(default_out_dir()))

    def show_result(self, result: LearnResult) -> None:
        self.learnt = result
        self.table.setRowCount(len(result.classes))
        for row, c in enumerate(result.classes):
            images = str(c.local_images) if c.origin != "base" else f"({c.bank_images} bank)"
            notes = []
            if c.rough:
                notes.append("rough: under 20 images")
            if c.monitored and c.origin != "base":
                notes.append("HAB-monitored")
            cells = (c.name, c.origin, images, _pct(c.top1), _pct(c.coverage), "; ".join(notes))
            for col, text in enumerate(cells):
                self.table.setItem(row, col, QTableWidgetItem(text))
        lines = [f"New model: {result.model_path.parent} ({result.seconds:.0f} s)."]
        if result.base_drop_points is not None:
            lines.append(
                f"Base classes on their own training embeddings: {_pct(result.base_top1_before)}"
                f" before, {_pct(result.base_top1_after)} after."
            )
        if result.newly_monitored:
            lines.append(
                "Now monitored by the HAB rules: " + ", ".join(result.newly_monitored) + "."
            )
        if result.skipped:
            lines.append(
                f"{len(result.skipped)} image(s) could not be read and were skipped, e.g. "
                f"{result.skipped[0].path.name}: {result.skipped[0].reason}."
            )
        self.summary.setText(" ".join(lines))
        self.use_button.setEnabled(True)

    def _use(self) -> None:
        if self.learnt is not None:
            self.use_model(str(self.learnt.model_path.parent))
            self.use_button.setEnabled(False)
            self.summary.setText(
                self.summary.text() + " The analysis now uses it; the previous model stays "
                "under Tools → Settings → Recent."
            )

    # -- ending ------------------------------------------------------------------------------

    def stop(self) -> None:
        """Cancel a run and wait for its thread (dialog closed, window closing)."""
        if self.task is not None:
            self.task.join(cancel=True)

    def done(self, code: int) -> None:  # noqa: D102 - every way a dialog closes
        self.stop()
        super().done(code)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802
        if event.type() == QEvent.Type.Close:
            self.stop()
        return False


def open_learn_dialog(window: Any) -> LearnDialog:
    """Show the dialog for the window's current model and database (the Tools action)."""
    settings = window.settings

    def use(model_dir: str) -> None:
        window.apply_settings(window.settings.with_model(model_dir))

    dialog = LearnDialog(settings.model_dir, window.database, use, window)
    dialog.int8.setChecked(settings.precision == "int8")  # so the new model can run as set
    window.learn_dialog = dialog
    dialog.show()
    return dialog
