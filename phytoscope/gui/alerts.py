"""The HAB alert panel: one card per monitored taxon, readable at arm's length.

Shows what :mod:`phytoscope.core.hab` decided (a ``HabResult`` and the stored ``Alert``
values) and forwards what the technician does (acknowledge with a name and a note, open an
organism, enter a microscope count); it decides no level itself. Every level colour keeps
black or white text at 4.5:1 or more (:mod:`.style`), the words come from :mod:`.wording`,
all of a taxon's levels stay on show, and the Acknowledge button sits in the card's first
row: the panel scrolls vertically only, so nothing hides behind a horizontal scrollbar.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from phytoscope.core.unidentified import describe_unidentified
from phytoscope.gui import wording
from phytoscope.gui.evidence import EvidenceStrip, ImageDialog
from phytoscope.gui.flow import FlowLayout
from phytoscope.gui.manual import ManualCountEntry
from phytoscope.gui.style import level_hex, text_hex_for
from phytoscope.types import Alert

Key = tuple[str, int]
NAME_KEY = "alerts/technician"
"""QSettings key of the name last used to acknowledge (remembered between sessions)."""


def chip(text: str, background: str, big: bool = False, current: bool = True) -> QLabel:
    """A level in its colour; levels not reached are outlined, not filled."""
    label = QLabel(text)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    size = "11pt" if big else "9pt"
    if current:
        style = (
            f"background:{background}; color:{text_hex_for(background)}; font-weight:bold;"
            f"border-radius:4px; padding:3px 8px; font-size:{size}"
        )
    else:
        style = (
            f"background:#ffffff; color:#212529; border:2px solid {background};"
            f"border-radius:4px; padding:1px 6px; font-size:{size}"
        )
    label.setStyleSheet(style)
    label.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
    return label


def wrapped(text: str = "", style: str = "") -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    if style:
        label.setStyleSheet(style)
    return label


class AckForm(QWidget):
    """Name (remembered) and an optional note, then *Confirm*."""

    confirmed = Signal(str, str)
    cancelled = Signal()

    def __init__(self, name: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.name = QLineEdit(name)
        self.name.setPlaceholderText("your name (required)")
        self.name.setAccessibleName("technician name")
        self.note = QLineEdit()
        self.note.setPlaceholderText("note (optional), e.g. 'phoned the harvester'")
        self.confirm = QPushButton("Confirm")
        self.confirm.setDefault(True)
        cancel = QPushButton("Cancel")
        self.name.textChanged.connect(self._check)
        self.name.returnPressed.connect(self._confirm)
        self.note.returnPressed.connect(self._confirm)
        self.confirm.clicked.connect(self._confirm)
        cancel.clicked.connect(self.cancelled)
        flow = FlowLayout(self, spacing=4)
        for widget, width in ((self.name, 170), (self.note, 240)):
            widget.setMinimumWidth(width)
            widget.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
            flow.addWidget(widget)
        flow.addWidget(self.confirm)
        flow.addWidget(cancel)
        self._check()

    def _check(self) -> None:
        self.confirm.setEnabled(bool(self.name.text().strip()))

    def _confirm(self) -> None:
        if self.name.text().strip():
            self.confirmed.emit(self.name.text().strip(), self.note.text().strip())


class AlertCard(QFrame):
    """One assessment: level, plain sentence, ladder of levels, evidence, acknowledgement."""

    def __init__(self, panel: AlertPanel, assessment: Any, rule_set: Any, alert: Alert | None):
        super().__init__()
        self.panel, self.assessment, self.alert = panel, assessment, alert
        a = assessment
        colour = level_hex(a.level, rule_set.levels)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setObjectName("alertcard")
        self.setStyleSheet(
            f"#alertcard {{ border: 1px solid #ced4da; border-left: 8px solid {colour};"
            " border-radius: 4px; background: #ffffff; }"
        )
        level = wording.level_words(a.level)
        level_text = (f"at least {level}" if a.lower_bound and a.is_alert else level).upper()
        self.chip = chip(level_text, colour, big=a.is_alert)
        self.headline = wrapped(wording.headline(a, rule_set.boundary))
        font = QFont(self.headline.font())
        font.setPointSizeF(12.5 if a.is_alert else 10.5)
        font.setBold(a.is_alert)
        self.headline.setFont(font)
        self.ack_button = QPushButton("Acknowledge")
        self.ack_button.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.ack_button.clicked.connect(lambda _checked=False: self.open_form())
        # level and button on a row of their own: the sentence below gets the full width
        head = QHBoxLayout()
        head.addWidget(self.chip)
        head.addStretch(1)
        head.addWidget(self.ack_button)
        layout = self.box = QVBoxLayout(self)
        layout.setContentsMargins(10, 6, 8, 6)
        layout.setSpacing(4)
        layout.addLayout(head)
        layout.addWidget(self.headline)
        self.details = wrapped(style="color:#343a40")
        layout.addWidget(self.details)
        self.ladder = QWidget()
        ladder = FlowLayout(self.ladder, spacing=4)
        steps = wording.ladder(a, rule_set)
        if steps and (a.is_alert or a.concentration.detected):
            ladder.addWidget(QLabel("Levels:"))
            for step in steps:
                edge = wording.threshold_words(step.min_per_l, rule_set.boundary)
                text = f"{wording.level_words(step.level)} · {edge}"
                ladder.addWidget(
                    chip(text, level_hex(step.level, rule_set.levels), current=step.current)
                )
            layout.addWidget(self.ladder)
        self.evidence = EvidenceStrip(limit=panel.evidence_shown)
        self.evidence.opened.connect(panel.open_evidence)
        layout.addWidget(self.evidence)
        self.ack_state = wrapped(style="color:#1b5e20")
        layout.addWidget(self.ack_state)
        self.form: AckForm | None = None
        self._fill(a, alert)

    def _fill(self, a: Any, alert: Alert | None) -> None:
        lines = [wording.interval_words(a), wording.next_step(a, self.panel.boundary)]
        lines.append(wording.chain_note(a))
        lines += wording.flag_words(a)
        self.details.setText("\n".join(line for line in lines if line))
        self.ack_state.hide()
        self.ack_button.setVisible(a.is_alert)
        if not a.is_alert:
            return
        if alert is None or alert.id is None:
            self.ack_button.setEnabled(False)
            self.ack_button.setToolTip(
                "Save the sample first: an alert can be acknowledged once it is stored"
            )
        elif not alert.open:
            self.ack_button.hide()
            when = (alert.acknowledged_at or "").replace("T", " ")[:16]
            self.ack_state.setText(f"✔ Acknowledged by {alert.acknowledged_by} at {when}")
            self.ack_state.show()
        else:
            self.ack_button.setEnabled(True)
            self.ack_button.setToolTip(
                "Record that you have seen this alert (your name, a note and the time are stored)"
            )
            if alert.reopened:  # acknowledged once, then the sample changed
                self.ack_button.setText("Acknowledge again")
                self.ack_state.setText(f"Open again: {alert.reopened}")
                self.ack_state.setStyleSheet("color:#a61e1e")
                self.ack_state.show()

    def set_evidence(self, keys: Sequence[Key], image_of: Any) -> None:
        if self.evidence.set_evidence(keys, image_of) == 0:
            self.evidence.hide()

    def open_form(self, name: str | None = None, note: str = "") -> None:
        if self.form is not None or self.alert is None:
            return
        self.form = AckForm(self.panel.technician_name() if name is None else name)
        self.form.note.setText(note)
        self.form.confirmed.connect(self._confirmed)
        self.form.cancelled.connect(self.close_form)
        self.box.addWidget(self.form)
        self.ack_button.setEnabled(False)
        self.form.name.setFocus() if not self.form.name.text() else self.form.note.setFocus()

    def close_form(self) -> None:
        if self.form is not None:
            self.form.setParent(None)
            self.form.deleteLater()
            self.form = None
        self.ack_button.setEnabled(self.alert is not None and self.alert.open)

    def _confirmed(self, name: str, note: str) -> None:
        alert = self.alert
        self.close_form()
        if alert is not None:
            self.panel.confirm_acknowledgement(alert, name, note)


class AlertPanel(QWidget):
    """Alerts first, then the other monitored taxa, the unidentified organisms, and the
    taxa this model cannot see with an entry for a microscope count."""

    acknowledge_requested = Signal(object, str, str)  # Alert (with its id), name, note
    evidence_opened = Signal(object)  # (source, roi_index)
    manual_count_entered = Signal(str, int, float)  # taxon, count, mL counted
    review_unknown_requested = Signal()

    def __init__(
        self,
        settings: QSettings | None = None,
        evidence_shown: int = 4,
        parent: QWidget | None = None,
        manual_entry: bool = True,
    ):
        super().__init__(parent)
        self.settings = settings if settings is not None else QSettings()
        self.evidence_shown = evidence_shown
        self.manual_entry = manual_entry
        """offer the microscope-count entry (off until the window stores such counts)"""
        self.boundary = ">="
        self.title = wrapped()
        font = QFont(self.title.font())
        font.setPointSizeF(11.5)
        self.title.setFont(font)
        self.title.setTextFormat(Qt.TextFormat.RichText)
        self.unknown = wrapped(
            style="background:#fff3bf; color:#3d2c00; border:1px solid #f08c00;"
            " padding:4px; font-size:11pt"
        )
        self.review_unknown = QPushButton("Review them")
        self.review_unknown.setToolTip("Show the unidentified organisms in the gallery")
        self.review_unknown.clicked.connect(self.review_unknown_requested)
        unknown_row = QHBoxLayout()
        unknown_row.setContentsMargins(0, 0, 0, 0)
        unknown_row.addWidget(self.unknown, 1)
        unknown_row.addWidget(self.review_unknown, 0, Qt.AlignmentFlag.AlignVCenter)
        self.unknown_box = QWidget()
        self.unknown_box.setLayout(unknown_row)
        self.unknown_box.hide()
        self.earlier = wrapped(style="color:#a61e1e")
        self.earlier.setTextFormat(Qt.TextFormat.RichText)
        self.cards_box = QWidget()
        self.cards = QVBoxLayout(self.cards_box)
        self.cards.setContentsMargins(0, 0, 4, 0)
        self.cards.setSpacing(6)
        self.not_monitored = wrapped(style="color:#343a40")
        self.not_monitored.setTextFormat(Qt.TextFormat.RichText)
        self.manual = ManualCountEntry()
        self.manual.entered.connect(self.manual_count_entered)
        self.manual.hide()
        self.cards.addStretch(1)
        inner = QWidget()
        inner_layout = QVBoxLayout(inner)
        inner_layout.setContentsMargins(0, 0, 0, 0)
        inner_layout.addWidget(self.cards_box)
        inner_layout.addWidget(self.not_monitored)
        inner_layout.addWidget(self.manual)
        inner_layout.addStretch(1)
        self.scroller = QScrollArea()
        self.scroller.setWidgetResizable(True)
        self.scroller.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroller.setFrameShape(QFrame.Shape.NoFrame)
        self.scroller.setWidget(inner)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.title)
        layout.addWidget(self.unknown_box)
        layout.addWidget(self.earlier)
        layout.addWidget(self.scroller, 1)
        self.setMinimumWidth(320)
        self._signature: Any = None
        self._image_of: Callable[[Key], np.ndarray | None] | None = None
        self.card_of: dict[str, AlertCard] = {}
        self.levels_shown: dict[str, str] = {}
        """taxon -> level on show (read by tests and the status bar)"""

    # -- the technician's name -------------------------------------------------------------

    def technician_name(self) -> str:
        """The name last used to acknowledge here (never the login name: a shared lab
        computer's login is not the person who signs)."""
        return str(self.settings.value(NAME_KEY, "") or "")

    def confirm_acknowledgement(self, alert: Alert, name: str, note: str) -> None:
        self.settings.setValue(NAME_KEY, name)
        self.settings.sync()
        self.acknowledge_requested.emit(alert, name, note)

    # -- showing -------------------------------------------------------------------------

    def show_message(self, text: str) -> None:
        """A sentence in place of the assessment (alerts off, volume missing)."""
        self.title.setText(text)

    def show_unknown(
        self, unknowns: int | Mapping[str, int], closest: Mapping[str, int] | None = None
    ) -> None:
        """How many organisms were not identified (they are in no alert), how many of them
        look most like a HAB taxon, with a way to review them; hidden when there are none."""
        text = describe_unidentified(unknowns, closest)
        self.unknown.setText(text)
        self.unknown_box.setVisible(bool(text))

    def show_earlier(self, text: str) -> None:
        self.earlier.setText(text)

    def show_result(
        self,
        result: Any,
        alerts: Mapping[str, Alert] | Iterable[Alert] | None = None,
        image_of: Callable[[Key], np.ndarray | None] | None = None,
        unknowns: int | Mapping[str, int] = 0,
        evidence: Mapping[str, Sequence[Key]] | None = None,
        closest: Mapping[str, int] | None = None,
    ) -> None:
        """Show a ``core.hab.HabResult``.

        Parameters
        ----------
        result
            The assessment of the sample under the rule set in use.
        alerts
            The stored alerts of this sample (by taxon, or a list): they carry the ids that
            make them acknowledgeable and their evidence.
        image_of
            Pixels of an organism by (source, roi_index), the largest kept (thumbnails are
            scaled from it; a click opens it at full size).
        unknowns
            Organisms labelled "unknown": a total or counts by reason (``"novel"``,
            ``"unsure"``): a sample draft's ``unidentified`` (core.samples).
        evidence
            Model class -> (source, roi_index) of its organisms, for taxa without a stored
            alert yet (before the sample is saved).
        closest
            Unknown organisms whose best class is HAB-relevant, by that class (a sample
            draft's ``unidentified_hab``).
        """
        stored = dict(alerts) if isinstance(alerts, Mapping) else {a.taxon: a for a in alerts or ()}
        rule_set = result.rule_set
        self.boundary = rule_set.boundary
        self._image_of = image_of
        n = len(result.alerts)
        state = (
            f"<span style='color:#a61e1e'><b>{n} alert{'s' if n != 1 else ''}</b></span>"
            if n
            else "no threshold reached"
        )
        self.title.setText(f"<b>HAB alerts</b> — {rule_set.title}: {state}")
        self.show_unknown(unknowns, closest)
        self._show_not_monitored(result.not_monitored)
        signature = (
            rule_set.name,
            tuple(
                (a.taxon, a.level, a.concentration.count, round(a.concentration.per_l, 3))
                for a in result.assessments
            ),
            tuple(sorted((t, a.id, a.acknowledged_at, a.reopened) for t, a in stored.items())),
            image_of is not None,
        )
        if signature == self._signature:
            return
        self._signature = signature
        forms = {
            t: (c.form.name.text(), c.form.note.text())
            for t, c in self.card_of.items()
            if c.form is not None
        }
        self._clear_cards()
        self.levels_shown = {a.taxon: a.level for a in result.assessments}
        for a in result.assessments:
            alert = stored.get(a.taxon)
            card = AlertCard(self, a, rule_set, alert)
            keys: list[Key] = list(alert.evidence) if alert is not None else []
            if not keys and evidence:
                for name in a.classes:
                    keys.extend(evidence.get(name, ()))
            if a.concentration.detected:
                card.set_evidence(keys, image_of)
            else:
                card.evidence.hide()
            self.cards.insertWidget(self.cards.count() - 1, card)
            self.card_of[a.taxon] = card
            if a.taxon in forms and alert is not None and alert.open:
                card.open_form(*forms[a.taxon])

    def _clear_cards(self) -> None:
        for card in self.card_of.values():
            card.setParent(None)
            card.deleteLater()
        self.card_of = {}

    def _show_not_monitored(self, taxa: Sequence[str]) -> None:
        if not taxa:
            self.not_monitored.setText("")
            self.manual.hide()
            return
        self.not_monitored.setText(
            "<b>This model cannot see</b> "
            + ", ".join(f"<i>{t}</i>" for t in taxa)
            + (
                ". Count them by microscope and enter the count here:"
                if self.manual_entry
                else ". Count them by microscope."
            )
        )
        self.manual.set_taxa(list(taxa))
        self.manual.setVisible(self.manual_entry)

    def open_evidence(self, key: Key) -> None:
        """Open an organism at full size (and tell the window, which may show its frame)."""
        self.evidence_opened.emit(key)
        image = self._image_of(key) if self._image_of is not None else None
        if image is None:
            return
        dialog = ImageDialog(key, image, parent=self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        self.last_dialog = dialog
