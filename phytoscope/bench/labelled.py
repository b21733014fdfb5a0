"""The labelled images a benchmark classifies: a folder per class, or the model's test split."""

from __future__ import annotations

import csv
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phytoscope.config import SOURCE_ROOT
from phytoscope.errors import ConfigError
from phytoscope.imaging.decode import IMAGE_SUFFIXES

SPLIT_HINT = (
    "pass --data-root DIR where the split's image paths resolve, or --images FOLDER with "
    "one sub-folder of labelled images per class"
)


@dataclass(frozen=True)
class LabelledSet:
    items: tuple[tuple[str, str], ...]
    """(image path, class name)"""
    source: str
    note: str = ""

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(c for _, c in self.items).items()))


def _norm(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def labelled_from_folder(folder: Path, class_names: Sequence[str]) -> LabelledSet:
    """Images in ``folder/<class>/``; a sub-folder matches a class ignoring case and
    punctuation (``detritus_other`` is ``detritus/other``, which a folder cannot spell)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"--images {folder} is not a folder")
    by_norm = {_norm(c): c for c in class_names}
    items: list[tuple[str, str]] = []
    ignored: list[str] = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        cls = by_norm.get(_norm(sub.name))
        if cls is None:
            ignored.append(sub.name)
            continue
        items.extend(
            (str(p), cls)
            for p in sorted(sub.rglob("*"))
            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        )
    if not items:
        raise ConfigError(
            f"--images {folder} holds no images in sub-folders named after the model's classes "
            f"({', '.join(class_names)})"
        )
    note = f"sub-folders matching no class were ignored: {', '.join(ignored)}" if ignored else ""
    return LabelledSet(tuple(items), f"folder {folder}", note)


def labelled_from_card(card: Any, data_root: Path | None = None) -> LabelledSet:
    """The test split recorded by training in the model card (``training["split_file"]``,
    beside the card); its image paths resolve under ``data_root`` if given, else under the
    dataset the card names (``training["dataset"]``: a folder, or a manifest in one)."""
    training = card.training or {}
    split_name = training.get("split_file")
    if not split_name:
        raise ConfigError(f"the model card {card.path} records no test split; {SPLIT_HINT}")
    base = card.path.parent if card.path else Path.cwd()
    split_file = Path(split_name) if Path(split_name).is_absolute() else base / split_name
    if not split_file.exists():
        raise ConfigError(
            f"the model's split file {split_file} is not on this machine; {SPLIT_HINT}"
        )
    rows, segments = _test_rows(split_file)
    root = _images_root(rows, split_file, _candidate_roots(training, base, split_file, data_root))
    items = tuple(
        (str(Path(r["path"]) if Path(r["path"]).is_absolute() else root / r["path"]), r["class"])
        for r in rows
    )
    missing = [p for p, _ in items if not Path(p).exists()]
    items = tuple(i for i in items if Path(i[0]).exists())
    notes = (
        [f"{len(missing)} test image(s) listed in the split file are missing"] if missing else []
    )
    if segments:
        notes.append(f"{segments} test segment(s) of whole frames (path#roi=...) are left out")
    return LabelledSet(
        items,
        f"test split of the model ({split_file}, images under {root.resolve()})",
        "; ".join(notes),
    )


def _test_rows(split_file: Path) -> tuple[list[dict[str, str]], int]:
    """The split's test rows that are image files, and how many segments were left out."""
    with open(split_file, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("split") == "test"]
    # "frame.jpg#roi=x,y,w,h": a segment cut from a whole frame, not a file of its own; the
    # benchmark times files as the analyser reads them, so it keeps the image files
    files = [r for r in rows if "#" not in r["path"]]
    if not files:
        raise ConfigError(f"the split file {split_file} lists no test images; {SPLIT_HINT}")
    return files, len(rows) - len(files)


def _candidate_roots(
    training: dict[str, Any], base: Path, split_file: Path, data_root: Path | None
) -> list[Path]:
    roots: list[Path] = [Path(data_root)] if data_root is not None else []
    for key in ("dataset_root", "data_root", "dataset"):
        value = training.get(key)
        if not isinstance(value, str) or not value:
            continue
        # relative paths were written from wherever training ran: try the likely places
        for anchor in (Path(),) if Path(value).is_absolute() else (base, SOURCE_ROOT, Path.cwd()):
            p = anchor / value
            roots.append(p if p.is_dir() or not p.suffix else p.parent)
    roots.append(split_file.parent)
    return roots


def _images_root(rows: list[dict[str, str]], split_file: Path, roots: list[Path]) -> Path:
    first = Path(rows[0]["path"])
    root = next((r for r in roots if (first if first.is_absolute() else r / first).exists()), None)
    if root is None:
        raise ConfigError(
            f"the model's test images (e.g. {first}, listed in {split_file}) are not on this "
            f"machine (looked under {', '.join(map(str, roots))}); {SPLIT_HINT}"
        )
    return root


def stratified_subset(
    items: Sequence[tuple[str, str]], limit: int, seed: int = 0
) -> tuple[tuple[str, str], ...]:
    """At most ``limit`` items taking classes in turn (seeded), so every class is present."""
    if len(items) <= limit:
        return tuple(items)
    rng = random.Random(seed)
    by_class: dict[str, list[tuple[str, str]]] = {}
    for item in items:
        by_class.setdefault(item[1], []).append(item)
    for members in by_class.values():
        rng.shuffle(members)
    out: list[tuple[str, str]] = []
    while len(out) < limit:
        for cls in sorted(by_class):
            if by_class[cls] and len(out) < limit:
                out.append(by_class[cls].pop())
    return tuple(sorted(out, key=lambda i: (i[1], i[0])))
