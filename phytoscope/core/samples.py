"""Sample rules, in one place: time, volume, pooling, partial bins and plausibility.

The command line, the window and the archive all build their samples through
:class:`phytoscope.core.session.SampleSession`, which asks this module every question a
technician would sign for:

- **When was the water taken?** An IFCB bin's name is its sampling time (UTC, set by the
  instrument): :func:`bin_time`. Other images have only what the user typed
  (:func:`parse_time`: any ISO 8601 text; without a zone it is the machine's local time).
  Every time is stored as UTC ISO 8601 with its zone. A sample without a time is not saved.
- **How much water?** IFCB bins: their headers, always. Other images: what the user gives
  (:class:`VolumeSpec`: a volume, or a Utermöhl chamber by area or by fields x field area).
  Nothing has a default: a field nobody typed is ``None``, and no volume means counts only.
- **Pool these bins?** Bins of one instrument and one UTC day pool into one sample (more
  water, a lower detection limit). Bins from different days or instruments are never pooled
  by default: each instrument and day becomes its own sample, with a warning, unless the
  user chooses to pool everything or to keep one sample per bin (:func:`group_bins`).
- **Was the whole bin read?** A bin whose ``.roi`` is truncated or partly unreadable (or a
  run stopped mid-bin) has classified only some of its ROIs. Its volume is then scaled to the
  ROIs classified (``ml_analyzed x classified / expected``, which assumes the missing ROIs
  were like the ones read) and the sample carries a ``partial`` flag; or, by choice, the bin
  is excluded (:data:`PARTIAL_POLICIES`, :class:`BinFacts`).
- **Is the volume plausible?** Volumes outside the usual range of their method warn, naming
  what one organism would count for (:func:`plausibility_warnings`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from phytoscope.core.hab import HabResult, RuleSet, assess
from phytoscope.core.sample import (
    Concentration,
    ManualCount,
    concentrations,
    format_per_l,
    given_volume,
    utermohl_volume,
)
from phytoscope.core.sampletime import bin_instrument, bin_time, iso_utc, parse_time
from phytoscope.core.unidentified import closest_hab, unidentified
from phytoscope.errors import ConfigError
from phytoscope.modelcard import ModelCard
from phytoscope.types import Alert, Prediction, Volume

GROUPINGS = ("auto", "pool", "per-bin")
"""auto: one sample per instrument and UTC day (bins of one instrument and day pooled);
pool: every bin in one sample (an explicit choice); per-bin: one sample per bin."""
PARTIAL_POLICIES = ("scale", "exclude")
"""What a bin that was not read in full gets: its volume scaled to the ROIs classified, or
left out of the sample."""

PARTIAL = "partial"
"""Flag of a sample that holds a bin read only in part (volume scaled)."""

IFCB_BIN_ML = (0.1, 10.0)
"""Usual mL analysed per IFCB bin: about 5 mL in a 20-minute run (0.25 mL/min)."""
GIVEN_ML = (0.01, 10_000.0)
UTERMOHL_ML = (0.01, 100.0)
"""Equivalent mL of a Utermöhl count: 1 % of a 1 mL chamber up to a whole 100 mL one."""


# -- volume options ---------------------------------------------------------------------


@dataclass(frozen=True)
class VolumeSpec:
    """The volume the user gave for images that are not IFCB bins (nothing is a default).

    ``method`` is ``"given"`` (``given_ml``) or ``"utermohl"`` (``settled_ml`` and, unless
    the whole chamber was counted, the chamber area with either the counted area or
    ``fields`` x ``field_area_mm2``; optional preservative and dilution). The command line
    (``--sample-volume``, ``--settled-ml`` ...) and the window's sample panel fill the
    same fields.
    """

    method: str = ""
    given_ml: float | None = None
    settled_ml: float | None = None
    chamber_area_mm2: float | None = None
    counted_area_mm2: float | None = None
    fields: int | None = None
    field_area_mm2: float | None = None
    sample_ml: float | None = None
    preservative_ml: float | None = None
    dilution: float | None = None

    def volume(self) -> Volume | None:
        """The volume, or None while it is not given; :class:`ConfigError` when inconsistent."""
        if self.method == "given":
            return given_volume(self.given_ml) if self.given_ml is not None else None
        if self.method == "utermohl":
            if self.settled_ml is None:
                return None
            return utermohl_volume(
                self.settled_ml,
                chamber_area_mm2=self.chamber_area_mm2,
                counted_area_mm2=self.counted_area_mm2,
                fields=self.fields,
                field_area_mm2=self.field_area_mm2,
                sample_ml=self.sample_ml,
                preservative_ml=self.preservative_ml or 0.0,
                dilution=self.dilution if self.dilution is not None else 1.0,
            )
        if self.method:
            raise ConfigError(f"volume method must be 'given' or 'utermohl', not {self.method!r}")
        return None

    @classmethod
    def of(cls, **values: Any) -> VolumeSpec:
        """The spec the values describe: Utermöhl when a settled volume is given, else a
        given volume when one is, else none."""
        method = "utermohl" if values.get("settled_ml") is not None else ""
        if not method and values.get("given_ml") is not None:
            method = "given"
        return cls(method=method, **values)

    @classmethod
    def from_volume(cls, volume: Volume) -> VolumeSpec:
        """The spec that gives a stored volume again (a re-opened sample); IFCB volumes come
        from their bins, so they give an empty spec."""
        d = dict(volume.details)
        if volume.method == "given":
            return cls(method="given", given_ml=volume.ml_analyzed)
        if volume.method != "utermohl":
            return cls()
        return cls.of(
            settled_ml=d.get("settled_ml"),
            chamber_area_mm2=d.get("chamber_area_mm2"),
            counted_area_mm2=None if "fields" in d else d.get("counted_area_mm2"),
            fields=d.get("fields"),
            field_area_mm2=d.get("field_area_mm2"),
            sample_ml=d.get("sample_ml"),
            preservative_ml=d.get("preservative_ml"),
            dilution=d.get("dilution"),
        )


# -- IFCB bins ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BinFacts:
    """What the analysis learned about one IFCB bin.

    ``rois_expected``: ADC rows with an image; ``rois_classified``: organisms of the bin in
    the sample; ``problems``: why reading stopped or ROIs were lost (file, ROI, reason).
    """

    bin_id: str
    source: str
    ml_analyzed: float | None
    rois_expected: int | None = None
    rois_classified: int = 0
    problems: tuple[str, ...] = ()

    @property
    def time(self) -> datetime | None:
        return bin_time(self.bin_id)

    @property
    def instrument(self) -> str | None:
        return bin_instrument(self.bin_id)

    @property
    def partial(self) -> bool:
        """Fewer ROIs classified than the bin holds (or reading reported a problem)."""
        if self.rois_expected is not None and self.rois_classified < self.rois_expected:
            return True
        return bool(self.problems)

    @property
    def fraction(self) -> float:
        """Share of the bin's ROIs that were classified (1 when the bin's size is unknown)."""
        if not self.rois_expected:
            return 1.0
        return min(1.0, self.rois_classified / self.rois_expected)

    @property
    def usable_ml(self) -> float | None:
        """The bin's volume scaled to the ROIs classified (None: no usable volume)."""
        if self.ml_analyzed is None or not (
            math.isfinite(self.ml_analyzed) and self.ml_analyzed > 0
        ):
            return None
        return self.ml_analyzed * self.fraction

    def describe_partial(self) -> str:
        """``D2022..: 8 of 17 ROIs read (...): volume scaled to 8/17 of 4.175 mL = 1.965 mL``."""
        why = f" ({'; '.join(self.problems)})" if self.problems else ""
        expected = self.rois_expected if self.rois_expected is not None else "?"
        text = f"{self.bin_id}: {self.rois_classified} of {expected} ROIs classified{why}"
        if self.ml_analyzed is not None and self.rois_expected:
            scaled = self.usable_ml or 0.0
            text += (
                f"; volume scaled to {self.rois_classified}/{self.rois_expected} of "
                f"{self.ml_analyzed:.4g} mL = {scaled:.4g} mL (assumes the missing ROIs were "
                "like the ones read: an estimate)"
            )
        return text

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "problems": list(self.problems)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BinFacts:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**{**known, "problems": tuple(d.get("problems", ()))})


def pooling_conflict(bins: Sequence[BinFacts]) -> str | None:
    """Why these bins should not be pooled (different instruments or UTC days), or None."""
    instruments = sorted({b.instrument or "?" for b in bins})
    days = sorted({b.time.date().isoformat() if b.time else "unknown day" for b in bins})
    reasons = []
    if len(instruments) > 1:
        reasons.append(f"{len(instruments)} instruments ({', '.join(instruments)})")
    if len(days) > 1:
        reasons.append(f"{len(days)} days ({', '.join(days)})")
    return " and ".join(reasons) if reasons else None


def group_bins(bins: Sequence[BinFacts], grouping: str) -> tuple[list[list[BinFacts]], str]:
    """Bins split into samples by the pooling rule, and a notice saying what was decided."""
    if grouping not in GROUPINGS:
        raise ConfigError(f"grouping must be one of {', '.join(GROUPINGS)}, not {grouping!r}")
    if len(bins) <= 1:
        return ([list(bins)] if bins else []), ""
    conflict = pooling_conflict(bins)
    if grouping == "per-bin":
        return [[b] for b in bins], ""
    if grouping == "pool":
        note = f"bins from {conflict} pooled into one sample by choice" if conflict else ""
        return [list(bins)], note
    if conflict:
        groups: dict[tuple[str, str], list[BinFacts]] = {}
        for b in bins:
            day = b.time.date().isoformat() if b.time else "unknown day"
            groups.setdefault((b.instrument or "?", day), []).append(b)
        return list(groups.values()), (
            f"the IFCB bins come from {conflict}: they are NOT pooled across them; bins of "
            f"one instrument and day make one sample ({len(groups)} samples; choose 'pool' "
            "to pool everything anyway, or 'per-bin')"
        )
    return [list(bins)], ""


def bins_volume(bins: Sequence[BinFacts]) -> Volume:
    """The pooled volume of bins, each scaled to the ROIs classified; details per bin."""
    usable = [(b.bin_id, b.usable_ml) for b in bins]
    missing = [bin_id for bin_id, ml in usable if ml is None]
    if missing:
        raise ConfigError(
            f"IFCB bin {missing[0]} has no usable volume: its header has no runTime/inhibitTime "
            "(and its ADC no run times), so no concentration can be computed from it"
        )
    details = tuple(sorted((bin_id, float(ml or 0.0)) for bin_id, ml in usable))
    total = sum(ml for _, ml in details)
    if total <= 0:
        raise ConfigError("no ROI of these IFCB bins was classified: there is no volume to count")
    return Volume(ml_analyzed=total, method="ifcb", details=details)


# -- plausibility, kinds, unknowns --------------------------------------------------------


def _outside(ml: float, bounds: tuple[float, float]) -> bool:
    return not bounds[0] <= ml <= bounds[1]


def plausibility_warnings(volume: Volume, bins: Sequence[BinFacts] = ()) -> list[str]:
    """Warnings for volumes outside the usual range of their method."""
    out = []
    for b in bins:
        if b.ml_analyzed is not None and _outside(b.ml_analyzed, IFCB_BIN_ML):
            out.append(
                f"{b.bin_id} analysed {b.ml_analyzed:.4g} mL, outside the usual "
                f"{IFCB_BIN_ML[0]:g}-{IFCB_BIN_ML[1]:g} mL of an IFCB bin: one organism counts "
                f"as {format_per_l(1000.0 / b.ml_analyzed)} per L; check its header "
                "(runTime, inhibitTime) before trusting these concentrations"
            )
    bounds = {"given": GIVEN_ML, "utermohl": UTERMOHL_ML}.get(volume.method)
    if bounds and _outside(volume.ml_analyzed, bounds):
        out.append(
            f"the volume ({volume.ml_analyzed:.4g} mL) is outside the usual "
            f"{bounds[0]:g}-{bounds[1]:g} mL for this method: one organism counts as "
            f"{format_per_l(1000.0 / volume.ml_analyzed)} per L; check the numbers typed"
        )
    return out


def sample_kind(volume: Volume | None, sources: Sequence[str], from_bins: bool) -> str:
    """``ifcb``, ``microscope`` (a Utermöhl count), ``camera`` or ``files``."""
    if from_bins:
        return "ifcb"
    if volume is not None and volume.method == "utermohl":
        return "microscope"
    if sources and all(s.startswith("camera:") for s in sources):
        return "camera"
    return "files"


@dataclass(frozen=True)
class SampleSettings:
    """What the user says about the sample (both front ends fill the same fields).

    ``sampled_at`` is the time typed (None until typed); IFCB bins bring their own.
    ``volume`` is for images that are not IFCB bins. ``grouping`` and ``partial`` choose
    among :data:`~phytoscope.core.samples.GROUPINGS` and ``PARTIAL_POLICIES``.
    """

    site: str = ""
    sampled_at: str | None = None
    volume: VolumeSpec = field(default_factory=VolumeSpec)
    grouping: str = "auto"
    partial: str = "scale"
    notes: str = ""


@dataclass(frozen=True)
class SampleDraft:
    """One sample as the session sees it now (saved or not); immutable, safe to show."""

    key: str
    kind: str
    sources: tuple[str, ...]
    bins: tuple[BinFacts, ...]
    volume: Volume | None
    sampled_at: str | None
    time_source: str
    site: str
    counts: dict[str, int]
    unidentified: dict[str, int]
    concentrations: tuple[Concentration, ...]
    hab: HabResult | None
    flags: tuple[str, ...]
    warnings: tuple[str, ...]
    problems: tuple[str, ...]
    predictions: tuple[Prediction, ...]
    sample_id: int | None = None
    revision: int = 0
    saved: bool = False
    """stored, and nothing changed since"""
    alerts: tuple[Alert, ...] = ()
    """the stored alerts (with acknowledgements) of the last save"""
    manual: tuple[ManualCount, ...] = ()
    """a microscopist's counts (taxa the model cannot see), assessed like model counts"""
    unidentified_hab: dict[str, int] = field(default_factory=dict)
    """unknown organisms whose best class is HAB-relevant, by that class (:func:`closest_hab`)"""

    @property
    def organisms(self) -> int:
        return sum(self.counts.values())

    @property
    def n_unidentified(self) -> int:
        return sum(self.unidentified.values())

    @property
    def can_save(self) -> bool:
        return not self.problems


def build_draft(
    key: str,
    predictions: tuple[Prediction, ...],
    bins: Sequence[BinFacts],
    sources: tuple[str, ...],
    settings: SampleSettings,
    card: ModelCard | None,
    rule_set: RuleSet | None,
    manual: Sequence[ManualCount] = (),
) -> SampleDraft:
    """One sample by the rules above: IFCB bins (``bins`` non-empty) take volume, time and
    flags from the bins; other images take the user's volume and time. ``problems`` say
    why it cannot be saved yet; ``warnings`` stay visible with it."""
    counts = Counter(p.label for p in predictions)
    problems: list[str] = []
    warnings: list[str] = []
    flags: list[str] = []
    volume: Volume | None = None
    time_source = ""
    sampled_at: str | None = None
    if bins:
        sources = tuple(b.source for b in bins)
        try:
            volume = bins_volume(bins)
        except ConfigError as exc:
            problems.append(str(exc))
        partial = [b for b in bins if b.partial]
        if partial:
            flags.append(PARTIAL)
            warnings += [f"PARTIAL: {b.describe_partial()}" for b in partial]
        times = [b.time for b in bins]
        if all(t is not None for t in times):
            sampled_at, time_source = iso_utc(min(t for t in times if t)), "bins"
        else:
            problems.append("an IFCB bin name carries no sampling time")
    else:
        try:
            volume = settings.volume.volume()
        except ConfigError as exc:
            problems.append(str(exc))
        else:
            if volume is None:
                problems.append(
                    "no volume: give the mL of water these images stand for, or the "
                    "Utermöhl chamber (counts only until then)"
                )
        if settings.sampled_at:
            try:
                sampled_at, time_source = parse_time(settings.sampled_at), "user"
            except ConfigError as exc:
                problems.append(str(exc))
    if sampled_at is None and not any("time" in p for p in problems):
        problems.append("no sampling time: give when the water was taken")
    if volume is not None:
        warnings += plausibility_warnings(volume, bins)
    if card is None:
        problems.append("no model is loaded")
    concs: tuple[Concentration, ...] = ()
    hab = None
    if volume is not None and card is not None:
        concs = tuple(concentrations(counts, volume, card))
        if rule_set is not None:
            hab = assess(counts, volume, card, rule_set, manual)
    stored = dict.fromkeys((c.name for c in card.classes), 0) if card else {}
    stored.update(counts)
    return SampleDraft(
        key=key,
        kind=sample_kind(volume, sources, bool(bins)),
        sources=sources,
        bins=tuple(bins),
        volume=volume,
        sampled_at=sampled_at,
        time_source=time_source,
        site=settings.site.strip(),
        counts=stored,
        unidentified=unidentified(predictions),
        concentrations=concs,
        hab=hab,
        flags=tuple(flags),
        warnings=tuple(warnings),
        problems=tuple(problems),
        predictions=predictions,
        manual=tuple(manual),
        unidentified_hab=closest_hab(predictions, card),
    )
