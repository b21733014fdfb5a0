"""The current image with its ROI boxes, coloured by genus (opacity by confidence)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from phytoscope.gui.style import GenusColours, text_colour_for, to_qimage
from phytoscope.types import Prediction


class ImageView(QWidget):
    """Paints one image scaled to fit, with labelled boxes; a placeholder text when empty."""

    def __init__(self, colours: GenusColours, parent: QWidget | None = None):
        super().__init__(parent)
        self.colours = colours
        self._image: QImage | None = None
        self._scale = 1.0
        self._boxes: list[tuple[tuple[float, float, float, float], str, float]] = []
        self.source = ""
        self.placeholder = (
            "Open images, a folder or an IFCB bin (File menu, toolbar, or drop them here)"
        )
        self.setMinimumSize(320, 240)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def show_image(
        self, source: str, image: np.ndarray, scale: float, predictions: list[Prediction]
    ) -> None:
        """``scale`` maps source-pixel boxes onto ``image`` (which may be shrunk)."""
        self.source = source
        self._image = to_qimage(image)
        self._scale = scale
        self._boxes = []
        for p in predictions:
            self.add_prediction(p, update=False)
        self.update()

    def add_prediction(self, p: Prediction, update: bool = True) -> None:
        if self._image is None:
            return
        if p.box is None:
            box = (0.0, 0.0, float(self._image.width()), float(self._image.height()))
        else:
            x, y, w, h = p.box
            s = self._scale
            box = (x * s, y * s, w * s, h * s)
        self._boxes.append((box, p.label, p.confidence))
        if update:
            self.update()

    @property
    def box_count(self) -> int:
        return len(self._boxes)

    def clear(self) -> None:
        self._image = None
        self._boxes = []
        self.source = ""
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor("#1e1e1e"))
        if self._image is None:
            painter.setPen(QColor("#bbbbbb"))
            painter.drawText(
                self.rect().adjusted(20, 20, -20, -20),
                Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                self.placeholder,
            )
            painter.end()
            return
        iw, ih = self._image.width(), self._image.height()
        k = min(self.width() / iw, self.height() / ih)
        k = min(k, 4.0)  # small IFCB ROIs: enlarge, but not into a blur
        dw, dh = iw * k, ih * k
        ox, oy = (self.width() - dw) / 2, (self.height() - dh) / 2
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        painter.drawImage(QRectF(ox, oy, dw, dh), self._image)
        font = QFont(painter.font())
        font.setPointSizeF(8.5)
        painter.setFont(font)
        metrics = painter.fontMetrics()
        crowded = len(self._boxes) > 12
        for (x, y, w, h), label, confidence in self._boxes:
            colour = self.colours(label, confidence)
            rect = QRectF(ox + x * k, oy + y * k, w * k, h * k).adjusted(1, 1, -1, -1)
            pen = QPen(colour, 2.5 if confidence >= 0.5 else 1.5)
            if confidence < 0.5:
                pen.setStyle(Qt.PenStyle.DashLine)
            painter.setPen(pen)
            painter.drawRect(rect)
            if crowded and rect.width() < 90:
                continue  # a crowded frame: colours say the genus; labels would hide the cells
            text = f"{label} {confidence:.0%}"
            tw, th = metrics.horizontalAdvance(text) + 6, metrics.height() + 2
            ty = rect.top() - th if rect.top() - th >= oy else rect.top()
            tag = QRectF(rect.left(), ty, tw, th)
            solid = QColor(colour)
            solid.setAlphaF(0.85)
            painter.fillRect(tag, solid)
            painter.setPen(QColor(text_colour_for(solid)))
            painter.drawText(tag, Qt.AlignmentFlag.AlignCenter, text)
        painter.setPen(QColor("#dddddd"))
        caption = self.source.replace("#", "  ROI ")
        if crowded:
            caption += (
                f"   ({len(self._boxes)} organisms; colour = genus, dashed = confidence < 50 %)"
            )
        painter.drawText(8, self.height() - 8, caption)
        painter.end()
