"""EcoTaxa: export ROIs with their predicted genus for validation, import the validated ones.

Taxonomists validate image sets in EcoTaxa (ecotaxa.obs-vlfr.fr). Its import takes a zip
holding the images and one ``ecotaxa_<name>.tsv``: a tab-separated table whose first row
names the columns (``object_*``, ``img_*``, ``sample_*``, ``acq_*``, ``process_*``) and
whose second row types them, ``[t]`` text or ``[f]`` number. What EcoTaxa's importer
checks, and this writer therefore guarantees (read in ecotaxa_back's ``TSVFile``):

* ``object_id`` on every row, unique together with ``img_file_name``; every image named
  exists beside the TSV (a row whose ROI could not be re-read is left out and counted);
* a category only with a status and a status only with a category: an organism the model
  called "unknown" is exported unclassified (neither), the others as
  ``object_annotation_status`` "predicted";
* dates ``YYYYMMDD`` and times ``HHMMSS`` (UTC where the sample time has a zone), latitude
  -90..90, longitude -180..180, depth in ``object_depth_min``/``object_depth_max`` (m);
* a ``<table>_id`` column for every table with columns (``sample_id``, ``acq_id``,
  ``process_id``);
* UTF-8 with a byte-order mark: without one EcoTaxa reads the file as Latin-1.

The reverse, reading an EcoTaxa export back as training folders, is :mod:`.ecotaxa_read`.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from phytoscope import __version__
from phytoscope.errors import ConfigError, StorageError
from phytoscope.imaging.preprocess import to_uint8
from phytoscope.modelcard import UNKNOWN
from phytoscope.progress import Progress
from phytoscope.sources.ifcb import is_bin_name
from phytoscope.sources.video import split_frame_source
from phytoscope.types import Prediction

log = logging.getLogger(__name__)

STAGE = "ecotaxa"
PREDICTED = "predicted"
VALIDATED = "validated"
STATUSES = ("validated", "predicted", "dubious", "discarded")

RoiImages = Callable[[Sequence[tuple[str, int]]], Iterator[tuple[str, int, "np.ndarray | None"]]]
"""``images(refs)`` -> (source, roi index, pixels or None) for (source, index) pairs."""


@dataclass(frozen=True)
class SampleFacts:
    """What EcoTaxa learns about the water an organism came from (all optional but the id).

    ``sampled_at`` is ISO 8601; with a time zone it is written in UTC, without one as given
    (an AVI's local recording time).
    """

    sample_id: str
    sampled_at: str | None = None
    lat: float | None = None
    lon: float | None = None
    depth_min: float | None = None
    depth_max: float | None = None
    site: str = ""
    instrument: str = ""


def roi_sample_facts(
    fact: Any,
    name: str,
    site: str = "",
    sampled_at: str | None = None,
    lat: float | None = None,
    lon: float | None = None,
    depth: tuple[float, float] | None = None,
) -> SampleFacts:
    """The sample facts of one organism from where it was found (``fact``: a
    :class:`~phytoscope.core.analysis.RoiFacts`, or None), for ``phytoscope classify
    --ecotaxa`` and the window alike.

    Sample: the IFCB bin, else the video file, else the input's name. Time: ``sampled_at``
    if the user gave one, else the video's recording time at that frame, else the IFCB
    bin's time from its name (UTC, the session's rule).
    """
    from phytoscope.core.samples import bin_time, iso_utc

    bin_id = getattr(fact, "bin_id", None)
    video = getattr(fact, "video", None)
    # EcoTaxa's instrument codes ("?" is its unknown instrument)
    if bin_id:
        instrument, sample = "IFCB", str(bin_id)
    elif video:
        instrument, sample = "Other microscope", Path(video).name
    else:
        instrument, sample = "?", Path(name).name or name
    when = sampled_at or getattr(fact, "recorded_at", None)
    if not when and bin_id:
        moment = bin_time(str(bin_id))
        when = iso_utc(moment) if moment is not None else None
    low, high = depth or (None, None)
    return SampleFacts(sample, when, lat, lon, low, high, site, instrument)


@dataclass
class ExportResult:
    path: Path
    tsv_name: str
    objects: int = 0
    unclassified: int = 0
    missing: list[tuple[str, int]] = field(default_factory=list)
    """ROIs left out because their pixels could not be re-read (source moved or deleted)"""


# -- writing -----------------------------------------------------------------------------

# (column, type) in the order written; optional ones are dropped when no row has a value
_COLUMNS: tuple[tuple[str, str], ...] = (
    ("img_file_name", "[t]"),
    ("img_rank", "[f]"),
    ("object_id", "[t]"),
    ("object_lat", "[f]"),
    ("object_lon", "[f]"),
    ("object_date", "[t]"),
    ("object_time", "[t]"),
    ("object_depth_min", "[f]"),
    ("object_depth_max", "[f]"),
    ("object_annotation_status", "[t]"),
    ("object_annotation_category", "[t]"),
    ("object_width", "[f]"),
    ("object_height", "[f]"),
    ("object_confidence", "[f]"),
    ("object_novelty", "[f]"),
    ("object_unknown_reason", "[t]"),
    ("object_flags", "[t]"),
    ("object_roi_number", "[f]"),
    ("sample_id", "[t]"),
    ("sample_site", "[t]"),
    ("acq_id", "[t]"),
    ("acq_instrument", "[t]"),
    ("process_id", "[t]"),
    ("process_software", "[t]"),
    ("process_model", "[t]"),
)
_ALWAYS = {
    "img_file_name",
    "img_rank",
    "object_id",
    "object_annotation_status",
    "object_annotation_category",
    "object_width",
    "object_height",
    "object_confidence",
    "object_roi_number",
    "sample_id",
    "acq_id",
    "process_id",
    "process_software",
    "process_model",
}


def object_id(prediction: Prediction) -> str:
    """A stable, readable id: ``<bin>_<roi:05d>`` as the IFCB Dashboard names ROIs,
    ``<video>_f<frame>_<n>`` for a video frame's segments, ``<file>_<n>`` otherwise."""
    source = prediction.source
    ref = split_frame_source(source)
    if ref is not None:
        return safe_name(f"{ref[0].stem}_f{ref[1]}_{prediction.roi_index}")
    name = Path(source).name
    if is_bin_name(name):
        return f"{name}_{prediction.roi_index:05d}"
    return safe_name(f"{Path(source).stem}_{prediction.roi_index}")


def safe_name(text: str) -> str:
    """Text as a file-name part EcoTaxa and every file system accept."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "object"


def _date_time(iso: str | None) -> tuple[str, str]:
    if not iso:
        return "", ""
    try:
        when = datetime.fromisoformat(iso)
    except ValueError:
        log.warning("sample time %r is not ISO 8601: left out of the EcoTaxa table", iso)
        return "", ""
    if when.tzinfo is not None:
        when = when.astimezone(timezone.utc)
    return when.strftime("%Y%m%d"), when.strftime("%H%M%S")


def _number(value: float | None, digits: int = 6) -> str:
    return "" if value is None else f"{value:.{digits}g}"


def _png(image: np.ndarray) -> bytes:
    img = to_uint8(np.asarray(image))  # 16-bit cameras: the same stretch the model sees
    if img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)  # sources give RGB; the encoder wants BGR
    elif img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_RGBA2BGRA)
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


def _check_facts(facts: SampleFacts) -> None:
    if facts.lat is not None and not -90 <= facts.lat <= 90:
        raise ConfigError(f"latitude {facts.lat} is outside -90..90 degrees")
    if facts.lon is not None and not -180 <= facts.lon <= 180:
        raise ConfigError(f"longitude {facts.lon} is outside -180..180 degrees")


def write_export(
    out: Path | str,
    predictions: Sequence[Prediction],
    facts: Callable[[Prediction], SampleFacts],
    model: str,
    images: RoiImages,
    name: str | None = None,
    progress: Progress | None = None,
) -> ExportResult:
    """Write an EcoTaxa import zip: ``ecotaxa_<name>.tsv`` and one PNG per organism.

    Parameters
    ----------
    out
        The zip to write (written under a temporary name, then renamed).
    predictions
        The organisms to export, in the order they are to appear.
    facts
        The sample facts of each prediction (id, time, position, depth, instrument).
    model
        The model card's label, written as ``process_model`` / ``process_id``.
    images
        Gives the ROI pixels again (:func:`phytoscope.core.reports.read_rois` re-reads the
        sources); a ROI it cannot give is left out and listed in the result.
    name
        The TSV's name part (default: the zip's stem).
    progress
        Reports stage :data:`STAGE` per organism written and is checked for a cancel.
    """
    out = Path(out)
    name = safe_name(name or out.stem)
    result = ExportResult(out, f"ecotaxa_{name}.tsv")
    progress = Progress.of(progress)
    by_key = {(p.source, p.roi_index): p for p in predictions}
    rows: list[dict[str, str]] = []
    used: Counter[str] = Counter()
    tmp = out.with_name(out.name + ".tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(tmp, "w") as zf:
            # pixels arrive source by source and are written at once: memory stays flat
            for n, (source, index, image) in enumerate(images(list(by_key)), start=1):
                p = by_key.get((source, index))
                if p is None:
                    continue
                if image is None:
                    result.missing.append((source, index))
                    continue
                sample = facts(p)
                _check_facts(sample)
                oid = object_id(p)
                used[oid] += 1
                if used[oid] > 1:
                    oid = f"{oid}_{used[oid]}"
                file_name = f"{oid}.png"
                # PNG is compressed already: stored, not deflated again
                zf.writestr(file_name, _png(image), compress_type=zipfile.ZIP_STORED)
                date, time = _date_time(sample.sampled_at)
                identified = p.label != UNKNOWN
                h, w = image.shape[:2]
                rows.append(
                    {
                        "img_file_name": file_name,
                        "img_rank": "0",
                        "object_id": oid,
                        "object_lat": _number(sample.lat, 8),
                        "object_lon": _number(sample.lon, 8),
                        "object_date": date,
                        "object_time": time,
                        "object_depth_min": _number(sample.depth_min),
                        "object_depth_max": _number(sample.depth_max),
                        "object_annotation_status": PREDICTED if identified else "",
                        "object_annotation_category": p.label if identified else "",
                        "object_width": str(w),
                        "object_height": str(h),
                        "object_confidence": f"{p.confidence:.4f}",
                        "object_novelty": _number(p.novelty),
                        "object_unknown_reason": p.unknown_reason,
                        "object_flags": ",".join(p.flags),
                        "object_roi_number": str(p.roi_index),
                        "sample_id": sample.sample_id,
                        "sample_site": sample.site,
                        "acq_id": sample.sample_id,
                        "acq_instrument": sample.instrument,
                        "process_id": safe_name(model),
                        "process_software": f"phytoscope {__version__}",
                        "process_model": model,
                    }
                )
                result.objects += 1
                result.unclassified += 0 if identified else 1
                progress.update(STAGE, n, len(by_key))
                progress.check(f"export stopped after {n} organisms; nothing was written")
            columns = [
                (c, t) for c, t in _COLUMNS if c in _ALWAYS or any(row.get(c) for row in rows)
            ]
            buf = io.StringIO()
            writer = csv.writer(buf, delimiter="\t", lineterminator="\n")
            writer.writerow([c for c, _ in columns])
            writer.writerow([t for _, t in columns])
            for row in rows:
                writer.writerow([_tsv_text(row.get(c, "")) for c, _ in columns])
            # the BOM tells EcoTaxa the file is UTF-8 (it reads Latin-1 otherwise)
            zf.writestr(result.tsv_name, buf.getvalue().encode("utf-8-sig"))
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StorageError(
            f"cannot write {out}: {exc.strerror or exc} (check the folder is writable and has space)"
        ) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return result


def _tsv_text(value: str) -> str:
    # a tab or newline inside a value would shift EcoTaxa's columns
    return re.sub(r"[\t\r\n]+", " ", value)


__all__ = ["SampleFacts", "ExportResult", "write_export", "object_id", "safe_name"]
