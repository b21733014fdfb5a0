"""The images organisms are drawn on: a small cache of recent frames and whole ROIs.

The inference worker sends each segmented frame once (shrunk) and the last whole-image ROI
of a batch; the image view shows an organism on its frame with the boxes of its
neighbours, or on its own. Only the newest :data:`FRAME_CACHE` images are kept.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import replace

import numpy as np

from phytoscope.gui.analysis import frame_key
from phytoscope.gui.imageview import ImageView
from phytoscope.gui.jobs import BatchResult
from phytoscope.gui.session import Record

FRAME_CACHE = 48


def key_of(record: Record) -> str:
    p = record.prediction
    return frame_key(p.source, p.roi_index, record.whole)


class FrameShelf:
    """Recent frames by key, and the organisms drawn on each."""

    def __init__(self, view: ImageView):
        self.view = view
        self._frames: OrderedDict[str, tuple[np.ndarray, float]] = OrderedDict()
        self._by_frame: dict[str, list[Record]] = {}

    def add(self, batch: BatchResult, records: Iterable[Record]) -> None:
        for (source, frame), scale in zip(batch.frames, batch.frame_scales, strict=True):
            self._frames[source] = (frame, scale)
            self._frames.move_to_end(source)
            while len(self._frames) > FRAME_CACHE:
                self._frames.popitem(last=False)
        records = list(records)
        for r in records:
            self._by_frame.setdefault(key_of(r), []).append(r)
        if records:
            latest = records[-1]
            key = key_of(latest)
            if key != self.view.source:
                self.show(latest)
            else:  # more organisms of the frame on show
                for r in records:
                    if key_of(r) == key:
                        self.view.add_prediction(r.prediction)

    def show(self, record: Record) -> None:
        """Show the image an organism is on (its frame, or itself) with its boxes."""
        key = key_of(record)
        if key in self._frames:
            frame, scale = self._frames[key]
            predictions = [r.prediction for r in self._by_frame.get(key, ())[-500:]]
            self.view.show_image(key, frame, scale, predictions)
        elif record.thumbnail is not None:
            self.view.show_image(key, record.thumbnail, 1.0, [replace(record.prediction, box=None)])

    def clear(self) -> None:
        self._frames.clear()
        self._by_frame.clear()
        self.view.clear()
