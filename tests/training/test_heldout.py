"""Open-set evaluation on embeddings: the leave-out tables measure what they claim.

Synthetic embeddings (well separated clusters, one per class and one per "instrument") stand
in for the backbone's, so the figures are known in advance: a held-out cluster far from all
others must come out "unknown", and the threshold rule must keep about the asked coverage.
"""

from __future__ import annotations

import numpy as np
import pytest

from phytoscope.training import augment, heldout
from phytoscope.training.embedcache import Embeddings

CLASSES = ("a", "b", "c", "d")
SOURCES = {"a": "s1", "b": "s1", "c": "s2", "d": "s3"}


def _embeddings(seed: int = 0, per_class: int = 40, dim: int = 32) -> Embeddings:
    rng = np.random.default_rng(seed)
    centres = np.eye(dim, dtype=np.float32)[: len(CLASSES) + 2] * 5
    rows: dict[str, list] = {
        k: [] for k in ("features", "cls", "source", "split", "set", "view", "item")
    }
    item = 0

    def add(centre, cls, source, split, set_name):
        nonlocal item
        for view in ("original", "basic"):
            rows["features"].append(np.abs(centre + rng.normal(0, 0.3, dim)))
            rows["cls"].append(cls)
            rows["source"].append(source)
            rows["split"].append(split)
            rows["set"].append(set_name)
            rows["view"].append(view)
            rows["item"].append(item)
            if set_name != "known":
                break
        item += 1

    for k, cls in enumerate(CLASSES):
        for n in range(per_class):
            split = "test" if n % 5 == 0 else "val" if n % 5 == 1 else "train"
            add(centres[k], cls, SOURCES[cls], split, "known")
    for _ in range(20):
        add(centres[len(CLASSES)], "Unidentified", "s1", "", "unlabelled")
        add(centres[len(CLASSES) + 1], "lookalike", "eye", "", "eyepiece")
    return Embeddings(
        features=np.array(rows["features"], np.float32),
        **{k: np.array(v) for k, v in rows.items() if k != "features"},
    )


def test_held_out_clusters_are_unknown_and_known_coverage_is_kept():
    emb = _embeddings()
    method = heldout.Method(per_class=4, coverage=0.9)
    rows = heldout.leave_classes_out(emb, CLASSES, method, groups=[("c", "d")])
    assert [r["held_out"] for r in rows] == [["a"], ["b"], ["c"], ["d"], ["c", "d"]]
    for row in rows:
        for figures in row["held_out_classes"].values():
            assert figures["unknown"] == 1.0 and figures["auroc"] == 1.0
        assert row["known_test"]["top1_of_classified"] == 1.0
        assert row["known_test"]["coverage"] >= 0.7


def test_leave_source_out_turns_single_source_classes_into_novel_ones():
    emb = _embeddings()
    rows = heldout.leave_source_out(emb, CLASSES, heldout.Method(per_class=4))
    by_source = {r["source"]: r for r in rows}
    assert set(by_source) == {"s1", "s2", "s3", "eyepiece (never trained on)"}
    s1 = by_source["s1"]["per_class"]
    assert not s1["a"]["trained"] and s1["a"]["unknown"] == 1.0
    eye = by_source["eyepiece (never trained on)"]["per_class"]["lookalike"]
    assert eye["unknown"] == 1.0 and eye["called_hab"] == 0.0


def test_study_writes_json_csv_and_markdown(tmp_path):
    emb = _embeddings()
    result = heldout.study(emb, CLASSES, [heldout.Method(per_class=2)])
    paths = heldout.write_results(result, tmp_path)
    assert {"json", "leave_classes_out", "leave_source_out", "md"} <= set(paths)
    text = paths["md"].read_text()
    assert "| k2_" in text and "held out" in text
    summary = next(iter(result["methods"].values()))["summary"]
    assert summary["held_out_unknown_min"] == 1.0


def test_auroc():
    assert heldout.auroc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 1.0
    assert heldout.auroc(np.array([1.0]), np.array([1.0])) == 0.5
    assert heldout.auroc(np.array([]), np.array([1.0])) is None


def test_embeddings_round_trip(tmp_path):
    emb = _embeddings()
    back = Embeddings.load(emb.save(tmp_path / "e.npz"))
    assert np.array_equal(back.features, emb.features) and list(back.cls) == list(emb.cls)
    sub = emb.select(emb.set == "known")
    assert len(sub.features) == len(sub.view) < len(emb.features)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_instrument_view_keeps_shape_and_changes_the_look(seed):
    rng = np.random.default_rng(seed)
    image = np.full((64, 64), 200, np.uint8)
    image[20:44, 28:36] = 40
    batch = augment.instrument_batch(np.stack([image, image]), rng)
    assert batch.shape == (2, 64, 64) and batch.dtype == np.uint8
    assert not np.array_equal(batch[0], image)
