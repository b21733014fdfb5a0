"""What the window has classified so far: predictions, thumbnails, corrections (no Qt).

Lives on the GUI thread only. Widgets read it; the main window appends each
:class:`~phytoscope.gui.jobs.BatchResult` to it.
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
        self.bins: dict[str, float] = {}
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
            record = Record(len(self.records) + 1, p, thumb, origin=origin, whole=alone)
            self.records.append(record)
            self.by_key[record.key] = record
            self.counts[p.label] += 1
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

    def effective_predictions(self, bins_only: bool = False) -> list[Prediction]:
        """Predictions with corrections applied (what counts and alerts use); with
        ``bins_only``, only organisms from IFCB bins (whose volume the headers give)."""
        from dataclasses import replace

        return [
            replace(r.prediction, label=r.corrected, confidence=1.0)
            if r.corrected
            else r.prediction
            for r in self.records
            if not bins_only or r.origin is not None
        ]

    def bin_counts(self) -> Counter[str]:
        """Counts of the organisms that came from IFCB bins."""
        return Counter(r.label for r in self.records if r.origin is not None)

    @property
    def mixed(self) -> bool:
        """Both IFCB-bin organisms and organisms from other images are in the session."""
        origins = {r.origin is None for r in self.records}
        return len(origins) == 2

    def labels(self) -> list[str]:
        return sorted(self.counts, key=lambda k: (-self.counts[k], k))

    def records_for(self, label: str) -> list[Record]:
        return [r for r in self.records if r.label == label]

    def __len__(self) -> int:
        return len(self.records)
