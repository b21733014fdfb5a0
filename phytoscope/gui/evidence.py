"""Evidence thumbnails that stay readable, and the full-size view they open.

A Pseudo-nitzschia chain is ten times longer than it is wide; squeezed into a square icon
it becomes a sliver (issue #17: 38-pixel icons). Thumbnails here keep a fixed height of at
least 96 pixels and may be up to three times as wide; an upright chain is turned to lie
flat (orientation carries no meaning for a flowing or settled cell), and a click opens the
organism at full size with zoom and pan.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QPixmap, QTransform
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from phytoscope.gui.flow import FlowLayout
from phytoscope.gui.imageview import ImageView
from phytoscope.gui.style import GenusColours, to_pixmap

THUMB_HEIGHT = 96
"""Pixels: the smallest evidence thumbnail in which a chain's cells can be told apart."""
MAX_ASPECT = 2.2
"""Width over height at most for ordinary cells: two side by side fit a 480-pixel panel."""
LONG_ASPECT = 4.0
"""A long chain may take up to this width over height before it is cropped."""
MIN_SHORT = 48
"""Pixels: a chain is never drawn thinner than this; longer chains are cropped (the click
opens the whole of it)."""

Key = tuple[str, int]
ImageOf = Callable[[Key], "np.ndarray | None"]


def thumbnail_pixmap(image: np.ndarray, height: int = THUMB_HEIGHT) -> tuple[QPixmap, bool, bool]:
    """``image`` scaled for a thumbnail row ``height`` pixels high: the pixmap, whether it
    was turned by 90 degrees (it stood upright), and whether its ends were cropped (a chain
    too long to show whole at :data:`MIN_SHORT` pixels thick)."""
    pixmap = to_pixmap(image)
    turned = pixmap.height() > 1.5 * pixmap.width()
    if turned:
        pixmap = pixmap.transformed(QTransform().rotate(90))
    w, h = max(pixmap.width(), 1), max(pixmap.height(), 1)
    aspect = w / h
    if aspect <= MAX_ASPECT:
        k = min(height / h, height * MAX_ASPECT / w)
    else:  # a chain: as long as the row allows, never thinner than MIN_SHORT
        k = max(min(height / h, height * LONG_ASPECT / w), MIN_SHORT * height / THUMB_HEIGHT / h)
    size = QSize(max(1, round(w * k)), max(1, round(h * k)))
    scaled = pixmap.scaled(
        size, Qt.AspectRatioMode.IgnoreAspectRatio, Qt.TransformationMode.SmoothTransformation
    )
    limit = int(height * LONG_ASPECT)
    cropped = scaled.width() > limit
    if cropped:
        scaled = scaled.copy((scaled.width() - limit) // 2, 0, limit, scaled.height())
    return scaled, turned, cropped


class EvidenceButton(QToolButton):
    """One organism; clicking it asks for the full-size view."""

    opened = Signal(object)  # Key

    def __init__(self, key: Key, image: np.ndarray, height: int, parent: QWidget | None = None):
        super().__init__(parent)
        self.key = key
        pixmap, turned, cropped = thumbnail_pixmap(image, height)
        self.setIcon(pixmap)
        self.setIconSize(pixmap.size())
        self.setAutoRaise(True)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        source = key[0].rsplit("/", 1)[-1]
        self.setToolTip(
            f"{source}  ROI {key[1]}"
            + ("  (turned to lie flat)" if turned else "")
            + ("  (middle of a long chain)" if cropped else "")
            + "\nClick to open it at full size"
        )
        self.setAccessibleName(f"evidence {source} ROI {key[1]}")
        self.clicked.connect(lambda: self.opened.emit(self.key))


class EvidenceStrip(QWidget):
    """Thumbnails of the organisms counted for a taxon: as many as fit in ``rows`` rows of
    the panel's width (the rest are counted, not squeezed)."""

    opened = Signal(object)  # Key

    def __init__(
        self,
        height: int = THUMB_HEIGHT,
        limit: int = 6,
        rows: int = 1,
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        self.thumb_height = height
        self.limit = limit
        self.rows = rows
        self._total = 0
        self.flow = FlowLayout(self, spacing=4)
        self.buttons: list[EvidenceButton] = []
        self.more = QLabel()
        self.more.setStyleSheet("color: #495057")

    def set_evidence(self, keys: Sequence[Key], image_of: ImageOf | None) -> int:
        """Show up to ``limit`` of ``keys`` that have pixels; returns how many are shown."""
        self.flow.clear()
        self.buttons = []
        self.more = QLabel()
        self.more.setStyleSheet("color: #495057")
        if image_of is None:
            return 0
        for key in keys:
            if len(self.buttons) >= self.limit:
                break
            image = image_of(key)
            if image is None:
                continue
            button = EvidenceButton(key, image, self.thumb_height, self)
            button.opened.connect(self.opened)
            self.flow.addWidget(button)
            self.buttons.append(button)
        self._total = len(keys)
        self.flow.addWidget(self.more)
        self._fit(self.width())
        return len(self.buttons)

    @property
    def shown(self) -> int:
        """Thumbnails visible at the current width."""
        return sum(1 for b in self.buttons if not b.isHidden())

    def _fit(self, width: int) -> None:
        """Show the thumbnails that fit in ``rows`` rows; count the others."""
        spacing, row, x = 4, 1, 0
        metrics = self.more.fontMetrics()
        more_width = metrics.horizontalAdvance(f"+ {self._total} more in the gallery") + 8
        for i, button in enumerate(self.buttons):
            w = button.sizeHint().width()
            last_row = row == self.rows
            room = width - (more_width if last_row and i < len(self.buttons) - 1 else 0)
            if x and x + w > room:
                row, x = row + 1, 0
            visible = row <= self.rows
            button.setVisible(visible)
            x += w + spacing
        rest = self._total - self.shown
        self.more.setText(f"+ {rest} more in the gallery" if rest > 0 and self.buttons else "")
        self.more.setVisible(rest > 0 and bool(self.buttons))

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._fit(event.size().width())


class ImageDialog(QDialog):
    """One organism at full size, with the image view's zoom and pan."""

    def __init__(self, key: Key, image: np.ndarray, title: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        source = key[0].rsplit("/", 1)[-1]
        self.setWindowTitle(title or f"{source}  ROI {key[1]}")
        self.view = ImageView(GenusColours())
        self.view.show_image(f"{key[0]}#{key[1]}", image, 1.0, [])
        caption = QLabel(
            f"{key[0]}  ROI {key[1]} — {image.shape[1]} × {image.shape[0]} pixels. "
            "Scroll to zoom, drag to pan, F to fit."
        )
        caption.setWordWrap(True)
        caption.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.view, 1)
        layout.addWidget(caption)
        layout.addWidget(buttons)
        h, w = image.shape[:2]
        scale = max(1, min(6, 480 // max(h, w, 1)))
        self.resize(min(max(w * scale + 40, 420), 1200), min(max(h * scale + 110, 360), 700))
