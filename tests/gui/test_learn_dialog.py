"""Tools → Add genus / improve model…, offscreen, in the real window: learn on the worker
shell, show the per-class result, switch the analysis to the new model, keep the old one
selectable; cancel and failures are messages, never a frozen window."""

from __future__ import annotations

from pathlib import Path

import pytest

from phytoscope.gui.dialogs import SettingsDialog
from tests.training.learn_fixtures import base_with_bank, write_class

from .conftest import close_window, open_window


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory) -> Path:
    return base_with_bank(tmp_path_factory.mktemp("learn_base")).parent


@pytest.fixture
def teach(tmp_path) -> Path:
    write_class(tmp_path / "teach" / "alexandrium", "Mesodinium", 24)
    write_class(tmp_path / "teach" / "Closterium", "ciliate", 8)
    return tmp_path / "teach"


@pytest.fixture
def learn_window(qtbot, tmp_path, base_dir):
    window = open_window(qtbot, tmp_path, base_dir, start_telemetry=False)
    qtbot.waitUntil(lambda: window.backend_info is not None, timeout=30000)
    yield window
    close_window(window)


def _run(qtbot, dialog, timeout=60000):
    task = dialog.start()
    assert task is not None
    with qtbot.waitSignal(task.finished, timeout=timeout) as blocker:
        pass
    return blocker.args[0]


def test_a_genus_is_learnt_shown_and_used_with_the_old_model_kept(
    qtbot, learn_window, teach, tmp_path, base_dir, artefacts
):
    window = learn_window
    window.act_learn.trigger()
    dialog = window.learn_dialog
    assert dialog.isVisible() and not dialog.use_button.isEnabled()
    dialog.add_folder(teach)
    dialog.corrections.setChecked(False)
    dialog.out_dir.setText(str(tmp_path / "learnt"))
    outcome = _run(qtbot, dialog)
    assert outcome.ok, outcome.message
    rows = {
        dialog.table.item(r, 0).text(): dialog.table.item(r, 5).text()
        for r in range(dialog.table.rowCount())
    }
    assert rows["Alexandrium"] == "HAB-monitored" and rows["Closterium"] == "rough: under 20 images"
    assert "Now monitored by the HAB rules: Alexandrium" in dialog.summary.text()
    assert dialog.progress.value() == 1 and dialog.stage.text() == "done"
    assert dialog.grab().save(str(artefacts / "learn_dialog.png"))
    # the next run would not overwrite this one's folder
    assert dialog.out_dir.text() != str(tmp_path / "learnt")

    dialog.use_button.click()
    assert window.settings.model_dir == str(tmp_path / "learnt")
    assert window.settings.recent_models == [str(base_dir)]
    qtbot.waitUntil(
        lambda: window.backend_info is not None and "Alexandrium" in window.backend_info.classes,
        timeout=30000,
    )
    settings = SettingsDialog(window.settings, ["scotland_habreports"], None, window)
    menu = settings.recent.menu()
    assert [a.text() for a in menu.actions()] == [str(base_dir)]
    menu.actions()[0].trigger()
    assert settings.values().model_dir == str(base_dir)
    assert settings.values().recent_models[0] == str(tmp_path / "learnt")
    settings.reject()
    dialog.close()


def test_cancel_stops_the_run_and_writes_nothing(qtbot, learn_window, teach, tmp_path):
    window = learn_window
    window.act_learn.trigger()
    dialog = window.learn_dialog
    dialog.add_folder(teach)
    dialog.out_dir.setText(str(tmp_path / "never"))
    task = dialog.start()
    assert task is not None and dialog.cancel_button.isEnabled()
    dialog.cancel()
    with qtbot.waitSignal(task.finished, timeout=60000) as blocker:
        pass
    outcome = blocker.args[0]
    if outcome.cancelled:  # the run may finish before the cancel on a fast machine
        assert "learning cancelled" in dialog.summary.text()
        assert not (tmp_path / "never").exists()
    assert dialog.start_button.isEnabled() and not dialog.cancel_button.isEnabled()
    dialog.close()


def test_a_failure_is_a_message_in_the_dialog(qtbot, learn_window, tmp_path):
    window = learn_window
    window.act_learn.trigger()
    dialog = window.learn_dialog
    assert dialog.start() is None and "Add a folder" in dialog.summary.text()
    write_class(tmp_path / "few" / "Dinophysis", "ciliate", 3)
    dialog.add_folder(tmp_path / "few")
    outcome = _run(qtbot, dialog)
    assert outcome.error is not None
    assert "learning failed" in dialog.summary.text() and "at least 5" in dialog.summary.text()
    assert not dialog.use_button.isEnabled()
    dialog.close()


def test_closing_the_window_mid_run_stops_the_learning(qtbot, tmp_path, base_dir, teach):
    window = open_window(qtbot, tmp_path, base_dir, start_telemetry=False)
    window.act_learn.trigger()
    dialog = window.learn_dialog
    dialog.add_folder(teach)
    dialog.out_dir.setText(str(tmp_path / "closed"))
    task = dialog.start()
    assert task is not None
    close_window(window)
    assert not task.running
