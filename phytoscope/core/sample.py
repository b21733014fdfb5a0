"""Samples: from ROI counts to concentrations (cells/L) with exact Poisson intervals.

A count means nothing to a regulator until it is divided by the water it came from, so
every sample carries one :class:`~phytoscope.types.Volume`: the millilitres of *original*
water the counted organisms stand for. Then for every class

    concentration (per L) = count * 1000 / ml_analyzed

whatever the instrument. Three ways to get that volume:

- :func:`ifcb_volume`: an Imaging FlowCytobot bin analyses
  ``ml_analyzed = 0.25 * (runTime - inhibitTime) / 60`` mL (from its ``.hdr``, computed by
  :class:`phytoscope.sources.ifcb.IfcbBin`); pooled bins add their volumes, which is how
  rare taxa get a useful detection limit (one ROI in 5 mL is already 200 cells/L).
- :func:`utermohl_volume`: microscope counts after Utermöhl settling,
  ``cells/L = N * (A_chamber / A_counted) * (1000 / V_settled) * ((V_sample + V_pres) / V_sample)``
  times any extra dilution, i.e. an equivalent volume of
  ``V_settled * (A_counted / A_chamber) * V_sample / (V_sample + V_pres) / dilution`` mL.
- :func:`given_volume`: image files or a camera session where the user knows the volume.

Counts are Poisson, so each concentration carries the exact (Garwood) 95 % interval,
``[chi2(a/2; 2N) / 2, chi2(1 - a/2; 2N + 2) / 2]`` scaled like the count. The chi-square
quantiles with even degrees of freedom are inverses of the regularised incomplete gamma
function, taken from SciPy (``scipy.special.gammaincinv``, the field's standard,
equivalent to ``scipy.stats.chi2.ppf(q, 2k) / 2`` without the distribution object's
overhead per call). The detection limit, the
concentration of a single organism, is reported with every zero: "not detected" in 5 mL
and in 500 mL are very different statements.

Chain-forming classes (``ClassInfo.chain_forming``, e.g. Pseudo-nitzschia) are imaged as
one object per chain, so their concentration is in chains/L and flagged
:data:`CELLS_UNDERESTIMATED`: the true cell concentration is at least this figure.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from scipy.special import gammaincinv

from phytoscope.errors import ConfigError
from phytoscope.modelcard import UNKNOWN, ModelCard
from phytoscope.types import Prediction, Volume

CELLS = "cells/L"
CHAINS = "chains/L"
CELLS_UNDERESTIMATED = "cells underestimated (counted per chain)"
CONFIDENCE = 0.95


# -- exact Poisson (Garwood) interval --------------------------------------------------


def poisson_interval(count: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Exact (Garwood) two-sided interval for the mean of a Poisson count.

    Returns ``(low, high)`` in organisms; ``low`` is 0 for a count of 0. Examples (95 %):
    0 -> (0, 3.689), 1 -> (0.0253, 5.572), 10 -> (4.795, 18.39).
    """
    if count < 0 or int(count) != count:
        raise ValueError(f"a count must be a non-negative integer, not {count!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1, not {confidence}")
    alpha = 1.0 - confidence
    # chi2(p; 2k) / 2 is the inverse of the regularised lower incomplete gamma P(k, x)
    low = 0.0 if count == 0 else float(gammaincinv(count, alpha / 2.0))
    high = float(gammaincinv(count + 1, 1.0 - alpha / 2.0))
    return low, high


# -- volumes -----------------------------------------------------------------------------


def given_volume(ml: float, note: str = "") -> Volume:
    """A volume the user states (image files, a camera session, a FlowCam run)."""
    ml = float(ml)
    if not ml > 0 or not math.isfinite(ml):
        raise ConfigError(f"sample volume must be a positive number of mL, not {ml}")
    details: tuple[tuple[str, Any], ...] = (("note", note),) if note else ()
    return Volume(ml_analyzed=ml, method="given", details=details)


def ifcb_volume(bins: Mapping[str, float] | Iterable[tuple[str, float]]) -> Volume:
    """Pool IFCB bins: the volume analysed is the sum of each bin's ``ml_analyzed``.

    Parameters
    ----------
    bins
        ``{bin id: ml_analyzed}`` (or pairs). Each bin counts once however many of its ROIs
        were classified, which is why the caller passes bins and not ROIs.
    """
    pairs = list(bins.items()) if isinstance(bins, Mapping) else list(bins)
    if not pairs:
        raise ConfigError("no IFCB bin given: cannot tell how much water was analysed")
    seen: dict[str, float] = {}
    for bin_id, ml in pairs:
        ml = float(ml)
        if not ml > 0 or not math.isfinite(ml):
            raise ConfigError(
                f"IFCB bin {bin_id} analysed {ml} mL: its header has no usable runTime/inhibitTime, "
                "so no concentration can be computed from it (give --sample-volume instead)"
            )
        seen[str(bin_id)] = ml
    total = sum(seen.values())
    return Volume(ml_analyzed=total, method="ifcb", details=tuple(sorted(seen.items())))


def volume_from_meta(metas: Iterable[Mapping[str, Any]]) -> Volume | None:
    """The pooled IFCB volume of the bins that ROI ``meta`` dicts name, or None if none do."""
    bins = {
        str(m["bin"]): float(m["ml_analyzed"]) for m in metas if "bin" in m and "ml_analyzed" in m
    }
    return ifcb_volume(bins) if bins else None


def utermohl_volume(
    settled_ml: float,
    chamber_area_mm2: float | None = None,
    counted_area_mm2: float | None = None,
    fields: int | None = None,
    field_area_mm2: float | None = None,
    sample_ml: float | None = None,
    preservative_ml: float = 0.0,
    dilution: float = 1.0,
) -> Volume:
    """Equivalent volume of original water counted in a Utermöhl settling chamber.

    Parameters
    ----------
    settled_ml
        Volume settled in the chamber (mL).
    chamber_area_mm2, counted_area_mm2
        Chamber bottom area and the area actually counted; leave both out when the whole
        chamber was counted.
    fields, field_area_mm2
        Alternative to ``counted_area_mm2``: number of fields of view and the area of one.
    sample_ml, preservative_ml
        Lugol's (or other preservative) added to ``sample_ml`` of water dilutes it by
        ``(sample + preservative) / sample``.
    dilution
        Any further dilution factor applied before settling (1 = none).
    """
    values = {"settled_ml": settled_ml, "dilution": dilution}
    for name, value in values.items():
        if not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
            raise ConfigError(f"{name} must be a positive number, not {value!r}")
    if fields is not None or field_area_mm2 is not None:
        if counted_area_mm2 is not None:
            raise ConfigError("give either the counted area or fields x field area, not both")
        if not fields or not field_area_mm2 or fields <= 0 or field_area_mm2 <= 0:
            raise ConfigError(
                "counting by fields needs both a positive number of fields and the field area"
            )
        counted_area_mm2 = fields * field_area_mm2
    if (chamber_area_mm2 is None) != (counted_area_mm2 is None):
        raise ConfigError(
            "give both the chamber area and the counted area (or neither: whole chamber)"
        )
    fraction = 1.0
    if chamber_area_mm2 is not None and counted_area_mm2 is not None:
        if not (chamber_area_mm2 > 0 and 0 < counted_area_mm2 <= chamber_area_mm2):
            raise ConfigError(
                f"counted area {counted_area_mm2} mm² must be positive and within the chamber "
                f"area {chamber_area_mm2} mm²"
            )
        fraction = counted_area_mm2 / chamber_area_mm2
    preservation = 1.0
    if preservative_ml:
        if sample_ml is None or sample_ml <= 0 or preservative_ml < 0:
            raise ConfigError(
                "a preservative volume needs the positive sample volume it was added to"
            )
        preservation = (sample_ml + preservative_ml) / sample_ml
    ml = settled_ml * fraction / preservation / dilution
    details: list[tuple[str, Any]] = [("settled_ml", float(settled_ml))]
    if chamber_area_mm2 is not None:
        details += [
            ("chamber_area_mm2", float(chamber_area_mm2)),
            ("counted_area_mm2", float(counted_area_mm2 or 0)),
        ]
    if fields is not None:
        details += [("fields", int(fields)), ("field_area_mm2", float(field_area_mm2 or 0))]
    if preservative_ml:
        details += [
            ("sample_ml", float(sample_ml or 0)),
            ("preservative_ml", float(preservative_ml)),
        ]
    if dilution != 1.0:
        details.append(("dilution", float(dilution)))
    return Volume(ml_analyzed=ml, method="utermohl", details=tuple(details))


def describe_volume(volume: Volume) -> str:
    """One line for reports: how much water, and how that figure was obtained."""
    d = dict(volume.details)
    ml = f"{volume.ml_analyzed:.4g} mL"
    if volume.method == "ifcb":
        return f"{ml} analysed in {len(d)} IFCB bin(s) (0.25 mL/min x (runTime - inhibitTime))"
    if volume.method == "utermohl":
        parts = [f"{d['settled_ml']:g} mL settled"]
        if "fields" in d:
            parts.append(f"{d['fields']} fields of {d['field_area_mm2']:g} mm²")
        if "counted_area_mm2" in d:
            parts.append(f"{d['counted_area_mm2']:g} of {d['chamber_area_mm2']:g} mm² counted")
        if "preservative_ml" in d:
            parts.append(f"{d['preservative_ml']:g} mL preservative in {d['sample_ml']:g} mL")
        if "dilution" in d:
            parts.append(f"diluted x{d['dilution']:g}")
        return f"{ml} equivalent (Utermöhl: {', '.join(parts)})"
    return f"{ml} (given{': ' + d['note'] if d.get('note') else ''})"


# -- concentrations ----------------------------------------------------------------------


@dataclass(frozen=True)
class Concentration:
    """Organisms of one class per litre, with its exact 95 % interval and detection limit."""

    taxon: str
    count: int
    per_l: float
    low_per_l: float
    high_per_l: float
    detection_limit_per_l: float
    unit: str = CELLS
    flags: tuple[str, ...] = ()

    @property
    def detected(self) -> bool:
        return self.count > 0

    def describe(self) -> str:
        """``"1,200 cells/L (95 % 620-2,100; n=6)"`` or ``"ND (< 200 cells/L)"``."""
        if not self.detected:
            return f"ND (< {format_per_l(self.detection_limit_per_l)} {self.unit}, 95 % upper {format_per_l(self.high_per_l)})"
        text = (
            f"{format_per_l(self.per_l)} {self.unit} (95 % {format_per_l(self.low_per_l)}-"
            f"{format_per_l(self.high_per_l)}; n={self.count})"
        )
        return text + (f" [{'; '.join(self.flags)}]" if self.flags else "")


def format_per_l(value: float) -> str:
    """Three significant figures with thousands separators: counts are never more precise."""
    if value == 0:
        return "0"
    if value >= 1000:
        digits = int(math.floor(math.log10(value))) + 1
        return f"{round(value, 3 - digits):,.0f}"
    return f"{value:.3g}"


PRESENCE = 1.0
"""A threshold below one cell per litre means "any cell found" (Scotland's yellow): rule
sets write it as 0.0001 cells/L, which no report should print."""


def level_words(level: str) -> str:
    """``"moderate_probability"`` -> ``"moderate probability"``."""
    return level.replace("_", " ")


def threshold_words(per_l: float | None, boundary: str = ">=") -> str:
    """``"50,000 cells/L"``, ``"any cell found"``, or ``"more than 1,000 cells/L"``."""
    if per_l is None:
        return "—"
    if per_l < PRESENCE:
        return "any cell found"
    prefix = "more than " if boundary == ">" else ""
    unit = "cell/L" if per_l == 1 else "cells/L"
    return f"{prefix}{format_per_l(per_l)} {unit}"


def concentration(
    taxon: str, count: int, volume: Volume, chain_forming: bool = False
) -> Concentration:
    """Concentration of ``count`` organisms found in ``volume``."""
    if volume.ml_analyzed <= 0:
        raise ConfigError("the sample volume is zero: no concentration can be computed")
    per_organism = 1000.0 / volume.ml_analyzed  # organisms/L for one organism counted
    low, high = poisson_interval(count)
    return Concentration(
        taxon=taxon,
        count=int(count),
        per_l=count * per_organism,
        low_per_l=low * per_organism,
        high_per_l=high * per_organism,
        detection_limit_per_l=per_organism,
        unit=CHAINS if chain_forming else CELLS,
        flags=(CELLS_UNDERESTIMATED,) if chain_forming else (),
    )


MANUAL = "manual count"
"""Flag of an assessment or alert that comes from a microscopist's count, not the model."""


@dataclass(frozen=True)
class ManualCount:
    """A microscopist's count of one taxon (one the model cannot see, usually): ``count``
    organisms found in ``volume_ml`` mL of the original water. It has its own volume, so
    its concentration and detection limit are its own, not the imaged sample's."""

    taxon: str
    count: int
    volume_ml: float
    who: str = ""
    at: str = ""
    note: str = ""

    def __post_init__(self) -> None:
        if not self.taxon.strip():
            raise ConfigError("a manual count needs the taxon counted")
        if isinstance(self.count, bool) or int(self.count) != self.count or self.count < 0:
            raise ConfigError(f"a manual count is a whole number >= 0, not {self.count!r}")
        if not (math.isfinite(self.volume_ml) and self.volume_ml > 0):
            raise ConfigError(
                f"the volume counted must be a positive number of mL, not {self.volume_ml!r}"
            )

    def concentration(self, chain_forming: bool = False) -> Concentration:
        volume = Volume(ml_analyzed=float(self.volume_ml), method="manual")
        c = concentration(self.taxon, int(self.count), volume, chain_forming)
        return replace(c, flags=(*c.flags, self.describe()))

    def describe(self) -> str:
        """``manual count: 12 in 10 mL (A. Tech)``."""
        who = f" ({self.who})" if self.who else ""
        return f"{MANUAL}: {self.count} in {self.volume_ml:g} mL{who}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ManualCount:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)


def count_labels(predictions: Iterable[Prediction]) -> Counter[str]:
    """Organisms per predicted label ("unknown" included: the report says how many)."""
    return Counter(p.label for p in predictions)


def concentrations(
    counts: Mapping[str, int], volume: Volume, card: ModelCard
) -> list[Concentration]:
    """One concentration per class of the model, zeros included (they carry the detection limit).

    Labels not in the card (``"unknown"``, or a class of another model) are left out: they
    cannot be compared with any threshold; :func:`count_labels` still has them.
    """
    return [
        concentration(c.name, int(counts.get(c.name, 0)), volume, c.chain_forming)
        for c in card.classes
        if c.name != UNKNOWN
    ]


def evidence_by_label(
    predictions: Sequence[Prediction], per_label: int = 50
) -> dict[str, list[tuple[str, int]]]:
    """The most confident ROIs of each label as (source, roi_index), for alerts and thumbnails."""
    ranked = sorted(predictions, key=lambda p: -p.confidence)
    out: dict[str, list[tuple[str, int]]] = {}
    for p in ranked:
        bucket = out.setdefault(p.label, [])
        if len(bucket) < per_label:
            bucket.append((p.source, p.roi_index))
    return out
