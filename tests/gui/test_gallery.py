"""The review-first gallery, driven as a technician would: order, groups, paging, size,
keyboard labelling, and counts that agree with the sample table."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from phytoscope.core.sample import count_labels
from phytoscope.gui.predictions import Gallery
from phytoscope.gui.session import Session
from phytoscope.gui.style import GenusColours
from phytoscope.types import Prediction

CLASSES = ("Pseudo-nitzschia", "Dinophysis", "Alexandrium", "colonial cyanobacteria")


def prediction(i, label, confidence, reason="", novelty=None, top=None):
    top = top or (label if label != "unknown" else "Dinophysis")
    return Prediction(
        f"bin/{i}.png",
        i,
        label,
        confidence,
        ((top, confidence), ("Alexandrium", (1 - confidence) / 2)),
        novelty=novelty,
        unknown_reason=reason,
    )


def thumb(i):
    image = np.full((40, 60), 60 + (i * 7) % 150, np.uint8)
    image[15:25, 10:50] = 20
    return image


def fill(session, predictions, pictures=True):
    session.add(
        tuple(predictions),
        tuple(thumb(i) if pictures else None for i, _ in enumerate(predictions)),
    )


def open_gallery(qtbot, session, size=(900, 560)):
    gallery = Gallery(session, GenusColours(CLASSES))
    gallery.set_classes(CLASSES, {"Dinophysis": 0.983})
    qtbot.addWidget(gallery)
    gallery.resize(*size)
    gallery.show()
    qtbot.waitExposed(gallery)

    def store(records, label):  # what the window does with a correction request
        for record in records:
            session.correct(record, label)

    gallery.correction_requested.connect(store)
    gallery.refresh()
    return gallery


def shown(gallery):
    return [r.prediction.roi_index for r in gallery.model.records]


def test_unknown_and_least_confident_come_first_corrected_last(qtbot):
    session = Session()
    fill(
        session,
        [
            prediction(0, "Dinophysis", 0.99),
            prediction(1, "unknown", 0.70, "unsure"),
            prediction(2, "Pseudo-nitzschia", 0.41),
            prediction(3, "unknown", 0.95, "novel", novelty=3.0),
            prediction(4, "unknown", 0.90, "novel", novelty=9.0),
            prediction(5, "Alexandrium", 0.60),
        ],
    )
    session.correct(session.records[5], "Dinophysis")  # reviewed already
    gallery = open_gallery(qtbot, session)
    # novel (most novel first), then unsure, then least confident; the corrected one last
    assert shown(gallery) == [4, 3, 1, 2, 0, 5]
    groups = [gallery.genera.item(i).text() for i in range(gallery.genera.count())]
    assert groups[0].startswith("All") and groups[1].startswith("unknown  (3) — not identified")
    assert gallery.delegate is not None
    first, second = __import__("phytoscope.gui.gallery", fromlist=["caption"]).caption(
        session.records[4], {}
    )
    assert first == "unknown (unfamiliar)" and second.startswith("maybe Dinophysis")


def test_counts_are_the_sample_tables_counts(qtbot):
    session = Session()
    fill(session, [prediction(i, CLASSES[i % 3], 0.5 + i / 100) for i in range(30)])
    gallery = open_gallery(qtbot, session)
    gallery.thumbs.setFocus()
    gallery.genera.setCurrentRow(1)  # the biggest genus
    qtbot.keyClick(gallery.thumbs, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(gallery.thumbs, Qt.Key.Key_3)  # all of them are Alexandrium
    table = count_labels(session.effective_predictions())  # what the sample table counts
    groups = {
        gallery.genera.item(i).data(Qt.ItemDataRole.UserRole): gallery.genera.item(i).text()
        for i in range(gallery.genera.count())
    }
    for label, n in table.items():
        assert groups[label].startswith(f"{label}  ({n})")
    assert sum(table.values()) == 30 and groups  # nobody lost on the way


def test_nothing_is_hidden_pages_say_where_you_are(qtbot):
    session = Session()
    n = 2 * Gallery.PAGE_SIZE + 50
    fill(session, [prediction(i, "Dinophysis", (i % 97) / 100) for i in range(n)])
    gallery = open_gallery(qtbot, session)
    assert gallery.page_label.text() == "page 1 of 3"
    seen = list(shown(gallery))
    qtbot.mouseClick(gallery.next_page, Qt.MouseButton.LeftButton)
    assert gallery.page_label.text() == "page 2 of 3"
    seen += shown(gallery)
    gallery.thumbs.setFocus()
    qtbot.keyClick(gallery.thumbs, Qt.Key.Key_PageDown)
    assert gallery.page_label.text() == "page 3 of 3" and not gallery.next_page.isEnabled()
    seen += shown(gallery)
    assert sorted(seen) == list(range(n))  # every organism on exactly one page
    confidences = [session.by_key[(f"bin/{i}.png", i)].prediction.confidence for i in seen]
    assert confidences == sorted(confidences)  # least confident first, across pages


def test_pictureless_organisms_are_listed_not_dropped(qtbot):
    session = Session()
    fill(session, [prediction(i, "Dinophysis", 0.8) for i in range(5)], pictures=False)
    gallery = open_gallery(qtbot, session)
    assert len(shown(gallery)) == 5
    assert "5 without a picture kept" in gallery.note.text()


def test_thumbnail_size_slider_and_captions_never_overlap_the_next_row(qtbot, artefacts):
    session = Session()
    fill(session, [prediction(i, "colonial cyanobacteria", 0.5) for i in range(40)])
    gallery = open_gallery(qtbot, session)
    slider = gallery.size_slider
    assert (slider.minimum(), slider.maximum()) == (64, 256)
    for size in (64, 160, 256):
        slider.setValue(size)
        qtbot.wait(10)
        model, view = gallery.model, gallery.thumbs
        rects = [view.visualRect(model.index(r)) for r in range(model.rowCount())]
        assert rects[0].height() >= size + 2 * view.fontMetrics().height()
        assert rects[0].width() >= size
        below = [r for r in rects if r.top() > rects[0].top()]
        if below:
            assert below[0].top() >= rects[0].bottom()  # no caption runs into the next row
    slider.setValue(112)
    assert gallery.grab().save(str(artefacts / "gallery.png"))


def test_correct_to_is_wide_enough_for_the_longest_class(qtbot):
    session = Session()
    gallery = open_gallery(qtbot, session, size=(520, 400))  # a narrow pane on a laptop
    longest = max((*CLASSES, "unknown"), key=len)
    combo = gallery.target
    assert combo.width() >= combo.fontMetrics().horizontalAdvance(longest) + 20  # + arrow
    # the bar wraps rather than squeezing: every button is inside the gallery
    for button in (gallery.relabel, gallery.export):
        right = button.mapTo(gallery, button.rect().topRight()).x()
        assert right <= gallery.width()


def test_keyboard_labelling_numbers_type_ahead_enter_and_arrows(qtbot):
    session = Session()
    fill(session, [prediction(i, "Dinophysis", 0.5 + i / 100) for i in range(6)])
    gallery = open_gallery(qtbot, session)
    view = gallery.thumbs
    view.setFocus()
    view.setCurrentIndex(gallery.model.index(0))
    first = gallery.model.records[0]
    qtbot.keyClick(view, Qt.Key.Key_1)  # 1 = the first class
    assert first.label == "Pseudo-nitzschia"
    # the corrected one went to the end of the review order; the next one is current now
    assert gallery.model.records[view.currentIndex().row()] is not first
    second = gallery.model.records[view.currentIndex().row()]
    qtbot.keyClicks(view, "col")  # type-ahead picks "colonial cyanobacteria"
    assert gallery.target.currentText() == "colonial cyanobacteria"
    qtbot.keyClick(view, Qt.Key.Key_Return)
    assert second.label == "colonial cyanobacteria"
    # arrows move; 0 says "unknown"
    row = view.currentIndex().row()
    qtbot.keyClick(view, Qt.Key.Key_Right)
    assert view.currentIndex().row() == row + 1
    target = gallery.model.records[view.currentIndex().row()]
    qtbot.keyClick(view, Qt.Key.Key_0)
    assert target.label == "unknown"
    assert session.counts == {
        "Pseudo-nitzschia": 1,
        "colonial cyanobacteria": 1,
        "unknown": 1,
        "Dinophysis": 3,
    }


def test_an_unknown_in_its_group_is_relabelled_with_the_button(qtbot):
    session = Session()
    fill(session, [prediction(0, "unknown", 0.6, "unsure"), prediction(1, "Dinophysis", 0.9)])
    gallery = open_gallery(qtbot, session)
    items = gallery.genera.findItems("unknown", Qt.MatchFlag.MatchStartsWith)
    gallery.genera.setCurrentItem(items[0])
    assert shown(gallery) == [0]
    gallery.thumbs.selectAll()
    gallery.target.setCurrentText("Alexandrium")
    gallery.relabel.click()
    assert session.counts == {"Alexandrium": 1, "Dinophysis": 1}
    # the unknown group emptied: the gallery falls back to all organisms
    assert gallery.selected_label() is None


@pytest.mark.parametrize("confidence, text", [(0.9826, "98.26 %"), (0.5, "50.0 %")])
def test_confidences_are_shown_on_the_right_side_of_the_threshold(qtbot, confidence, text):
    from phytoscope.gui.gallery import caption

    session = Session()
    fill(session, [prediction(0, "unknown", confidence, "unsure")])
    assert caption(session.records[0], {"Dinophysis": 0.983})[1] == f"maybe Dinophysis {text}"


def test_show_group_opens_the_unknown_organisms(qtbot):
    session = Session()
    fill(session, [prediction(0, "unknown", 0.6, "unsure"), prediction(1, "Dinophysis", 0.9)])
    gallery = open_gallery(qtbot, session)
    gallery.show_group("unknown")
    assert gallery.selected_label() == "unknown" and shown(gallery) == [0]
    gallery.show_group(None)
    assert gallery.selected_label() is None and len(shown(gallery)) == 2
