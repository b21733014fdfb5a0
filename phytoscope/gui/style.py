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
UNKNOWN_COLOUR = "#868e96"

LEVEL_COLOURS = {
    # traffic lights dark or light enough that black or white text reaches WCAG AA (4.5:1)
    "green": "#237032",
    "yellow": "#ffd43b",
    "amber": "#fab005",
    "orange": "#f76707",
    "red": "#c92a2a",
    "blue": "#1864ab",
    "black": "#212529",
}
ALERT_RAMP = ("yellow", "amber", "orange", "red")
"""Colours for the alert levels of a rule set whose levels are not colour names, mildest
first; a rule set with fewer levels takes them spread over the ramp (two: yellow, red)."""
BLACK, WHITE = "#000000", "#ffffff"
MIN_CONTRAST = 4.5
"""WCAG 2 level AA for normal text."""


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


def relative_luminance(colour: str) -> float:
    """WCAG 2 relative luminance of an ``#rrggbb`` colour (0 black to 1 white)."""
    value = colour.lstrip("#")
    channels = [int(value[i : i + 2], 16) / 255.0 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast_ratio(a: str, b: str) -> float:
    """WCAG 2 contrast ratio of two ``#rrggbb`` colours, from 1 (same) to 21."""
    high, low = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def level_hex(level: str, levels: tuple[str, ...]) -> str:
    """The rule set's colour for a level, as ``#rrggbb``.

    A level named by a colour (Scotland's traffic lights) is that colour; otherwise the
    lowest level is green and the others are spread over :data:`ALERT_RAMP` by severity,
    so a one-level programme (England's "red") is red and Florida's four are four colours.
    """
    name = level.lower()
    if name in LEVEL_COLOURS:
        return LEVEL_COLOURS[name]
    try:
        severity = levels.index(level)
    except ValueError:
        return UNKNOWN_COLOUR
    if severity == 0:
        return LEVEL_COLOURS["green"]
    alerts = len(levels) - 1
    if alerts <= 1:
        return LEVEL_COLOURS["red"]
    position = (severity - 1) * (len(ALERT_RAMP) - 1) / (alerts - 1)
    return LEVEL_COLOURS[ALERT_RAMP[round(position)]]


def level_colour(level: str, levels: tuple[str, ...]) -> QColor:
    """:func:`level_hex` as a QColor."""
    return QColor(level_hex(level, levels))


def text_hex_for(background: str) -> str:
    """Black or white, whichever contrasts more with ``background`` (never below 4.58:1,
    the worst case of the better of the two)."""
    return (
        BLACK if contrast_ratio(background, BLACK) >= contrast_ratio(background, WHITE) else WHITE
    )


def text_colour_for(background: QColor) -> str:
    """:func:`text_hex_for` of a QColor (its alpha ignored)."""
    return text_hex_for(background.name())


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
