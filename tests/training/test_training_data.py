"""Dataset loading, class mapping, group-aware split, augmentation (pure logic, fast)."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from phytoscope.modelcard import InputSpec
from phytoscope.training import dataset as ds
from phytoscope.training.augment import augment_batch, augment_one

DATA = Path(__file__).resolve().parents[1] / "data" / "training"


def test_folder_dataset_maps_folder_names_to_taxonomy():
    items = ds.load_items(DATA)
    classes = Counter(i.cls for i in items)
    assert classes == {
        "Pseudo-nitzschia": 4,
        "Mesodinium": 4,
        "ciliate": 4,
        "zooplankton": 4,
        "detritus/other": 4,
    }
    assert ds.class_info("Pseudo-nitzschia").hab and ds.class_info("Pseudo-nitzschia").chain_forming
    assert ds.class_info("Dolichospermum").group == "Cyanobacteria"
    assert ds.class_info("my own genus").rank == "genus"


def _manifest(tmp_path: Path) -> Path:
    """A manifest in the shared collection's format over the fixture images: each Pseudo-
    nitzschia image appears in two views (same file name), as the Marzidovšek crops do."""
    rows = []
    for path in sorted(DATA.rglob("*.png")):
        rel = path.relative_to(DATA.parent).as_posix()
        folder = path.parent.name
        if folder == "Pseudo-nitzschia":
            for view in ("crops_bbox", "crops_rotated"):
                rows.append([rel, "marzi", "Pseudo-nitzschia_calliantha", view])
            rows.append([rel, "marzi", "Pseudo-nitzschia_calliantha", "full_frames"])
        elif folder == "detritus_other":
            rows.append([rel, "pwssc_spc_zooplankton_subset", "Snow", "crop"])
        else:
            rows.append([rel, "other", "Unidentified" if folder == "ciliate" else folder, "crop"])
    manifest = tmp_path / "manifest.csv"
    with open(manifest, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "source", "label", "view"])
        writer.writerows(rows)
    # the manifest's paths are relative to its own folder
    (tmp_path / "training").symlink_to(DATA, target_is_directory=True)
    return manifest


def test_manifest_mapping_drops_unlabelled_and_frames(tmp_path):
    items = ds.load_items(_manifest(tmp_path))
    classes = Counter(i.cls for i in items)
    assert classes["Pseudo-nitzschia"] == 8  # two views each, whole frames excluded
    assert classes["detritus/other"] == 4  # pwssc Snow is a particle
    assert classes["zooplankton"] == 0 or "zooplankton" not in classes  # source "other": no rule
    assert "ciliate" not in classes  # labelled Unidentified: dropped
    assert all(i.path.exists() for i in items)


def test_split_keeps_views_of_one_cell_together_and_is_seeded(tmp_path):
    items = ds.load_items(_manifest(tmp_path))
    a, b = ds.split(items, seed=3), ds.split(items, seed=3)
    assert [i.split for i in a] == [i.split for i in b]
    by_group: dict[str, set[str]] = {}
    for item in a:
        by_group.setdefault(item.group, set()).add(item.split)
    assert all(len(s) == 1 for s in by_group.values())
    pn = [i for i in a if i.cls == "Pseudo-nitzschia"]
    assert {i.split for i in pn} == {"train", "val", "test"}  # stratified: every split has it


def test_split_file_round_trip_is_relative(tmp_path):
    items = ds.split(ds.load_items(DATA), seed=0)
    path = ds.write_split(items, tmp_path / "split.csv", ds.dataset_root(DATA))
    text = path.read_text()
    assert str(DATA) not in text  # relative paths travel with the data
    back = ds.read_split(path, DATA)
    assert [(i.path, i.cls, i.split) for i in back] == [(i.path, i.cls, i.split) for i in items]


def test_limit_and_drop_rare():
    items = ds.load_items(DATA)
    assert len(ds.limit(items, 15, seed=0)) == 15  # 3 per class (minimum to split)
    assert ds.drop_rare(items, 5) == []
    assert len(ds.drop_rare(items, 4)) == 20


def test_prepared_arrays_are_cached(tmp_path):
    items = ds.load_items(DATA)[:5]
    spec = InputSpec(height=24, width=24)
    first = ds.prepared_arrays(items, spec, tmp_path)
    assert first.shape == (5, 24, 24) and first.dtype == np.uint8
    assert len(list(tmp_path.glob("prepared_24x24_*.npy"))) == 1
    np.testing.assert_array_equal(ds.prepared_arrays(items, spec, tmp_path), first)


def test_read_image_refuses_non_image(tmp_path):
    bad = tmp_path / "x.png"
    bad.write_text("not an image")
    from phytoscope.errors import SourceError

    with pytest.raises(SourceError):
        ds.read_image(bad)


def test_augmentation_keeps_shape_and_only_reorders_without_scale_or_brightness():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (16, 16), dtype=np.uint8)
    view = augment_one(image, rng, scale=0, brightness=0)
    assert view.shape == image.shape and view.dtype == np.uint8
    assert sorted(view.ravel()) == sorted(image.ravel())  # flips/rotations move pixels only
    batch = augment_batch(np.stack([image] * 8), np.random.default_rng(1))
    assert batch.shape == (8, 16, 16)
    assert len({b.tobytes() for b in batch}) > 1  # views differ
    again = augment_batch(np.stack([image] * 8), np.random.default_rng(1))
    np.testing.assert_array_equal(batch, again)  # seeded
