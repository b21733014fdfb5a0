"""The real main window, offscreen: real sources, the real ONNX Runtime backend on its
thread, the real results store, real telemetry; nothing mocked."""

from __future__ import annotations

from pathlib import Path

import pytest

from phytoscope.sources import iter_inputs
from phytoscope.sources.ifcb import IfcbBin
from phytoscope.storage import Store
from phytoscope.types import Roi, Skipped

from .conftest import DATA, analyse, close_window, open_window

IMAGES = DATA / "images"
NEW_BIN = DATA / "ifcb" / "D20220522T003051_IFCB134.roi"


def expected_items(paths):
    items = list(iter_inputs([str(p) for p in paths]))
    return [i for i in items if isinstance(i, Roi)], [i for i in items if isinstance(i, Skipped)]


def test_images_and_an_ifcb_bin_are_classified_shown_stored_and_charted(qtbot, window, artefacts):
    rois, skipped = expected_items([IMAGES, NEW_BIN])
    assert rois and skipped  # corrupt.png is in the fixtures
    result = analyse(qtbot, window, [IMAGES, NEW_BIN])
    assert not result.cancelled and result.error is None
    assert result.predictions == len(rois) and result.skipped == len(skipped)

    # every ROI is listed, with its genus drawn from the model's classes
    assert len(window.session) == len(rois)
    assert window.predictions_model.rowCount() == len(rois)
    classes = set(window.backend_info.classes) | {"unknown"}
    assert {r.prediction.label for r in window.session.records} <= classes
    assert all(len(r.prediction.top_k) == 3 for r in window.session.records)
    assert window.image_view.box_count >= 1 and window.image_view.source
    # the bad file is a message, not a crash
    assert any("corrupt.png" in m for m in window.messages)
    # committed batch by batch to the store, under the run the window started
    with Store(window.database) as store:
        stored = store.predictions(window.session.run_ids[-1])
    assert len(stored) == len(rois)
    # the bin and the other images are two samples: the bin's volume from its header, the
    # images' volume not given (counts only); the alert panel shows the bin's sample
    panel = window.sample_panel
    assert panel.choice.count() == 2 and panel.choice.currentText().startswith("IFCB")
    assert "mix IFCB bins and other images" in panel.warnings.text()
    assert "analysed in 1 IFCB bin" in panel.volume_note.text()
    qtbot.waitUntil(lambda: len(window.alert_panel.card_of) == 3, timeout=5000)
    assert set(window.alert_panel.levels_shown) == {"Pseudo-nitzschia", "Dinophysis", "Alexandrium"}
    assert "Karenia mikimotoi" in window.alert_panel.not_monitored.text()
    # telemetry arrives on its thread; charts redraw from their timer
    qtbot.waitUntil(
        lambda: len(window.charts.memory) >= 2 and window.charts.redraws >= 1, timeout=10000
    )
    rss = window.charts.rss_curve.getData()[1]
    assert rss is not None and rss[-1] > 50  # MiB: a real process with numpy and Qt loaded
    if window.charts.estimated:
        assert "estimated" in window.charts.title.text()
    # a screenshot of the real window as a test artefact
    path = artefacts / "main_window.png"
    assert window.grab().save(str(path)) and path.stat().st_size > 10_000


def test_correcting_labels_drives_counts_alerts_and_acknowledgement(qtbot, window, tmp_path):
    analyse(qtbot, window, [NEW_BIN])
    n = len(window.session)
    ml = IfcbBin(NEW_BIN).ml_analyzed
    per_l = n * 1000.0 / ml
    assert per_l >= 40  # Scotland: Alexandrium is red from 40 cells/L (resources/rules)

    # select every thumbnail in the gallery and relabel it Alexandrium
    gallery = window.gallery
    window.lower_tabs.setCurrentWidget(gallery)
    for label in list(window.session.counts):
        gallery.refresh()
        items = gallery.genera.findItems(
            label, __import__("PySide6.QtCore", fromlist=["Qt"]).Qt.MatchFlag.MatchStartsWith
        )
        gallery.genera.setCurrentItem(items[0])
        gallery.thumbs.selectAll()
        gallery.target.setCurrentText("Alexandrium")
        gallery.relabel.click()
    assert window.session.counts == {"Alexandrium": n}
    window.refresh_panels()
    assert window.alert_panel.levels_shown["Alexandrium"] == "red"
    assert window.alert_panel.levels_shown["Dinophysis"] == "green"

    # saving the sample stores the alert; acknowledging it records who, with a note
    sample_id = window.save_sample()
    assert sample_id is not None
    window.refresh_panels()

    def card():
        return window.alert_panel.card_of["Alexandrium"]

    assert card().ack_button.text() == "Acknowledge" and card().ack_button.isEnabled()
    card().ack_button.click()
    assert card().form.name.text() == ""  # never the login name
    card().form.name.setText("A. Tester")
    card().form.note.setText("phoned the harvester")
    card().form.confirm.click()
    with Store(window.database) as store:
        alerts = [a for a in store.alerts(sample_id) if a.taxon == "Alexandrium"]
        assert alerts[0].level == "red" and alerts[0].acknowledged_by == "A. Tester"
        assert len(store.db.execute("SELECT * FROM corrections").fetchall()) == n
    window.refresh_panels()
    assert "Acknowledged by A. Tester" in card().ack_state.text()
    assert window.alert_panel.technician_name() == "A. Tester"  # remembered for next time

    # #16.6: a later correction changes the concentration: the same record is updated and
    # the acknowledgement no longer covers the alert, which is open again
    record = window.session.records[0]
    window.correct([record], "Dinophysis")
    assert window.save_sample() == sample_id
    with Store(window.database) as store:
        assert len(store.samples()) == 1 and store.sample(sample_id).revision == 2
        (alert,) = [a for a in store.alerts(sample_id) if a.taxon == "Alexandrium"]
        assert alert.open and "A. Tester" in alert.reopened and alert.count == n - 1
    window.refresh_panels()
    assert card().ack_button.text() == "Acknowledge again"
    card().ack_button.click()
    assert card().form.name.text() == "A. Tester"

    # corrections export as a training folder of class sub-folders (the latest one wins)
    written = window.export_corrections(str(tmp_path / "training"))
    assert written == {"Alexandrium": n - 1, "Dinophysis": 1}
    assert len(list((tmp_path / "training" / "Alexandrium").glob("*.png"))) == n - 1


def test_given_volume_for_image_files(qtbot, window):
    analyse(qtbot, window, [IMAGES / "pn_delicatissima_crop.jpg"])
    assert "no volume" in window.alert_panel.title.text().lower()
    window.sample_panel.method.setCurrentText("Volume I give")
    window.sample_panel.given_ml.setValue(10.0)  # 1 organism in 10 mL = 100 cells/L
    window.refresh_panels()
    table = window.sample_panel.table
    label = window.session.records[0].prediction.label
    if label != "unknown":
        row = [table.item(r, 0).text() for r in range(table.rowCount())].index(label)
        assert table.item(row, 2).text().startswith("100 ")


def test_cancel_keeps_what_was_classified(qtbot, window):
    with qtbot.waitSignal(window.analysis_finished, timeout=60000) as blocker:
        window.open_paths([str(IMAGES), str(NEW_BIN)])
        window.cancel_jobs()
    result = blocker.args[0]
    assert result.cancelled
    assert len(window.session) == result.predictions  # nothing classified was dropped
    assert any("cancel" in m for m in window.messages)


def test_missing_camera_is_a_message_not_a_crash(qtbot, window):
    window.settings.camera = "99"
    with qtbot.waitSignal(window.analysis_finished, timeout=30000) as blocker:
        window.start_camera()
    assert blocker.args[0].error and "cannot open camera 99" in blocker.args[0].error
    assert any("cannot open camera 99" in m for m in window.messages)
    assert not window.act_camera.isChecked()


def test_missing_path_is_reported(qtbot, window, tmp_path):
    assert window.open_paths([str(tmp_path / "nope.png")]) is None
    assert any("does not exist" in m for m in window.messages)


def test_window_without_a_model_opens_and_says_so(qtbot, tmp_path):
    window = open_window(qtbot, tmp_path, None)
    qtbot.waitUntil(lambda: window.no_model_reason is not None, timeout=30000)
    assert window.banner.isVisible() and "No model installed" in window.banner.text()
    assert "no model installed" in window.status_model.text()
    assert window.open_paths([str(IMAGES)]) is None
    assert any("no model installed" in m for m in window.messages)
    close_window(window)


def test_settings_are_saved_and_reload_the_backend(qtbot, window, tmp_path):
    from dataclasses import replace

    from phytoscope.config import Settings

    new = replace(window.settings, rule_set="france_rephy", telemetry_hz=4.0)
    window.apply_settings(new)
    assert Settings.load(tmp_path / "settings.json").rule_set == "france_rephy"
    assert window.rule_set.name == "france_rephy"


def test_about_dialog_shows_phytoscope_info(qtbot, window):
    window.open_about()
    qtbot.waitUntil(lambda: getattr(window, "about_dialog", None) is not None, timeout=60000)
    text = window.about_dialog.plain_text()  # a readable page now, not JSON (issue #17)
    assert "Inference engines" in text and "onnxruntime: available" in text
    window.about_dialog.close()


@pytest.mark.skipif(
    not (Path(__file__).resolve().parents[2] / "models" / "genus.onnx.json").exists(),
    reason="the shipped model (models/genus.onnx) is not installed in this checkout",
)
def test_shipped_model_classifies_an_ifcb_bin(qtbot, tmp_path):
    from phytoscope.config import models_dir

    window = open_window(qtbot, tmp_path, models_dir())
    qtbot.waitUntil(
        lambda: window.backend_info is not None or window.no_model_reason is not None, timeout=60000
    )
    assert window.backend_info is not None, window.no_model_reason
    result = analyse(qtbot, window, [NEW_BIN])
    assert result.predictions == len(expected_items([NEW_BIN])[0])
    close_window(window)


def test_dropping_files_on_the_window_analyses_them(qtbot, window):
    from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
    from PySide6.QtGui import QDropEvent

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(NEW_BIN))])
    event = QDropEvent(
        QPointF(10, 10),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
    )
    with qtbot.waitSignal(window.analysis_finished, timeout=60000) as blocker:
        window.dropEvent(event)
    assert blocker.args[0].predictions == len(expected_items([NEW_BIN])[0])


def test_settings_dialog_validates_and_returns_settings(qtbot, window):
    from phytoscope.gui.dialogs import SettingsDialog

    dialog = SettingsDialog(
        window.settings, ["scotland_habreports", "france_rephy"], window.backend_info.card, window
    )
    qtbot.addWidget(dialog)
    dialog.select_rule_set("france_rephy")  # shown by its title, chosen by its code
    dialog.camera.setText("nvarguscamerasrc ! appsink")
    dialog.telemetry_hz.setValue(5.0)
    dialog.accept()
    assert dialog.result_settings.rule_set == "france_rephy"
    assert dialog.result_settings.camera == "nvarguscamerasrc ! appsink"
    assert dialog.result_settings.telemetry_hz == 5.0


def test_model_loading_can_be_cancelled(qtbot, tmp_path, hab_model_dir):
    window = open_window(qtbot, tmp_path, hab_model_dir, start_telemetry=False)
    assert window.cancel_button.isVisible()  # loading shows progress with a Cancel button
    window.cancel_button.click()
    qtbot.waitUntil(
        lambda: window.no_model_reason is not None or window.backend_info is not None, timeout=30000
    )
    # the load was either stopped, or had already finished before the click reached it
    if window.backend_info is None:
        assert "cancelled" in window.no_model_reason
        assert window.banner.isVisible()
    assert not window.cancel_button.isVisible()
    close_window(window)


def test_unusable_database_is_a_message_and_results_stay_in_the_window(
    qtbot, tmp_path, hab_model_dir
):
    from phytoscope.config import Settings
    from phytoscope.gui.main_window import MainWindow

    database = tmp_path / "results.sqlite"
    database.mkdir()  # a folder where the database file should be: SQLite cannot open it
    window = MainWindow(
        Settings(model_dir=str(hab_model_dir)),
        settings_path=tmp_path / "s.json",
        database=database,
        start_telemetry=False,
    )
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: window.backend_info is not None, timeout=30000)
    result = analyse(qtbot, window, [NEW_BIN])
    assert result.predictions == len(window.session) > 0
    assert any("results will not be saved" in m for m in window.messages)
    window.sample_panel.site.setText("Loch Creran")
    assert window.save_sample() is None
    assert any("could not be saved" in m for m in window.messages)
    close_window(window)


def test_a_model_card_file_can_be_chosen_instead_of_a_folder(qtbot, tmp_path, hab_model_dir):
    window = open_window(qtbot, tmp_path, hab_model_dir / "tiny.onnx.json", start_telemetry=False)
    qtbot.waitUntil(
        lambda: window.backend_info is not None or window.no_model_reason is not None, timeout=30000
    )
    assert window.backend_info is not None, window.no_model_reason
    assert window.backend_info.backend == "onnxruntime"
    close_window(window)


def test_closing_the_window_mid_analysis_joins_every_thread(qtbot, tmp_path, hab_model_dir):
    window = open_window(qtbot, tmp_path, hab_model_dir)
    qtbot.waitUntil(lambda: window.backend_info is not None, timeout=30000)
    window.open_paths([str(IMAGES), str(NEW_BIN)])
    close_window(window)  # while the job is queued or running
    with Store(window.database) as store:
        runs = store.runs()
    # whatever was classified before the close is in the store, and the run was closed
    assert all(r["finished_at"] for r in runs)


def test_open_alerts_of_earlier_samples_are_shown_at_start(qtbot, tmp_path, hab_model_dir):
    from phytoscope.core.sample import given_volume
    from phytoscope.types import Alert, Sample

    with Store(tmp_path / "results.sqlite") as store:
        sample_id = store.save_sample(
            Sample("files", ("x.png",), given_volume(1.0)), {"Alexandrium": 1}
        )
        store.add_alerts(
            sample_id,
            [
                Alert(
                    "Alexandrium",
                    "red",
                    40.0,
                    1000.0,
                    25.0,
                    5570.0,
                    1,
                    "cells/L",
                    "scotland_habreports",
                    "test",
                    "tiny",
                )
            ],
        )
    window = open_window(qtbot, tmp_path, hab_model_dir, start_telemetry=False)
    qtbot.waitUntil(lambda: bool(window.alert_panel.earlier.text()), timeout=10000)
    assert "Alexandrium (red)" in window.alert_panel.earlier.text()
    close_window(window)
