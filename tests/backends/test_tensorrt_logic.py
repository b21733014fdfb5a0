"""TensorRT backend, tier 1: the logic that needs neither TensorRT, pycuda nor a GPU.

A fake ``tensorrt`` module is put in ``sys.modules`` only to test version parsing and the
refusal of old releases; nothing here claims that inference works (that is
``test_tensorrt_gpu.py``, on NVIDIA hardware).
"""

from __future__ import annotations

import importlib.machinery
import json
import logging
import sys
import threading
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

from phytoscope import backends, cli
from phytoscope.backends import tensorrt_build as tb
from phytoscope.backends.tensorrt import (
    TensorRTBackend,
    describe_environment,
    runtime_problem,
)
from phytoscope.errors import BackendError, BackendUnavailable, ConfigError, ExitCode, ModelError
from phytoscope.imaging.preprocess import preprocess_batch
from phytoscope.modelcard import ClassInfo, InputSpec, ModelCard, card_path_for, sha256_of

SPEC = InputSpec(height=32, width=32)


def _key(**changes) -> tb.EngineKey:
    values = dict(
        model_sha256="ab" * 32,
        tensorrt_version="10.3.0",
        gpu_name="Orin",
        compute_capability="8.7",
        precision="fp16",
        batch=8,
    )
    values.update(changes)
    return tb.EngineKey(**values)


def _fake_tensorrt(monkeypatch, version: str) -> types.ModuleType:
    fake = types.ModuleType("tensorrt")
    fake.__version__ = version
    fake.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    return fake


@pytest.fixture
def no_tensorrt(monkeypatch):
    """Behave as a machine without TensorRT/pycuda even where they are installed."""
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    monkeypatch.setitem(sys.modules, "pycuda", None)
    monkeypatch.setitem(sys.modules, "pycuda.driver", None)


def _onnx_card(folder: Path, precision: str = "fp32", fmt: str = "onnx") -> Path:
    """A card beside a placeholder model file (select_card only reads cards)."""
    folder.mkdir(parents=True, exist_ok=True)
    model = folder / "m.onnx"
    model.write_bytes(b"placeholder, never run")
    ModelCard(
        name="tiny",
        version="0",
        file=model.name,
        format=fmt,
        precision=precision,
        sha256=sha256_of(model),
        classes=(ClassInfo("A"), ClassInfo("B")),
        input=SPEC,
    ).save(card_path_for(model))
    return card_path_for(model)


# -- versions and messages ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, parsed",
    [
        ("10.3.0.30", (10, 3, 0, 30)),
        ("8.6.2.3", (8, 6, 2, 3)),
        ("8.5.2", (8, 5, 2)),
        ("10.0.0b6", (10, 0, 0)),
        (" 8.6 ", (8, 6)),
    ],
)
def test_parse_version(text, parsed):
    assert tb.parse_version(text) == parsed


def test_parse_version_rejects_garbage():
    with pytest.raises(ValueError):
        tb.parse_version("unknown")


@pytest.mark.parametrize("version", ["8.5.1", "8.6.2.3", "10.3.0.30", "10.14.1"])
def test_supported_versions(version):
    assert tb.version_problem(version) is None


@pytest.mark.parametrize("version", ["8.0.1.6", "8.4.3", "7.1.3"])
def test_old_versions_are_refused_with_a_clear_message(version):
    message = tb.version_problem(version)
    assert message is not None
    assert f"TensorRT {version} is too old" in message
    assert "8.5 or later" in message and "JetPack 6" in message
    assert "--backend onnxruntime" in message


def test_old_tensorrt_module_is_refused(monkeypatch):
    _fake_tensorrt(monkeypatch, "8.0.1.6")
    with pytest.raises(BackendUnavailable, match="too old"):
        tb.import_tensorrt()
    reason = runtime_problem()
    assert reason is not None and "TensorRT 8.0.1.6 is too old" in reason
    assert TensorRTBackend.unavailable_reason() == reason
    with pytest.raises(BackendUnavailable, match="too old"):
        backends.choose("tensorrt")


def test_unreadable_version_is_refused(monkeypatch):
    _fake_tensorrt(monkeypatch, "")
    with pytest.raises(BackendUnavailable, match="unreadable version"):
        tb.import_tensorrt()


def test_missing_tensorrt_names_what_to_install(no_tensorrt):
    reason = runtime_problem()
    assert reason is not None
    assert "TensorRT is not installed" in reason
    assert "python3-libnvinfer" in reason and "--system-site-packages" in reason
    assert "pip install 'phytoscope[tensorrt]'" in reason
    with pytest.raises(BackendUnavailable, match="python3-libnvinfer"):
        tb.import_tensorrt()
    with pytest.raises(BackendUnavailable, match="pycuda"):
        tb.import_pycuda_driver()


def test_auto_skips_tensorrt_when_missing(no_tensorrt):
    assert backends.availability()["tensorrt"] is not None
    assert backends.choose("auto").name != "tensorrt"


def test_create_tensorrt_without_it_raises_unavailable(no_tensorrt, tmp_path):
    card = _onnx_card(tmp_path / "m")
    with pytest.raises(
        BackendUnavailable, match="tensorrt backend is not available.*python3-libnvinfer"
    ):
        backends.create("tensorrt", precision="fp16", model=card)


def test_build_engine_command_without_tensorrt_exits_unavailable(no_tensorrt, tmp_path, capsys):
    card = _onnx_card(tmp_path / "m")
    code = cli.main(["build-engine", str(card), "--precision", "fp16"])
    assert code == ExitCode.UNAVAILABLE
    err = capsys.readouterr().err
    assert "TensorRT is not installed" in err and "python3-libnvinfer" in err
    assert "Traceback" not in err


def test_classify_with_tensorrt_without_it_exits_unavailable(no_tensorrt, tmp_path, capsys):
    card = _onnx_card(tmp_path / "m")
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), np.full((20, 30), 90, np.uint8))
    code = cli.main(
        [
            "classify",
            "--backend",
            "tensorrt",
            "--precision",
            "fp16",
            "--model",
            str(card),
            str(image),
        ]
    )
    assert code == ExitCode.UNAVAILABLE
    err = capsys.readouterr().err
    assert "tensorrt backend is not available" in err and "python3-libnvinfer" in err


def test_build_engine_help_lists_the_options():
    parser = cli.build_parser()
    args = parser.parse_args(
        [
            "build-engine",
            "m.onnx",
            "--precision",
            "int8",
            "--batch",
            "4",
            "--workspace-mb",
            "512",
            "--dla-core",
            "0",
            "--calibration-images",
            "imgs",
            "--cache-dir",
            "c",
        ]
    )
    assert (args.precision, args.batch, args.workspace_mb, args.dla_core) == ("int8", 4, 512, 0)
    assert args.calibration_images == Path("imgs") and args.cache_dir == Path("c")


def test_info_reports_tensorrt_state_without_it(no_tensorrt):
    from phytoscope.core.diagnostics import collect

    section = collect()["tensorrt"]
    assert (
        section["tensorrt"].startswith("not installed")
        and "python3-libnvinfer" in section["tensorrt"]
    )
    assert section["pycuda"].startswith("not installed") and "nvcc" in section["pycuda"]
    assert section["backend"] != "available"
    assert section["engines"] == "none cached"


def test_describe_environment_lists_cached_engines(no_tensorrt):
    cache = tb.EngineCache()
    cache.store("tiny", _key(), b"engine-bytes")
    env = describe_environment()
    assert env["engine_cache"] == str(cache.requested)
    (row,) = env["engines"]
    assert row["precision"] == "fp16" and row["batch"] == 8 and row["gpu"] == "Orin"
    assert row["tensorrt"] == "10.3.0"


# -- select_card and precision --------------------------------------------------------------


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_select_card_returns_the_onnx_fp32_card(tmp_path, precision):
    card = TensorRTBackend.select_card(_onnx_card(tmp_path), precision, tmp_path)
    assert (card.format, card.precision) == ("onnx", "fp32")
    assert card.model_path == tmp_path / "m.onnx"
    backend = TensorRTBackend(card, precision=precision)  # as backends.create() passes it
    assert backend.precision == precision  # the engine's precision, not the ONNX file's
    assert TensorRTBackend(card).precision == "fp32"


def test_select_card_from_folder_uses_fp32_onnx(tmp_path):
    _onnx_card(tmp_path)
    card = TensorRTBackend.select_card(tmp_path, "int8", tmp_path)
    assert card.file == "m.onnx" and card.precision == "fp32"


def test_select_card_refuses_non_fp32_onnx(tmp_path):
    with pytest.raises(ModelError, match="FP32 ONNX"):
        TensorRTBackend.select_card(_onnx_card(tmp_path, precision="int8"), "int8", tmp_path)
    with pytest.raises(ModelError, match="not bf16"):
        TensorRTBackend.select_card(_onnx_card(tmp_path / "b"), "bf16", tmp_path)


def test_build_options_validation():
    assert tb.BuildOptions(precision="int8", batch=4).validate().batch == 4
    with pytest.raises(ConfigError, match="DLA"):
        tb.BuildOptions(precision="fp32", dla_core=0).validate()
    with pytest.raises(ConfigError, match="batch"):
        tb.BuildOptions(batch=0).validate()
    with pytest.raises(ConfigError, match="workspace"):
        tb.BuildOptions(workspace_mb=1).validate()
    with pytest.raises(ConfigError, match="precision"):
        tb.BuildOptions(precision="fp8").validate()


# -- engine cache ---------------------------------------------------------------------------


def test_engine_file_name_leaves_out_version_and_gpu():
    name = tb.engine_file_name("Phyto Genus", _key())
    assert name == "phyto-genus-abababababab-fp16-b8.engine"
    assert tb.engine_file_name(
        "x", _key(tensorrt_version="8.6.2", gpu_name="H100")
    ) == tb.engine_file_name("x", _key())
    assert tb.engine_file_name("x", _key(dla_core=1)).endswith("-b8-dla1.engine")
    assert tb.engine_file_name("x", _key(precision="int8")) != tb.engine_file_name("x", _key())
    assert tb.engine_file_name("x", _key(batch=4)) != tb.engine_file_name("x", _key())


def test_cache_round_trip(tmp_path):
    cache = tb.EngineCache(tmp_path / "engines")
    path = cache.store("tiny", _key(), b"\x01\x02engine", build_seconds=3.2)
    assert path is not None and path.parent == tmp_path / "engines"
    found = cache.lookup("tiny", _key())
    assert found is not None and found.path == path
    assert found.path.read_bytes() == b"\x01\x02engine"
    assert found.sidecar["key"]["gpu_name"] == "Orin" and found.sidecar["build_seconds"] == 3.2
    assert not list((tmp_path / "engines").glob(".*"))  # no temporary files left behind


@pytest.mark.parametrize(
    "change, words",
    [
        (dict(tensorrt_version="10.7.0"), "tensorrt version 10.3.0 -> 10.7.0"),
        (dict(gpu_name="NVIDIA H100 80GB HBM3"), "gpu name Orin -> NVIDIA H100 80GB HBM3"),
        (dict(compute_capability="9.0"), "compute capability 8.7 -> 9.0"),
    ],
)
def test_foreign_engine_is_rebuilt_with_a_message(tmp_path, caplog, change, words):
    cache = tb.EngineCache(tmp_path)
    cache.store("tiny", _key(), b"old")
    with caplog.at_level(logging.WARNING, logger="phytoscope.backends.tensorrt_build"):
        assert cache.lookup("tiny", _key(**change)) is None
    assert "different setup" in caplog.text and words in caplog.text and "rebuilding" in caplog.text
    # after the rebuild is stored, the new key is found
    cache.store("tiny", _key(**change), b"new")
    assert cache.lookup("tiny", _key(**change)).path.read_bytes() == b"new"


def test_other_model_or_precision_is_a_different_entry(tmp_path):
    cache = tb.EngineCache(tmp_path)
    cache.store("tiny", _key(), b"fp16")
    assert cache.lookup("tiny", _key(precision="int8")) is None
    assert cache.lookup("tiny", _key(batch=16)) is None
    assert cache.lookup("tiny", _key(model_sha256="cd" * 32)) is None
    assert cache.lookup("tiny", _key()) is not None


@pytest.mark.parametrize(
    "sidecar", [None, "{not json", json.dumps({"nokey": 1}), json.dumps({"key": 3})]
)
def test_engine_without_valid_sidecar_is_rebuilt(tmp_path, caplog, sidecar):
    cache = tb.EngineCache(tmp_path)
    path = cache.store("tiny", _key(), b"engine")
    side = path.with_name(path.name + ".json")
    if sidecar is None:
        side.unlink()
    else:
        side.write_text(sidecar)
    with caplog.at_level(logging.WARNING):
        assert cache.lookup("tiny", _key()) is None
    assert "no readable sidecar" in caplog.text and "rebuilding" in caplog.text


def test_discard_removes_engine_and_sidecar(tmp_path):
    cache = tb.EngineCache(tmp_path)
    path = cache.store("tiny", _key(), b"engine")
    cache.discard(path)
    assert not path.exists() and not path.with_name(path.name + ".json").exists()
    cache.discard(path)  # twice is harmless


def test_unwritable_cache_dir_falls_back_to_user_cache(tmp_path, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    requested = blocker / "engines"  # cannot be created, even by root
    fallback = tmp_path / "user-cache" / "engines"
    cache = tb.EngineCache(requested, fallback=fallback)
    with caplog.at_level(logging.WARNING):
        path = cache.store("tiny", _key(), b"engine")
    assert path is not None and path.parent == fallback
    assert f"{requested} cannot be written; using {fallback}" in caplog.text
    # next start: the engine built in the fallback is found, not rebuilt
    again = tb.EngineCache(requested, fallback=fallback)
    assert again.lookup("tiny", _key()).path == path
    assert again.timing_cache_path("10.3.0", "Orin").parent == fallback


def test_default_fallback_is_config_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("PHYTOSCOPE_CACHE", str(tmp_path / "xdg"))
    blocker = tmp_path / "file"
    blocker.write_text("")
    cache = tb.EngineCache(blocker / "sub")
    assert cache.fallback == tmp_path / "xdg" / "engines"
    assert cache.write_dir == tmp_path / "xdg" / "engines"
    assert tb.EngineCache().requested == tmp_path / "xdg" / "engines"


def test_nothing_writable_warns_and_does_not_crash(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("")
    cache = tb.EngineCache(blocker / "a", fallback=blocker / "b")
    with caplog.at_level(logging.WARNING):
        assert cache.store("tiny", _key(), b"engine") is None
    assert "rebuilt at every start" in caplog.text
    assert cache.lookup("tiny", _key()) is None
    assert cache.timing_cache_path("10.3.0", "Orin") is None
    assert cache.entries() == []


def test_timing_and_calibration_cache_names(tmp_path):
    cache = tb.EngineCache(tmp_path)
    assert (
        cache.timing_cache_path("10.3.0", "NVIDIA H100 80GB HBM3").name
        == "timing-trt10.3.0-nvidia-h100-80gb-hbm3.cache"
    )
    calib = cache.calibration_cache_path(_key(), "f" * 64)
    assert calib == tmp_path / "calib-abababababab-ffffffffffff.cache"


def test_entries_report_engines_and_broken_sidecars(tmp_path):
    cache = tb.EngineCache(tmp_path)
    cache.store("tiny", _key(), b"x" * 2048)
    (tmp_path / "stray.engine").write_bytes(b"?")
    rows = {Path(r["file"]).name: r for r in cache.entries()}
    assert rows["tiny-abababababab-fp16-b8.engine"]["precision"] == "fp16"
    assert "will be rebuilt" in rows["stray.engine"]["sidecar"]


# -- buffers -------------------------------------------------------------------------------


def test_plan_buffers_dynamic_batch():
    plans = tb.plan_buffers(
        [
            tb.TensorDesc("input", True, (-1, 32, 32, 3), np.dtype(np.float32)),
            tb.TensorDesc("logits", False, (-1, 5), np.dtype(np.float32)),
        ],
        max_batch=8,
    )
    inp, out = plans
    assert inp.shape == (8, 32, 32, 3) and inp.dynamic_batch and inp.is_input
    assert inp.nbytes == 8 * 32 * 32 * 3 * 4
    assert out.shape == (8, 5) and out.nbytes == 160 and not out.is_input


def test_plan_buffers_fixed_batch_and_half_output():
    plans = tb.plan_buffers(
        [
            tb.TensorDesc("x", True, (4, 3, 32, 32), np.dtype(np.float32)),
            tb.TensorDesc("y", False, (4, 3), tb.numpy_dtype("DataType.HALF")),
        ],
        max_batch=16,
    )
    assert [p.shape for p in plans] == [(4, 3, 32, 32), (4, 3)]
    assert not plans[0].dynamic_batch and plans[1].dtype == np.float16 and plans[1].nbytes == 24


@pytest.mark.parametrize(
    "tensors, match",
    [
        ([("x", True, (-1, -1, 32, 3)), ("y", False, (-1, 3))], "dynamic dimensions"),
        ([("x", True, (-1, 32, 32, 3)), ("z", True, (-1, 2)), ("y", False, (-1, 3))], "2 inputs"),
        ([("x", True, (-1, 32, 32, 3))], "0 outputs"),
        ([("x", True, (4, 32, 32, 3)), ("y", False, (2, 3))], "disagree"),
        ([("x", True, ()), ("y", False, (-1, 3))], "scalar"),
    ],
)
def test_plan_buffers_refuses_unusable_engines(tensors, match):
    descs = [tb.TensorDesc(n, i, s, np.dtype(np.float32)) for n, i, s in tensors]
    with pytest.raises(ModelError, match=match):
        tb.plan_buffers(descs, 8)


def test_plan_buffers_refuses_batch_zero():
    with pytest.raises(ConfigError):
        tb.plan_buffers([], 0)


def test_numpy_dtype_names():
    class Enum:  # like tensorrt.DataType members, which expose .name
        name = "INT8"

    assert tb.numpy_dtype("DataType.FLOAT") == np.float32
    assert tb.numpy_dtype("HALF") == np.float16
    assert tb.numpy_dtype(Enum()) == np.int8
    assert tb.numpy_dtype("DataType.INT64") == np.int64
    with pytest.raises(BackendError, match="BF16 cannot be fed"):
        tb.numpy_dtype("DataType.BF16")


def test_chunks_split_large_batches():
    assert tb.chunks(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert tb.chunks(3, 16) == [(0, 3)]
    assert tb.chunks(8, 4) == [(0, 4), (4, 8)]
    with pytest.raises(ValueError):
        tb.chunks(3, 0)


def test_pad_batch_repeats_real_rows():
    batch = np.arange(3 * 2, dtype=np.float32).reshape(3, 2)
    padded = tb.pad_batch(batch, 5)
    np.testing.assert_array_equal(padded, batch[[0, 1, 2, 0, 1]])
    assert tb.pad_batch(batch, 3) is batch
    with pytest.raises(ValueError):
        tb.pad_batch(batch, 2)
    with pytest.raises(ValueError):
        tb.pad_batch(batch[:0], 2)


# -- calibration ----------------------------------------------------------------------------


def _images(n: int, seed: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 255, size=(20 + 5 * i, 40 - i), dtype=np.uint8) for i in range(n)]


def test_calibration_batches_from_arrays_match_inference_preprocessing():
    images = _images(10)
    batches = list(tb.calibration_batches(images, SPEC, batch=4))
    assert [b.shape for b in batches] == [(4, 32, 32, 3), (4, 32, 32, 3), (2, 32, 32, 3)]
    assert all(b.dtype == np.float32 and b.flags.c_contiguous for b in batches)
    np.testing.assert_array_equal(np.concatenate(batches), preprocess_batch(images, SPEC))
    assert -1.0 <= np.concatenate(batches).min() and np.concatenate(batches).max() <= 1.0


def test_calibration_batches_from_image_files(tmp_path, caplog):
    rng = np.random.default_rng(5)
    folder = tmp_path / "calib"
    (folder / "sub").mkdir(parents=True)
    written = []
    for i in range(7):
        colour = rng.integers(0, 255, size=(30 + i, 50, 3), dtype=np.uint8)
        path = folder / ("sub" if i % 2 else "") / f"img{i}.png"
        assert cv2.imwrite(str(path), colour)
        written.append(path)
    (folder / "broken.png").write_bytes(b"not a png")
    (folder / "notes.txt").write_text("ignored")
    files = tb.list_images(folder)
    assert len(files) == 8 and all(f.suffix == ".png" for f in files)
    with caplog.at_level(logging.WARNING):
        batches = list(tb.calibration_batches(files, SPEC, batch=3))
    assert [b.shape[0] for b in batches] == [3, 3, 1]  # 7 readable, the last batch partial
    assert "broken.png" in caplog.text
    # files are read as RGB like every image source; grey conversion then matches
    first = cv2.cvtColor(cv2.imread(str(sorted(written)[0])), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(batches[0][0], preprocess_batch([first], SPEC)[0])


def test_list_images_limits_and_errors(tmp_path):
    for i in range(10):
        cv2.imwrite(str(tmp_path / f"{i:02d}.png"), np.full((4, 4), i * 20, np.uint8))
    thinned = tb.list_images(tmp_path, limit=4)
    assert [p.name for p in thinned] == ["00.png", "02.png", "05.png", "07.png"]
    assert len(tb.images_digest(thinned)) == 64
    assert tb.images_digest(thinned) != tb.images_digest(thinned[:3])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="no images"):
        tb.list_images(empty)
    with pytest.raises(ConfigError, match="does not exist"):
        tb.list_images(tmp_path / "missing")


# -- build progress -------------------------------------------------------------------------


def test_phase_tracker_reports_outer_fraction_and_cancels():
    seen = []
    cancel = threading.Event()
    tracker = tb.PhaseTracker(lambda m, f: seen.append((m, f)), cancel)
    tracker.phase_start("Building engine", None, 4)
    tracker.phase_start("Tactic timing", "Building engine", 10)
    assert tracker.step_complete("Tactic timing", 0) is True
    tracker.phase_finish("Tactic timing")
    assert tracker.step_complete("Building engine", 1) is True
    cancel.set()
    assert tracker.step_complete("Building engine", 2) is False
    assert seen == [
        ("Building engine", 0.0),
        ("Tactic timing", None),
        ("Tactic timing 1/10", None),
        ("Building engine 2/4", 0.5),
        ("Building engine 3/4", 0.75),
    ]
