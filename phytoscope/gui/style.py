"""Colours and conversions shared by the widgets."""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QColor, QImage, QPixmap

PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#393b79",
    "#ad494a",
    "#637939",
    "#7b4173",
    "#3182bd",
    "#e6550d",
    "#31a354",
    "#756bb1",
    "#636363",
)
UNKNOWN_COLOUR = "#7f7f7f"

LEVEL_COLOURS = {
    "green": "#2f9e44",
    "yellow": "#f0c419",
    "orange": "#f08c00",
    "red": "#e03131",
    "amber": "#f59f00",
    "blue": "#1c7ed6",
    "black": "#212529",
}


class GenusColours:
    """A stable colour per class, in the model card's class order; "unknown" is grey."""

    def __init__(self, classes: tuple[str, ...] = ()):
        self.set_classes(classes)

    def set_classes(self, classes: tuple[str, ...]) -> None:
        self._map = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(classes)}

    def __call__(self, label: str, confidence: float = 1.0) -> QColor:
        """The genus colour; less confident predictions are drawn more transparent."""
        colour = QColor(self._map.get(label, UNKNOWN_COLOUR))
        colour.setAlphaF(0.35 + 0.65 * max(0.0, min(1.0, confidence)))
        return colour

    def hex(self, label: str) -> str:
        return self._map.get(label, UNKNOWN_COLOUR)


def level_colour(level: str, levels: tuple[str, ...]) -> QColor:
    """The rule set's colour for a level: its own name when it is a colour (Scotland's traffic
    lights), otherwise green -> yellow -> orange -> red by severity."""
    name = level.lower()
    if name in LEVEL_COLOURS:
        return QColor(LEVEL_COLOURS[name])
    try:
        severity = levels.index(level)
    except ValueError:
        return QColor(UNKNOWN_COLOUR)
    if severity == 0:
        return QColor(LEVEL_COLOURS["green"])
    ramp = ("yellow", "orange", "red")
    top = len(levels) - 1
    position = (severity - 1) / max(top - 1, 1) * (len(ramp) - 1) if top > 1 else len(ramp) - 1
    return QColor(LEVEL_COLOURS[ramp[round(position)]])


def text_colour_for(background: QColor) -> str:
    return "#000000" if background.lightnessF() > 0.55 else "#ffffff"


def to_qimage(image: np.ndarray) -> QImage:
    """uint8 grey (H, W) or RGB (H, W, 3) -> a QImage owning a copy of the pixels."""
    data = np.ascontiguousarray(image)
    if data.dtype != np.uint8:
        from phytoscope.imaging.preprocess import to_uint8

        data = np.ascontiguousarray(to_uint8(data))
    if data.ndim == 3 and data.shape[2] == 4:
        data = np.ascontiguousarray(data[:, :, :3])
    h, w = data.shape[:2]
    if data.ndim == 2:
        qimage = QImage(data.data, w, h, data.strides[0], QImage.Format.Format_Grayscale8)
    else:
        qimage = QImage(data.data, w, h, data.strides[0], QImage.Format.Format_RGB888)
    return qimage.copy()  # detach from the numpy buffer


def to_pixmap(image: np.ndarray) -> QPixmap:
    return QPixmap.fromImage(to_qimage(image))
