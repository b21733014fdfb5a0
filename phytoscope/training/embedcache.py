"""Backbone embeddings of every image the open-set evaluation needs, computed once.

The shipped model is a frozen MobileNetV2 backbone with a small head, so every head-level
question (which classes to hold out, which novelty score, which threshold, which
augmentation) can be answered on cached pooled features instead of images: refitting a
head takes seconds, embedding thousands of images minutes. The cache holds, for one base
model:

* ``known``: the images of the model's split (``genus_split.csv``), as read, plus
  augmented copies: ``basic`` views (flips, rotations, small scale and brightness changes:
  what the shipped head was trained with) and ``instrument`` views
  (:func:`phytoscope.training.augment.instrument_view`), so heads with and without the
  robustness augmentation can be compared on the same footing;
* ``unlabelled``: manifest images no class maps to (Unidentified FlowCam crops, SPC
  "Unknown", unlabelled IFCB ROIs) and labels too rare to learn (Romeria, Asterionella ...):
  candidate negatives, and novel organisms for evaluation;
* ``frames``: the segments that ``classify`` cuts from annotated whole phase-contrast frames
  (:mod:`phytoscope.training.frames`): debris (``detritus/other``) and annotated cells, split
  with their frames, for hard negatives and the frame figures (optional);
* ``eyepiece``: a third instrument's frames (lynkos ESP32-CAM eyepiece photos, one organism
  each), with their own names: two of them are classes the model knows (oscillatoria is a
  filamentous cyanobacterium, microcystis a colonial one), the others are not
  (nitzschia, a Pseudo-nitzschia look-alike, must *not* be called Pseudo-nitzschia).

Every row records its class, source, split, set and view, so an evaluation can select
"train without source S" or "held-out class C" without re-embedding.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from phytoscope.modelcard import InputSpec
from phytoscope.training import augment
from phytoscope.training import dataset as ds

EYEPIECE_SOURCE = "lynkos_eyepiece_frames"
EYEPIECE_CLASSES = {
    "oscillatoria": "filamentous cyanobacteria",
    "microcystis": "colonial cyanobacteria",
    "nitzschia": "nitzschia (look-alike)",
    "closterium": "closterium",
    "non-algae": "non-algae",
}
"""Eyepiece frame labels -> class: a known class where the taxon is one, else a name the
model does not know (so it should say "unknown")."""

VIEWS = ("original", "basic", "instrument")
SETS = ("known", "unlabelled", "eyepiece", "frames")


@dataclass(frozen=True)
class Embeddings:
    """Pooled backbone features with one metadata entry per row."""

    features: np.ndarray  # (N, D) float32
    cls: np.ndarray  # (N,) str: class (known set), label-derived name otherwise
    source: np.ndarray  # (N,) str
    split: np.ndarray  # (N,) str: train/val/test for the known set, "" otherwise
    set: np.ndarray  # (N,) str: one of SETS
    view: np.ndarray  # (N,) str: one of VIEWS
    item: np.ndarray  # (N,) int: the image each row comes from (views share it)

    def select(self, mask: np.ndarray) -> Embeddings:
        return Embeddings(*(getattr(self, f)[mask] for f in self.__dataclass_fields__))

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **{f: getattr(self, f) for f in self.__dataclass_fields__})
        return path

    @classmethod
    def load(cls, path: Path) -> Embeddings:
        with np.load(path) as data:
            return cls(**{f: data[f] for f in cls.__dataclass_fields__})


def unlabelled_items(manifest: Path, classes: tuple[str, ...]) -> list[ds.Item]:
    """Manifest images that map to no class of the model (whole frames and the eyepiece
    source excluded): the Unidentified/Unknown/unlabelled images and the rare labels."""
    base = Path(manifest).resolve().parent
    out = []
    with open(manifest, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            source, label = row["source"], row["label"]
            if row.get("view") in ds.EXCLUDED_VIEWS or source == EYEPIECE_SOURCE:
                continue
            if ds.map_label(source, label, ds.DEFAULT_CLASS_MAP) in classes:
                continue
            path = base / row["path"]
            out.append(ds.Item(path, label, label, source, group=str(path)))
    return out


def eyepiece_items(manifest: Path) -> list[ds.Item]:
    """The eyepiece frames, each a whole image (as ``classify`` reads a small frame)."""
    base = Path(manifest).resolve().parent
    with open(manifest, newline="", encoding="utf-8") as fh:
        return [
            ds.Item(base / r["path"], r["label"], EYEPIECE_CLASSES[r["label"]], r["source"], "")
            for r in csv.DictReader(fh)
            if r["source"] == EYEPIECE_SOURCE and r["label"] in EYEPIECE_CLASSES
        ]


def build(
    split_items: list[ds.Item],
    manifest: Path,
    classes: tuple[str, ...],
    spec: InputSpec,
    embed: Callable[[np.ndarray], np.ndarray],
    *,
    copies: int = 2,
    seed: int = 0,
    cache_dir: Path | None = None,
    frame_items: list[ds.Item] | None = None,
    say: Callable[[str], None] = lambda _m: None,
) -> Embeddings:
    """Embed the sets (module doc); ``embed`` maps prepared uint8 (N, H, W) to (N, D)."""
    rng = np.random.default_rng(seed)
    parts: list[tuple[np.ndarray, list[ds.Item], str, str, np.ndarray]] = []
    known = [i for i in split_items if i.cls in classes]
    sets = (
        ("known", known),
        ("unlabelled", unlabelled_items(manifest, classes)),
        ("eyepiece", eyepiece_items(manifest)),
        ("frames", frame_items or []),
    )
    offset = 0
    for name, items in sets:
        if not items:
            continue
        say(f"{name}: preparing {len(items)} images")
        prepared = ds.prepared_arrays(items, spec, cache_dir)
        ids = np.arange(offset, offset + len(items))
        offset += len(items)
        say(f"{name}: embedding")
        parts.append((embed(prepared), items, name, "original", ids))
        if name != "known":
            continue
        for _ in range(copies):
            say(f"{name}: augmented copies")
            parts.append((embed(augment.augment_batch(prepared, rng)), items, name, "basic", ids))
            parts.append(
                (embed(augment.instrument_batch(prepared, rng)), items, name, "instrument", ids)
            )

    def column(get: Callable[[ds.Item], str]) -> np.ndarray:
        return np.array([get(i) for _, items, *_ in parts for i in items])

    return Embeddings(
        features=np.concatenate([p[0] for p in parts]).astype(np.float32),
        cls=column(lambda i: i.cls),
        source=column(lambda i: i.source),
        split=column(lambda i: i.split),
        set=np.concatenate([np.full(len(p[1]), p[2]) for p in parts]),
        view=np.concatenate([np.full(len(p[1]), p[3]) for p in parts]),
        item=np.concatenate([p[4] for p in parts]),
    )


def load_or_build(
    base_onnx: Path,
    split_file: Path,
    data_root: Path,
    manifest: Path,
    cache: Path,
    *,
    copies: int = 2,
    frames: tuple[Path, Path] | None = None,
    say: Callable[[str], None] = lambda _m: None,
) -> Embeddings:
    """The embeddings of ``base_onnx``'s backbone, from ``cache/embeddings_<sha>.npz`` when
    an earlier run made them (keyed by the model file and the split), else built and saved.
    ``frames``: (folder of whole frames, folder of their COCO annotations)."""
    from phytoscope.modelcard import ModelCard, card_path_for, sha256_of
    from phytoscope.training import onnx_head

    card = ModelCard.load(card_path_for(base_onnx))
    key = sha256_of(base_onnx)[:12] + "_" + sha256_of(split_file)[:8] + f"_c{copies}"
    key += "_frames" if frames else ""
    path = Path(cache) / f"embeddings_{key}.npz"
    if path.exists():
        return Embeddings.load(path)

    def embed(prepared: np.ndarray) -> np.ndarray:
        return onnx_head.embed(base_onnx, prepared, card.input, batch=64)

    split_items = ds.read_split(split_file, data_root)
    segments = None
    if frames is not None:
        from phytoscope.training import frames as fr

        say("segmenting the annotated frames")
        segments = fr.frame_items(frames[0], frames[1], split_items)
    emb = build(
        split_items,
        manifest,
        card.class_names,
        card.input,
        embed,
        copies=copies,
        cache_dir=Path(cache) / "prepared",
        frame_items=segments,
        say=say,
    )
    emb.save(path)
    return emb
