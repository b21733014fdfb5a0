"""Labelled images for training and evaluation: where they are, which class, which split.

Two ways in:

* a folder of class sub-folders (``DATASET/<class>/<image>``), the usual layout of a
  technician's own labelled crops;
* a manifest CSV (``path,source,label,...``, paths relative to the CSV) such as the project's
  collection of public plankton images, with a label -> class mapping, because those
  sources name the same thing in different ways (``Aulocoseira``, ``Strombidium-like``,
  ``Strombidium_like``) and some labels must be dropped (``Unidentified``).

The split is stratified by class, seeded, and made on *groups*, not images: the same cell
photographed in several views (the Marzidovšek crops exist as a bounding-box crop and as a
rotated crop with the same file name) must never sit in train and test at once, or the test
accuracy would measure memory instead of recognition. The split is written to a CSV so an
evaluation months later uses exactly the held-out images.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import logging
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from pathlib import Path

import numpy as np

from phytoscope.errors import ConfigError, SourceError
from phytoscope.imaging import decode
from phytoscope.imaging.decode import IMAGE_SUFFIXES
from phytoscope.modelcard import ClassInfo, InputSpec

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")

# The classes the shipped model knows, spelled as HAB rule sets spell taxa where they are
# taxa; ``group="Cyanobacteria"`` lets a group rule (WHO recreational) sum the three
# cyanobacteria classes. ``chain_forming``: one imaged object holds several cells (chains,
# colonies, filaments), so counts are objects/L, not cells/L.
TAXONOMY: tuple[ClassInfo, ...] = (
    ClassInfo("Pseudo-nitzschia", rank="genus", hab=True, chain_forming=True),
    ClassInfo("Aulacoseira", rank="genus", chain_forming=True),
    ClassInfo(
        "colonial cyanobacteria", rank="group", hab=True, chain_forming=True, group="Cyanobacteria"
    ),
    ClassInfo(
        "filamentous cyanobacteria",
        rank="group",
        hab=True,
        chain_forming=True,
        group="Cyanobacteria",
    ),
    ClassInfo("Dolichospermum", rank="genus", hab=True, chain_forming=True, group="Cyanobacteria"),
    ClassInfo("Tripos", rank="genus"),
    ClassInfo("Mesodinium", rank="genus"),
    ClassInfo("ciliate", rank="group"),
    ClassInfo("detritus/other", rank="other"),
    ClassInfo("zooplankton", rank="other"),
)

# (source glob, label glob, class or None to drop). First match wins; a label matching no
# rule is dropped and reported. Written for ../shared/data/manifest.csv.
DEFAULT_CLASS_MAP: tuple[tuple[str, str, str | None], ...] = (
    ("*", "Unidentified", None),
    ("*", "unlabelled", None),
    ("*", "unclassified", None),
    ("pwssc_spc_zooplankton_subset", "Unknown", None),  # ambiguous by definition
    ("*", "Pseudo-nitzschia*", "Pseudo-nitzschia"),
    ("*", "Aulocoseira", "Aulacoseira"),  # sic in the FlowCam class file
    ("*", "Aulacoseira", "Aulacoseira"),
    ("*", "Colonial_Cyanobacteria", "colonial cyanobacteria"),
    ("*", "Filamentous_cyanobacteria", "filamentous cyanobacteria"),
    ("*", "Dolichospermum", "Dolichospermum"),
    ("*", "Tripos*", "Tripos"),
    ("*", "Mesodinium*", "Mesodinium"),
    ("*", "Ciliate*", "ciliate"),
    ("*", "Strombidium*", "ciliate"),
    ("*", "Detritus", "detritus/other"),
    ("pwssc_spc_zooplankton_subset", "Blob", "detritus/other"),
    ("pwssc_spc_zooplankton_subset", "Dot", "detritus/other"),
    ("pwssc_spc_zooplankton_subset", "Snow", "detritus/other"),
    ("pwssc_spc_zooplankton_subset", "*", "zooplankton"),
)

EXCLUDED_VIEWS = ("full_frames",)
"""Whole microscope frames hold several cells and debris: segmentation input, not a label."""


@dataclass(frozen=True)
class Item:
    """One labelled image."""

    path: Path
    label: str
    """the label as the source wrote it"""
    cls: str
    """the class the model learns"""
    source: str
    group: str
    """images sharing a group (views of one cell) always land in the same split"""
    split: str = ""


def class_info(name: str) -> ClassInfo:
    """The taxonomy entry for a class name, or a plain genus entry for a user's own class."""
    for info in TAXONOMY:
        if info.name == name:
            return info
    return ClassInfo(name=name, rank="genus")


def folder_class(folder_name: str) -> str:
    """Map a sub-folder name to a class; ``detritus_other`` means ``detritus/other`` because a
    folder name cannot hold a slash."""
    wanted = folder_name.replace("_", " ").lower()
    for info in TAXONOMY:
        if info.name.replace("/", " ").replace("_", " ").lower() == wanted:
            return info.name
    return folder_name


def read_class_map(path: Path) -> tuple[tuple[str, str, str | None], ...]:
    """A mapping CSV with columns ``source,label,class`` (globs allowed; empty class drops)."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise ConfigError(f"cannot read class map {path}: {exc}") from exc
    try:
        return tuple((r.get("source") or "*", r["label"], r["class"] or None) for r in rows)
    except KeyError as exc:
        raise ConfigError(
            f"class map {path} needs columns label,class (and optionally source)"
        ) from exc


def map_label(source: str, label: str, rules: Sequence[tuple[str, str, str | None]]) -> str | None:
    for src_glob, label_glob, cls in rules:
        if fnmatchcase(source, src_glob) and fnmatchcase(label, label_glob):
            return cls
    return None


def from_folder(root: Path) -> list[Item]:
    """Items of a folder of class sub-folders; the source is the folder's name."""
    items = []
    root = Path(root).resolve()
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        cls = folder_class(sub.name)
        for path in sorted(sub.rglob("*")):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                rel = path.relative_to(root).as_posix()
                items.append(Item(path, sub.name, cls, root.name, group=rel))
    return items


def from_manifest(
    manifest: Path, rules: Sequence[tuple[str, str, str | None]] = DEFAULT_CLASS_MAP
) -> list[Item]:
    """Items of a manifest CSV, mapped to classes and with whole-frame views dropped."""
    base = Path(manifest).resolve().parent
    items: list[Item] = []
    dropped: Counter[str] = Counter()
    with open(manifest, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row.get("view") in EXCLUDED_VIEWS:
                continue
            source, label = row.get("source", manifest.stem), row["label"]
            cls = map_label(source, label, rules)
            if cls is None:
                dropped[f"{source}:{label}"] += 1
                continue
            path = base / row["path"]
            # same source + label + file name = same cell in another view (crops_bbox and
            # crops_rotated of one annotated diatom)
            items.append(Item(path, label, cls, source, group=f"{source}|{label}|{path.name}"))
    if dropped:
        log.info("dropped labels without a class: %s", dict(dropped))
    return items


def load_items(dataset: Path, class_map: Path | None = None) -> list[Item]:
    """Items of a dataset folder or manifest CSV (see the module doc)."""
    dataset = Path(dataset)
    if not dataset.exists():
        raise SourceError(f"dataset {dataset} does not exist")
    if dataset.is_dir():
        items = from_folder(dataset)
    elif dataset.suffix.lower() == ".csv":
        rules = read_class_map(class_map) if class_map else DEFAULT_CLASS_MAP
        items = from_manifest(dataset, rules)
    else:
        raise ConfigError(
            f"dataset {dataset} must be a folder of class sub-folders or a manifest .csv"
        )
    if not items:
        raise SourceError(f"dataset {dataset} holds no labelled images")
    return items


def drop_rare(items: list[Item], min_per_class: int) -> list[Item]:
    """Drop classes with too few images to split into train/val/test."""
    counts = Counter(i.cls for i in items)
    rare = sorted(c for c, n in counts.items() if n < min_per_class)
    if rare:
        log.warning("classes with fewer than %d images left out: %s", min_per_class, rare)
    return [i for i in items if counts[i.cls] >= min_per_class]


def limit(items: list[Item], max_images: int, seed: int) -> list[Item]:
    """At most ``max_images`` in all, taken per class in proportion (for a quick run), while
    keeping at least three groups of each class so it can still be split."""
    if max_images <= 0 or len(items) <= max_images:
        return items
    by_class: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        by_class[item.cls].append(item)
    rng = random.Random(seed)
    share = max_images / len(items)
    kept: list[Item] = []
    for cls in sorted(by_class):
        group_items: dict[str, list[Item]] = defaultdict(list)
        for item in by_class[cls]:
            group_items[item.group].append(item)
        groups = sorted(group_items)
        rng.shuffle(groups)
        n = max(3, round(len(groups) * share))
        for g in groups[:n]:
            kept.extend(group_items[g])
    return kept


def split(
    items: Sequence[Item], seed: int = 0, val: float = 0.15, test: float = 0.15
) -> list[Item]:
    """Stratified, seeded, group-aware split: every class has at least one group in val and
    test when it has three groups or more."""
    rng = random.Random(seed)
    by_class: dict[str, dict[str, list[Item]]] = defaultdict(lambda: defaultdict(list))
    for item in items:
        by_class[item.cls][item.group].append(item)
    out: list[Item] = []
    for cls in sorted(by_class):
        groups = sorted(by_class[cls])
        rng.shuffle(groups)
        n = len(groups)
        n_test = max(1, round(n * test)) if n >= 3 else 0
        n_val = max(1, round(n * val)) if n >= 3 else 0
        for index, group in enumerate(groups):
            name = "test" if index < n_test else "val" if index < n_test + n_val else "train"
            out.extend(replace(item, split=name) for item in by_class[cls][group])
    return out


def write_split(items: Iterable[Item], path: Path, root: Path | None = None) -> Path:
    """Record the split (paths relative to ``root`` when given, so the file travels)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "split", "class", "label", "source", "group"])
        for item in items:
            shown = item.path
            if root is not None:
                try:
                    shown = item.path.relative_to(root)
                except ValueError:
                    pass
            writer.writerow(
                [shown.as_posix(), item.split, item.cls, item.label, item.source, item.group]
            )
    return path


def read_split(path: Path, root: Path | None = None) -> list[Item]:
    """Items of a split file written by :func:`write_split`."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise SourceError(f"cannot read split file {path}: {exc}") from exc
    items = []
    for row in rows:
        p = Path(row["path"])
        if not p.is_absolute() and root is not None:
            p = root / p
        items.append(Item(p, row["label"], row["class"], row["source"], row["group"], row["split"]))
    return items


def dataset_root(dataset: Path) -> Path:
    """The folder split paths are written relative to."""
    dataset = Path(dataset).resolve()
    return dataset if dataset.is_dir() else dataset.parent


# -- pixels ----------------------------------------------------------------------------------


ROI_MARK = "#roi="
"""``frame.jpg#roi=x,y,w,h``: one segment of a whole frame (see :mod:`phytoscope.training.frames`)."""


def read_image(path: Path) -> np.ndarray:
    """Pixels as a source would give them: grey or RGB(A), uint8 or uint16; for a
    ``frame#roi=x,y,w,h`` path the box of the frame, as segmentation cuts it."""
    name = Path(path).name
    if ROI_MARK in name:
        box = name.split(ROI_MARK, 1)[1]
        x, y, w, h = (int(v) for v in box.split(","))
        return _read_frame(str(image_file(path)))[y : y + h, x : x + w]
    return _decode(str(path))


def image_file(path: Path) -> Path:
    """The file an item's pixels come from (the frame, for a ``frame#roi=...`` path)."""
    path = Path(path)
    return path.with_name(path.name.split(ROI_MARK, 1)[0]) if ROI_MARK in path.name else path


@functools.lru_cache(maxsize=2)
def _read_frame(path: str) -> np.ndarray:
    """Decoded frames, kept while their segments are read one after another."""
    data = _decode(path)
    data.setflags(write=False)
    return data


def _decode(path: str) -> np.ndarray:
    """The first image of a file, decoded exactly as inference decodes it."""
    return decode.read_image(Path(path))[0]


def prepared_arrays(
    items: Sequence[Item],
    spec: InputSpec,
    cache_dir: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """uint8 (N, H, W) prepared with :func:`phytoscope.imaging.preprocess.prepare_uint8`.

    Decoding and letterboxing thousands of images costs more than a frozen-backbone epoch, so
    the result is cached under ``cache_dir`` keyed by the file list and input spec.
    """
    from phytoscope.imaging.preprocess import prepare_uint8

    cache = None
    if cache_dir is not None:
        digest = hashlib.sha1(repr((spec, [str(i.path) for i in items])).encode()).hexdigest()[:16]
        cache = Path(cache_dir) / f"prepared_{spec.height}x{spec.width}_{digest}.npy"
        if cache.exists():
            data = np.load(cache)
            if data.shape == (len(items), spec.height, spec.width):
                return data
    out = np.empty((len(items), spec.height, spec.width), dtype=np.uint8)
    for index, item in enumerate(items):
        out[index] = prepare_uint8(read_image(item.path), spec)
        if progress is not None and (index % 200 == 0 or index == len(items) - 1):
            progress(index + 1, len(items))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npy")
        np.save(tmp, out)
        tmp.replace(cache)
    return out
