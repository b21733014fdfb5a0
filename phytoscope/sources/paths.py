"""What the user named, resolved to inputs: each file and IFCB bin once, every problem named.

Counting the same organisms twice doubles a concentration without any sign of it, so
every input is identified by what it *is*, not how it was named: an image by its file
(device and inode, so symbolic and hard links to it are the same image), an IFCB bin by
its bin id (``D20220522T003051_IFCB134`` names one sample of one instrument wherever the
copy lies; for other names, by the real path of its files), a folder by its device and
inode. The second time one comes up it is reported as a duplicate, naming the first, and
not read again. Symbolic links to folders are followed once; a loop of links ends there.

A path that cannot be used gets a reason that says why (a broken or looping symbolic
link, a folder that cannot be listed, a named pipe), never a generic "no such file".
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from phytoscope.imaging.decode import IMAGE_SUFFIXES, is_image_file
from phytoscope.sources import ifcb, video

log = logging.getLogger(__name__)

USABLE = ("image", "bin", "video", "frame")
"""Entry kinds that are read; every other kind is reported as skipped."""

_DENIED = "permission denied ({what}; ask its owner or change its permissions)"


@dataclass(frozen=True)
class Entry:
    """One input after resolution.

    ``kind`` is ``"image"``, ``"bin"``, ``"video"`` or ``"frame"`` (one frame of a video,
    ``clip.mp4#frame=12``) to read, or why it is not read: ``"missing"``,
    ``"unsupported"``, ``"unreadable"`` (a folder that cannot be listed, a file that
    cannot be inspected), ``"link"`` (broken or looping symbolic link), ``"special"``
    (not a regular file: a named pipe or device), ``"duplicate"`` (``same_as`` names the
    first occurrence). ``reason`` is the message for the user.
    """

    kind: str
    path: Path
    reason: str = ""
    same_as: Path | None = None


class InputIndex:
    """Identities already taken in one run, shared by every PATH of the run.

    Pass one index to each :func:`resolve_inputs` (or ``iter_inputs``) call of a run that
    reads several PATH arguments separately, so the second naming of an input is caught
    across arguments too.
    """

    def __init__(self) -> None:
        self._seen: dict[Hashable, _Claim] = {}
        self._noted: set[tuple[Hashable, int]] = set()
        self._origins = 0

    def new_origin(self) -> int:
        """A number for one named PATH (the files of one bin met in one folder are one bin)."""
        self._origins += 1
        return self._origins

    def claim(self, key: Hashable, claim: _Claim) -> _Claim | None:
        """Record ``key``; returns the first claim if it was already taken."""
        first = self._seen.get(key)
        if first is None:
            self._seen[key] = claim
        return first

    def note_once(self, key: Hashable, origin: int) -> bool:
        """True the first time a duplicate of ``key`` is reported for this PATH."""
        if (key, origin) in self._noted:
            return False
        self._noted.add((key, origin))
        return True


@dataclass(frozen=True)
class _Claim:
    path: Path
    origin: int
    walked: bool
    """found by walking a folder (rather than named on its own)"""


def _link_problem(path: Path, exc: OSError) -> Entry | None:
    """A precise entry for a path whose stat failed, or None if it simply does not exist."""
    if exc.errno == errno.ELOOP:
        return Entry(
            "link",
            path,
            f"symbolic link loop: {path} -> {_readlink(path)} never reaches a file or folder",
        )
    if exc.errno in (errno.EACCES, errno.EPERM):
        return Entry("unreadable", path, _DENIED.format(what=f"cannot look into {path.parent}"))
    if exc.errno == errno.ENOENT and os.path.islink(path):
        return Entry(
            "link",
            path,
            f"broken symbolic link: it points to {_readlink(path)}, which does not exist",
        )
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return None
    return Entry("unreadable", path, f"cannot inspect: {exc.strerror or exc}")


def _readlink(path: Path) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def _missing(path: Path) -> Entry:
    parent = path.parent
    if str(parent) not in ("", ".") and not parent.exists():
        return Entry("missing", path, f"no such file or folder (folder {parent} does not exist)")
    return Entry("missing", path, "no such file or folder")


def _bin_key(stem: Path) -> Hashable:
    """A bin's identity: its id when named as instruments name bins, else its real place."""
    if ifcb.is_bin_name(stem.name):
        return ("bin", stem.name)
    for suffix in (".roi", ".adc", ".hdr"):
        member = stem.with_name(stem.name + suffix)
        if member.exists():
            return ("bin", os.path.realpath(member)[: -len(suffix)])
    return ("bin", os.path.realpath(stem))


def _same_stem(a: Path, b: Path) -> bool:
    return os.path.realpath(a.parent) == os.path.realpath(b.parent) and a.name == b.name


def _one_file(
    path: Path, st: os.stat_result, explicit: bool, origin: int, index: InputIndex
) -> Iterator[Entry]:
    suffix = path.suffix.lower()
    if suffix in ifcb.SUFFIXES:
        yield from _claim_bin(ifcb.bin_stem(path), explicit, origin, index)
        return
    kind = "image" if is_image_file(path) else "video" if video.is_video_file(path) else None
    if kind is None:
        if explicit:
            yield Entry(
                "unsupported",
                path,
                f"not a supported image ({', '.join(IMAGE_SUFFIXES)}), video "
                f"({', '.join(video.VIDEO_SUFFIXES)}) or IFCB bin",
            )
        return
    if not stat.S_ISREG(st.st_mode):
        yield Entry(
            "special", path, "not a regular file (a named pipe, socket or device): not read"
        )
        return
    key = ("file", st.st_dev, st.st_ino)
    first = index.claim(key, _Claim(path, origin, not explicit))
    if first is None:
        yield Entry(kind, path)
    elif index.note_once(key, origin):
        if path == first.path:
            how = "named twice"
        elif os.path.islink(path) or os.path.islink(first.path):
            how = "a symbolic link to it"
        else:
            how = "a hard link to it"
        yield Entry(
            "duplicate",
            path,
            f"the same file as {first.path} ({how}): read once",
            same_as=first.path,
        )


def _claim_bin(stem: Path, explicit: bool, origin: int, index: InputIndex) -> Iterator[Entry]:
    """A bin is one input whichever of its files name it: ``BIN``, ``BIN.roi`` and a shell
    glob giving ``.adc .hdr .roi`` are read once without a word. Reported are a copy of
    the bin in another place (same bin id) and a bin named on its own *and* met again in
    a named folder."""
    key = _bin_key(stem)
    first = index.claim(key, _Claim(stem, origin, not explicit))
    if first is None:
        yield Entry("bin", stem)
        return
    same = _same_stem(first.path, stem)
    if same and (first.origin == origin or (explicit and not first.walked)):
        return
    if not index.note_once(key, origin):
        return
    if same and first.walked:
        reason = f"the same IFCB bin as {first.path}, already read inside a folder named: read once"
    elif same:
        reason = f"the same IFCB bin as {first.path}, which was also named on its own: read once"
    else:
        reason = (
            f"the same IFCB bin {stem.name} as {first.path} (a copy in another folder): read once"
        )
    yield Entry("duplicate", stem, reason, same_as=first.path)


def _walk(top: Path, origin: int, index: InputIndex) -> Iterator[Entry]:
    """Files under ``top`` in sorted order (a folder's entries and sub-folders interleaved
    by name, as a sorted recursive listing), hidden names left out, each folder once."""
    stack: list[Iterator[os.DirEntry]] = []

    def listing(folder: Path) -> Iterator[Entry]:
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except PermissionError:
            yield Entry(
                "unreadable",
                folder,
                _DENIED.format(what="cannot list this folder, so its files are not counted"),
            )
            return
        except OSError as exc:
            yield Entry("unreadable", folder, f"cannot list this folder: {exc.strerror or exc}")
            return
        stack.append(iter(entries))

    yield from listing(top)
    while stack:
        entry = next(stack[-1], None)
        if entry is None:
            stack.pop()
            continue
        if entry.name.startswith("."):
            continue
        path = Path(entry.path)
        try:
            st = os.stat(path)
        except OSError as exc:
            problem = _link_problem(path, exc)
            if problem is not None and (
                problem.kind == "unreadable"
                or is_image_file(path)
                or video.is_video_file(path)
                or path.suffix.lower() in ifcb.SUFFIXES
                or not path.suffix
            ):
                yield problem
            continue  # a dangling link named like notes.txt is none of our business
        if stat.S_ISDIR(st.st_mode):
            first = index.claim(("dir", st.st_dev, st.st_ino), _Claim(path, origin, True))
            if first is not None:
                loop = first.path == top or first.path in path.parents
                yield Entry(
                    "duplicate",
                    path,
                    f"the same folder as {first.path}, already read: not read again"
                    + (" (a symbolic link back into it)" if loop else ""),
                    same_as=first.path,
                )
                continue
            yield from listing(path)
        else:
            yield from _one_file(path, st, False, origin, index)


def resolve_inputs(paths: Iterable[Path | str], index: InputIndex | None = None) -> Iterator[Entry]:
    """Every input of ``paths`` once, in order, with a precise reason for each problem.

    Parameters
    ----------
    paths
        Files, folders (walked recursively in sorted order; hidden names and files that
        are neither images nor IFCB bins are ignored inside folders, reported when named),
        IFCB bins (any file of the triplet, or the stem).
    index
        Identities already read in this run (see :class:`InputIndex`); a fresh one if None.
    """
    index = index if index is not None else InputIndex()
    for raw in paths:
        path = Path(raw)
        origin = index.new_origin()
        try:
            st = os.stat(path)
        except OSError as exc:
            problem = _link_problem(path, exc)
            if problem is not None:
                yield problem
            elif video.split_frame_source(str(path)):
                yield Entry("frame", path)  # "clip.mp4#frame=12": one frame of a video
            elif ifcb.looks_like_bin(path) and (
                path.suffix.lower() in ifcb.SUFFIXES or not path.suffix
            ):
                stem = ifcb.bin_stem(path)
                if any(stem.with_name(stem.name + s).exists() for s in ifcb.SUFFIXES):
                    # part of the triplet is there: the bin reader names what is missing
                    yield from _claim_bin(stem, True, origin, index)
                else:
                    yield Entry(
                        "missing",
                        path,
                        f"no such file, and no other file of IFCB bin {stem.name} "
                        f"(.adc, .hdr, .roi) in {stem.parent}",
                    )
            else:
                yield _missing(path)
            continue
        if stat.S_ISDIR(st.st_mode):
            first = index.claim(("dir", st.st_dev, st.st_ino), _Claim(path, origin, False))
            if first is not None:
                where = "inside a folder named before" if first.path == path else f"as {first.path}"
                yield Entry(
                    "duplicate",
                    path,
                    f"this folder was already read ({where}): not read again",
                    same_as=first.path,
                )
                continue
            yield from _walk(path, origin, index)
        else:
            yield from _one_file(path, st, True, origin, index)


def expand_paths(
    paths: Iterable[Path | str], index: InputIndex | None = None
) -> Iterator[tuple[str, Path]]:
    """``(kind, path)`` for every input; see :func:`resolve_inputs` for the kinds.

    Duplicates are left out here (and logged as warnings naming both): a caller that only
    lists inputs reads each once. ``iter_inputs`` reports them as skipped instead.
    """
    for entry in resolve_inputs(paths, index):
        if entry.kind == "duplicate":
            log.warning("%s: %s", entry.path, entry.reason)
            continue
        yield entry.kind, entry.path
