"""Options of ``phytoscope classify`` that write files for other tools, and the video options.

``--class-scores DIR`` writes the IFCB Dashboard's per-bin HDF5 (:mod:`phytoscope.core.formats.
class_scores`), ``--ecotaxa OUT.zip`` an EcoTaxa import (:mod:`phytoscope.core.formats.
ecotaxa`); ``--every``/``--fps`` sample the frames of video inputs. The output paths are
checked while the options are parsed, so a mistyped folder fails before an hour of
classification, not after it. :func:`export_hook` runs once the run is finished and hands
the predictions with their sample facts to the writers.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def writable_folder(text: str) -> Path:
    path = Path(text)
    probe = path
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} exists and is not a folder")
    if not os.access(probe, os.W_OK):
        raise argparse.ArgumentTypeError(f"{probe} is not writable: choose another folder")
    return path


def _writable_zip(text: str) -> Path:
    path = Path(text)
    if path.suffix.lower() != ".zip":
        raise argparse.ArgumentTypeError(f"{path}: EcoTaxa imports a .zip; name the file *.zip")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a folder; give a file name ending in .zip")
    writable_folder(str(path.parent))
    return path


def _depth(text: str) -> tuple[float, float]:
    low, _, high = text.partition(":")
    try:
        values = (float(low), float(high or low))
    except ValueError:
        raise argparse.ArgumentTypeError(f"depth {text!r}: give metres, e.g. 5 or 0:10") from None
    if values[0] > values[1] or values[0] < 0:
        raise argparse.ArgumentTypeError(f"depth {text!r}: need 0 <= MIN <= MAX")
    return values


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of frames >= 1")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a positive number of frames per second")
    return value


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    """``--class-scores``, ``--ecotaxa`` with its sample position, ``--every``/``--fps``."""
    g = parser.add_argument_group("files for other tools")
    g.add_argument(
        "--class-scores",
        type=writable_folder,
        metavar="DIR",
        help="write <bin>_class.h5 per IFCB bin (IFCB Dashboard class scores v3: every ROI's "
        "full score vector, class labels, ROI numbers, model, thresholds, novelty)",
    )
    g.add_argument(
        "--ecotaxa",
        type=_writable_zip,
        metavar="OUT.zip",
        help="write an EcoTaxa import: the ROI images and ecotaxa_<name>.tsv with the "
        "predicted genus (status 'predicted'), sample, time, size and model",
    )
    g.add_argument("--lat", type=float, metavar="DEG", help="sampling latitude (EcoTaxa)")
    g.add_argument("--lon", type=float, metavar="DEG", help="sampling longitude (EcoTaxa)")
    g.add_argument(
        "--depth", type=_depth, metavar="M[:M]", help="sampling depth in metres (EcoTaxa)"
    )
    v = parser.add_argument_group("video files (MP4, MOV, AVI, MKV)")
    pace = v.add_mutually_exclusive_group()
    pace.add_argument(
        "--every",
        type=_positive_int,
        metavar="N",
        help="classify every N-th frame (default: every frame)",
    )
    pace.add_argument(
        "--fps",
        type=_positive_float,
        metavar="F",
        help="classify about F frames per second of recording",
    )


def video_sampling(args: argparse.Namespace) -> Any:
    """The :class:`~phytoscope.sources.video.VideoSampling` the options ask for."""
    from phytoscope.sources.video import VideoSampling

    return VideoSampling(every=getattr(args, "every", None), fps=getattr(args, "fps", None))


@dataclass(frozen=True)
class ExportRequest:
    """The files for other tools a classify run should write, and the sample position they
    carry (EcoTaxa). Built from the options, or by a front end that has no argv."""

    class_scores: Path | None = None
    ecotaxa: Path | None = None
    lat: float | None = None
    lon: float | None = None
    depth: tuple[float, float] | None = None
    site: str = ""
    sampled_at: str | None = None
    """ISO 8601 from --sampled-at; else video recording time, else the IFCB bin's time"""
    segment: str = "auto"
    progress: bool | None = None

    @property
    def wanted(self) -> bool:
        return self.class_scores is not None or self.ecotaxa is not None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ExportRequest:
        return cls(
            class_scores=getattr(args, "class_scores", None),
            ecotaxa=getattr(args, "ecotaxa", None),
            lat=getattr(args, "lat", None),
            lon=getattr(args, "lon", None),
            depth=getattr(args, "depth", None),
            site=getattr(args, "site", None) or "",
            sampled_at=getattr(args, "sampled_at", None),
            segment=getattr(args, "segment", "auto"),
            progress=getattr(args, "progress", None),
        )


def sample_facts(req: ExportRequest, result: Any) -> Any:
    """``facts(prediction)`` for the EcoTaxa writer, from the run's ROI facts (the rule is
    :func:`~phytoscope.core.formats.ecotaxa.roi_sample_facts`)."""
    from phytoscope.core.formats.ecotaxa import SampleFacts, roi_sample_facts

    by_key = {
        (p.source, p.roi_index): (name, fact)
        for p, name, fact in zip(result.predictions, result.names, result.facts, strict=True)
    }

    def facts(p: Any) -> SampleFacts:
        name, fact = by_key.get((p.source, p.roi_index), (p.source, None))
        return roi_sample_facts(fact, name, req.site, req.sampled_at, req.lat, req.lon, req.depth)

    return facts


def export_hook(req: ExportRequest, result: Any) -> str | None:
    """Write the files asked for from a finished classify run; text saying what was written."""
    if not req.wanted:
        return None
    from phytoscope.commands.progressbar import terminal_progress
    from phytoscope.core.formats import class_scores, ecotaxa
    from phytoscope.core.reports import read_rois
    from phytoscope.errors import ConfigError

    card = getattr(result, "card", None)
    if card is None:
        raise ConfigError("no model card with this run: class scores and EcoTaxa need its classes")
    lines: list[str] = []
    if req.class_scores is not None:
        written, other = class_scores.write_bins(req.class_scores, result.predictions, card)
        lines.append(f"class scores: {len(written)} IFCB bin(s) -> {req.class_scores}")
        if other:
            lines.append(
                f"  {other} organisms came from no IFCB bin: the Dashboard format has none"
            )
    if req.ecotaxa is not None:
        segment = req.segment
        with terminal_progress(req.progress, units={ecotaxa.STAGE: "ROIs"}) as bar:
            done = ecotaxa.write_export(
                req.ecotaxa,
                result.predictions,
                sample_facts(req, result),
                card.label,
                images=lambda refs: read_rois(refs, segment),
                progress=bar,
            )
        lines.append(
            f"EcoTaxa: {done.objects} organisms ({done.unclassified} unclassified: 'unknown') "
            f"-> {done.path} ({done.tsv_name})"
        )
        if done.missing:
            lines.append(
                f"  {len(done.missing)} left out: their source could not be read again "
                f"(first: {done.missing[0][0]} #{done.missing[0][1]})"
            )
    return "\n".join(lines)
