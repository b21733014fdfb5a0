"""The images a lab teaches from: class folders (or stored corrections), read and checked.

Layout: each FOLDER holds one sub-folder per class (``FOLDER/Alexandrium/*.png``), as
*Export corrections…* writes it and ``phytoscope train`` reads it. A sub-folder's name is
the class: a name the base model already has (any case, ``_`` for a space or a slash)
adds examples to that class, a name of a HAB rule-set taxon takes the rule sets' spelling
(``karenia_brevis`` -> ``Karenia brevis``) so alerts follow it, anything else is a new class
as written.

Honest limits, checked before any model is touched: an image that cannot be read is listed
and skipped (never a crash half-way), a new class with fewer than :data:`MIN_IMAGES`
readable images is refused with a message saying how many it has, and one with fewer than
:data:`ROUGH_BELOW` is flagged: its cross-validated accuracy rests on too few images to
mean much.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from phytoscope.core import hab
from phytoscope.errors import ConfigError, PhytoscopeError, SourceError
from phytoscope.imaging.decode import IMAGE_SUFFIXES
from phytoscope.imaging.preprocess import prepare_uint8
from phytoscope.modelcard import InputSpec
from phytoscope.progress import Progress
from phytoscope.training import dataset as ds

MIN_IMAGES = 5
"""A new class needs at least this many readable images (one per cross-validation fold)."""
ROUGH_BELOW = 20
"""Below this many images a class's accuracy figure is called rough on screen and card."""


@dataclass(frozen=True)
class Skipped:
    """An image that could not be used, and why (the decoder's own words)."""

    path: Path
    reason: str


@dataclass(frozen=True)
class TeachingSet:
    """The readable images of the lab's folders, prepared by the base card's input rules."""

    prepared: np.ndarray
    """uint8 (N, H, W), as :func:`phytoscope.imaging.preprocess.prepare_uint8` gives them"""
    labels: tuple[str, ...]
    """the class of each image"""
    paths: tuple[Path, ...]
    skipped: tuple[Skipped, ...]
    sources: tuple[str, ...]
    """the folders (or "corrections in DB") the images came from, for the card"""

    @property
    def counts(self) -> dict[str, int]:
        """Readable images per class, in order of first appearance."""
        return dict(Counter(self.labels))

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.counts)


def class_name(
    folder_name: str, base_classes: Sequence[str], rule_taxa: Iterable[tuple[str, str]]
) -> str:
    """The class a sub-folder stands for (see the module docstring)."""
    name = ds.folder_class(folder_name)
    key = hab.taxon_key(name)
    for known in base_classes:
        if hab.taxon_key(known) == key or hab.taxon_key(known.replace("/", " ")) == key:
            return known
    rule = hab.rule_taxon_named(name, rule_taxa)
    return rule[0] if rule is not None else name


def _class_folders(root: Path) -> list[Path]:
    """The class sub-folders of one FOLDER, or a message saying what the layout must be."""
    if not root.exists():
        raise SourceError(f"{root} does not exist")
    if not root.is_dir():
        raise SourceError(
            f"{root} is a file: give a folder holding one sub-folder per class "
            "(e.g. FOLDER/Alexandrium/*.png)"
        )
    subs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subs:
        loose = any(p.suffix.lower() in IMAGE_SUFFIXES for p in root.iterdir())
        hint = (
            ": its images lie directly in it; put them in a sub-folder named after their class"
            if loose
            else ""
        )
        raise SourceError(f"{root} holds no class sub-folders{hint} (FOLDER/<class>/<images>)")
    return subs


def collect(
    folders: Sequence[Path], base_classes: Sequence[str], rule_taxa: Iterable[tuple[str, str]]
) -> list[tuple[Path, str]]:
    """(image path, class) of every image file under the FOLDERs' class sub-folders."""
    taxa = tuple(rule_taxa)
    found: list[tuple[Path, str]] = []
    for folder in folders:
        for sub in _class_folders(Path(folder)):
            cls = class_name(sub.name, base_classes, taxa)
            images = [
                (p, cls)
                for p in sorted(sub.rglob("*"))
                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            ]
            if not images and cls not in base_classes:  # a typo'd or forgotten class
                raise ConfigError(
                    f"{sub} holds no images ({', '.join(IMAGE_SUFFIXES)}): a new class needs "
                    f"at least {MIN_IMAGES}; add images or remove the folder"
                )
            found += images
    if not found:
        shown = ", ".join(str(f) for f in folders)
        raise SourceError(f"no images found in the class sub-folders of {shown}")
    return found


def read(
    found: Sequence[tuple[Path, str]],
    spec: InputSpec,
    sources: Sequence[str],
    progress: Progress | None = None,
) -> TeachingSet:
    """Decode and prepare every image; unreadable ones are listed, not fatal."""
    progress = Progress.of(progress)
    out = np.empty((len(found), spec.height, spec.width), np.uint8)
    labels: list[str] = []
    paths: list[Path] = []
    skipped: list[Skipped] = []
    for index, (path, cls) in enumerate(found):
        if index % 16 == 0:
            progress.check("learning cancelled while reading images; nothing was written")
        try:
            out[len(labels)] = prepare_uint8(ds.read_image(path), spec)
        except (PhytoscopeError, OSError, ValueError) as exc:
            skipped.append(Skipped(path, str(exc).removeprefix(f"{path}: ")))
        else:
            labels.append(cls)
            paths.append(path)
        progress.update("read", index + 1, len(found))
    return TeachingSet(
        prepared=out[: len(labels)],
        labels=tuple(labels),
        paths=tuple(paths),
        skipped=tuple(skipped),
        sources=tuple(sources),
    )


def check_counts(data: TeachingSet, base_classes: Sequence[str]) -> tuple[str, ...]:
    """Refuse new classes with fewer than :data:`MIN_IMAGES` images; return the rough ones.

    A base class takes any number of extra examples: it keeps its own from the base
    model's embedding bank.
    """
    counts = data.counts
    few = {c: n for c, n in counts.items() if c not in base_classes and n < MIN_IMAGES}
    if few:
        shown = ", ".join(f"{c} ({n})" for c, n in few.items())
        raise ConfigError(
            f"too few readable images to learn {shown}: a new class needs at least "
            f"{MIN_IMAGES} (20 or more for a trustworthy figure); add images or remove "
            "the folder"
            + (f"; {len(data.skipped)} image(s) could not be read" if data.skipped else "")
        )
    return tuple(c for c, n in counts.items() if c not in base_classes and n < ROUGH_BELOW)


def export_corrections(db: Path, folder: Path) -> Path:
    """Write the corrections stored in ``db`` as a class-folder tree under ``folder``."""
    from phytoscope.storage.corrections import export_training_folder
    from phytoscope.storage.store import Store

    if not Path(db).exists():
        raise SourceError(f"results database {db} does not exist")
    with Store(db) as store:
        written = export_training_folder(store, folder)
    if not written:
        raise SourceError(
            f"{db} holds no corrections with images: correct organisms in the gallery first"
        )
    return folder


def load(
    folders: Sequence[Path],
    spec: InputSpec,
    base_classes: Sequence[str],
    corrections_db: Path | None = None,
    progress: Progress | None = None,
) -> TeachingSet:
    """Everything of this module in one call: collect, read, and refuse too-small classes."""
    taxa = hab.all_taxa()
    sources = [str(Path(f)) for f in folders]
    with tempfile.TemporaryDirectory(prefix="phytoscope-corrections-") as tmp:
        roots = list(folders)
        if corrections_db is not None:
            roots.append(export_corrections(corrections_db, Path(tmp)))
            sources.append(f"corrections in {corrections_db}")
        if not roots:
            raise ConfigError(
                "give at least one FOLDER of class sub-folders, or --from-corrections"
            )
        data = read(collect(roots, base_classes, taxa), spec, sources, progress)
    if not data.labels:
        raise SourceError(
            f"none of the {len(data.skipped)} images could be read (e.g. {data.skipped[0].path}: "
            f"{data.skipped[0].reason})"
        )
    check_counts(data, base_classes)
    return data
