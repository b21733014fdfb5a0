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


def sample_facts(args: argparse.Namespace, result: Any) -> Any:
    """``facts(prediction)`` for the EcoTaxa writer, from the run's ROI facts and options.

    Time: ``--sampled-at`` if given, else the video's recording time at that frame, else
    the IFCB bin's time from its name (UTC).
    """
    from phytoscope.commands.report import _bin_time
    from phytoscope.core.formats.ecotaxa import SampleFacts

    depth = getattr(args, "depth", None) or (None, None)

    def facts(p: Any) -> SampleFacts:
        info = result.meta.get((p.source, p.roi_index), {})
        sample = str(info.get("sample", p.source))
        # EcoTaxa's instrument codes ("?" is its unknown instrument)
        if "bin" in info:
            instrument, name = "IFCB", str(info["bin"])
        elif "video" in info:
            instrument, name = "Other microscope", Path(sample).name
        else:
            instrument, name = "?", Path(sample).name or sample
        when = getattr(args, "sampled_at", None) or info.get("recorded_at")
        if not when and "bin" in info:
            when = _bin_time([str(info["bin"])])
        return SampleFacts(
            sample_id=name,
            sampled_at=when,
            lat=getattr(args, "lat", None),
            lon=getattr(args, "lon", None),
            depth_min=depth[0],
            depth_max=depth[1],
            site=getattr(args, "site", None) or "",
            instrument=instrument,
        )

    return facts


def export_hook(args: argparse.Namespace, result: Any) -> str | None:
    """Write the files asked for from a finished classify run; text saying what was written."""
    if not (getattr(args, "class_scores", None) or getattr(args, "ecotaxa", None)):
        return None
    from phytoscope.commands.progressbar import terminal_progress
    from phytoscope.core.formats import class_scores, ecotaxa
    from phytoscope.core.reports import read_rois
    from phytoscope.errors import ConfigError

    card = getattr(result, "card", None)
    if card is None:
        raise ConfigError("no model card with this run: class scores and EcoTaxa need its classes")
    lines: list[str] = []
    if args.class_scores:
        written, other = class_scores.write_bins(args.class_scores, result.predictions, card)
        lines.append(f"class scores: {len(written)} IFCB bin(s) -> {args.class_scores}")
        if other:
            lines.append(
                f"  {other} organisms came from no IFCB bin: the Dashboard format has none"
            )
    if args.ecotaxa:
        segment = getattr(args, "segment", "auto")
        with terminal_progress(
            getattr(args, "progress", None), units={ecotaxa.STAGE: "ROIs"}
        ) as bar:
            done = ecotaxa.write_export(
                args.ecotaxa,
                result.predictions,
                sample_facts(args, result),
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
