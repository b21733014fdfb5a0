"""Frozen value types passed between layers and threads (numpy and stdlib only).

Workers emit these to the GUI thread, so they are immutable: a slot can keep a reference
without copying and without racing the worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

Box = tuple[int, int, int, int]
"""(x, y, width, height) in pixels of the source image."""


SEGMENTED = "segmented"
"""``Roi.meta`` key, True for a piece the segmentation cut out of a whole frame (not an
instrument's own crop): the model card may hold such pieces to their own novelty threshold."""


@dataclass(frozen=True, eq=False)
class Roi:
    """One region of interest: a cropped organism (or a whole image treated as one).

    Parameters
    ----------
    source
        Where it came from: a file path, or ``"<bin path>"`` for an IFCB bin.
    index
        ROI number within the source (IFCB roi number; 0-based segment index for frames;
        page number for multi-page TIFFs; 0 for a single image).
    image
        The pixels as read: ``uint8`` or ``uint16``, shape (H, W) grey or (H, W, 3|4) RGB(A).
    box
        Position in the source frame, or ``None`` when the ROI *is* the whole image.
    flags
        Quality flags raised while reading or segmenting (``"blurry"``, ``"edge"`` ...).
    meta
        Extra facts from the source (IFCB: trigger number, ml_analyzed of its bin;
        :data:`SEGMENTED` for a piece the segmentation cut out of a whole frame).
    """

    source: str
    index: int
    image: np.ndarray
    box: Box | None = None
    flags: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def segmented(self) -> bool:
        """Cut out of a whole frame by the segmentation (:data:`SEGMENTED`)."""
        return bool(self.meta.get(SEGMENTED, False))


@dataclass(frozen=True)
class Skipped:
    """An input (or part of one) that could not be used; the run goes on and reports it.

    ``kind`` says what was lost, so a front end can weigh it: ``"error"`` the input or ROI
    gave nothing; ``"partial"`` only ``read`` of ``expected`` ROIs or pages were read (a
    truncated IFCB bin or TIFF, a malformed ADC row): its ROIs carry the ``partial`` flag
    and a volume-based concentration must be scaled or the input excluded;
    ``"duplicate"`` the same file or IFCB bin was named twice and was read once;
    ``"empty"`` the input is readable but holds no image. ``line`` is the 1-based line of
    a text file (the ADC) that was at fault, when there is one.
    """

    source: str
    reason: str
    kind: str = "error"
    read: int | None = None
    expected: int | None = None
    line: int | None = None


@dataclass(frozen=True)
class Prediction:
    """The classifier's answer for one ROI.

    ``label`` is ``"unknown"`` when the organism is unlike every training class (its
    ``novelty`` is above the card's threshold: ``unknown_reason`` ``"novel"``) or when the top
    class's probability is below that class's confidence threshold (``"unsure"``);
    ``top_k`` still holds the raw ranking. ``novelty`` is ``None`` for a model without an
    open-set score. ``scores`` is the full softmax vector over the card's classes (float32,
    in card order) for exporters that need every class (IFCB Dashboard class scores); it
    is ``None`` where a prediction was rebuilt from the store, which keeps only ``top_k``.
    """

    source: str
    roi_index: int
    label: str
    confidence: float
    top_k: tuple[tuple[str, float], ...]
    box: Box | None = None
    flags: tuple[str, ...] = ()
    novelty: float | None = None
    unknown_reason: str = ""
    scores: np.ndarray | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class TelemetrySample:
    """One reading of power and memory, stamped with a monotonic clock.

    ``power_w`` is ``None`` when no power figure exists at all; ``estimated`` is True when it
    comes from a model (CPU load x rated power) rather than a sensor, and every chart,
    report and file that shows it must say so.
    """

    t: float
    """seconds, time.monotonic()"""
    wall: float
    """seconds since the epoch, for logs"""
    power_w: float | None
    power_source: str
    estimated: bool
    rss_bytes: int
    ram_used_bytes: int
    ram_total_bytes: int
    cpu_percent: float
    rails_w: tuple[tuple[str, float], ...] = ()
    gpu_mem_used_bytes: int | None = None
    energy_j: float | None = None
    """cumulative joules since the sampler opened its source, where the source has energy
    counters (RAPL, NVML); ``None`` for instantaneous sources. Differences between samples
    are exact energies, so integrals prefer them over the trapezoid on ``power_w``."""
    process_cpu_percent: float | None = None
    """CPU of process ``pid`` as psutil counts it (100 = one core busy); ``cpu_percent``
    above is the whole machine's utilisation, 0-100 over all cores."""


@dataclass(frozen=True)
class Volume:
    """How much of the original water sample the counted organisms stand for.

    Every count becomes a concentration through this one number, so IFCB bins, Utermöhl
    chambers and user-given volumes are treated alike: ``cells/L = count * 1000 /
    ml_analyzed``. ``method`` is ``"ifcb"``, ``"utermohl"`` or ``"given"``; ``details``
    keeps the inputs (bin ids and their ml_analyzed, settled volume, areas ...) so a report
    can show how the volume was obtained.
    """

    ml_analyzed: float
    method: str
    details: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Sample:
    """What was analysed, where, when, and how much water (see :mod:`phytoscope.core.sample`).

    ``kind`` is ``"ifcb"``, ``"microscope"``, ``"files"`` or ``"camera"``; ``sampled_at``
    is ISO 8601 (the time the water was taken, not the time it was analysed). ``id`` and
    ``created_at`` are set by the store.
    """

    kind: str
    sources: tuple[str, ...]
    volume: Volume
    site: str = ""
    sampled_at: str | None = None
    run_id: int | None = None
    model: str = ""
    rule_set: str = ""
    notes: str = ""
    id: int | None = None
    created_at: str | None = None
    revision: int = 1
    """1 when first saved; every update (corrections, more bins, a new volume) adds one and
    keeps the earlier state in the store's revision history"""
    updated_at: str | None = None
    flags: tuple[str, ...] = ()
    """``"partial"``: a bin was read only in part and its volume scaled (see ``warnings``)"""
    warnings: tuple[str, ...] = ()
    unidentified: int = 0
    """organisms the model did not identify ("unknown"): counted, never in an alert"""
    time_source: str = ""
    """where ``sampled_at`` came from: ``"bins"`` (IFCB bin names) or ``"user"``"""
    run_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class Alert:
    """A harmful taxon at or above a published threshold, with its evidence.

    ``level`` is in the rule set's own words (``"red"``, ``"medium"``,
    ``"moderate_probability"``). ``threshold_per_l`` is the lower edge of that level's band,
    taken from ``rule_taxon`` (for a genus-only model, the most conservative species row of
    the genus). When ``unit`` is ``"chains/L"`` the organisms were counted per chain, so the
    cell concentration is underestimated and ``level`` is a lower bound (``lower_bound``).
    ``evidence`` lists (source, roi_index) of ROIs counted for the taxon (capped; ``count``
    is the full number). An alert stays open until acknowledged (``acknowledged_by`` and
    ``acknowledged_at`` are then set by the store); an acknowledgement covers the level and
    concentration it saw, so a later change of the sample re-opens the alert.
    """

    taxon: str
    level: str
    threshold_per_l: float
    concentration_per_l: float
    low_per_l: float
    high_per_l: float
    count: int
    unit: str
    rule_set: str
    rule_set_version: str
    model: str
    rule_taxon: str = ""
    syndrome: str = ""
    lower_bound: bool = False
    flags: tuple[str, ...] = ()
    evidence: tuple[tuple[str, int], ...] = ()
    sample_id: int | None = None
    raised_at: str | None = None
    id: int | None = None
    acknowledged_by: str | None = None
    acknowledged_at: str | None = None
    revision: int = 1
    """the sample revision whose counts this alert now states"""
    withdrawn_at: str | None = None
    """set when a later revision of the sample no longer reaches any threshold"""
    ack_note: str = ""
    reopened: str = ""
    """the acknowledgement a later change made stale (who, when, and the concentration
    they saw), empty otherwise; a re-opened alert is open again"""

    @property
    def open(self) -> bool:
        return self.acknowledged_at is None and self.withdrawn_at is None
