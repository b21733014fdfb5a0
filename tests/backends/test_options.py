"""Typed engine options: validation, environment overrides, and how create() hands them out."""

from __future__ import annotations

import pytest

from phytoscope import backends
from phytoscope.backends.options import OrtOptions, TfOptions, TrtOptions, pick
from phytoscope.errors import ConfigError, ModelError


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda: OrtOptions(threads=-1), "threads"),
        (lambda: OrtOptions(lanes=0), "lanes"),
        (lambda: OrtOptions(providers=()), "providers"),
        (lambda: TrtOptions(batch=2000), "batch"),
        (lambda: TrtOptions(device=-1), "device"),
        (lambda: TrtOptions(calibration_limit=0), "calibration limit"),
    ],
)
def test_out_of_range_options_are_refused(make, words):
    with pytest.raises(ConfigError, match=words):
        make().validate()


def test_environment_overrides_when_not_set(monkeypatch):
    monkeypatch.delenv("PHYTOSCOPE_THREADS", raising=False)
    monkeypatch.delenv("PHYTOSCOPE_ORT_SPIN", raising=False)
    assert OrtOptions().intra_op_threads == 0 and OrtOptions().spinning is True
    monkeypatch.setenv("PHYTOSCOPE_THREADS", "3")
    monkeypatch.setenv("PHYTOSCOPE_ORT_SPIN", "0")
    assert OrtOptions().intra_op_threads == 3 and OrtOptions().spinning is False
    # a value given in code wins over the environment
    assert OrtOptions(threads=1, spin=True).intra_op_threads == 1
    assert OrtOptions(threads=1, spin=True).spinning is True
    monkeypatch.setenv("PHYTOSCOPE_THREADS", "many")
    with pytest.raises(ConfigError, match="PHYTOSCOPE_THREADS"):
        _ = OrtOptions().intra_op_threads


def test_pick_takes_each_engines_own_options():
    ort, trt = OrtOptions(lanes=2), TrtOptions(batch=8)
    assert pick(OrtOptions, (ort, trt)) is ort
    assert pick(TrtOptions, [ort, trt]) is trt
    assert pick(TfOptions, (ort, trt)) == TfOptions()  # none given: the defaults
    assert pick(OrtOptions, None) == OrtOptions()
    with pytest.raises(ConfigError, match="given 2 times"):
        pick(OrtOptions, (ort, OrtOptions()))
    with pytest.raises(ConfigError, match="engine options must be"):
        pick(OrtOptions, [{"lanes": 2}])  # type: ignore[list-item]


def test_create_gives_onnxruntime_its_options(tiny_model_dir):
    backend = backends.create(
        "onnxruntime", model=tiny_model_dir, options=[OrtOptions(lanes=2, threads=1), TrtOptions()]
    )
    assert backend.options == OrtOptions(lanes=2, threads=1)
    with backend:
        assert backend.concurrent_calls == 2
        assert backend.describe()["intra_op_threads"] == 1
    with pytest.raises(ConfigError, match="lanes"):
        backends.create("onnxruntime", model=tiny_model_dir, options=OrtOptions(lanes=0))


def test_precision_is_decided_in_one_place(tiny_model_dir):
    """ONNX Runtime runs the card's precision (the requested one chose the card); asking
    an engine for a precision it cannot run is refused before anything loads."""
    assert backends.create("onnxruntime", "fp32", model=tiny_model_dir).precision == "fp32"
    explicit = backends.create("onnxruntime", "int8", model=tiny_model_dir / "tiny.onnx.json")
    assert explicit.precision == "fp32"  # a named card wins: it is an FP32 model file
    with pytest.raises(ModelError, match="runs precisions fp32, int8, not fp16"):
        backends.create("onnxruntime", "fp16", model=tiny_model_dir)
