"""Entry of a microscopist's count for a taxon the model cannot recognise.

The rule sets monitor taxa no model here was trained on (Karenia mikimotoi, Prorocentrum
lima ...). A technician counts them by microscope; this widget takes the taxon, the number
counted and the volume in which they were counted, and hands the three over by a signal:
storing the count with the sample and assessing it like a model count (marked "manual") is
the sample session's job.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from phytoscope.core.sample import ManualCount


class ManualCountEntry(QWidget):
    """Taxon, count and counted volume (mL), then *Add count*; emits :attr:`entered`."""

    entered = Signal(str, int, float)  # taxon, organisms counted, mL in which they were counted

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.taxon = QComboBox()
        self.taxon.setEditable(True)
        self.taxon.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.taxon.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.taxon.setToolTip("The taxon you counted (pick one or type its name)")
        self.taxon.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.count = QSpinBox()
        self.count.setRange(0, 10_000_000)
        self.count.setToolTip("Organisms of this taxon you counted (0 is a count too)")
        self.volume = QDoubleSpinBox()
        self.volume.setRange(0.0, 100_000.0)
        self.volume.setDecimals(3)
        self.volume.setSuffix(" mL")
        # no default volume: a count over a volume nobody typed would be a made-up number
        self.volume.setSpecialValueText("mL counted?")
        self.volume.setToolTip(
            "Millilitres of the original water in which you counted them "
            "(for a Utermöhl chamber: settled volume × counted area / chamber area)"
        )
        self.add = QPushButton("Add count")
        self.add.setToolTip("Store this count with the sample; alerts use it, marked 'manual'")
        self.add.clicked.connect(self._submit)
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #a61e1e")
        self.error.hide()
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.addWidget(QLabel("Taxon"), 0, 0)
        grid.addWidget(self.taxon, 0, 1, 1, 3)
        grid.addWidget(QLabel("Counted"), 1, 0)
        grid.addWidget(self.count, 1, 1)
        grid.addWidget(QLabel("in"), 1, 2)
        grid.addWidget(self.volume, 1, 3)
        grid.addWidget(self.add, 2, 3)
        grid.addWidget(self.error, 3, 0, 1, 4)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)

    def set_taxa(self, taxa: Sequence[str]) -> None:
        current = self.taxon.currentText()
        self.taxon.blockSignals(True)
        self.taxon.clear()
        self.taxon.addItems(list(taxa))
        if current in taxa:
            self.taxon.setCurrentText(current)
        self.taxon.blockSignals(False)

    def _submit(self) -> None:
        taxon = self.taxon.currentText().strip()
        volume = float(self.volume.value())
        problem = ""
        if not taxon:
            problem = "Name the taxon you counted."
        elif volume <= 0:
            problem = "Give the volume (mL) in which you counted: without it there are no cells/L."
        if problem:
            self.error.setText(problem)
            self.error.show()
            return
        self.error.hide()
        self.entered.emit(taxon, int(self.count.value()), volume)


class ManualCountsBox(QGroupBox):
    """The manual counts of the sample on show: which taxa to count (the rule set's taxa
    the model cannot see), the entry, the counts already entered and *Remove*."""

    entered = Signal(str, int, float)
    remove_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Manual counts (by microscope)", parent)
        self.target = QLabel(
            "No sample on show: analyse one, or select a stored one and click Re-open sample."
        )
        self.target.setWordWrap(True)
        self.hint = QLabel()
        self.hint.setWordWrap(True)
        self.hint.setStyleSheet("color: #555")
        self.entry = ManualCountEntry()
        self.entry.entered.connect(self.entered)
        self.counts = QListWidget()
        self.counts.setMaximumHeight(64)
        self.remove = QPushButton("Remove count")
        self.remove.setToolTip("Forget the selected count (the saved sample is updated)")
        self.remove.clicked.connect(self._remove)
        layout = QVBoxLayout(self)
        layout.addWidget(self.target)
        layout.addWidget(self.hint)
        layout.addWidget(self.entry)
        layout.addWidget(self.counts)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.remove)
        layout.addLayout(row)
        self.show_sample(None, (), ())

    def show_sample(
        self, name: str | None, candidates: Sequence[str], counts: Sequence[ManualCount]
    ) -> None:
        """``name``: the sample on show (None: there is none, and entry is off)."""
        self.entry.setEnabled(name is not None)
        if name is not None:
            self.target.setText(f"For {name}; each count over the volume you counted in.")
        else:
            self.target.setText(
                "No sample on show: analyse one, or select a stored one and click Re-open sample."
            )
        self.hint.setText(
            "The model cannot see these taxa of the rule set; count them by microscope: "
            + ", ".join(candidates)
            if candidates
            else ""
        )
        self.entry.set_taxa(candidates)
        self.counts.clear()
        for m in counts:
            self.counts.addItem(f"{m.taxon}: {m.count} in {m.volume_ml:g} mL" + (
                f" ({m.who})" if m.who else ""))  # fmt: skip
            self.counts.item(self.counts.count() - 1).setData(Qt.ItemDataRole.UserRole, m.taxon)
        self.remove.setEnabled(bool(counts))

    def _remove(self) -> None:
        item = self.counts.currentItem() or self.counts.item(0)
        if item is not None:
            self.remove_requested.emit(str(item.data(Qt.ItemDataRole.UserRole)))
