"""Everything phytoscope can read images from, behind one iterator.

``iter_inputs(paths)`` turns files, folders and IFCB bins into a stream of
:class:`~phytoscope.types.Roi` (one organism each) and :class:`~phytoscope.types.Skipped`
(an input, or part of one, that could not be used, with the reason), so one bad file never
stops a run and is always reported. Decoding happens lazily, one input at a time, in
whichever thread iterates: :func:`phytoscope.core.pipeline.classify_items` iterates in a
background thread so reading overlaps inference.

Nothing read is ever silently incomplete: a truncated IFCB bin or TIFF gives the ROIs it
still holds, each flagged ``partial``, followed by a ``Skipped`` of kind ``"partial"`` that
says how many of how many were read and why the rest were lost; images too small to show
an organism are flagged ``tiny``. Each input is read once (:mod:`phytoscope.sources.paths`).
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from phytoscope.errors import SourceError
from phytoscope.imaging.decode import IMAGE_SUFFIXES, decode_file
from phytoscope.sources import ifcb, video
from phytoscope.sources.paths import Entry, InputIndex, expand_paths, resolve_inputs
from phytoscope.sources.video import VIDEO_SUFFIXES, VideoSampling
from phytoscope.types import SEGMENTED, Roi, Skipped

log = logging.getLogger(__name__)

SEGMENT_CHOICES = ("auto", "always", "never")

TINY_SIDE = 8
"""Images with a side below this many pixels are flagged ``tiny``: letterboxed to the
network's input they are a few blurred pixels, not an organism anyone could check. The
smallest real crops in the project's data (FlowCam) are 11 pixels on their short side."""

__all__ = [
    "IMAGE_SUFFIXES",
    "SEGMENT_CHOICES",
    "TINY_SIDE",
    "VIDEO_SUFFIXES",
    "VideoSampling",
    "Entry",
    "InputIndex",
    "InputStream",
    "iter_inputs",
    "expand_paths",
    "resolve_inputs",
    "rois_from_image",
]

Unit = Callable[[], "list[Roi | Skipped]"]
"""One independent piece of reading work (a file or an IFCB bin) -> its ROIs and skips."""


def _size_flags(image) -> tuple[str, ...]:
    return ("tiny",) if min(image.shape[:2]) < TINY_SIDE else ()


def rois_from_image(
    image,
    source: str,
    segment: str = "auto",
    page: int | None = None,
    first_index: int = 0,
    flags: tuple[str, ...] = (),
) -> Iterator[Roi | Skipped]:
    """ROIs of one decoded image: the image itself, or its segments if it is a whole frame.

    Parameters
    ----------
    image
        Pixels (grey or RGB(A), uint8/uint16).
    source
        Name reported with every ROI (the file path).
    segment
        ``"auto"`` segments images that look like whole microscope fields,
        ``"always"``/``"never"`` force it.
    page
        Page number of a multi-page TIFF (``None`` for single images).
    first_index
        ROI index of the first segment (segments of several pages are numbered on).
    flags
        Flags of the whole input (``partial``) added to every ROI.
    """
    from phytoscope.imaging import segment as seg

    meta = {} if page is None else {"page": page}
    if segment == "never" or (segment == "auto" and not seg.looks_like_frame(image)):
        yield Roi(
            source=source,
            index=page if page is not None else 0,
            image=image,
            flags=flags + _size_flags(image),
            meta=meta,
        )
        return
    pieces, quality = seg.segment_frame(image)
    frame_meta = {
        **meta,
        "focus": round(quality.focus, 1),
        "frame_objects": quality.objects,
        SEGMENTED: True,
    }
    if not pieces:
        if quality.blurry:
            yield Skipped(
                source, f"frame out of focus (focus {quality.focus:.0f}) and nothing segmented"
            )
        else:
            log.info("%s: no organism found in frame", source)
        return
    for offset, (box, crop) in enumerate(pieces):
        edge = ("edge",) if seg.edge_flag(box, image.shape) else ()
        yield Roi(
            source=source,
            index=first_index + offset,
            image=crop,
            box=box,
            flags=flags + quality.flags + edge + _size_flags(crop),
            meta=frame_meta,
        )


def _from_file(path: Path, segment: str) -> Iterator[Roi | Skipped]:
    try:
        decoded = decode_file(path)
    except SourceError as exc:
        yield Skipped(str(path), str(exc).removeprefix(f"{path}: "))
        return
    multi = len(decoded.pages) > 1 or decoded.expected is not None
    flags = ("partial",) if decoded.partial else ()
    index = 0
    for number, image in enumerate(decoded.pages):
        for item in rois_from_image(
            image,
            str(path),
            segment,
            page=number if multi else None,
            first_index=index,
            flags=flags,
        ):
            if isinstance(item, Roi):
                index = item.index + 1
            yield item
    if decoded.partial:
        read, expected = decoded.read, decoded.expected
        count = f"{read} of {expected} pages read; " if read is not None and expected else ""
        yield Skipped(
            str(path),
            f"TIFF partly read: {count}{'; '.join(decoded.problems)}; the pages read are "
            "classified and flagged partial",
            kind="partial",
            read=read,
            expected=expected,
        )


def _from_bin(path: Path) -> Iterator[Roi | Skipped]:
    stem = ifcb.bin_stem(path)
    try:
        abin = ifcb.IfcbBin(stem)
    except SourceError as exc:
        yield Skipped(str(stem), str(exc))
        return
    flags: tuple[str, ...] = ()
    try:
        ml = abin.ml_analyzed
    except SourceError as exc:
        log.warning("%s", exc)
        ml, flags = math.nan, ("no_volume",)
    report = ifcb.BinReport()
    # Which ROIs are past the end of the .roi file is known before any is read (sizes
    # come from the ADC), so every ROI of a cut-off bin can carry the flag.
    items = list(abin.rois(report))
    partial = report.partial
    if partial:
        flags += ("partial",)
    for item in items:
        h, w = item.image.shape
        meta = {"bin": abin.bin_id, "ml_analyzed": ml, "roi_number": item.number}
        if partial:
            meta.update(rois_read=report.read, rois_expected=report.expected)
        yield Roi(
            source=str(stem),
            index=item.number,
            image=item.image,
            box=(item.x, item.y, w, h),
            flags=flags + _size_flags(item.image),
            meta=meta,
        )
    if partial or report.bad_rows:
        line = report.bad_rows[0][0] if report.bad_rows else None
        yield Skipped(
            str(stem),
            report.describe(abin.bin_id, abin.roi_path.name),
            kind="partial",
            read=report.read,
            expected=report.expected,
            line=line,
        )
    elif not items:
        yield Skipped(
            str(stem),
            f"IFCB bin {abin.bin_id} holds no image ({abin.rows} ADC rows, none with an image)",
            kind="empty",
            read=0,
            expected=0,
        )


def _problem(entry: Entry) -> list[Roi | Skipped]:
    kind = "duplicate" if entry.kind == "duplicate" else "error"
    return [Skipped(str(entry.path), entry.reason, kind=kind)]


def _guarded(read: Callable[[], Iterator[Roi | Skipped]], source: str) -> list[Roi | Skipped]:
    """Run one input's reader; an error nobody foresaw becomes that input's Skipped.

    The ROIs already read are kept (and the Skipped says the input is partial): one odd
    file must never take the run, or what it already gave, down with it.
    """
    items: list[Roi | Skipped] = []
    try:
        for item in read():
            items.append(item)
    except MemoryError:
        items.append(Skipped(source, "not enough memory to read this input", kind=_lost(items)))
    except Exception as exc:  # noqa: BLE001 - anything a decoder throws is this input's problem
        log.debug("%s: unexpected error while reading", source, exc_info=True)
        detail = str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else ""
        items.append(
            Skipped(
                source,
                f"cannot read ({type(exc).__name__}{': ' + detail if detail else ''})",
                kind=_lost(items),
            )
        )
    return items


def _lost(items: list[Roi | Skipped]) -> str:
    return "partial" if any(isinstance(i, Roi) for i in items) else "error"


def _read_entry(entry: Entry, segment: str) -> list[Roi | Skipped]:
    if entry.kind == "bin":
        return _guarded(lambda: _from_bin(entry.path), str(entry.path))
    if entry.kind == "image":
        return _guarded(lambda: _from_file(entry.path, segment), str(entry.path))
    if entry.kind == "frame":
        return _guarded(lambda: iter(video.frame_ref_rois(str(entry.path))), str(entry.path))
    return _problem(entry)


class InputStream:
    """The iterator :func:`iter_inputs` returns; it can also hand out independent units.

    Iterating decodes one input after the other in the iterating thread. ``units()``
    instead yields one callable per file or bin, in the same order, so that
    :func:`phytoscope.core.pipeline.classify_items` can decode several at once in a thread
    pool (OpenCV and tifffile release the GIL): on a 16-core machine one decoding thread
    feeds only about a third of what ONNX Runtime can classify. A unit never raises for a
    problem of its input: it returns that input's ``Skipped``. A video gives one unit per
    sampled frame (read in turn, segmented in the unit).
    """

    def __init__(
        self,
        paths: Iterable[Path | str],
        segment: str = "auto",
        video: VideoSampling | None = None,
        index: InputIndex | None = None,
    ):
        if segment not in SEGMENT_CHOICES:
            raise ValueError(f"segment must be one of {SEGMENT_CHOICES}, not {segment!r}")
        self.paths = list(paths)
        self.segment = segment
        self.video = video
        self.index = index if index is not None else InputIndex()
        self._iterator: Iterator[Roi | Skipped] | None = None

    def units(self) -> Iterator[Unit]:
        for entry in resolve_inputs(self.paths, self.index):
            if entry.kind == "video":
                yield from video.frame_units(entry.path, self.video)
            else:
                yield functools.partial(_read_entry, entry, self.segment)

    def _generate(self) -> Iterator[Roi | Skipped]:
        for unit in self.units():
            yield from unit()

    def __iter__(self) -> InputStream:
        return self

    def __next__(self) -> Roi | Skipped:
        if self._iterator is None:
            self._iterator = self._generate()
        return next(self._iterator)


def iter_inputs(
    paths: Iterable[Path | str],
    segment: str = "auto",
    video: VideoSampling | None = None,
    index: InputIndex | None = None,
) -> InputStream:
    """Every ROI of every input, in order; unusable inputs come out as :class:`Skipped`.

    Parameters
    ----------
    paths
        Image files (PNG, JPEG, TIFF incl. 16-bit and multi-page, BMP), videos, folders
        (walked recursively, sorted), IFCB bins (any of ``.roi``/``.adc``/``.hdr`` or the
        stem), one frame of a video (``clip.mp4#frame=12``).
    segment
        ``"auto"`` (segment whole microscope frames), ``"always"`` or ``"never"``.
    video
        Which frames of video files (MP4, MOV, AVI, MKV) to classify (default: every
        frame); video frames are always segmented.
    index
        Inputs already read in this run. A run that calls ``iter_inputs`` once per PATH
        argument passes the same :class:`InputIndex` to each call, so an input named twice
        (or reached twice through a link or a folder) is read once and reported as a
        ``Skipped`` of kind ``"duplicate"``.

    Returns
    -------
    InputStream
        An iterator of :class:`Roi` / :class:`Skipped` (lazy: nothing is read before the
        first ``next``), which also offers ``units()`` for parallel decoding.
    """
    return InputStream(paths, segment, video, index)
