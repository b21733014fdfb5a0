"""About/doctor as a readable page (no JSON, no nulls), copy as text, the rule set by its
human name, and thresholds written so that no "unknown" confidence seems to pass them."""

from __future__ import annotations

import json

from PySide6.QtWidgets import QApplication

from phytoscope.config import Settings
from phytoscope.core import hab
from phytoscope.core.diagnostics import collect
from phytoscope.gui.about import AboutDialog
from phytoscope.gui.dialogs import SettingsDialog
from phytoscope.modelcard import ClassInfo, NoveltySpec
from tests.cards import card_of

CARD = card_of(
    ClassInfo("Pseudo-nitzschia", chain_forming=True),
    ClassInfo("Mesodinium"),
    ClassInfo("detritus/other", rank="other", threshold=0.983),
)


def test_about_is_a_readable_page_from_the_real_diagnostics(qtbot, artefacts):
    info = collect()  # the real facts of this machine, as `phytoscope info` prints them
    rule_set = hab.load_rule_set("scotland_habreports")
    dialog = AboutDialog(info, rule_set=rule_set, card=CARD, engine="onnxruntime fp32")
    qtbot.addWidget(dialog)
    dialog.show()
    page = dialog.page.toPlainText()
    text = dialog.plain_text()
    for body in (page, text):
        assert "Inference engines" in body and "Python packages" in body
        assert "onnxruntime" in body and "available" in body
        # no JSON and no nulls: missing things are said in words
        assert "null" not in body and "None" not in body and '": ' not in body
        assert "{" not in body
        # the rule set by its programme's name, not its code
        assert "Scotland: SAMS HABreports traffic lights" in body
        assert "'unknown' below 98.3 % for detritus/other" in body
    missing = [name for name, version in info["packages"].items() if version is None]
    if missing:  # e.g. TensorRT on this CPU machine
        assert f"{missing[0]}: not installed" in text
    # a section registered by another part of phytoscope is shown too
    assert "Power and memory sensors" in text
    dialog.copy_button.click()
    assert QApplication.clipboard().text() == text
    assert dialog.copy_button.text() == "Copied"
    assert dialog.grab().save(str(artefacts / "about.png"))


def test_about_without_model_or_rule_set_says_so():
    from phytoscope.gui.about import as_text, sections

    info = {"phytoscope": "0.1", "python": "3.11", "packages": {"tensorrt": None}}
    text = as_text(sections(info))
    assert "Model: none loaded" in text and "HAB rule set: none (alerts are off)" in text
    assert "tensorrt: not installed" in text
    assert json.dumps(None) not in text


def test_novelty_rule_is_explained_with_its_threshold():
    from phytoscope.gui.about import unknown_rules

    card = card_of(
        ClassInfo("A", threshold=0.98249),
        ClassInfo("B"),
    )
    card = type(card)(
        **{
            **card.__dict__,
            "novelty": NoveltySpec("energy", 7.25, chosen="95 % of validation kept"),
        }
    )
    lines = dict(unknown_rules(card))
    assert (
        "novelty score is above 7.25 (95 % of validation kept)"
        in lines["Unlike every trained class"]
    )
    assert lines["Too uncertain"] == "'unknown' below 98.249 % for A"
    framed = type(card)(
        **{**card.__dict__, "novelty": NoveltySpec("energy", 7.25, frame_threshold=9.5)}
    )
    assert (
        "above 7.25 (9.5 for organisms cut out of whole frames)"
        in dict(unknown_rules(framed))["Unlike every trained class"]
    )


def test_settings_show_rule_sets_by_name_and_return_their_code(qtbot):
    dialog = SettingsDialog(Settings(), ["scotland_habreports", "france_rephy"], CARD)
    qtbot.addWidget(dialog)
    names = [dialog.rule_set.itemText(i) for i in range(dialog.rule_set.count())]
    assert names == [
        hab.load_rule_set("scotland_habreports").title,
        hab.load_rule_set("france_rephy").title,
    ]
    dialog.select_rule_set("france_rephy")
    assert dialog.rule_set.currentText().startswith("France: Ifremer REPHY")
    assert dialog.values().rule_set == "france_rephy"
    labels = [w.text() for w in dialog.findChildren(type(dialog.error))]
    assert any("'unknown' below 98.3 % for detritus/other" in t for t in labels)
