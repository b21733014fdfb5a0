"""The image view: zoom (wheel, keys, buttons, fit), pan, legend, scale bar, nested boxes."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent

from phytoscope.gui.imageview import ImageView, nested_duplicates, scale_bar_length
from phytoscope.gui.style import GenusColours
from phytoscope.types import Prediction


def frame(h=400, w=600):
    rng = np.random.default_rng(0)
    return rng.integers(150, 220, (h, w), dtype=np.uint8)


def box(label, x, y, w, h, confidence=0.9):
    return Prediction("frame.png", 0, label, confidence, (), box=(x, y, w, h))


@pytest.fixture
def view(qtbot):
    v = ImageView(GenusColours(("Pseudo-nitzschia", "Dinophysis")))
    qtbot.addWidget(v)
    v.resize(500, 400)
    v.show()
    qtbot.waitExposed(v)
    return v


def test_nested_boxes_of_one_genus_are_drawn_once_others_are_kept():
    boxes = [
        ((0, 0, 100, 20), "Pseudo-nitzschia"),  # a chain
        ((50, 2, 40, 15), "Pseudo-nitzschia"),  # a piece of it, found again
        ((55, 2, 40, 15), "Dinophysis"),  # another genus there: kept
        ((90, 0, 40, 20), "Pseudo-nitzschia"),  # overlaps the chain by a quarter: kept
    ]
    assert nested_duplicates(boxes) == {1}
    # two identical boxes: one is drawn
    assert nested_duplicates([((0, 0, 10, 10), "A"), ((0, 0, 10, 10), "A")]) == {1}


def test_zoom_with_wheel_keys_and_buttons_then_fit(qtbot, view):
    view.show_image("frame.png", frame(), 1.0, [box("Dinophysis", 10, 10, 50, 50)])
    fitted = view.zoom
    assert fitted == pytest.approx(min((view.viewport().width() - 8) / 600, 4.0), rel=0.02)
    centre = QPointF(view.viewport().rect().center())
    event = QWheelEvent(
        centre,
        view.mapToGlobal(centre.toPoint()),
        QPoint(0, 0),
        QPoint(0, 240),  # two notches away from the user: zoom in
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    view.wheelEvent(event)
    assert view.zoom == pytest.approx(fitted * 1.25**2, rel=1e-3)
    qtbot.keyClick(view, Qt.Key.Key_Minus)
    assert view.zoom == pytest.approx(fitted * 1.25, rel=1e-3)
    qtbot.keyClick(view, Qt.Key.Key_Plus)
    qtbot.mouseClick(view.zoom_in_button, Qt.MouseButton.LeftButton)
    assert view.zoom == pytest.approx(fitted * 1.25**3, rel=1e-3)
    qtbot.keyClick(view, Qt.Key.Key_F)
    assert view.zoom == pytest.approx(fitted, rel=1e-3)
    view.set_zoom(fitted * 4)
    qtbot.mouseClick(view.fit_button, Qt.MouseButton.LeftButton)
    assert view.zoom == pytest.approx(fitted, rel=1e-3)


def test_drag_pans_the_zoomed_image(qtbot, view):
    view.show_image("frame.png", frame(), 1.0, [])
    view.set_zoom(4.0)
    bar = view.horizontalScrollBar()
    before = bar.value()
    start = view.viewport().rect().center()
    qtbot.mousePress(view.viewport(), Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(view.viewport(), start - QPoint(120, 0))
    qtbot.mouseRelease(view.viewport(), Qt.MouseButton.LeftButton, pos=start - QPoint(120, 0))
    assert bar.value() > before  # dragged left: the view moved right over the image


def test_legend_lists_genera_on_show_and_small_rois_are_not_blown_up(qtbot, view):
    view.show_image(
        "frame.png",
        frame(),
        0.5,  # boxes are in source pixels of a frame twice as large as the one shown
        [
            box("Pseudo-nitzschia", 0, 0, 400, 60),
            box("Pseudo-nitzschia", 200, 10, 100, 40),  # inside the chain: not drawn again
            box("Dinophysis", 600, 400, 80, 80, confidence=0.3),
        ],
    )
    assert view.box_count == 2
    assert view.legend_entries() == [("Dinophysis", 1), ("Pseudo-nitzschia", 1)]
    view.show_image("roi.png", frame(40, 30), 1.0, [box("Dinophysis", 0, 0, 30, 40)])
    assert view.zoom == pytest.approx(4.0)  # a small IFCB ROI: enlarged, but only 4x


def test_scale_bar_only_where_the_pixel_size_is_known(qtbot, view, artefacts):
    view.show_image("frame.png", frame(), 0.5, [box("Dinophysis", 100, 100, 200, 200)])
    assert view.scale_bar() is None and "pixel size unknown" in view.scale_note
    view.set_pixel_size(0.5)  # µm per source pixel; the shown image is half size
    um, px = view.scale_bar()
    # 1 µm per shown pixel at this zoom: the bar is um / (1 / zoom) pixels long
    assert px == pytest.approx(um * view.zoom, rel=1e-6)
    assert 60 <= px <= 170 and um in (50, 100, 200)
    view.zoom_in()
    um2, px2 = view.scale_bar()
    assert 60 <= px2 <= 170
    assert view.grab().save(str(artefacts / "image_view.png"))


def test_scale_bar_lengths_are_round_numbers():
    assert scale_bar_length(1.0) == 100
    assert scale_bar_length(0.1) == 10
    assert scale_bar_length(0.0) is None


def test_tags_never_cover_each_other_the_more_confident_keeps_its_tag(qtbot, view):
    view.show_image(
        "frame.png",
        frame(),
        1.0,
        [box("Dinophysis", 100, 100, 20, 200, 0.6), box("Dinophysis", 110, 100, 20, 200, 0.9)],
    )
    tags = {item.data(0): tag.isVisible() for item, tag in view._items}
    assert tags == {0.9: True, 0.6: False}
    view.set_zoom(20.0)  # 200 screen pixels apart now: room for both tags
    assert all(tag.isVisible() for _item, tag in view._items)


def test_an_unknown_box_names_its_best_guess_not_a_bare_percentage():
    from phytoscope.gui.imageview import box_tag
    from phytoscope.types import Prediction

    unknown = Prediction(
        "f", 0, "unknown", 0.99, (("Pseudo-nitzschia", 0.99),), unknown_reason="novel"
    )
    assert box_tag(unknown) == "unknown (like Pseudo-nitzschia 99%)"
    assert box_tag(Prediction("f", 1, "Tripos", 0.97, (("Tripos", 0.97),))) == "Tripos 97%"
