"""New head columns beside kept ones, and the one-BLAS-thread switch the fits run under."""

from __future__ import annotations

import numpy as np

from phytoscope.training import blas, extend, onnx_head, openset


def _clusters(rng, classes=4, per_class=30, dim=6):
    centres = np.eye(classes, dim) * 4
    x = np.concatenate([centres[c] + rng.normal(0, 0.3, (per_class, dim)) for c in range(classes)])
    return x.astype(np.float32), np.repeat(np.arange(classes), per_class)


def test_only_free_columns_change_and_a_new_class_is_learnt():
    rng = np.random.default_rng(0)
    x, y = _clusters(rng)
    w3, b3 = openset.fit_logistic(x[y < 3], y[y < 3], 3)
    w, b = extend.widen(w3, b3, 4)
    new_w, new_b = extend.fit_columns(x, y, w, b, free=[3])
    np.testing.assert_array_equal(new_w[:, :3], w3)
    np.testing.assert_array_equal(new_b[:3], b3)
    assert ((x @ new_w + new_b).argmax(axis=1) == y).mean() >= 0.97


def test_an_extended_column_starts_from_its_trained_values():
    rng = np.random.default_rng(1)
    x, y = _clusters(rng, classes=3)
    w, b = openset.fit_logistic(x, y, 3)
    # nothing new to learn: the refitted column stays near its trained direction
    new_w, _ = extend.fit_columns(x, y, w, b, free=[1])
    cos = float(new_w[:, 1] @ w[:, 1] / np.linalg.norm(new_w[:, 1]) / np.linalg.norm(w[:, 1]))
    assert cos > 0.9


def test_cross_validation_reports_the_kept_classes_before_and_after():
    rng = np.random.default_rng(2)
    x, y = _clusters(rng)
    w3, b3 = openset.fit_logistic(x[y < 3], y[y < 3], 3)
    w, b = extend.widen(w3, b3, 4)
    names = ("a", "b", "c", "new")
    report = extend.cross_validate(x, y, names, w, b, [3], 3, bank_rows=90, folds=3)
    assert (
        report["per_class"]["new"]["top1"] >= 0.9
        and "top1_before" not in report["per_class"]["new"]
    )
    a = report["per_class"]["a"]
    assert a["bank_images"] == 30 and a["top1_before"] == 1.0 and a["top1_bank"] >= 0.9


def test_base_head_reads_gemm_and_matmul_add_layers(tiny_model_dir, tmp_path):
    base = tiny_model_dir / "tiny.onnx"
    w, b = extend.base_head(base)
    assert w.shape == (8, 3) and b.shape == (3,)
    head = openset.Head(("A", "B"), np.ones((8, 2), np.float32), np.array([1, 2], np.float32),
                        np.eye(2, 8, dtype=np.float32), np.array([0, 1]), 0.5)  # fmt: skip
    written = onnx_head.with_head(base, head)
    w2, b2 = extend.base_head(written)
    np.testing.assert_array_equal(w2, head.weights)
    np.testing.assert_array_equal(b2, head.bias)


def test_one_blas_thread_is_restored_after_the_block():
    from threadpoolctl import threadpool_info

    before = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    with blas.one_blas_thread():
        assert all(i["num_threads"] == 1 for i in threadpool_info() if i["user_api"] == "blas")
    assert [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"] == before
