"""The current image with its organisms boxed by genus: zoom, pan, legend and scale bar.

Built on QGraphicsView (napari's basics for this job): the wheel zooms under the mouse,
a drag pans, ``+``/``-`` zoom and ``F`` (or ``0``) fits the image again. Boxes are drawn
as the predictions give them; a box lying mostly inside a larger box of the same genus is
not drawn twice (segmentation should not produce one, but a chain split in two must not
look like two organisms on screen). A colour legend of the genera on show sits top left;
a scale bar bottom right where the pixel size is known, otherwise a note says why there
is none.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import QPointF, QRect, QRectF, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetrics,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPen,
    QPixmap,
    QResizeEvent,
    QTransform,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsPixmapItem,
    QGraphicsRectItem,
    QGraphicsScene,
    QGraphicsView,
    QHBoxLayout,
    QStyleOptionGraphicsItem,
    QToolButton,
    QWidget,
)

from phytoscope.gui.style import GenusColours, text_hex_for, to_pixmap
from phytoscope.modelcard import UNKNOWN
from phytoscope.types import Prediction

MAX_FIT = 4.0
"""Small IFCB ROIs are enlarged to fit, but not beyond this (a blur shows nothing more)."""
MIN_ZOOM, MAX_ZOOM = 0.05, 40.0
NESTED = 0.8
"""A box with this share of its area inside a larger same-genus box is not drawn again."""
CROWDED = 12
NICE_UM = (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000)


def nested_duplicates(boxes: Sequence[tuple[tuple[float, float, float, float], str]]) -> set[int]:
    """Indices of boxes mostly (:data:`NESTED`) inside a larger box with the same label."""
    drop: set[int] = set()
    for i, ((x, y, w, h), label) in enumerate(boxes):
        area = w * h
        if area <= 0:
            continue
        for j, ((X, Y, W, H), other) in enumerate(boxes):
            if i == j or other != label or W * H < area or (W * H == area and j > i):
                continue
            ix = max(0.0, min(x + w, X + W) - max(x, X))
            iy = max(0.0, min(y + h, Y + H) - max(y, Y))
            if ix * iy >= NESTED * area:
                drop.add(i)
                break
    return drop


def scale_bar_length(um_per_screen_px: float, lo: float = 60, hi: float = 170) -> float | None:
    """The round length in µm whose bar is between ``lo`` and ``hi`` screen pixels."""
    if um_per_screen_px <= 0 or not math.isfinite(um_per_screen_px):
        return None
    for um in NICE_UM:
        if lo <= um / um_per_screen_px <= hi:
            return float(um)
    best = min(NICE_UM, key=lambda um: abs(um / um_per_screen_px - (lo + hi) / 2))
    return float(best)


def box_tag(p: Prediction) -> str:
    """A box's words: ``"Tripos 97%"``, or for an unknown its best guess, ``"unknown (like
    Pseudo-nitzschia 99%)"``: "unknown 99%" reads as a contradiction, and a best guess that
    is a HAB taxon is what a technician checks first."""
    if p.label == UNKNOWN and p.top_k:
        best, confidence = p.top_k[0]
        return f"{UNKNOWN} (like {best} {confidence:.0%})"
    return f"{p.label} {p.confidence:.0%}"


class _Tag(QGraphicsItem):
    """A genus label of constant screen size above its box."""

    def __init__(self, text: str, colour: QColor, parent: QGraphicsItem):
        super().__init__(parent)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        self.text = text
        self.fill = QColor(colour)
        self.fill.setAlphaF(0.9)
        self.font = QFont()
        self.font.setPointSizeF(9)
        metrics = QFontMetrics(self.font)
        self.size = (metrics.horizontalAdvance(text) + 8, metrics.height() + 2)

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt's name
        return QRectF(0, -self.size[1], self.size[0], self.size[1])

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget=None) -> None:
        rect = self.boundingRect()
        painter.fillRect(rect, self.fill)
        painter.setFont(self.font)
        painter.setPen(QColor(text_hex_for(self.fill.name())))
        painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, self.text)


class ImageView(QGraphicsView):
    """One image, its boxes, zoom/pan, legend and scale bar; a placeholder when empty."""

    zoom_changed = Signal(float)

    def __init__(self, colours: GenusColours, parent: QWidget | None = None):
        super().__init__(parent)
        self.colours = colours
        self.setScene(QGraphicsScene(self))
        self.setBackgroundBrush(QColor("#1e1e1e"))
        self.setRenderHints(
            QPainter.RenderHint.Antialiasing | QPainter.RenderHint.SmoothPixmapTransform
        )
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.FullViewportUpdate)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMinimumSize(240, 180)
        self._pixmap: QGraphicsPixmapItem | None = None
        self._scale = 1.0
        self._boxes: list[tuple[tuple[float, float, float, float], str, float, str]] = []
        self._items: list[tuple[QGraphicsRectItem, _Tag | None]] = []
        self._fitted = True
        self.um_per_pixel: float | None = None
        """µm per pixel of the source image; None: unknown (no scale bar)"""
        self.scale_note = "no scale bar: pixel size unknown"
        self.source = ""
        self.placeholder = (
            "Open images, a folder or an IFCB bin (File menu, toolbar, or drop them here)"
        )
        self.tools = QWidget(self)
        row = QHBoxLayout(self.tools)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(2)
        self.zoom_out_button = self._tool("−", "Zoom out (-)", self.zoom_out)
        self.zoom_in_button = self._tool("+", "Zoom in (+ or the mouse wheel)", self.zoom_in)
        self.fit_button = self._tool("Fit", "Fit the image in the view (F)", self.fit)
        for button in (self.zoom_out_button, self.zoom_in_button, self.fit_button):
            row.addWidget(button)
        self.tools.adjustSize()

    def _tool(self, text: str, tip: str, slot) -> QToolButton:
        button = QToolButton(self.tools)
        button.setText(text)
        button.setToolTip(tip)
        button.setMinimumWidth(30)
        button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        button.clicked.connect(slot)
        return button

    # -- content -------------------------------------------------------------------------

    def show_image(
        self, source: str, image: np.ndarray, scale: float, predictions: list[Prediction]
    ) -> None:
        """``scale`` maps source-pixel boxes onto ``image`` (which may be shrunk)."""
        self.scene().clear()
        self._items, self._boxes = [], []
        self.source = source
        self._scale = scale
        pixmap: QPixmap = to_pixmap(image)
        self._pixmap = self.scene().addPixmap(pixmap)
        self._pixmap.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.scene().setSceneRect(QRectF(pixmap.rect()))
        for p in predictions:
            self.add_prediction(p, update=False)
        self._rebuild_boxes()
        self.fit()

    def add_prediction(self, p: Prediction, update: bool = True) -> None:
        if self._pixmap is None:
            return
        if p.box is None:
            rect = self._pixmap.boundingRect()
            box = (0.0, 0.0, rect.width(), rect.height())
        else:
            x, y, w, h = p.box
            s = self._scale
            box = (x * s, y * s, w * s, h * s)
        self._boxes.append((box, p.label, p.confidence, box_tag(p)))
        if update:
            self._rebuild_boxes()

    def _rebuild_boxes(self) -> None:
        for rect_item, _tag in self._items:
            self.scene().removeItem(rect_item)
        self._items = []
        drop = nested_duplicates([(b, label) for b, label, _c, _t in self._boxes])
        for i, ((x, y, w, h), label, confidence, text) in enumerate(self._boxes):
            if i in drop:
                continue
            colour = self.colours(label, confidence)
            pen = QPen(colour, 2.5 if confidence >= 0.5 else 1.5)
            pen.setCosmetic(True)  # the same width on screen at every zoom
            if confidence < 0.5:
                pen.setStyle(Qt.PenStyle.DashLine)
            item = self.scene().addRect(QRectF(x, y, w, h), pen)
            item.setData(0, confidence)
            tag = _Tag(text, colour, item)
            tag.setPos(QPointF(x, y))
            self._items.append((item, tag))
        self._update_tags()
        self.viewport().update()

    def _update_tags(self) -> None:
        """Tags that fit: none on small boxes of a crowded frame (colours say the genus),
        and none over another tag (the more confident box keeps its tag)."""
        crowded = len(self._items) > CROWDED
        zoom = self.zoom
        taken: list[QRectF] = []
        for item, tag in sorted(self._items, key=lambda it: -it[0].data(0)):
            if tag is None:
                continue
            rect = item.rect()
            visible = not crowded or rect.width() * zoom >= 90
            if visible:
                w, h = tag.size
                here = QRectF(rect.x() * zoom, rect.y() * zoom - h, w, h)
                visible = not any(here.intersects(other) for other in taken)
                if visible:
                    taken.append(here)
            tag.setVisible(visible)

    @property
    def box_count(self) -> int:
        """Boxes drawn (nested same-genus duplicates are not drawn)."""
        return len(self._items)

    def legend_entries(self) -> list[tuple[str, int]]:
        """(genus, boxes drawn) of the image on show, most frequent first."""
        counts = Counter(
            self._boxes[i][1]
            for i in range(len(self._boxes))
            if i not in nested_duplicates([(b, lab) for b, lab, _c, _t in self._boxes])
        )
        return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))

    def clear(self) -> None:
        self.scene().clear()
        self._pixmap = None
        self._boxes, self._items = [], []
        self.source = ""
        self.viewport().update()

    def set_pixel_size(self, um_per_pixel: float | None, note: str = "") -> None:
        """µm per pixel of the source images (None: unknown; ``note`` says why)."""
        self.um_per_pixel = um_per_pixel if um_per_pixel and um_per_pixel > 0 else None
        if note:
            self.scale_note = note
        self.viewport().update()

    # -- zoom and pan --------------------------------------------------------------------

    @property
    def zoom(self) -> float:
        """Screen pixels per image pixel."""
        return float(self.transform().m11())

    def set_zoom(self, zoom: float) -> None:
        zoom = min(max(zoom, MIN_ZOOM), MAX_ZOOM)
        self.setTransform(QTransform.fromScale(zoom, zoom))
        self._fitted = False
        self._update_tags()
        self.zoom_changed.emit(zoom)

    def zoom_in(self) -> None:
        self.set_zoom(self.zoom * 1.25)

    def zoom_out(self) -> None:
        self.set_zoom(self.zoom / 1.25)

    def fit(self) -> None:
        """The whole image in view (small ROIs enlarged up to :data:`MAX_FIT` times)."""
        if self._pixmap is None:
            return
        rect = self._pixmap.boundingRect()
        view = self.viewport().rect()
        if rect.width() <= 0 or rect.height() <= 0 or view.width() <= 0:
            return
        k = min((view.width() - 8) / rect.width(), (view.height() - 8) / rect.height(), MAX_FIT)
        self.set_zoom(max(k, MIN_ZOOM))
        self.centerOn(rect.center())
        self._fitted = True

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 - Qt's name
        if self._pixmap is None:
            return
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.set_zoom(self.zoom * 1.25**steps)
        event.accept()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        super().mouseReleaseEvent(event)
        event.accept()  # the drag that panned ends here, whether or not an item took it

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        key = event.key()
        if key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.zoom_in()
        elif key in (Qt.Key.Key_Minus, Qt.Key.Key_Underscore):
            self.zoom_out()
        elif key in (Qt.Key.Key_F, Qt.Key.Key_0):
            self.fit()
        else:
            super().keyPressEvent(event)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802
        super().resizeEvent(event)
        self.tools.move(self.viewport().width() - self.tools.width() - 6, 6)
        if self._fitted:
            self.fit()

    # -- overlays (screen coordinates) ---------------------------------------------------

    def scale_bar(self) -> tuple[float, float] | None:
        """(µm, screen pixels) of the scale bar drawn now, or None when there is none."""
        if self._pixmap is None or self.um_per_pixel is None or self._scale <= 0:
            return None
        um_per_screen_px = self.um_per_pixel / self._scale / self.zoom
        um = scale_bar_length(um_per_screen_px)
        return None if um is None else (um, um / um_per_screen_px)

    def drawForeground(self, painter: QPainter, rect: QRectF | QRect) -> None:  # noqa: N802
        painter.save()
        painter.resetTransform()
        view = self.viewport().rect()
        font = QFont(painter.font())
        font.setPointSizeF(9)
        painter.setFont(font)
        metrics = painter.fontMetrics()
        if self._pixmap is None:
            painter.setPen(QColor("#cccccc"))
            painter.drawText(
                view.adjusted(20, 20, -20, -20),
                Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                self.placeholder,
            )
            painter.restore()
            return
        line = metrics.height()
        # legend, top left
        entries = self.legend_entries()
        shown = entries[:10]
        if len(entries) > len(shown):
            shown.append((f"… {len(entries) - len(shown)} more genera", -1))
        if shown:
            width = max(metrics.horizontalAdvance(f"{g} ({n})") for g, n in shown) + 30
            painter.fillRect(QRectF(6, 6, width, line * len(shown) + 8), QColor(0, 0, 0, 170))
            for row, (genus, n) in enumerate(shown):
                y = 10 + row * line
                if n >= 0:
                    painter.fillRect(
                        QRectF(12, y + 3, 12, line - 6), QColor(self.colours.hex(genus))
                    )
                painter.setPen(QColor("#ffffff"))
                text = f"{genus} ({n})" if n >= 0 else genus
                painter.drawText(QPointF(30, y + metrics.ascent()), text)
        # scale bar (or why there is none), bottom right
        bar = self.scale_bar()
        bottom = view.height() - 10
        if bar is not None:
            um, px = bar
            label = f"{um:g} µm"
            x1 = view.width() - 14
            x0 = x1 - px
            painter.fillRect(
                QRectF(x0 - 6, bottom - line - 12, px + 12, line + 16), QColor(0, 0, 0, 150)
            )
            painter.fillRect(QRectF(x0, bottom - 6, px, 5), QColor("#ffffff"))
            painter.setPen(QColor("#ffffff"))
            painter.drawText(
                QRectF(x0 - 6, bottom - line - 10, px + 12, line),
                Qt.AlignmentFlag.AlignCenter,
                label,
            )
        else:
            text = self.scale_note
            x = view.width() - metrics.horizontalAdvance(text) - 10
            _boxed_text(painter, QPointF(x, bottom), text, "#dee2e6")
        # what is on show, bottom left (above the note when both would collide)
        caption = self.source.replace("#", "  ROI ").rsplit("/", 1)[-1]
        caption += f"   {self.zoom:.0%}"
        if len(self._items) > CROWDED:
            caption += f"   {len(self._items)} organisms; dashed = below 50 %"
        right = (
            (bar[1] + 30) if bar is not None else metrics.horizontalAdvance(self.scale_note) + 20
        )
        fits = metrics.horizontalAdvance(caption) + 16 < view.width() - right
        caption_y = bottom if fits else bottom - line - 18
        _boxed_text(painter, QPointF(8, caption_y), caption, "#ffffff")
        painter.restore()


def _boxed_text(painter: QPainter, baseline: QPointF, text: str, colour: str) -> None:
    """Text on a dark translucent box: readable over a bright or a dark image."""
    metrics = painter.fontMetrics()
    painter.fillRect(
        QRectF(
            baseline.x() - 4,
            baseline.y() - metrics.ascent() - 3,
            metrics.horizontalAdvance(text) + 8,
            metrics.height() + 6,
        ),
        QColor(0, 0, 0, 160),
    )
    painter.setPen(QColor(colour))
    painter.drawText(baseline, text)
