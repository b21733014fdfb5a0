"""The alert panel: contrast of every level colour, plain words, the ladder of levels,
evidence at full size, acknowledgement with a remembered name and a note, unidentified
organisms and the manual-count entry (offscreen, real widgets and real rule sets)."""

from __future__ import annotations

import getpass
from dataclasses import replace

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QSettings, Qt

from phytoscope.core import hab
from phytoscope.core.sample import evidence_by_label, given_volume
from phytoscope.core.unidentified import describe_unidentified, unidentified
from phytoscope.gui import wording
from phytoscope.gui.alerts import AlertPanel
from phytoscope.gui.style import (
    MIN_CONTRAST,
    contrast_ratio,
    level_hex,
    relative_luminance,
    text_hex_for,
)
from phytoscope.modelcard import ClassInfo
from phytoscope.types import Prediction
from tests.cards import card_of

CARD = card_of(
    ClassInfo("Pseudo-nitzschia", chain_forming=True),
    ClassInfo("Dinophysis"),
    ClassInfo("Alexandrium"),
    ClassInfo("detritus_other", rank="other"),
)


# -- colours -------------------------------------------------------------------------------


def test_wcag_contrast_matches_the_published_reference_values():
    assert relative_luminance("#ffffff") == pytest.approx(1.0)
    assert relative_luminance("#000000") == 0.0
    assert contrast_ratio("#000000", "#ffffff") == pytest.approx(21.0)
    # WebAIM: #777777 on white is 4.48:1 (fails AA), #767676 is 4.54:1 (passes)
    assert contrast_ratio("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)
    assert contrast_ratio("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)
    # the colours of issue #17: white on that yellow (1.7:1) and orange (2.5:1)
    assert contrast_ratio("#f0c419", "#ffffff") < 2.0
    assert contrast_ratio("#f08c00", "#ffffff") < 2.6


@pytest.mark.parametrize("name", hab.available_rule_sets())
def test_every_level_of_every_shipped_rule_set_has_readable_text(name):
    rule_set = hab.load_rule_set(name)
    colours = {}
    for level in rule_set.levels:
        background = level_hex(level, rule_set.levels)
        ratio = contrast_ratio(background, text_hex_for(background))
        assert ratio >= MIN_CONTRAST, f"{name} {level}: {background} {ratio:.2f}:1"
        colours[level] = background
    # the outlined (not reached) chips: dark text on white
    assert contrast_ratio("#212529", "#ffffff") >= MIN_CONTRAST
    # every level its own colour, so a glance tells them apart
    assert len(set(colours.values())) == len(colours), colours


# -- words ---------------------------------------------------------------------------------


def assessments(counts, ml=0.4, rule_set="scotland_habreports"):
    rs = hab.load_rule_set(rule_set)
    result = hab.assess(counts, given_volume(ml), CARD, rs)
    return rs, result, {a.taxon: a for a in result.assessments}


def test_headlines_are_plain_words_with_numbers_and_levels():
    rs, _, by = assessments({"Dinophysis": 1, "Pseudo-nitzschia": 25}, ml=10.0)
    # 1 in 10 mL = 100 cells/L: exactly Scotland's red edge for Dinophysis (>=)
    assert wording.headline(by["Dinophysis"]) == "Dinophysis: 100 cells/L — at the red level (100)"
    rs, _, by = assessments({"Pseudo-nitzschia": 31}, ml=0.5)
    # 62,000 chains/L: cells >= chains, so "at least"; never "chains/L: cells may be higher"
    text = wording.headline(by["Pseudo-nitzschia"])
    assert text == "Pseudo-nitzschia: at least 62,000 cells/L — above the red level (50,000)"
    assert "may be higher" not in text and "present" not in text
    assert "each chain has one or more cells" in wording.chain_note(by["Pseudo-nitzschia"])
    _, _, by = assessments({}, ml=0.4)
    assert wording.headline(by["Alexandrium"]).startswith("Alexandrium: none found")


def test_after_yellow_the_action_levels_and_the_distance_to_the_next_are_said():
    rs, _, by = assessments({"Dinophysis": 1}, ml=20.0)  # 50 cells/L: yellow (from any cell)
    a = by["Dinophysis"]
    assert a.level == "yellow"
    steps = wording.ladder(a, rs)
    assert [(s.level, s.reached, s.current) for s in steps] == [
        ("yellow", True, True),
        ("orange", False, False),
        ("red", False, False),
    ]
    assert wording.next_step(a) == "Next: orange at 80 cells/L — 30 cells/L away (62 % of it now)."
    _, _, by = assessments({}, ml=10.0, rule_set="england_wales_fsa")
    # nothing found: the distance in organisms to find, not a meaningless concentration gap
    assert "would have to be found" in wording.next_step(by["Pseudo-nitzschia"])


def test_unidentified_organisms_are_counted_by_reason():
    predictions = [
        Prediction("a", 0, "unknown", 0.4, (), unknown_reason="novel"),
        Prediction("a", 1, "unknown", 0.5, (), unknown_reason="unsure"),
        Prediction("a", 2, "unknown", 0.5, (), unknown_reason="novel"),
        Prediction("a", 3, "Dinophysis", 0.9, ()),
    ]
    counts = unidentified(predictions)  # the core's count, the one the window shows
    assert counts == {"novel": 2, "unsure": 1}
    text = describe_unidentified(counts)  # the words of the CLI, the report and the window
    assert text.startswith("3 organisms not identified: check by microscope")
    assert "2 unlike any class" in text and "1 too uncertain" in text
    assert describe_unidentified(0) == ""
    closest = describe_unidentified(counts, {"Pseudo-nitzschia": 2})
    assert "2 closest to Pseudo-nitzschia (HAB-relevant)" in closest


def test_thresholds_and_confidences_are_never_shown_contradicting_each_other():
    assert wording.threshold_percent(0.983) == "98.3 %"
    assert wording.threshold_percent(0.98249) == "98.249 %"
    # one decimal would print 98.3 % for an organism that is "unknown" below 98.3 %
    assert wording.confidence_percent(0.9826, 0.983) == "98.26 %"
    assert wording.confidence_percent(0.9824, 0.983) == "98.2 %"
    assert wording.confidence_percent(0.98299, 0.983) == "98.299 %"
    assert wording.confidence_percent(0.5) == "50.0 %"


# -- the panel -----------------------------------------------------------------------------


@pytest.fixture
def qsettings(tmp_path):
    return QSettings(str(tmp_path / "phytoscope.ini"), QSettings.Format.IniFormat)


def chain_image(h=30, w=300):
    image = np.full((h, w), 200, np.uint8)
    image[h // 2 - 3 : h // 2 + 3, 10:-10] = 40  # a long thin chain
    return image


def stored_alerts(result, predictions):
    alerts = hab.make_alerts(result, "tiny", evidence_by_label(predictions), sample_id=7)
    return {a.taxon: replace(a, id=i + 1) for i, a in enumerate(alerts)}


def make_panel(qtbot, qsettings, width=420):
    panel = AlertPanel(qsettings)
    qtbot.addWidget(panel)
    panel.resize(width, 900)
    panel.show()
    return panel


def test_panel_shows_alerts_first_with_ladder_evidence_and_unknowns(qtbot, qsettings, artefacts):
    rs, result, _ = assessments({"Pseudo-nitzschia": 25, "Dinophysis": 1}, ml=20.0)
    predictions = [Prediction(f"pn{i}.png", i, "Pseudo-nitzschia", 0.9, ()) for i in range(25)]
    predictions.append(Prediction("d.png", 0, "Dinophysis", 0.8, ()))
    alerts = stored_alerts(result, predictions)
    images = {(p.source, p.roi_index): chain_image() for p in predictions}
    panel = make_panel(qtbot, qsettings)
    panel.show_result(result, alerts, images.get, {"novel": 9, "unsure": 3})
    qtbot.waitUntil(lambda: panel.card_of["Pseudo-nitzschia"].evidence.shown >= 1)

    assert "Scotland" in panel.title.text() and "2 alerts" in panel.title.text()
    assert panel.unknown_box.isVisible()
    assert panel.unknown.text().startswith("12 organisms not identified: check by microscope")
    # Dinophysis is yellow: orange and red are still on show as the levels to come
    dino = panel.card_of["Dinophysis"]
    chips = [w.text() for w in dino.ladder.findChildren(type(dino.chip))]
    assert any(t.startswith("orange") for t in chips) and any(t.startswith("red") for t in chips)
    assert "Next: orange" in dino.details.text()
    # evidence: at least 96 px high, a click opens the organism at full size
    pn = panel.card_of["Pseudo-nitzschia"]
    button = pn.evidence.buttons[0]
    # a 10:1 chain: as long as the row allows and never a sliver (issue #17: 38 px icons)
    assert button.iconSize().width() >= 4 * 96 and button.iconSize().height() >= 48
    assert "middle of a long chain" in button.toolTip()
    assert "more in the gallery" in pn.evidence.more.text()
    with qtbot.waitSignal(panel.evidence_opened) as opened:
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    assert opened.args == [("pn0.png", 0)]
    dialog = panel.last_dialog
    assert dialog.isVisible() and dialog.view.box_count == 0
    assert dialog.view._pixmap.pixmap().width() == 300  # the full image, not the thumbnail
    dialog.close()
    # the taxa this model cannot see, with the entry for a microscope count
    assert "Karenia mikimotoi" in panel.not_monitored.text() and panel.manual.isVisible()
    assert panel.grab().save(str(artefacts / "alert_panel.png"))


def test_thumbnails_are_at_least_96_pixels_and_upright_chains_lie_flat(qtbot):
    from phytoscope.gui.evidence import thumbnail_pixmap

    cell, turned, cropped = thumbnail_pixmap(np.full((50, 60), 128, np.uint8))
    assert cell.height() == 96 and not turned and not cropped
    upright, turned, _ = thumbnail_pixmap(np.full((200, 50), 128, np.uint8))
    assert turned and upright.height() == 96 and upright.width() == 384


def test_acknowledge_is_always_visible_and_sends_name_and_note(qtbot, qsettings, monkeypatch):
    rs, result, _ = assessments({"Alexandrium": 1}, ml=1.0)
    alerts = stored_alerts(result, [Prediction("a.png", 0, "Alexandrium", 0.9, ())])
    panel = make_panel(qtbot, qsettings, width=340)  # narrow: a docked panel on a laptop
    panel.show_result(result, alerts)
    card = panel.card_of["Alexandrium"]
    button = card.ack_button
    qtbot.waitUntil(button.isVisible)
    # inside the visible width: no horizontal scrollbar exists to hide it behind
    viewport = panel.scroller.viewport()
    right = button.mapTo(viewport, QPoint(button.width(), 0)).x()
    assert 0 < right <= viewport.width()
    assert panel.scroller.horizontalScrollBarPolicy() == Qt.ScrollBarPolicy.ScrollBarAlwaysOff
    assert panel.scroller.widget().width() <= viewport.width()

    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    form = card.form
    assert form is not None
    # a fresh computer: no name, and never the login name of a shared lab account
    assert form.name.text() == "" and form.name.text() != getpass.getuser()
    assert not form.confirm.isEnabled()
    qtbot.keyClicks(form.name, "A. Tester")
    qtbot.keyClicks(form.note, "phoned the harvester")
    with qtbot.waitSignal(panel.acknowledge_requested) as signal:
        qtbot.mouseClick(form.confirm, Qt.MouseButton.LeftButton)
    alert, name, note = signal.args
    assert alert.id == alerts["Alexandrium"].id and alert.level == "red"
    assert (name, note) == ("A. Tester", "phoned the harvester")

    # the name is remembered between sessions (a new panel on the same settings)
    again = AlertPanel(QSettings(qsettings.fileName(), QSettings.Format.IniFormat))
    qtbot.addWidget(again)
    again.show_result(result, alerts)
    again.card_of["Alexandrium"].ack_button.click()
    assert again.card_of["Alexandrium"].form.name.text() == "A. Tester"

    # once stored as acknowledged, the card says who and when, and offers no button
    acked = {
        "Alexandrium": replace(
            alerts["Alexandrium"],
            acknowledged_by="A. Tester",
            acknowledged_at="2026-11-23T09:15:00",
        )
    }
    panel.show_result(result, acked)
    card = panel.card_of["Alexandrium"]
    assert card.ack_button.isHidden()
    assert "Acknowledged by A. Tester at 2026-11-23 09:15" in card.ack_state.text()


def test_an_alert_not_yet_stored_cannot_be_acknowledged_and_says_why(qtbot, qsettings):
    _, result, _ = assessments({"Alexandrium": 1}, ml=1.0)
    panel = make_panel(qtbot, qsettings)
    panel.show_result(result, {})
    button = panel.card_of["Alexandrium"].ack_button
    qtbot.waitUntil(button.isVisible)
    assert not button.isEnabled()
    assert "Save the sample first" in button.toolTip()


def test_an_open_acknowledgement_form_survives_a_refresh(qtbot, qsettings):
    _, result, _ = assessments({"Alexandrium": 1}, ml=1.0)
    alerts = stored_alerts(result, [])
    panel = make_panel(qtbot, qsettings)
    panel.show_result(result, alerts)
    panel.card_of["Alexandrium"].ack_button.click()
    panel.card_of["Alexandrium"].form.name.setText("B. Bloggs")
    _, more, _ = assessments({"Alexandrium": 2}, ml=1.0)  # a batch arrived: new counts
    panel.show_result(more, alerts)
    assert panel.card_of["Alexandrium"].form.name.text() == "B. Bloggs"


def test_manual_count_entry_emits_taxon_count_and_volume(qtbot, qsettings):
    _, result, _ = assessments({}, ml=1.0)
    panel = make_panel(qtbot, qsettings)
    panel.show_result(result, {})
    entry = panel.manual
    assert [entry.taxon.itemText(i) for i in range(entry.taxon.count())] == list(
        result.not_monitored
    )
    entry.taxon.setCurrentText("Karenia mikimotoi")
    entry.count.setValue(12)
    with qtbot.assertNotEmitted(panel.manual_count_entered):
        entry.add.click()  # no volume typed: refused with a reason, not a made-up number
    assert entry.error.isVisible() and "volume" in entry.error.text()
    entry.volume.setValue(2.5)
    with qtbot.waitSignal(panel.manual_count_entered) as signal:
        entry.add.click()
    assert signal.args == ["Karenia mikimotoi", 12, 2.5]
    assert not entry.error.isVisible()


def test_manual_entry_can_be_left_out_until_counts_are_stored(qtbot, qsettings):
    _, result, _ = assessments({}, ml=1.0)
    panel = AlertPanel(qsettings, manual_entry=False)
    qtbot.addWidget(panel)
    panel.show_result(result, {})
    panel.show()
    assert not panel.manual.isVisible()
    assert panel.not_monitored.text().endswith("Count them by microscope.")
