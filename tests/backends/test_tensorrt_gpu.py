"""TensorRT backend, tiers 2-3 on NVIDIA hardware: CUDA buffers, then TensorRT vs ONNX Runtime.

Every test here skips with its reason where pycuda, TensorRT or a GPU is missing;
``PHYTOSCOPE_REQUIRE_GPU=1`` turns those skips into failures (see ``tests/gpu.py``).
Run on a Jetson: ``PHYTOSCOPE_REQUIRE_GPU=1 pytest -m gpu``.

The model is a tiny convolutional network written with ``onnx.helper`` (random weights, not
a classifier), so these tests need neither TensorFlow nor the shipped model.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
import pytest

from phytoscope.backends.options import TrtOptions
from phytoscope.backends.tensorrt.buffers import TensorDesc, plan_buffers
from phytoscope.errors import BackendError
from phytoscope.imaging.preprocess import preprocess_batch
from phytoscope.modelcard import ClassInfo, InputSpec, ModelCard, card_path_for, sha256_of
from tests.gpu import need_cuda, need_tensorrt, skip_or_fail

pytestmark = pytest.mark.gpu

SIZE = 32
CLASSES = ("Alexandrium", "Dinophysis", "Pseudo-nitzschia", "Other")


def make_onnx_model(folder: Path, size: int = SIZE) -> Path:
    """NHWC float input with a dynamic batch -> Conv/ReLU/GAP/Gemm -> logits; card beside it."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        skip_or_fail("the onnx package is not installed (pip install onnx): no test model")
    rng = np.random.default_rng(0)
    w1 = rng.normal(0, 0.4, (16, 3, 3, 3)).astype(np.float32)
    b1 = rng.normal(0, 0.1, 16).astype(np.float32)
    w2 = rng.normal(0, 0.6, (len(CLASSES), 16)).astype(np.float32)
    b2 = rng.normal(0, 0.1, len(CLASSES)).astype(np.float32)
    nodes = [
        helper.make_node("Transpose", ["input"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "w1", "b1"], ["conv"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("GlobalAveragePool", ["relu"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "w2", "b2"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", size, size, 3])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", len(CLASSES)])],
        [
            numpy_helper.from_array(a, n)
            for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tiny.onnx"
    onnx.save(model, str(path))
    ModelCard(
        name="tiny-gpu-test",
        version="0",
        file=path.name,
        format="onnx",
        precision="fp32",
        sha256=sha256_of(path),
        classes=tuple(ClassInfo(c) for c in CLASSES),
        input=InputSpec(height=size, width=size),
        notes="test fixture, random weights: not a classifier",
    ).save(card_path_for(path))
    return path


def images(n: int, seed: int = 11) -> list[np.ndarray]:
    """Grey images with a bright blob on a dark background (plankton-like, varied)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        h, w = rng.integers(24, 80, size=2)
        yy, xx = np.mgrid[0:h, 0:w]
        cy, cx, r = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w, rng.uniform(4, 14)
        blob = 200 * np.exp(-(((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r)))
        out.append(np.clip(blob + rng.normal(20, 8, (h, w)), 0, 255).astype(np.uint8))
    return out


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return make_onnx_model(tmp_path_factory.mktemp("trt_model")).parent


def _run_in_thread(fn):
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised on the test thread
            box["error"] = exc

    worker = threading.Thread(target=target, name="inference")
    worker.start()
    worker.join(600)
    if "error" in box:
        raise box["error"]
    return box["value"]


# -- CUDA only (pycuda + GPU; no TensorRT needed) ------------------------------------------


def test_cuda_context_buffers_and_async_copies_on_worker_thread():
    need_cuda()
    import pycuda.driver as cuda

    from phytoscope.backends.tensorrt import CudaContext, IOBuffers

    plans = plan_buffers(
        [
            TensorDesc("input", True, (-1, SIZE, SIZE, 3), np.dtype(np.float32)),
            TensorDesc("logits", False, (-1, len(CLASSES)), np.dtype(np.float32)),
        ],
        max_batch=8,
    )
    batch = preprocess_batch(images(5), InputSpec(height=SIZE, width=SIZE))

    def work():
        ctx = CudaContext(0)
        assert cuda.Context.get_current() is not None
        free_before, _ = cuda.mem_get_info()
        buffers = IOBuffers(plans)
        try:
            assert buffers.host["input"].shape == (8, SIZE, SIZE, 3)
            assert buffers.host["input"].base is not None  # page-locked allocation
            buffers.upload("input", batch)
            buffers.host["input"][:] = 0  # the copy back must come from the GPU
            back = buffers.download("input", 5)
            buffers.synchronize()
            np.testing.assert_array_equal(back, batch)
            logits = np.arange(3 * len(CLASSES), dtype=np.float32).reshape(3, -1)
            buffers.upload("logits", logits)
            buffers.host["logits"][:] = -1
            out = buffers.download("logits", 3)
            buffers.synchronize()
            np.testing.assert_array_equal(out, logits)
            assert (buffers.host["logits"][3:] == -1).all()  # only n rows travel
            free_during, _ = cuda.mem_get_info()
        finally:
            buffers.free()
        free_after, _ = cuda.mem_get_info()
        with pytest.raises(BackendError, match="thread"):
            _run_in_thread(ctx.check_thread)
        name = ctx.name
        ctx.close()
        current_after_close = cuda.Context.get_current()
        return name, free_before, free_during, free_after, current_after_close

    assert cuda.Context.get_current() is None  # nothing on the test thread (no autoinit)
    name, before, during, after, current = _run_in_thread(work)
    assert name
    assert during <= before  # allocations came from this GPU
    assert after >= during
    assert current is None  # popped and detached on the thread that made it
    assert cuda.Context.get_current() is None


class CopyingExecution:
    """Stands in for TensorRT's IExecutionContext to exercise the backend's plumbing (shapes
    per chunk, padding, pinned/device buffers, stream ordering) on a real GPU where TensorRT
    is absent. Its "inference" is a strided device-to-device copy on the given stream:
    ``logits[i, c] = input[i].flat[c]``. It says nothing about TensorRT itself."""

    def __init__(self, buffers, inp, out):
        self.buffers, self.inp, self.out = buffers, inp, out
        self.shapes: list[tuple[int, ...]] = []
        self.rows = inp.batch

    def set_input_shape(self, name, shape):
        assert name == self.inp.name
        self.shapes.append(tuple(shape))
        self.rows = shape[0]
        return True

    def execute_async_v3(self, stream_handle):
        import pycuda.driver as cuda

        assert stream_handle == self.buffers.stream.handle
        copy = cuda.Memcpy2D()
        copy.set_src_device(self.buffers.address(self.inp.name))
        copy.set_dst_device(self.buffers.address(self.out.name))
        copy.src_pitch = self.inp.nbytes // self.inp.batch
        copy.dst_pitch = copy.width_in_bytes = self.out.nbytes // self.out.batch
        copy.height = self.rows
        copy(self.buffers.stream)  # asynchronous on the backend's stream
        return True


@pytest.mark.parametrize("dynamic", [True, False])
def test_batch_plumbing_on_gpu_with_a_copy_standing_in_for_tensorrt(dynamic):
    need_cuda()
    from phytoscope.backends.tensorrt import CudaContext, IOBuffers, run_batches

    batch_dim = -1 if dynamic else 8
    plans = plan_buffers(
        [
            TensorDesc("input", True, (batch_dim, SIZE, SIZE, 3), np.dtype(np.float32)),
            TensorDesc("logits", False, (batch_dim, len(CLASSES)), np.dtype(np.float32)),
        ],
        max_batch=8,
    )
    batch = preprocess_batch(images(21), InputSpec(height=SIZE, width=SIZE))

    def work():
        with CudaContext(0):
            buffers = IOBuffers(plans)
            try:
                execution = CopyingExecution(buffers, plans[0], plans[1])
                return run_batches(execution, buffers, plans[0], plans[1], batch)[
                    "logits"
                ], execution.shapes
            finally:
                buffers.free()

    logits, shapes = _run_in_thread(work)
    expected = batch.reshape(21, -1)[:, : len(CLASSES)]
    np.testing.assert_array_equal(logits, expected)  # rows in order across 8 + 8 + 5
    if dynamic:
        assert [s[0] for s in shapes] == [8, 8, 5]
    else:
        assert shapes == []  # fixed batch: the last chunk was padded instead


# -- TensorRT vs ONNX Runtime ---------------------------------------------------------------


def _ort_logits(model_dir: Path, batch: np.ndarray) -> np.ndarray:
    from phytoscope import backends

    with backends.create("onnxruntime", model=model_dir) as ort:
        return ort.logits(batch)


def _trt(model_dir: Path, precision: str, cache: Path, **options):
    from phytoscope import backends

    return backends.create(
        "tensorrt",
        precision=precision,
        model=model_dir,
        options=TrtOptions(cache_dir=cache, **options),
    )


@pytest.mark.parametrize(
    "precision, atol, min_agreement", [("fp32", 1e-3, 1.0), ("fp16", 3e-2, 0.95)]
)
def test_tensorrt_matches_onnxruntime(model_dir, tmp_path, precision, atol, min_agreement):
    need_tensorrt()
    spec = ModelCard.load(model_dir / "tiny.onnx.json").input
    batch = preprocess_batch(images(21), spec)  # 21 > batch 8: split into 8 + 8 + 5
    expected = _ort_logits(model_dir, batch)

    def work():
        with _trt(model_dir, precision, tmp_path / "cache", batch=8) as trt:
            assert trt.precision == precision and trt.max_batch == 8
            return trt.logits(batch), trt.logits(batch[:1]), trt.describe()

    logits, single, info = _run_in_thread(work)
    assert logits.shape == expected.shape and logits.dtype == np.float32
    np.testing.assert_allclose(logits, expected, atol=atol, rtol=atol)
    np.testing.assert_allclose(single, logits[:1], atol=atol, rtol=atol)
    agreement = float((logits.argmax(1) == expected.argmax(1)).mean())
    assert agreement >= min_agreement
    assert info["built_now"] is True and Path(info["engine"]).is_file()


def test_int8_engine_calibrated_on_real_images(model_dir, tmp_path):
    need_tensorrt()
    import cv2

    calib = tmp_path / "calib"
    calib.mkdir()
    for i, image in enumerate(images(48, seed=99)):
        cv2.imwrite(str(calib / f"{i:03d}.png"), image)
    spec = ModelCard.load(model_dir / "tiny.onnx.json").input
    batch = preprocess_batch(images(16, seed=5), spec)
    expected = _ort_logits(model_dir, batch)
    cache = tmp_path / "cache"

    def work():
        with _trt(model_dir, "int8", cache, batch=8, calibration_images=calib) as trt:
            return trt.logits(batch), trt.precision

    logits, precision = _run_in_thread(work)
    assert precision == "int8"
    assert list(cache.glob("calib-*.cache")), "calibration cache not kept"
    scale = np.abs(expected).max()
    assert np.abs(logits - expected).max() <= 0.15 * scale
    assert float((logits.argmax(1) == expected.argmax(1)).mean()) >= 0.8


def test_engine_cache_reused_then_damaged_engine_rebuilt(model_dir, tmp_path, caplog):
    need_tensorrt()
    cache = tmp_path / "cache"

    def load_once():
        with _trt(model_dir, "fp16", cache, batch=4) as trt:
            return trt.describe()

    first = _run_in_thread(load_once)
    second = _run_in_thread(load_once)
    assert first["built_now"] is True and second["built_now"] is False
    assert first["engine"] == second["engine"]
    Path(second["engine"]).write_bytes(b"\0" * 512)  # damaged / foreign engine
    with caplog.at_level(logging.WARNING):
        third = _run_in_thread(load_once)
    assert third["built_now"] is True
    assert "could not be deserialised" in caplog.text


def test_infer_from_another_thread_is_refused(model_dir, tmp_path):
    need_tensorrt()
    spec = ModelCard.load(model_dir / "tiny.onnx.json").input
    trt = _trt(model_dir, "fp32", tmp_path / "cache", batch=2)
    _run_in_thread(trt.load)
    try:
        with pytest.raises(BackendError, match="thread"):
            trt.infer(preprocess_batch(images(1), spec))
    finally:
        _run_in_thread(trt.close)
    assert not trt.loaded


def test_build_engine_command(model_dir, tmp_path, capsys):
    need_tensorrt()
    from phytoscope import cli

    args = [
        "build-engine",
        str(model_dir / "tiny.onnx"),
        "--precision",
        "fp16",
        "--batch",
        "4",
        "--workspace-mb",
        "256",
        "--cache-dir",
        str(tmp_path / "c"),
    ]
    assert cli.main(args) == 0
    assert "built in" in capsys.readouterr().out
    assert cli.main(args) == 0
    assert "already cached" in capsys.readouterr().out
    assert len(list((tmp_path / "c").glob("*.engine"))) == 1
    assert list((tmp_path / "c").glob("timing-*.cache"))


def test_runner_takes_an_engine_from_a_provider_and_novelty_comes_back(
    tiny_novelty_model_dir, tmp_path
):
    """The runner with engine bytes built by the provider beforehand (as ``build-engine``
    does), on the model with a novelty output: both outputs match ONNX Runtime."""
    need_tensorrt()
    from phytoscope import backends
    from phytoscope.backends.tensorrt import (
        CudaContext,
        EngineProvider,
        TensorRTBackend,
    )

    card = ModelCard.load(tiny_novelty_model_dir / "tiny.onnx.json")
    batch = preprocess_batch(images(10, seed=3), card.input)
    with backends.create("onnxruntime", model=tiny_novelty_model_dir) as ort:
        expected = ort.infer(batch)
    options = TrtOptions(batch=4, cache_dir=tmp_path / "cache")

    def work():
        with CudaContext(options.device):
            built = EngineProvider(card, "fp32", options)()
        with TensorRTBackend(card, "fp32", options, engine=built.engine) as trt:
            return trt.infer(batch), trt.describe()

    outputs, info = _run_in_thread(work)
    assert info["engine"] == "given by the caller"
    np.testing.assert_allclose(outputs.logits, expected.logits, atol=1e-3, rtol=1e-3)
    assert outputs.novelty is not None and outputs.novelty.shape == (10,)
    np.testing.assert_allclose(outputs.novelty, expected.novelty, atol=1e-3, rtol=1e-3)
