"""A tiny but complete run: train -> checkpoints/resume -> evaluate -> export (ONNX FP32, INT8,
Keras) -> classify through the ONNX Runtime backend. Real Keras, real ONNX Runtime, real
images from tests/data/training; 32-pixel input and one epoch per stage keep it quick.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip(
    "keras", reason="TensorFlow/Keras not installed (pip install 'phytoscope[tensorflow]')"
)

from phytoscope.errors import Cancelled, ModelError  # noqa: E402
from phytoscope.modelcard import ModelCard  # noqa: E402
from phytoscope.training import dataset as ds  # noqa: E402
from phytoscope.training.cardnotes import not_recognised  # noqa: E402
from phytoscope.training.train import TrainConfig, train  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "data" / "training"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("train")
    config = TrainConfig(
        dataset=DATA,
        out_dir=out,
        size=32,
        min_per_class=3,
        head_epochs=1,
        augment_copies=1,
        fine_tune_epochs=1,
        batch_size=8,
        cache_dir=out / "cache",
    )
    seen = []
    result = train(config, progress=lambda stage, step, total, m: seen.append((stage, step, total)))
    return config, result, seen


def test_training_writes_a_loadable_model_with_a_complete_card(trained):
    config, result, seen = trained
    assert ("head", 1, 1) in seen and ("fine-tune", 1, 1) in seen  # progress per epoch
    card = result.card
    assert card.format == "keras" and card.input.height == 32
    assert set(card.class_names) == {
        "Pseudo-nitzschia",
        "Mesodinium",
        "ciliate",
        "zooplankton",
        "detritus/other",
    }
    assert card.output == "logits"
    for key in ("test_top1", "per_source", "per_class"):
        assert key in card.accuracy
    assert card.accuracy["per_source"]["training"]["n"] == 5  # one test image per class
    assert card.training["split_file"] == "split.csv" and result.split_path.exists()
    assert "Alexandrium" in card.not_recognised and "Pseudo-nitzschia" not in card.not_recognised
    card.verify_file()
    split = ds.read_split(result.split_path, DATA)
    assert {i.split for i in split} == {"train", "val", "test"}

    import keras

    model = keras.models.load_model(result.model_path, compile=False)
    assert model.output_shape == (None, 5)


def test_resume_continues_after_the_last_finished_epoch(trained):
    config, result, _ = trained
    before = json.loads((config.out_dir / "history.json").read_text())
    config.resume, config.fine_tune_epochs = True, 2
    again = train(config)
    stages = [(h["stage"], h["epoch"]) for h in again.history]
    assert stages == [(h["stage"], h["epoch"]) for h in before] + [("fine-tune", 2)]
    config.resume, config.fine_tune_epochs = False, 1


def test_cancel_stops_with_a_clear_error(tmp_path):
    config = TrainConfig(
        dataset=DATA, out_dir=tmp_path, size=32, min_per_class=3, head_epochs=1, fine_tune_epochs=0
    )
    with pytest.raises(Cancelled):
        train(config, cancel=lambda: True)


def test_export_every_form_and_classify_with_the_onnx_model(trained, tmp_path):
    from phytoscope import backends
    from phytoscope.core.classifier import Classifier
    from phytoscope.training.export import export_all
    from phytoscope.types import Roi

    _, result, _ = trained
    forms = export_all(
        result.card_path, tmp_path / "models", dataset_root=DATA, calibration_images=8
    )
    assert [f.form for f in forms] == ["onnx", "int8", "keras"]
    for f in forms:
        assert f.test_top1 is not None and f.card.accuracy["n_test"] == 5
        f.card.verify_file()
    cards = {(c.format, c.precision) for c in (f.card for f in forms)}
    assert cards == {("onnx", "fp32"), ("onnx", "int8"), ("keras", "fp32")}
    assert (tmp_path / "models" / "genus_split.csv").exists()

    image = ds.read_image(next((DATA / "zooplankton").iterdir()))
    for precision in ("fp32", "int8"):
        with backends.create("onnxruntime", precision, models_dir=tmp_path / "models") as backend:
            predictions = Classifier(backend).predict([Roi(source="x.png", index=0, image=image)])
        assert predictions[0].label in (*forms[0].card.class_names, "unknown")
        assert (
            np.isclose(sum(p for _, p in predictions[0].top_k), 1.0, atol=0.05)
            or len(predictions[0].top_k) == 3
        )


def test_cli_evaluate_and_export(trained, tmp_path, capsys):
    from phytoscope.cli import main

    _, result, _ = trained
    code = main(
        [
            "evaluate",
            str(result.model_path),
            str(result.split_path),
            "--data-root",
            str(DATA),
            "--out",
            str(tmp_path / "eval"),
            "--write-thresholds",
            "--subset",
            "test",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "top-1" in out and "training" in out
    assert (tmp_path / "eval" / "evaluation_confusion.png").exists()
    assert (tmp_path / "eval" / "evaluation_confusion.csv").exists()
    card = ModelCard.load(result.card_path)
    assert card.accuracy["threshold_target_precision"] == 0.95
    code = main(
        [
            "export",
            str(result.model_path),
            "--out",
            str(tmp_path / "m"),
            "--forms",
            "onnx",
            "--data-root",
            str(DATA),
        ]
    )
    assert code == 0
    assert "genus.onnx" in capsys.readouterr().out


def test_not_recognised_reads_rule_files(tmp_path):
    rules = tmp_path / "rules.csv"
    rules.write_text(
        "rule_set,taxon,rank\nx,Alexandrium,genus\nx,Karenia mikimotoi,species\n"
        "x,Cyanobacteria,group\nx,Pseudo-nitzschia,genus\n"
    )
    classes = tuple(ds.class_info(c) for c in ("Pseudo-nitzschia", "Dolichospermum"))
    assert not_recognised(classes, rules) == ("Alexandrium", "Karenia")


def test_backbone_weights_load_by_layer_name_at_another_size(tmp_path):
    import keras

    from phytoscope.training import model as nets

    source = keras.applications.MobileNetV2(
        input_shape=(48, 48, 3), alpha=1.0, include_top=False, weights=None, pooling="avg"
    )
    inputs = keras.Input((48, 48, 3))
    wrapped = keras.Model(inputs, keras.layers.Dense(3)(source(inputs)))
    path = tmp_path / "backbone.h5"
    with warnings.catch_warnings():  # Keras warns that HDF5 is legacy: that is the point here
        warnings.simplefilter("ignore")
        wrapped.save(path)  # the legacy HDF5 layout of the shipped backbone file
    target = nets.build_backbone(32)
    assert nets.load_backbone_weights(target, path) == 260
    for a, b in zip(source.weights, target.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    other = keras.applications.MobileNetV2(
        input_shape=(32, 32, 3), alpha=0.5, include_top=False, weights=None
    )
    with pytest.raises(ModelError, match="alpha"):
        nets.load_backbone_weights(other, path)
    with pytest.raises(ModelError):
        nets.load_backbone_weights(target, tmp_path / "missing.h5")
