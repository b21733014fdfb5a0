"""What the window shows of its organisms: rows, thumbnails, corrected labels (no Qt).

Lives on the GUI thread only. The table and the gallery read it; the main window appends
each :class:`~phytoscope.gui.jobs.BatchResult` to it. Samples, counts for cells/L and
alerts are not computed here: they are the core
:class:`~phytoscope.core.session.SampleSession`'s, which receives the same batches.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from phytoscope.types import Prediction

THUMBNAIL_BUDGET_BYTES = 150 * 1024 * 1024
"""Thumbnails kept in memory at most; past this, organisms are still counted and listed
(and stored) but show no picture, so a huge folder cannot exhaust the RAM."""


@dataclass
class Record:
    number: int
    prediction: Prediction
    thumbnail: np.ndarray | None
    corrected: str | None = None
    origin: str | None = None
    """IFCB bin id, None for other images"""
    whole: bool = True
    """shown on its own (not as a box on a frame)"""

    @property
    def label(self) -> str:
        """The label that counts: the technician's correction, else the model's."""
        return self.corrected or self.prediction.label

    @property
    def key(self) -> tuple[str, int]:
        return (self.prediction.source, self.prediction.roi_index)


class Session:
    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.records: list[Record] = []
        self.by_key: dict[tuple[str, int], Record] = {}
        self.counts: Counter[str] = Counter()
        self.sources: list[str] = []
        self._sources_seen: set[str] = set()
        self.skipped: list[tuple[str, str]] = []
        self.thumbnail_bytes = 0
        self.thumbnails_dropped = 0
        self.run_ids: list[int] = []
        self.version = 0
        """bumped on every change; panels redraw only when it moved"""

    def add(
        self,
        predictions: tuple[Prediction, ...],
        thumbnails: tuple[np.ndarray | None, ...],
        origins: tuple[str | None, ...] = (),
        whole: tuple[bool, ...] = (),
    ) -> list[Record]:
        """Append a batch; an organism already listed (the same input opened again) is
        replaced in its row, as the core session replaces it, never listed twice."""
        added = []
        origins = origins or (None,) * len(predictions)
        whole = whole or tuple(p.box is None for p in predictions)
        for p, thumb, origin, alone in zip(predictions, thumbnails, origins, whole, strict=True):
            if thumb is not None:
                if self.thumbnail_bytes + thumb.nbytes > THUMBNAIL_BUDGET_BYTES:
                    thumb = None
                    self.thumbnails_dropped += 1
                else:
                    self.thumbnail_bytes += thumb.nbytes
            old = self.by_key.get((p.source, p.roi_index))
            if old is not None:
                self.counts[old.label] -= 1
                if self.counts[old.label] <= 0:
                    del self.counts[old.label]
                if thumb is None:
                    thumb = old.thumbnail
                elif old.thumbnail is not None:  # the new picture replaces the old one's bytes
                    self.thumbnail_bytes -= old.thumbnail.nbytes
                record = Record(old.number, p, thumb, old.corrected, origin, alone)
                self.records[old.number - 1] = record
            else:
                record = Record(len(self.records) + 1, p, thumb, origin=origin, whole=alone)
                self.records.append(record)
            self.by_key[record.key] = record
            self.counts[record.label] += 1
            if p.source not in self._sources_seen:
                self._sources_seen.add(p.source)
                self.sources.append(p.source)
            added.append(record)
        self.version += 1
        return added

    def correct(self, record: Record, label: str) -> None:
        old = record.label
        record.corrected = None if label == record.prediction.label else label
        self.counts[old] -= 1
        if self.counts[old] <= 0:
            del self.counts[old]
        self.counts[record.label] += 1
        self.version += 1

    def labels(self) -> list[str]:
        return sorted(self.counts, key=lambda k: (-self.counts[k], k))

    def records_for(self, label: str) -> list[Record]:
        return [r for r in self.records if r.label == label]

    def __len__(self) -> int:
        return len(self.records)
