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
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

from phytoscope import backends, cli
from phytoscope.backends.options import OrtOptions, TrtOptions
from phytoscope.backends.tensorrt import (
    EngineProvider,
    EngineResult,
    TensorRTBackend,
    describe_environment,
    runtime_problem,
)
from phytoscope.backends.tensorrt import buffers as tbuf
from phytoscope.backends.tensorrt import build as tbuild
from phytoscope.backends.tensorrt import cache as tcache
from phytoscope.backends.tensorrt import calibration as tcal
from phytoscope.backends.tensorrt import runtime as trun
from phytoscope.errors import (
    BackendError,
    BackendUnavailable,
    Cancelled,
    ConfigError,
    ExitCode,
    ModelError,
)
from phytoscope.imaging.preprocess import preprocess_batch
from phytoscope.modelcard import ClassInfo, InputSpec, ModelCard, card_path_for, sha256_of
from phytoscope.progress import CancelToken, Progress

SPEC = InputSpec(height=32, width=32)


def _key(**changes) -> tcache.EngineKey:
    values = dict(
        model_sha256="ab" * 32,
        tensorrt_version="10.3.0",
        gpu_name="Orin",
        compute_capability="8.7",
        precision="fp16",
        batch=8,
    )
    values.update(changes)
    return tcache.EngineKey(**values)


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
    assert trun.parse_version(text) == parsed


def test_parse_version_rejects_garbage():
    with pytest.raises(ValueError):
        trun.parse_version("unknown")


@pytest.mark.parametrize("version", ["8.5.1", "8.6.2.3", "10.3.0.30", "10.14.1"])
def test_supported_versions(version):
    assert trun.version_problem(version) is None


@pytest.mark.parametrize("version", ["8.0.1.6", "8.4.3", "7.1.3"])
def test_old_versions_are_refused_with_a_clear_message(version):
    message = trun.version_problem(version)
    assert message is not None
    assert f"TensorRT {version} is too old" in message
    assert "8.5 or later" in message and "JetPack 6" in message
    assert "--backend onnxruntime" in message


def test_old_tensorrt_module_is_refused(monkeypatch):
    _fake_tensorrt(monkeypatch, "8.0.1.6")
    with pytest.raises(BackendUnavailable, match="too old"):
        trun.import_tensorrt()
    reason = runtime_problem()
    assert reason is not None and "TensorRT 8.0.1.6 is too old" in reason
    assert TensorRTBackend.unavailable_reason() == reason
    with pytest.raises(BackendUnavailable, match="too old"):
        backends.choose("tensorrt")


def test_unreadable_version_is_refused(monkeypatch):
    _fake_tensorrt(monkeypatch, "")
    with pytest.raises(BackendUnavailable, match="unreadable version"):
        trun.import_tensorrt()


def test_missing_tensorrt_names_what_to_install(no_tensorrt):
    reason = runtime_problem()
    assert reason is not None
    assert "TensorRT is not installed" in reason
    assert "python3-libnvinfer" in reason and "--system-site-packages" in reason
    assert "pip install 'phytoscope[tensorrt]'" in reason
    with pytest.raises(BackendUnavailable, match="python3-libnvinfer"):
        trun.import_tensorrt()
    with pytest.raises(BackendUnavailable, match="pycuda"):
        trun.import_pycuda_driver()


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
    cache = tcache.EngineCache()
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


def test_trt_options_validation():
    assert TrtOptions(batch=4).check_precision("int8").batch == 4
    with pytest.raises(ConfigError, match="DLA"):
        TrtOptions(dla_core=0).check_precision("fp32")
    with pytest.raises(ConfigError, match="batch"):
        TrtOptions(batch=0).validate()
    with pytest.raises(ConfigError, match="workspace"):
        TrtOptions(workspace_mb=1).validate()
    with pytest.raises(ConfigError, match="precision"):
        TrtOptions().check_precision("fp8")
    assert TrtOptions(cache_dir="c", calibration_images="i").cache_dir == Path("c")


# -- engine cache ---------------------------------------------------------------------------


def test_engine_file_name_leaves_out_version_and_gpu():
    name = tcache.engine_file_name("Phyto Genus", _key())
    assert name == "phyto-genus-abababababab-fp16-b8.engine"
    assert tcache.engine_file_name(
        "x", _key(tensorrt_version="8.6.2", gpu_name="H100")
    ) == tcache.engine_file_name("x", _key())
    assert tcache.engine_file_name("x", _key(dla_core=1)).endswith("-b8-dla1.engine")
    assert tcache.engine_file_name("x", _key(precision="int8")) != tcache.engine_file_name(
        "x", _key()
    )
    assert tcache.engine_file_name("x", _key(batch=4)) != tcache.engine_file_name("x", _key())


def test_cache_round_trip(tmp_path):
    cache = tcache.EngineCache(tmp_path / "engines")
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
    cache = tcache.EngineCache(tmp_path)
    cache.store("tiny", _key(), b"old")
    with caplog.at_level(logging.WARNING, logger="phytoscope.backends.tensorrt.cache"):
        assert cache.lookup("tiny", _key(**change)) is None
    assert "different setup" in caplog.text and words in caplog.text and "rebuilding" in caplog.text
    # after the rebuild is stored, the new key is found
    cache.store("tiny", _key(**change), b"new")
    assert cache.lookup("tiny", _key(**change)).path.read_bytes() == b"new"


def test_other_model_or_precision_is_a_different_entry(tmp_path):
    cache = tcache.EngineCache(tmp_path)
    cache.store("tiny", _key(), b"fp16")
    assert cache.lookup("tiny", _key(precision="int8")) is None
    assert cache.lookup("tiny", _key(batch=16)) is None
    assert cache.lookup("tiny", _key(model_sha256="cd" * 32)) is None
    assert cache.lookup("tiny", _key()) is not None


@pytest.mark.parametrize(
    "sidecar", [None, "{not json", json.dumps({"nokey": 1}), json.dumps({"key": 3})]
)
def test_engine_without_valid_sidecar_is_rebuilt(tmp_path, caplog, sidecar):
    cache = tcache.EngineCache(tmp_path)
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
    cache = tcache.EngineCache(tmp_path)
    path = cache.store("tiny", _key(), b"engine")
    cache.discard(path)
    assert not path.exists() and not path.with_name(path.name + ".json").exists()
    cache.discard(path)  # twice is harmless


def test_unwritable_cache_dir_falls_back_to_user_cache(tmp_path, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    requested = blocker / "engines"  # cannot be created, even by root
    fallback = tmp_path / "user-cache" / "engines"
    cache = tcache.EngineCache(requested, fallback=fallback)
    with caplog.at_level(logging.WARNING):
        path = cache.store("tiny", _key(), b"engine")
    assert path is not None and path.parent == fallback
    assert f"{requested} cannot be written; using {fallback}" in caplog.text
    # next start: the engine built in the fallback is found, not rebuilt
    again = tcache.EngineCache(requested, fallback=fallback)
    assert again.lookup("tiny", _key()).path == path
    assert again.timing_cache_path("10.3.0", "Orin").parent == fallback


def test_default_fallback_is_config_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("PHYTOSCOPE_CACHE", str(tmp_path / "xdg"))
    blocker = tmp_path / "file"
    blocker.write_text("")
    cache = tcache.EngineCache(blocker / "sub")
    assert cache.fallback == tmp_path / "xdg" / "engines"
    assert cache.write_dir == tmp_path / "xdg" / "engines"
    assert tcache.EngineCache().requested == tmp_path / "xdg" / "engines"


def test_nothing_writable_warns_and_does_not_crash(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("")
    cache = tcache.EngineCache(blocker / "a", fallback=blocker / "b")
    with caplog.at_level(logging.WARNING):
        assert cache.store("tiny", _key(), b"engine") is None
    assert "rebuilt at every start" in caplog.text
    assert cache.lookup("tiny", _key()) is None
    assert cache.timing_cache_path("10.3.0", "Orin") is None
    assert cache.entries() == []


def test_timing_and_calibration_cache_names(tmp_path):
    cache = tcache.EngineCache(tmp_path)
    assert (
        cache.timing_cache_path("10.3.0", "NVIDIA H100 80GB HBM3").name
        == "timing-trt10.3.0-nvidia-h100-80gb-hbm3.cache"
    )
    calib = cache.calibration_cache_path(_key(), "f" * 64)
    assert calib == tmp_path / "calib-abababababab-ffffffffffff.cache"


def test_entries_report_engines_and_broken_sidecars(tmp_path):
    cache = tcache.EngineCache(tmp_path)
    cache.store("tiny", _key(), b"x" * 2048)
    (tmp_path / "stray.engine").write_bytes(b"?")
    rows = {Path(r["file"]).name: r for r in cache.entries()}
    assert rows["tiny-abababababab-fp16-b8.engine"]["precision"] == "fp16"
    assert "will be rebuilt" in rows["stray.engine"]["sidecar"]


# -- buffers -------------------------------------------------------------------------------


def test_plan_buffers_dynamic_batch():
    plans = tbuf.plan_buffers(
        [
            tbuf.TensorDesc("input", True, (-1, 32, 32, 3), np.dtype(np.float32)),
            tbuf.TensorDesc("logits", False, (-1, 5), np.dtype(np.float32)),
        ],
        max_batch=8,
    )
    inp, out = plans
    assert inp.shape == (8, 32, 32, 3) and inp.dynamic_batch and inp.is_input
    assert inp.nbytes == 8 * 32 * 32 * 3 * 4
    assert out.shape == (8, 5) and out.nbytes == 160 and not out.is_input


def test_plan_buffers_fixed_batch_and_half_output():
    plans = tbuf.plan_buffers(
        [
            tbuf.TensorDesc("x", True, (4, 3, 32, 32), np.dtype(np.float32)),
            tbuf.TensorDesc("y", False, (4, 3), tbuf.numpy_dtype("DataType.HALF")),
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
        (
            [("x", True, (-1, 32, 32, 3)), ("y", False, (-1, 3)), ("n", False, (-1,))]
            + [("z", False, (-1, 1))],
            "3 outputs",
        ),
        ([("x", True, (4, 32, 32, 3)), ("y", False, (2, 3))], "disagree"),
        ([("x", True, ()), ("y", False, (-1, 3))], "scalar"),
    ],
)
def test_plan_buffers_refuses_unusable_engines(tensors, match):
    descs = [tbuf.TensorDesc(n, i, s, np.dtype(np.float32)) for n, i, s in tensors]
    with pytest.raises(ModelError, match=match):
        tbuf.plan_buffers(descs, 8)


def test_plan_buffers_with_a_novelty_output():
    plans = tbuf.plan_buffers(
        [
            tbuf.TensorDesc("input", True, (-1, 32, 32, 3), np.dtype(np.float32)),
            tbuf.TensorDesc("logits", False, (-1, 5), np.dtype(np.float32)),
            tbuf.TensorDesc("novelty", False, (-1,), np.dtype(np.float32)),
        ],
        max_batch=4,
    )
    assert [(p.name, p.shape) for p in plans] == [
        ("input", (4, 32, 32, 3)),
        ("logits", (4, 5)),
        ("novelty", (4,)),
    ]


def test_plan_buffers_refuses_batch_zero():
    with pytest.raises(ConfigError):
        tbuf.plan_buffers([], 0)


def test_numpy_dtype_names():
    class Enum:  # like tensorrt.DataType members, which expose .name
        name = "INT8"

    assert tbuf.numpy_dtype("DataType.FLOAT") == np.float32
    assert tbuf.numpy_dtype("HALF") == np.float16
    assert tbuf.numpy_dtype(Enum()) == np.int8
    assert tbuf.numpy_dtype("DataType.INT64") == np.int64
    with pytest.raises(BackendError, match="BF16 cannot be fed"):
        tbuf.numpy_dtype("DataType.BF16")


def test_chunks_split_large_batches():
    assert tbuf.chunks(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert tbuf.chunks(3, 16) == [(0, 3)]
    assert tbuf.chunks(8, 4) == [(0, 4), (4, 8)]
    with pytest.raises(ValueError):
        tbuf.chunks(3, 0)


def test_pad_batch_repeats_real_rows():
    batch = np.arange(3 * 2, dtype=np.float32).reshape(3, 2)
    padded = tbuf.pad_batch(batch, 5)
    np.testing.assert_array_equal(padded, batch[[0, 1, 2, 0, 1]])
    assert tbuf.pad_batch(batch, 3) is batch
    with pytest.raises(ValueError):
        tbuf.pad_batch(batch, 2)
    with pytest.raises(ValueError):
        tbuf.pad_batch(batch[:0], 2)


# -- calibration ----------------------------------------------------------------------------


def _images(n: int, seed: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 255, size=(20 + 5 * i, 40 - i), dtype=np.uint8) for i in range(n)]


def test_calibration_batches_from_arrays_match_inference_preprocessing():
    images = _images(10)
    batches = list(tcal.calibration_batches(images, SPEC, batch=4))
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
    files = tcal.list_images(folder)
    assert len(files) == 8 and all(f.suffix == ".png" for f in files)
    with caplog.at_level(logging.WARNING):
        batches = list(tcal.calibration_batches(files, SPEC, batch=3))
    assert [b.shape[0] for b in batches] == [3, 3, 1]  # 7 readable, the last batch partial
    assert "broken.png" in caplog.text
    # files are read as RGB like every image source; grey conversion then matches
    first = cv2.cvtColor(cv2.imread(str(sorted(written)[0])), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(batches[0][0], preprocess_batch([first], SPEC)[0])


def test_list_images_limits_and_errors(tmp_path):
    for i in range(10):
        cv2.imwrite(str(tmp_path / f"{i:02d}.png"), np.full((4, 4), i * 20, np.uint8))
    thinned = tcal.list_images(tmp_path, limit=4)
    assert [p.name for p in thinned] == ["00.png", "02.png", "05.png", "07.png"]
    assert len(tcal.images_digest(thinned)) == 64
    assert tcal.images_digest(thinned) != tcal.images_digest(thinned[:3])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="no images"):
        tcal.list_images(empty)
    with pytest.raises(ConfigError, match="does not exist"):
        tcal.list_images(tmp_path / "missing")


# -- build progress -------------------------------------------------------------------------


def test_phase_tracker_reports_outer_steps_and_cancels():
    seen = []
    cancel = CancelToken()
    tracker = tbuild.PhaseTracker(Progress(seen.append, cancel))
    tracker.phase_start("Building engine", None, 4)
    tracker.phase_start("Tactic timing", "Building engine", 10)
    assert tracker.step_complete("Tactic timing", 0) is True
    tracker.phase_finish("Tactic timing")
    assert tracker.step_complete("Building engine", 1) is True
    cancel.cancel()
    assert tracker.step_complete("Building engine", 2) is False
    assert {e.stage for e in seen} == {tbuild.STAGE}
    assert [(e.message, e.done, e.total) for e in seen] == [
        ("Building engine", 0, 4),
        ("Tactic timing", 0, 4),  # inner phases keep the outer bar where it is
        ("Tactic timing 1/10", 0, 4),
        ("Building engine 2/4", 2, 4),
        ("Building engine 3/4", 3, 4),
    ]
    assert [e.fraction for e in seen][-2:] == [0.5, 0.75]


# -- engine provider and runner (a recording stand-in for TensorRT's builder) ---------------


class _Recorder:
    """Records the calls the build makes; anything it is asked for is another recorder."""

    def __init__(self, log: list, name: str):
        self._log, self._name = log, name

    def __getattr__(self, attr: str):
        return _Recorder(self._log, f"{self._name}.{attr}")

    def __call__(self, *args, **kwargs):
        self._log.append((self._name, args))
        return _Recorder(self._log, self._name + "()")


def _recording_tensorrt(monkeypatch, log: list, blob: bytes = b"serialised") -> types.ModuleType:
    """A ``tensorrt`` module that records what phytoscope's build asks of it and returns
    ``blob`` as the engine: it checks our side of the calls (profile shapes, flags, progress,
    cancel), never that TensorRT builds anything (tests/backends/test_tensorrt_gpu.py does)."""
    fake = _fake_tensorrt(monkeypatch, "10.3.0")

    class Network:
        num_inputs, num_outputs = 1, 1

        def get_input(self, i):
            return types.SimpleNamespace(name="input", shape=(-1, 32, 32, 3))

        def get_output(self, i):
            return types.SimpleNamespace(name="logits", shape=(-1, 3))

    class Profile:
        def set_shape(self, name, low, opt, high):
            log.append(("profile", (name, low, opt, high)))

    class Config(_Recorder):
        def create_timing_cache(self, blob):
            return object()

        def set_timing_cache(self, cache, ignore):
            return True

        def get_timing_cache(self):
            return types.SimpleNamespace(serialize=lambda: b"timing")

    class Builder:
        platform_has_fast_fp16 = platform_has_fast_int8 = True

        def __init__(self, logger):
            pass

        def create_network(self, flags):
            return Network()

        def create_builder_config(self):
            return Config(log, "config")

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            log.append(("build", ()))
            return blob

    class Parser:
        def __init__(self, network, logger):
            pass

        def parse_from_file(self, path):
            log.append(("parse", (Path(path).name,)))
            return True

    class ILogger:
        Severity = types.SimpleNamespace(INTERNAL_ERROR=0, ERROR=1, WARNING=2, INFO=3, VERBOSE=4)

        def __init__(self):
            pass

    fake.Builder, fake.OnnxParser, fake.ILogger = Builder, Parser, ILogger
    fake.MemoryPoolType = types.SimpleNamespace(WORKSPACE="workspace")
    fake.BuilderFlag = types.SimpleNamespace(FP16="FP16", INT8="INT8", GPU_FALLBACK="GPU")
    monkeypatch.setattr(trun, "_LOGGER", None)
    monkeypatch.setattr(
        "phytoscope.backends.tensorrt.provider.current_gpu", lambda: ("Fake GPU", "9.0")
    )
    return fake


@pytest.fixture
def tiny_card(tiny_model_dir) -> ModelCard:
    return ModelCard.load(tiny_model_dir / "tiny.onnx.json")


def test_provider_builds_with_the_batch_in_the_profile_then_reuses_the_cache(
    monkeypatch, tmp_path, tiny_card
):
    log: list = []
    _recording_tensorrt(monkeypatch, log)
    events = []
    options = TrtOptions(batch=8, workspace_mb=256, cache_dir=tmp_path / "engines")
    provider = EngineProvider(tiny_card, "fp16", options, Progress(events.append))
    first = provider()
    assert first.built and first.engine == b"serialised" and first.path.is_file()
    assert first.key.batch == 8 and first.key.gpu_name == "Fake GPU"
    assert first.key.precision == "fp16" and first.key.tensorrt_version == "10.3.0"
    # the optimisation profile is min 1, opt = max = the batch the pipeline runs
    assert ("profile", ("input", (1, 32, 32, 3), (8, 32, 32, 3), (8, 32, 32, 3))) in log
    assert ("config.set_flag", ("FP16",)) in log
    assert ("config.set_memory_pool_limit", ("workspace", 256 << 20)) in log
    assert {e.stage for e in events} == {tbuild.STAGE}
    assert events[0].message == "parsing tiny.onnx" and events[-1].message == "engine built"
    assert events[-1].fraction == 1.0
    log.clear()
    again = EngineProvider(tiny_card, "fp16", options)()
    assert not again.built and again.path == first.path and again.engine == b"serialised"
    assert ("build", ()) not in log  # found in the cache, not rebuilt
    other = EngineProvider(tiny_card, "fp16", options.with_values(batch=4))()
    assert other.built and other.path != first.path  # another batch is another engine


def test_provider_force_and_rebuild_of_a_stale_engine(monkeypatch, tmp_path, tiny_card):
    log: list = []
    _recording_tensorrt(monkeypatch, log, blob=b"fresh")
    options = TrtOptions(cache_dir=tmp_path)
    provider = EngineProvider(tiny_card, "fp32", options)
    stale = provider()
    stale.path.write_bytes(b"damaged")
    found = provider()
    assert not found.built and found.engine == b"damaged"
    rebuilt = provider.rebuild(found)
    assert rebuilt.built and rebuilt.path.read_bytes() == b"fresh"
    assert EngineProvider(tiny_card, "fp32", options.with_values(force=True))().built


def test_cancelled_build_raises_cancelled_and_caches_nothing(monkeypatch, tmp_path, tiny_card):
    log: list = []
    _recording_tensorrt(monkeypatch, log)
    cancel = CancelToken()

    def cancel_once_parsed(event):
        if event.message.startswith("parsing"):
            cancel.cancel()

    provider = EngineProvider(
        tiny_card, "fp16", TrtOptions(cache_dir=tmp_path), Progress(cancel_once_parsed, cancel)
    )
    with pytest.raises(Cancelled, match="build cancelled"):
        provider()
    assert ("build", ()) not in log
    assert not list(tmp_path.glob("*.engine"))


def test_int8_without_calibration_images_says_how_to_get_them(monkeypatch, tmp_path, tiny_card):
    _recording_tensorrt(monkeypatch, [])
    with pytest.raises(ConfigError, match="--calibration-images DIR"):
        EngineProvider(tiny_card, "int8", TrtOptions(cache_dir=tmp_path))()


def test_runner_takes_an_engine_or_a_provider(tiny_card, tmp_path):
    options = TrtOptions(batch=4, cache_dir=tmp_path)
    default = TensorRTBackend(tiny_card, "fp16", options)
    assert isinstance(default._source, EngineProvider)  # cache, else build: the default
    assert default._source.options.batch == 4 and default._source.precision == "fp16"
    assert default.max_batch == 4 and default.precision == "fp16"
    given = TensorRTBackend(tiny_card, "fp16", options, engine=b"engine bytes")
    assert given._source == b"engine bytes"
    assert given.describe()["engine"] == "given by the caller"
    result = EngineResult(b"x", None, _key(), True, 1.0)
    assert TensorRTBackend(tiny_card, engine=lambda: result)._source() is result
    with pytest.raises(ConfigError, match="DLA"):
        TensorRTBackend(tiny_card, "fp32", TrtOptions(dla_core=0))


def test_create_passes_typed_options_to_tensorrt(monkeypatch, tmp_path):
    monkeypatch.setattr(TensorRTBackend, "unavailable_reason", classmethod(lambda cls: None))
    card = _onnx_card(tmp_path / "m")
    backend = backends.create(
        "tensorrt", "int8", model=card, options=(OrtOptions(lanes=2), TrtOptions(batch=32))
    )
    assert isinstance(backend, TensorRTBackend)
    assert backend.options == TrtOptions(batch=32) and backend.precision == "int8"
    assert backend.card.precision == "fp32"  # the engine is built from the FP32 ONNX model
    with pytest.raises(ConfigError, match="OrtOptions, TfOptions or TrtOptions"):
        backends.create("tensorrt", "fp16", model=card, options={"batch": 2})  # type: ignore[arg-type]
