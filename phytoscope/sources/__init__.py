"""Everything phytoscope can read images from, behind one iterator.

``iter_inputs(paths)`` turns files, folders and IFCB bins into a stream of
:class:`~phytoscope.types.Roi` (one organism each) and :class:`~phytoscope.types.Skipped`
(an input that could not be used, with the reason), so one bad file never stops a run and
is always reported. Decoding happens lazily, one input at a time, in whichever thread
iterates: :func:`phytoscope.core.pipeline.classify_items` iterates in a background thread
so reading overlaps inference.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from phytoscope.errors import SourceError
from phytoscope.imaging.decode import IMAGE_SUFFIXES, is_image_file, read_image
from phytoscope.sources import ifcb, video
from phytoscope.sources.video import VIDEO_SUFFIXES, VideoSampling
from phytoscope.types import Roi, Skipped

log = logging.getLogger(__name__)

SEGMENT_CHOICES = ("auto", "always", "never")

__all__ = [
    "IMAGE_SUFFIXES",
    "SEGMENT_CHOICES",
    "VIDEO_SUFFIXES",
    "VideoSampling",
    "InputStream",
    "iter_inputs",
    "expand_paths",
    "rois_from_image",
]

Unit = Callable[[], "list[Roi | Skipped]"]
"""One independent piece of reading work (a file or an IFCB bin) -> its ROIs and skips."""


def rois_from_image(
    image, source: str, segment: str = "auto", page: int | None = None, first_index: int = 0
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
    """
    from phytoscope.imaging import segment as seg

    meta = {} if page is None else {"page": page}
    if segment == "never" or (segment == "auto" and not seg.looks_like_frame(image)):
        yield Roi(source=source, index=page if page is not None else 0, image=image, meta=meta)
        return
    pieces, quality = seg.segment_frame(image)
    frame_meta = {**meta, "focus": round(quality.focus, 1), "frame_objects": quality.objects}
    if not pieces:
        if quality.blurry:
            yield Skipped(
                source, f"frame out of focus (focus {quality.focus:.0f}) and nothing segmented"
            )
        else:
            log.info("%s: no organism found in frame", source)
        return
    for offset, (box, crop) in enumerate(pieces):
        flags = quality.flags + (("edge",) if seg.edge_flag(box, image.shape) else ())
        yield Roi(
            source=source,
            index=first_index + offset,
            image=crop,
            box=box,
            flags=flags,
            meta=frame_meta,
        )


def _from_file(path: Path, segment: str) -> Iterator[Roi | Skipped]:
    try:
        pages = read_image(path)
    except SourceError as exc:
        yield Skipped(str(path), str(exc).removeprefix(f"{path}: "))
        return
    multi = len(pages) > 1
    index = 0
    for number, image in enumerate(pages):
        for item in rois_from_image(
            image, str(path), segment, page=number if multi else None, first_index=index
        ):
            if isinstance(item, Roi):
                index = item.index + 1
            yield item


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
    try:
        for item in abin.rois():
            h, w = item.image.shape
            yield Roi(
                source=str(stem),
                index=item.number,
                image=item.image,
                box=(item.x, item.y, w, h),
                flags=flags,
                meta={"bin": abin.bin_id, "ml_analyzed": ml, "roi_number": item.number},
            )
    except (SourceError, OSError, ValueError) as exc:
        yield Skipped(str(stem), f"IFCB bin read stopped: {exc}")


def expand_paths(paths: Iterable[Path | str]) -> Iterator[tuple[str, Path]]:
    """``(kind, path)`` for every input, kind in ``image``, ``bin``, ``video``, ``frame``
    (one frame of a video, ``clip.mp4#frame=12``), ``missing``, ``unsupported``.

    Folders are walked recursively in sorted order (so runs are reproducible); hidden files
    and files that are neither images nor IFCB bins are ignored inside folders but reported
    when named explicitly. The three files of an IFCB bin give one ``bin`` entry.
    """
    seen_bins: set[Path] = set()

    def one(path: Path, explicit: bool) -> Iterator[tuple[str, Path]]:
        suffix = path.suffix.lower()
        if suffix in ifcb.SUFFIXES or (
            explicit and not path.exists() and ifcb.looks_like_bin(path)
        ):
            stem = ifcb.bin_stem(path)
            if stem not in seen_bins:
                seen_bins.add(stem)
                yield ("bin", stem)
        elif path.is_file() and is_image_file(path):
            yield ("image", path)
        elif path.is_file() and video.is_video_file(path):
            yield ("video", path)
        elif explicit and not path.exists() and video.split_frame_source(str(path)):
            yield ("frame", path)
        elif explicit:
            yield ("missing" if not path.exists() else "unsupported", path)

    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and not any(
                    part.startswith(".") for part in child.relative_to(path).parts
                ):
                    yield from one(child, explicit=False)
        else:
            yield from one(path, explicit=True)


def _read_unit(kind: str, path: Path, segment: str) -> list[Roi | Skipped]:
    if kind == "bin":
        return list(_from_bin(path))
    if kind == "image":
        return list(_from_file(path, segment))
    if kind == "frame":
        return video.frame_ref_rois(str(path))
    if kind == "missing":
        return [Skipped(str(path), "no such file or folder")]
    return [
        Skipped(
            str(path),
            f"not a supported image ({', '.join(IMAGE_SUFFIXES)}), video "
            f"({', '.join(VIDEO_SUFFIXES)}) or IFCB bin",
        )
    ]


class InputStream:
    """The iterator :func:`iter_inputs` returns; it can also hand out independent units.

    Iterating decodes one input after the other in the iterating thread. ``units()``
    instead yields one callable per file or bin, in the same order, so that
    :func:`phytoscope.core.pipeline.classify_items` can decode several at once in a thread
    pool (OpenCV and tifffile release the GIL): on a 16-core machine one decoding thread
    feeds only about a third of what ONNX Runtime can classify.
    A video gives one unit per sampled frame (read in turn, segmented in the unit).
    """

    def __init__(
        self,
        paths: Iterable[Path | str],
        segment: str = "auto",
        video: VideoSampling | None = None,
    ):
        if segment not in SEGMENT_CHOICES:
            raise ValueError(f"segment must be one of {SEGMENT_CHOICES}, not {segment!r}")
        self.paths = list(paths)
        self.segment = segment
        self.video = video
        self._iterator: Iterator[Roi | Skipped] | None = None

    def units(self) -> Iterator[Unit]:
        for kind, path in expand_paths(self.paths):
            if kind == "video":
                yield from video.frame_units(path, self.video)
            else:
                yield functools.partial(_read_unit, kind, path, self.segment)

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
    paths: Iterable[Path | str], segment: str = "auto", video: VideoSampling | None = None
) -> InputStream:
    """Every ROI of every input, in order; unusable inputs come out as :class:`Skipped`.

    Parameters
    ----------
    paths
        Image files (PNG, JPEG, TIFF incl. 16-bit and multi-page, BMP), videos, folders (walked
        recursively, sorted), IFCB bins (any of ``.roi``/``.adc``/``.hdr`` or the stem).
    segment
        ``"auto"`` (segment whole microscope frames), ``"always"`` or ``"never"``.
    video
        Which frames of video files (MP4, MOV, AVI, MKV) to classify (default: every
        frame); video frames are always segmented.

    Returns
    -------
    InputStream
        An iterator of :class:`Roi` / :class:`Skipped` (lazy: nothing is read before the
        first ``next``), which also offers ``units()`` for parallel decoding.
    """
    return InputStream(paths, segment, video)
