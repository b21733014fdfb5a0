"""The window of issue #17, driven as a technician would (offscreen, real backend and
store): it fits a 1366×768 laptop with nothing cut off and remembers its layout; messages
count on their tab and what changes the numbers stays on a banner; the charts dock closes
and comes back; reports and EcoTaxa zips are written from the File menu through the same
writers as the command line; the organisms not identified are one click from the gallery."""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import pytest
from PySide6.QtWidgets import (
    QAbstractScrollArea,
    QAbstractSpinBox,
    QComboBox,
    QHeaderView,
    QScrollBar,
    QSizePolicy,
    QWidget,
)

from phytoscope.storage import Store
from tests.ifcb_bins import make_bin

from .conftest import DATA, analyse, close_window, open_window

IMAGES = DATA / "images"
NEW_BIN = DATA / "ifcb" / "D20220522T003051_IFCB134.roi"
LAPTOP = (1366, 768)


def cut_off(window) -> list[str]:
    """Visible widgets given less room than they need to show their content whole."""
    found = []
    for widget in window.findChildren(QWidget):
        if not widget.isVisible() or isinstance(widget, (QHeaderView, QScrollBar)):
            continue
        if isinstance(widget.parentWidget(), (QAbstractScrollArea, QAbstractSpinBox, QComboBox)):
            continue  # a scroll area's viewport scrolls; an editor's line is the style's
        need = widget.minimumSize() if not widget.minimumSize().isNull() else None
        need = need or widget.minimumSizeHint()
        policy = widget.sizePolicy()
        name = f"{type(widget).__name__} {widget.objectName()!r}"
        if (
            widget.width() + 1 < need.width()
            and policy.horizontalPolicy() != QSizePolicy.Policy.Ignored
        ):
            found.append(f"{name}: {widget.width()} px wide, needs {need.width()}")
        if (
            widget.height() + 1 < need.height()
            and policy.verticalPolicy() != QSizePolicy.Policy.Ignored
        ):
            found.append(f"{name}: {widget.height()} px high, needs {need.height()}")
    return found


def test_the_window_fits_a_laptop_screen_with_nothing_cut_off(qtbot, window, artefacts):
    # no fixed size: the window opened within the screen it is on
    available = window.screen().availableGeometry()
    assert window.width() <= available.width() and window.height() <= available.height()
    analyse(qtbot, window, [IMAGES, NEW_BIN])  # long sample lines, a banner, alert cards
    window.refresh_panels()
    hint = window.minimumSizeHint()
    # a 1366×768 screen less a title bar and a panel still holds the whole window
    assert hint.width() <= LAPTOP[0] and hint.height() <= LAPTOP[1] - 68, hint
    window.resize(*LAPTOP)
    qtbot.waitUntil(lambda: window.size().width() == LAPTOP[0], timeout=5000)
    qtbot.wait(200)
    assert cut_off(window) == []
    # every permanent status-bar field and the Acknowledge column stay on screen
    for label in (window.status_backend, window.status_model, window.status_fps):
        assert label.geometry().right() <= window.statusBar().width()
    assert window.alert_panel.scroller.horizontalScrollBarPolicy().name == "ScrollBarAlwaysOff"
    assert window.grab().save(str(artefacts / "window_1366x768.png"))
    window.resize(1920, 1080)
    qtbot.wait(200)
    assert cut_off(window) == []


def test_splitters_and_the_charts_dock_are_remembered(qtbot, tmp_path, hab_model_dir):
    window = open_window(qtbot, tmp_path, hab_model_dir, start_telemetry=False)
    window.resize(780, 700)  # within the offscreen screen (800×800)
    qtbot.wait(100)
    window.splitters["analysis"].setSizes([300, 470])
    window.charts_dock.show()
    window.charts_dock.toggleViewAction().trigger()  # closed with one click
    assert not window.charts_dock.isVisible()
    sizes = window.splitters["analysis"].sizes()
    close_window(window)
    again = open_window(qtbot, tmp_path, hab_model_dir, start_telemetry=False)
    qtbot.wait(100)
    assert again.splitters["analysis"].sizes() == sizes
    assert not again.charts_dock.isVisible()
    again.charts_dock.toggleViewAction().trigger()  # and back with one
    assert again.charts_dock.isVisible()
    close_window(again)


def test_charts_dock_closes_gives_a_status_summary_and_leaves_the_benchmark_alone(qtbot, window):
    dock = window.charts_dock
    # open at first on a screen with room for it; closed on a short one (offscreen: 800)
    short = window.screen().availableGeometry().height() < 900
    assert dock.isVisible() is not short
    if short:
        dock.toggleViewAction().trigger()
    assert dock.isVisible() and not window.status_charts.isVisible()
    dock.toggleViewAction().trigger()
    assert not dock.isVisible() and window.status_charts.isVisible()
    qtbot.waitUntil(lambda: bool(window.status_charts.text()), timeout=10000)
    dock.toggleViewAction().trigger()
    window.tabs.setCurrentWidget(window.bench_page)  # the page has charts of its own
    assert not dock.isVisible()
    window.tabs.setCurrentWidget(window.analysis_page)
    assert dock.isVisible()


def test_messages_count_on_their_tab_and_what_changes_the_numbers_stays(qtbot, window, tmp_path):
    window.lower_tabs.setCurrentWidget(window.predictions_table)
    analyse(qtbot, window, [IMAGES])  # corrupt.png cannot be read
    tab = window.messages_badge.text
    assert tab.startswith("Messages (") and window.message_log.unseen_error
    banner = window.banner.text()
    assert "1 input skipped" in banner and "corrupt.png" in banner
    for i in range(5):  # later messages do not replace it
        window._message(f"something else {i}")
    assert "corrupt.png" in window.banner.text()
    window.lower_tabs.setCurrentWidget(window.message_log)
    assert window.messages_badge.text == "Messages"  # seen
    window.banner.rows["skipped"].dismiss.click()
    assert not window.banner.isVisible()

    # a truncated bin: the numbers are scaled, and the banner says so until dismissed
    window.new_sample()
    stem = make_bin(tmp_path / "bins", "D20220519T124533_IFCB134", rois=17, keep_rois=8)
    analyse(qtbot, window, [stem])
    window.refresh_panels()
    assert "8 of 17 ROIs" in window.banner.text() and "PARTIAL" in window.banner.text()


def test_no_model_banner_is_in_a_technicians_words(qtbot, tmp_path):
    window = open_window(qtbot, tmp_path, None, start_telemetry=False)
    qtbot.waitUntil(lambda: window.no_model_reason is not None, timeout=30000)
    text = window.banner.text()
    assert "What to do" in text and "Tools → Settings" in text
    assert not window.banner.rows["no-model"].dismiss.isVisible()  # stays while true
    close_window(window)


def test_unidentified_organisms_are_one_click_from_the_gallery(qtbot, window):
    analyse(qtbot, window, [NEW_BIN])
    window.correct(window.session.records[:2], "unknown")
    window.refresh_panels()
    label = window.sample_panel.unknown
    assert label.isVisible() and "2 organisms not identified" in label.text()
    assert "check by microscope" in label.text()
    assert "2 organisms not identified" in window.alert_panel.unknown.text()
    window.lower_tabs.setCurrentWidget(window.predictions_table)
    label.linkActivated.emit("unknown")
    assert window.lower_tabs.currentWidget() is window.gallery
    assert window.gallery.selected_label() == "unknown"
    assert window.gallery.model.rowCount() == 2
    window.lower_tabs.setCurrentWidget(window.predictions_table)
    window.alert_panel.review_unknown.click()
    assert window.lower_tabs.currentWidget() is window.gallery


def saved_bin_sample(qtbot, window) -> int:
    window.sample_panel.site.setText("Loch Creran")
    analyse(qtbot, window, [NEW_BIN])
    sample_id = window.samples.draft.sample_id
    assert sample_id is not None  # a site was given: saved at the end of the analysis
    return int(sample_id)


@pytest.mark.parametrize("fmt", ["html", "csv", "pdf"])
def test_export_report_writes_what_phytoscope_report_writes(qtbot, window, tmp_path, fmt):
    pytest.importorskip("matplotlib") if fmt == "pdf" else None
    from phytoscope.core.reports import write_report

    sample_id = saved_bin_sample(qtbot, window)
    path = tmp_path / f"report.{fmt}"
    with qtbot.waitSignal(window.exports.written, timeout=60000) as written:
        window.exports.write_report(path)
    assert written.args[0] == path and path.stat().st_size > 0
    reference = tmp_path / f"reference.{fmt}"
    with Store(window.database) as store:
        write_report(store, sample_id, reference, fmt)
    if fmt == "csv":
        rows = list(csv.DictReader(path.read_text(encoding="utf-8").splitlines()))
        assert rows[0]["sample_id"] == str(sample_id) and rows[0]["site"] == "Loch Creran"
        assert path.read_text(encoding="utf-8") == reference.read_text(encoding="utf-8")
    elif fmt == "html":
        page = path.read_text(encoding="utf-8")
        assert "Loch Creran" in page and f"Sample {sample_id}" in page
    else:
        assert path.read_bytes().startswith(b"%PDF")
    assert any(f"written to {path}" in m for m in window.messages)


def test_export_report_from_the_file_menu_saves_the_sample_first(
    qtbot, window, tmp_path, monkeypatch
):
    from PySide6.QtWidgets import QFileDialog

    analyse(qtbot, window, [IMAGES / "pn_delicatissima_crop.jpg"])
    assert window.samples.draft.sample_id is None  # no volume: it cannot be saved
    asked = []

    def save_name(parent, title, name, filters):
        asked.append((title, name, filters))
        return str(tmp_path / "monday"), "HTML page, one file to e-mail (*.html)"

    monkeypatch.setattr(QFileDialog, "getSaveFileName", save_name)
    window.act_report.trigger()  # refused: the report is of a saved sample
    assert not asked and any("saved sample" in m for m in window.messages)
    window.sample_panel.site.setText("Loch Creran")
    window.sample_panel.method.setCurrentText("Volume I give")
    window.sample_panel.given_ml.setValue(10.0)
    window.sample_panel.set_sampled_at("2024-06-01T10:00:00+00:00")
    with qtbot.waitSignal(window.exports.written, timeout=60000) as written:
        window.act_report.trigger()
    assert written.args[0] == tmp_path / "monday.html"
    assert "PDF" in asked[0][2] and "CSV" in asked[0][2]
    with Store(window.database) as store:
        assert len(store.samples()) == 1


def test_export_to_ecotaxa_writes_the_sample_on_show(qtbot, window, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    analyse(qtbot, window, [NEW_BIN])
    window.correct(window.session.records[:1], "Dinophysis")  # corrections travel
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a: (str(tmp_path / "eco"), ""))
    with qtbot.waitSignal(window.exports.written, timeout=60000) as written:
        window.act_ecotaxa.trigger()
    path = Path(written.args[0])
    assert path == tmp_path / "eco.zip"
    n = len(window.session)
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        (tsv,) = [name for name in names if name.endswith(".tsv")]
        rows = archive.read(tsv).decode("utf-8-sig").splitlines()
    assert len([name for name in names if name.endswith(".png")]) == n
    assert len(rows) == 2 + n  # header, types, one row per organism
    header = rows[0].split("\t")
    first = dict(zip(header, rows[2].split("\t"), strict=True))
    assert first["sample_id"] == "D20220522T003051_IFCB134"
    assert first["acq_instrument"] == "IFCB"
    assert sum("Dinophysis" in row for row in rows[2:]) >= 1


def test_a_microscope_count_typed_in_the_alert_panel_is_stored_with_the_sample(qtbot, window):
    sample_id = saved_bin_sample(qtbot, window)
    window.refresh_panels()
    panel = window.alert_panel
    assert "Karenia mikimotoi" in panel.not_monitored.text() and panel.manual.isVisible()
    panel.manual.taxon.setCurrentText("Karenia mikimotoi")
    panel.manual.count.setValue(5)
    panel.manual.volume.setValue(10.0)  # 500 cells/L
    panel.manual.add.click()
    with Store(window.database) as store:
        (count,) = store.manual_counts(sample_id)
        assert (count["taxon"], count["count"], count["volume_ml"]) == (
            "Karenia mikimotoi",
            5,
            10.0,
        )
        karenia = [a for a in store.alerts(sample_id) if a.taxon.startswith("Karenia")]
        assert karenia and karenia[0].model == "manual count"


def test_the_gallery_gets_the_height_to_review_and_gives_it_back(qtbot, window):
    analyse(qtbot, window, [NEW_BIN])
    left = window.splitters["left"]
    left.setSizes([600, 200])
    before = left.sizes()
    window.lower_tabs.setCurrentWidget(window.gallery)
    sizes = left.sizes()
    assert sizes[1] >= 0.55 * sum(sizes)
    window.lower_tabs.setCurrentWidget(window.predictions_table)
    assert left.sizes() == before


def test_about_is_a_readable_page_of_what_is_in_use(qtbot, window):
    window.open_about()
    qtbot.waitUntil(lambda: getattr(window, "about_dialog", None) is not None, timeout=60000)
    text = window.about_dialog.plain_text()
    assert f"HAB rule set: {window.rule_set.title}" in text  # its name, not its code
    assert f"Model: {window.backend_info.card.label}" in text and "null" not in text
    window.about_dialog.copy_button.click()
    from PySide6.QtWidgets import QApplication

    assert QApplication.clipboard().text() == text
    window.about_dialog.close()


def test_panes_keep_their_width_from_one_sample_to_the_next(qtbot, window):
    window.resize(780, 700)
    analyse(qtbot, window, [NEW_BIN])
    window.refresh_panels()
    qtbot.wait(100)
    sizes = window.splitters["analysis"].sizes()
    window.new_sample()
    analyse(qtbot, window, [IMAGES])  # long file names, a banner, another sample
    window.refresh_panels()
    qtbot.wait(100)
    assert window.splitters["analysis"].sizes() == sizes


def test_gallery_counts_are_the_sample_tables_when_a_bin_is_opened_twice(qtbot, window, tmp_path):
    from phytoscope.gui.gallery import group_counts
    from tests.ifcb_bins import copy_bin

    analyse(qtbot, window, [copy_bin(tmp_path / "a")])
    analyse(qtbot, window, [copy_bin(tmp_path / "b")])  # the same bin, another place
    window.lower_tabs.setCurrentWidget(window.gallery)
    window.gallery.refresh(force=True)
    (draft,) = window.sample_session.samples()
    shown = group_counts(window.gallery.counted_records())
    assert {k: v for k, v in draft.counts.items() if v} == dict(shown)
    assert len(window.session) == 2 * draft.organisms  # both copies were classified
    assert "not in the counts" in window.gallery.note.text()  # listed apart, not hidden
