"""The Samples tab (#17): past samples by site and date, open alerts, re-open a sample into
the window's session, manual counts for the sample on show, and each monitored taxon over
time per site with its thresholds (pyqtgraph, log y). Samples are made by the core session
with labels given by hand, so every number is known."""

from __future__ import annotations

import shutil

from PySide6.QtCore import Qt

from phytoscope.core.analysis import AnalysisBatch, RoiFacts
from phytoscope.core.hab import load_rule_set
from phytoscope.core.samples import VolumeSpec
from phytoscope.core.session import SampleSession, SampleSettings
from phytoscope.gui.samples_tab import ALL_SITES, SamplesTab
from phytoscope.modelcard import ClassInfo
from phytoscope.storage import Store
from phytoscope.storage.corrections import Correction, add_correction
from phytoscope.types import Prediction
from tests.cards import card_of
from tests.conftest import DATA

RULES = load_rule_set("scotland_habreports")
CARD = card_of(ClassInfo("Dinophysis"), ClassInfo("detritus"))


def _save(store, card, site, when, labels, manual=(), files=()):
    """One sample of images in 5 mL (one organism = 200 per L), its run stored; ``files``:
    real images to stand for the organisms (else names that do not exist)."""
    settings = SampleSettings(site=site, sampled_at=when, volume=VolumeSpec.of(given_ml=5.0))
    s = SampleSession(card, RULES, settings)
    names = [str(f) for f in files] or [f"/{site}/{when}/img{i}.png" for i in range(len(labels))]
    folder = str(files[0].parent) if files else f"/{site}/{when}"
    preds = tuple(
        Prediction(name, 0, lab, 0.9, ((lab, 0.9),))
        for name, lab in zip(names, labels, strict=True)
    )
    run_id = store.start_run("onnxruntime", card.label, card.sha256)
    store.add_predictions(run_id, preds)
    s.add_run(run_id)
    s.add(AnalysisBatch(preds, facts=(RoiFacts(folder),) * len(preds)))
    for taxon, n, ml in manual:
        s.add_manual_count(taxon, n, ml)
    (saved,) = s.save(store)
    return saved.sample_id


def _history(store, card=CARD):
    ids = [
        _save(store, card, "Loch Creran", "2026-04-01T08:00Z", ["Dinophysis"]),
        _save(store, card, "Loch Creran", "2026-04-08T08:00Z", ["detritus"]),
        _save(
            store,
            card,
            "Loch Creran",
            "2026-04-15T08:00Z",
            ["Dinophysis"] * 3,
            manual=[("Alexandrium", 12, 50.0)],
        ),  # fmt: skip
        _save(store, card, "Scapa Flow", "2026-04-02T08:00Z", ["detritus"]),
    ]
    return ids


def test_samples_by_site_and_date_and_open_alerts_and_reopen_signal(qtbot, tmp_path):
    with Store(tmp_path / "r.sqlite") as store:
        ids = _history(store)
        errors: list[str] = []
        tab = SamplesTab(lambda: store, errors.append)
        qtbot.addWidget(tab)
        tab.refresh()
        assert [tab.site.itemText(i) for i in range(tab.site.count())] == [
            ALL_SITES, "Loch Creran", "Scapa Flow",
        ]  # fmt: skip
        assert tab.samples.rowCount() == 4
        # by site, newest first
        first = [tab.samples.item(r, 2).text() for r in range(3)]
        assert first == sorted(first, reverse=True)
        assert tab.samples.item(3, 1).text() == "Scapa Flow"
        # Dinophysis 1 in 5 mL = 200/L (red from 100) and Alexandrium by hand: open alerts
        texts = [tab.alerts.item(r, 3).text() for r in range(tab.alerts.rowCount())]
        assert any("Alexandrium" in t and "manual count" in t for t in texts)
        assert any(t.startswith("RED Dinophysis") for t in texts)
        tab.site.setCurrentText("Scapa Flow")
        assert tab.samples.rowCount() == 1
        tab.samples.selectRow(0)
        with qtbot.waitSignal(tab.reopen_requested) as blocker:
            qtbot.mouseClick(tab.reopen, Qt.MouseButton.LeftButton)
        assert blocker.args == [ids[3]]
        tab.samples.clearSelection()
        tab.alerts.selectRow(0)
        with qtbot.waitSignal(tab.reopen_requested) as blocker:
            qtbot.mouseClick(tab.reopen, Qt.MouseButton.LeftButton)
        assert blocker.args[0] in ids[:3]
        assert not errors


def test_a_taxon_over_time_is_drawn_on_log_y_with_its_thresholds(qtbot, tmp_path):
    with Store(tmp_path / "r.sqlite") as store:
        _history(store)
        tab = SamplesTab(lambda: store)
        qtbot.addWidget(tab)
        tab.refresh()
        tab.site.setCurrentText("Loch Creran")
        taxa = [tab.taxon.itemText(i) for i in range(tab.taxon.count())]
        assert taxa[:2] == ["Alexandrium", "Dinophysis"] or taxa[:2] == [
            "Dinophysis",
            "Alexandrium",
        ]
        tab.taxon.setCurrentText("Dinophysis")
        assert tab.plot.getPlotItem().ctrl.logYCheck.isChecked()
        items = tab.plot.getPlotItem().listDataItems()
        detected, not_detected, *lines = items
        assert list(detected.yData) == [200.0, 600.0]  # 1 and 3 in 5 mL
        assert list(not_detected.yData) == [200.0]  # the detection limit of 8 April
        bands = RULES.taxon("Dinophysis").bands
        # a presence level ("any cell found", 0.0001 in the rule file) is said, not drawn
        assert [ln.yData[0] for ln in lines] == [b.min_per_l for b in bands if b.min_per_l >= 1]
        assert "any cell found" in tab.series_note.text()
        assert "Dinophysis" in tab.series_note.text()
        tab.taxon.setCurrentText("Alexandrium")
        detected, *lines = tab.plot.getPlotItem().listDataItems()
        assert list(detected.yData) == [240.0] and "1 from manual counts" in tab.series_note.text()


def test_the_window_reopens_a_sample_and_takes_a_manual_count(qtbot, window, artefacts, tmp_path):
    card = window.backend_info.card
    folder = tmp_path / "images"
    folder.mkdir()
    files = [folder / "a.png", folder / "b.jpg", folder / "c.png"]
    shutil.copyfile(DATA / "images" / "smhi_cryptomonadales.png", files[0])
    shutil.copyfile(DATA / "images" / "pn_delicatissima_crop.jpg", files[1])
    shutil.copyfile(DATA / "images" / "pwssc_blob.png", files[2])
    labels = ["Dinophysis", "detritus_other", "detritus_other"]
    with Store(window.database) as store:
        sid = _save(store, card, "Loch Creran", "2026-04-01T08:00Z", labels, files=files)
        # a technician's correction made after the save comes back with the sample
        fix = Correction(str(files[2]), 0, "detritus_other", 0.9, "Dinophysis", card.label)
        add_correction(store, fix, None)
    tab = window.samples_tab
    assert window.tabs.tabText(window.tabs.indexOf(tab)) == "Samples"
    tab.refresh()
    assert tab.samples.rowCount() == 1
    window.resize(1366, 768)
    window.tabs.setCurrentWidget(tab)
    assert window.minimumSizeHint().height() <= 768 and window.minimumSizeHint().width() <= 1366
    window.grab().save(str(artefacts / "samples_tab_1366x768.png"))
    tab.samples.selectRow(0)
    qtbot.mouseClick(tab.reopen, Qt.MouseButton.LeftButton)
    assert len(window.sample_session) == 3
    (draft,) = window.sample_session.samples()
    assert draft.counts["Dinophysis"] == 2  # the correction counts
    assert draft.sample_id == sid and draft.saved and draft.site == "Loch Creran"
    assert window.sample_panel.site.text() == "Loch Creran"
    # the organisms are listed in the table and gallery with the technician's labels, and
    # their pictures read again from their files
    assert len(window.session) == 3 and window.predictions_model.rowCount() == 3
    assert window.session.by_key[(str(files[2]), 0)].label == "Dinophysis"
    qtbot.waitUntil(lambda: all(r.thumbnail is not None for r in window.session.records))
    window.refresh_panels()
    wiring = window.samples_wiring
    wiring.sync(force=True)
    box = tab.manual
    assert box.entry.isEnabled() and "Karenia mikimotoi" in box.hint.text()
    # the tab never makes the window taller than a 1366x768 laptop (words wrap, panes scroll)
    window.tabs.setCurrentWidget(tab)
    window.resize(1366, 768)
    qtbot.wait(50)
    assert window.height() <= 768 and window.width() <= 1366
    window.grab().save(str(artefacts / "samples_tab_reopened_1366x768.png"))
    box.entry.taxon.setCurrentText("Karenia mikimotoi")
    box.entry.count.setValue(5)
    box.entry.volume.setValue(10.0)
    qtbot.mouseClick(box.entry.add, Qt.MouseButton.LeftButton)
    with Store(window.database) as store:
        (m,) = store.manual_counts(sid)
        assert (m["taxon"], m["count"], m["volume_ml"]) == ("Karenia mikimotoi", 5, 10.0)
        assert store.sample(sid).revision == 2  # saved before: updated by the session's rule
        karenia = [a for a in store.alerts(sid) if a.taxon.startswith("Karenia")]
        assert karenia and karenia[0].model == "manual count"  # 500/L: yellow
    assert box.counts.count() == 1
    # the tab follows saves and acknowledgements: the Karenia alert is listed, then not
    opened = tab.alerts.rowCount()
    assert any("Karenia" in tab.alerts.item(r, 3).text() for r in range(opened))
    alert = next(a for a in window.samples.draft.alerts if a.taxon.startswith("Karenia"))
    window.sample_session.acknowledge(window.store(), alert.id, "A. Tech")
    assert tab.alerts.rowCount() == opened - 1
    box.counts.setCurrentRow(0)
    qtbot.mouseClick(box.remove, Qt.MouseButton.LeftButton)
    with Store(window.database) as store:
        assert store.manual_counts(sid) == [] and store.sample(sid).revision == 3
    # the alert panel's "this model cannot see" line takes a count too
    window.refresh_panels()
    entry = window.alert_panel.manual
    assert window.alert_panel.manual_entry and "Prorocentrum lima" in [
        entry.taxon.itemText(i) for i in range(entry.taxon.count())
    ]
    entry.taxon.setCurrentText("Prorocentrum lima")
    entry.count.setValue(2)
    entry.volume.setValue(25.0)
    qtbot.mouseClick(entry.add, Qt.MouseButton.LeftButton)
    with Store(window.database) as store:
        (m,) = store.manual_counts(sid)
        assert m["taxon"] == "Prorocentrum lima" and store.sample(sid).revision == 4
