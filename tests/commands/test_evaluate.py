"""``phytoscope evaluate`` chooses its model card and precision through the engine, as
``classify`` does: ``--backend tensorrt --precision fp16`` runs an FP16 engine built from the
FP32 ONNX model (it used to look for an "onnx/fp16" card and run the wrong path)."""

from __future__ import annotations

import shutil
import sys

import pytest

from phytoscope import cli
from phytoscope.backends.tensorrt import TensorRTBackend
from phytoscope.errors import BackendError, ExitCode
from tests.conftest import DATA


@pytest.fixture
def labelled(tmp_path):
    """Real plankton images filed under two of the tiny model's classes."""
    folder = tmp_path / "labelled"
    for cls, source in (("Alpha", "Mesodinium"), ("Beta", "ciliate")):
        (folder / cls).mkdir(parents=True)
        for image in sorted((DATA / "training" / source).glob("*.png"))[:2]:
            shutil.copy(image, folder / cls / image.name)
    return folder


def test_evaluate_on_onnxruntime_writes_a_report(tiny_model_dir, labelled, tmp_path, capsys):
    out = tmp_path / "report"
    code = cli.main(["evaluate", str(tiny_model_dir), str(labelled), "--out", str(out)])
    assert code == ExitCode.OK
    printed = capsys.readouterr().out
    assert "via onnxruntime fp32" in printed and "images: 4" in printed
    assert any(out.iterdir())


def test_tensorrt_fp16_takes_the_fp32_onnx_card_and_an_fp16_engine(
    tiny_model_dir, labelled, tmp_path, monkeypatch
):
    seen = {}

    def stop_at_load(self):
        seen.update(card=self.card, precision=self.precision, batch=self.options.batch)
        raise BackendError("stopped here: this machine has no TensorRT")

    monkeypatch.setattr(TensorRTBackend, "unavailable_reason", classmethod(lambda cls: None))
    monkeypatch.setattr(TensorRTBackend, "load", stop_at_load)
    code = cli.main(
        [
            "evaluate",
            str(tiny_model_dir),
            str(labelled),
            "--backend",
            "tensorrt",
            "--precision",
            "fp16",
            "--out",
            str(tmp_path / "r"),
        ]
    )
    assert code == ExitCode.ERROR
    assert seen["precision"] == "fp16" and seen["batch"] == 64
    assert (seen["card"].format, seen["card"].precision) == ("onnx", "fp32")


def test_tensorrt_missing_is_a_clear_message(tiny_model_dir, labelled, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    code = cli.main(
        [
            "evaluate",
            str(tiny_model_dir),
            str(labelled),
            "--backend",
            "tensorrt",
            "--precision",
            "int8",
        ]
    )
    assert code == ExitCode.UNAVAILABLE
    err = capsys.readouterr().err
    assert "tensorrt backend is not available" in err and "Traceback" not in err
