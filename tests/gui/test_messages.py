"""Messages: the counter on the tab, wrapped lines, the banner that stays until dismissed,
and the no-model notice in a technician's words."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QTabWidget

from phytoscope.gui.messages import Banner, MessageLog, TabBadge, no_model_text, skipped_text


def tabs_with_log(qtbot):
    tabs = QTabWidget()
    tabs.addTab(QLabel("predictions"), "Predictions")
    log = MessageLog()
    tabs.addTab(log, "Messages")
    badge = TabBadge(tabs, log)
    qtbot.addWidget(tabs)
    tabs.resize(420, 300)
    tabs.show()
    qtbot.waitExposed(tabs)
    return tabs, log, badge


def test_the_tab_counts_unseen_messages_red_for_errors_until_opened(qtbot):
    tabs, log, badge = tabs_with_log(qtbot)
    assert badge.text == "Messages"
    log.add("model loaded")
    log.add("skipped corrupt.png: not an image")
    assert badge.text == "Messages (2)"
    index = tabs.indexOf(log)
    assert tabs.tabBar().tabTextColor(index).name() != "#a61e1e"  # no error yet: not red
    log.add("cannot read bin.roi: truncated", error=True)
    assert badge.text == "Messages (3)"
    assert tabs.tabBar().tabTextColor(index).name() == "#a61e1e"
    qtbot.mouseClick(
        tabs.tabBar(), Qt.MouseButton.LeftButton, pos=tabs.tabBar().tabRect(index).center()
    )
    assert tabs.currentWidget() is log
    assert badge.text == "Messages" and log.unseen == 0
    log.add("read while looking")  # seen as it arrives
    assert badge.text == "Messages"


def test_long_messages_wrap_instead_of_running_off_the_side(qtbot):
    tabs, log, _ = tabs_with_log(qtbot)
    tabs.setCurrentWidget(log)
    long = "skipped /data/" + "very_long_folder_name/" * 10 + "x.png: unreadable " * 5
    log.add(long, error=True)
    qtbot.wait(10)
    assert log.horizontalScrollBar().maximum() == 0  # nothing hidden to the right
    assert long in log.toPlainText().replace("\n", "").replace("\u2029", "")
    assert log.messages[-1] == (long, True)


def test_banner_notices_stay_until_dismissed_and_update_in_place(qtbot):
    banner = Banner()
    qtbot.addWidget(banner)
    banner.show()
    assert not banner.isVisible() or not banner.notices
    banner.post("skipped", skipped_text([("a/corrupt.png", "not an image")]))
    assert banner.isVisible()
    assert "1 input skipped — not in the counts" in banner.text()
    qtbot.wait(200)  # a later status message must not replace it
    many = [(f"f{i}.png", "unreadable") for i in range(5)]
    banner.post("skipped", skipped_text(many))
    assert len(banner.rows) == 1 and "5 inputs skipped" in banner.text()
    assert "and 2 more (see Messages)" in banner.text()
    banner.post("partial", "<b>Bin D2022 truncated</b>: 8 of 17 ROIs read", level="error")
    assert len(banner.rows) == 2
    qtbot.mouseClick(banner.rows["skipped"].dismiss, Qt.MouseButton.LeftButton)
    assert list(banner.notices) == ["partial"] and banner.isVisible()
    banner.dismiss("partial")
    assert not banner.isVisible()


def test_no_model_notice_says_what_is_missing_and_what_to_do(qtbot):
    reason = "no model card (*.onnx.json) in /opt/phytoscope/models"
    text = no_model_text(reason)
    assert text.startswith("<b>No model installed</b>")
    assert "What to do" in text and "Tools → Settings → Model folder" in text
    assert "/opt/phytoscope/models" in text  # the developer's reason comes last, small
    assert text.index("What to do") < text.index("/opt/phytoscope")
    banner = Banner()
    qtbot.addWidget(banner)
    banner.post("no-model", text, level="error", dismissable=False)
    assert not banner.rows["no-model"].dismiss.isVisibleTo(banner)
    assert "No model installed" in banner.text()
    assert "cancelled" in no_model_text("model loading was cancelled: choose Tools")
