"""`phytoscope learn`: folder layout, refusals, and a real learn -> classify round trip.

The base model is the tiny ONNX CNN with an embedding bank of real plankton crops
(``learn_fixtures``); the lab's classes are other real crops, so the new head must tell
them apart through the real exported graph, read back by the ONNX Runtime backend.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from phytoscope import backends
from phytoscope.cli import main
from phytoscope.core import hab
from phytoscope.core.sample import given_volume
from phytoscope.errors import Cancelled, ConfigError, ModelError, SourceError
from phytoscope.imaging.preprocess import normalise, prepare_uint8
from phytoscope.modelcard import ModelCard, card_path_for
from phytoscope.progress import CancelToken, Progress
from phytoscope.training import bank, extend, learn_data, openset
from phytoscope.training.learn import LearnRequest, learn
from phytoscope.training.learn_curve import examples_curve
from tests.training.learn_fixtures import base_with_bank, variants, write_class

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return base_with_bank(tmp_path_factory.mktemp("base"))


@pytest.fixture
def teach(tmp_path) -> Path:
    """Alexandrium (24 crops, lower-case folder) and Karenia brevis (12: rough) to learn."""
    root = tmp_path / "teach"
    write_class(root / "alexandrium", "Mesodinium", 24)
    write_class(root / "Karenia_brevis", "ciliate", 12)
    return root


def _predict(card_path: Path, source: str, count: int = 32):
    card = ModelCard.load(card_path)
    images = np.stack([prepare_uint8(i, card.input) for i in variants(source, count)])
    with backends.create("onnxruntime", model=card_path) as backend:
        out = backend.infer(normalise(images, card.input))
    assert out.novelty is not None and card.novelty is not None
    names = [card.class_names[i] for i in out.logits.argmax(axis=1)]
    return names, out.novelty > card.novelty.threshold


# -- folder layout ----------------------------------------------------------------------


def test_folder_names_become_classes_in_the_models_and_the_rule_sets_spelling(tmp_path):
    for name in ("alpha", "alexandrium", "Karenia_brevis", "detritus_other", "Closterium"):
        write_class(tmp_path / "f" / name, "ciliate", 5)
    found = learn_data.collect([tmp_path / "f"], ("Alpha", "detritus/other"), hab.all_taxa())
    assert sorted({c for _, c in found}) == [
        "Alexandrium",
        "Alpha",
        "Closterium",
        "Karenia brevis",
        "detritus/other",
    ]


def test_layout_errors_say_what_the_layout_must_be(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        learn_data.collect([tmp_path / "missing"], (), ())
    loose = tmp_path / "loose"
    write_class(loose, "ciliate", 3)
    with pytest.raises(SourceError, match="put them in a sub-folder named after their class"):
        learn_data.collect([loose], (), ())
    (tmp_path / "empty" / "Karenia").mkdir(parents=True)
    with pytest.raises(ConfigError, match="Karenia holds no images"):
        learn_data.collect([tmp_path / "empty"], (), ())


def test_unreadable_images_are_listed_and_skipped(base, teach, tmp_path):
    shutil.copy(DATA / "images" / "corrupt.png", teach / "alexandrium" / "corrupt.png")
    result = learn(LearnRequest((teach,), tmp_path / "out", model=base))
    assert [s.path.name for s in result.skipped] == ["corrupt.png"]
    assert result.skipped[0].reason
    card = ModelCard.load(result.card_path)
    assert card.training["skipped_count"] == 1
    assert card.training["learnt_locally"]["Alexandrium"]["images"] == 24


# -- refusals ---------------------------------------------------------------------------


def test_a_new_class_with_fewer_than_five_images_is_refused(base, tmp_path):
    write_class(tmp_path / "few" / "Dinophysis", "ciliate", 4)
    with pytest.raises(ConfigError, match=r"Dinophysis \(4\).*at least 5"):
        learn(LearnRequest((tmp_path / "few",), tmp_path / "out", model=base))
    assert not (tmp_path / "out").exists()


def test_a_base_class_takes_any_number_of_extra_examples(base, tmp_path):
    write_class(tmp_path / "more" / "beta", "zooplankton", 3)
    result = learn(LearnRequest((tmp_path / "more",), tmp_path / "out", model=base))
    (beta,) = [c for c in result.classes if c.name == "Beta"]
    assert beta.origin == "base + learnt" and beta.local_images == 3 and not beta.rough


def test_the_base_model_is_never_overwritten(base, teach):
    before = base.read_bytes()
    with pytest.raises(ConfigError, match="never overwritten"):
        learn(LearnRequest((teach,), base.parent, model=base))
    assert base.read_bytes() == before


def test_a_base_model_without_a_bank_is_refused_with_the_reason(base, teach, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    for f in (base, card_path_for(base)):
        shutil.copy(f, bare / f.name)
    with pytest.raises(ModelError, match="embedding bank"):
        learn(LearnRequest((teach,), tmp_path / "out", model=bare))


def test_a_bank_of_another_model_version_is_refused(base, teach, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(base.parent, other)
    features, labels, classes = bank.load_bank(bank.bank_path_for(base))
    shuffled = np.random.default_rng(0).permutation(labels)  # embeddings no longer match
    bank.save_bank(bank.bank_path_for(other / base.name), features, shuffled, classes)
    with pytest.raises(ModelError, match="another version of the model"):
        learn(LearnRequest((teach,), tmp_path / "out", model=other))


def test_a_cancelled_run_leaves_nothing_behind(base, teach, tmp_path):
    token = CancelToken()

    def cancel_at_embedding(event):
        if event.stage == "embed":
            token.cancel()

    with pytest.raises(Cancelled):
        learn(
            LearnRequest((teach,), tmp_path / "out", model=base),
            Progress(cancel_at_embedding, token),
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["teach"]


# -- the round trip ---------------------------------------------------------------------


def test_learnt_genera_are_classified_flagged_and_monitored(base, teach, tmp_path):
    result = learn(LearnRequest((teach,), tmp_path / "out", model=base))
    card = ModelCard.load(result.card_path)
    card.verify_file()
    assert card.class_names == ("Alpha", "Beta", "Gamma", "Karenia brevis", "Alexandrium")
    assert card.novelty is not None and card.novelty.method == openset.METHOD
    learnt = card.training["learnt_locally"]
    assert learnt["Alexandrium"] == {"images": 24, "rough": False, "new": True}
    assert learnt["Karenia brevis"]["rough"] is True
    assert card.accuracy["per_class"]["Alexandrium"]["top1"] >= 0.9
    assert "rough" in card.notes and "Karenia brevis" in card.notes
    assert bank.bank_path_for(result.model_path).exists()

    names, unknown = _predict(result.card_path, "Mesodinium")
    assert names.count("Alexandrium") >= 30 and unknown.mean() <= 0.1
    names, _ = _predict(result.card_path, "ciliate")
    assert names.count("Karenia brevis") >= 28

    # the classes the lab did not touch keep the base head's columns exactly
    w0, b0 = extend.base_head(base)
    w1, b1 = extend.base_head(result.model_path)
    np.testing.assert_array_equal(w1[:, :3], w0)
    np.testing.assert_array_equal(b1[:3], b0)

    # HAB rules follow at once: Alexandrium and Karenia are monitored, no longer missing
    assert "Alexandrium" not in card.not_recognised and "Karenia" not in card.not_recognised
    assert result.newly_monitored == ("Alexandrium", "Karenia")
    hab_result = hab.assess(
        {"Alexandrium": 1000}, given_volume(1000), card, hab.load_rule_set("scotland_habreports")
    )
    assert "Alexandrium" not in hab_result.not_monitored
    assert any(a.rule_taxon == "Alexandrium" and a.is_alert for a in hab_result.assessments)


def test_a_learnt_model_is_a_base_for_the_next_run(base, teach, tmp_path):
    first = learn(LearnRequest((teach,), tmp_path / "one", model=base))
    write_class(tmp_path / "more" / "Closterium", "Pseudo-nitzschia", 8)
    second = learn(LearnRequest((tmp_path / "more",), tmp_path / "two", model=first.model_path))
    assert [c.origin for c in second.classes][-3:] == ["base", "base", "learnt"]
    assert ModelCard.load(second.card_path).name == "tiny-test-local"


def test_int8_form_is_written_with_its_own_card(base, teach, tmp_path):
    result = learn(LearnRequest((teach,), tmp_path / "out", model=base, int8=True))
    assert result.int8_path is not None
    card = ModelCard.load(card_path_for(result.int8_path))
    card.verify_file()
    assert card.precision == "int8" and "agrees with FP32" in card.training["int8_calibration"]
    # its own novelty threshold: the same share of the lab's images below it as FP32's
    fp32 = ModelCard.load(card_path_for(result.model_path))
    assert card.novelty is not None and fp32.novelty is not None
    assert "same share of the lab's" in card.novelty.chosen
    from phytoscope.training.openset_forms import backend_outputs

    prepared = learn_data.load([teach], card.input, fp32.class_names).prepared
    _, fp32_novelty = backend_outputs(fp32, prepared)
    _, int8_novelty = backend_outputs(card, prepared)
    fp32_kept = (fp32_novelty <= fp32.novelty.threshold).mean()
    int8_kept = (int8_novelty <= card.novelty.threshold).mean()
    assert abs(fp32_kept - int8_kept) <= 2 / len(prepared)
    names, _ = _predict(card_path_for(result.int8_path), "Mesodinium")
    assert names.count("Alexandrium") >= 28


def test_corrections_stored_in_the_database_can_be_learnt(base, tmp_path):
    from phytoscope.storage.corrections import Correction, add_correction
    from phytoscope.storage.store import Store

    db = tmp_path / "results.sqlite"
    with Store(db) as store:
        for i, image in enumerate(variants("Mesodinium", 6)):
            add_correction(store, Correction("bin.roi", i, "Alpha", 0.5, "Dinophysis"), image)
    result = learn(LearnRequest((), tmp_path / "out", model=base, corrections_db=db))
    (din,) = [c for c in result.classes if c.name == "Dinophysis"]
    assert din.local_images == 6 and din.rough
    assert any("corrections in" in s for s in ModelCard.load(result.card_path).training["sources"])


# -- the command ------------------------------------------------------------------------


def test_the_command_prints_per_class_results_and_json(base, teach, tmp_path, capsys):
    code = main(["learn", str(teach), "--model", str(base), "--out", str(tmp_path / "out")])
    text = capsys.readouterr().out
    assert code == 0
    assert "Alexandrium" in text and "rough: under 20 images" in text
    assert "now monitored by the HAB rules: Alexandrium, Karenia" in text
    code = main(
        ["learn", str(teach), "--model", str(base), "--out", str(tmp_path / "o2"), "--json"]
    )
    row = json.loads(capsys.readouterr().out)
    assert code == 0 and {c["name"] for c in row["classes"]} >= {"Alexandrium", "Karenia brevis"}


def test_the_command_needs_an_output_folder_and_refuses_clearly(base, teach, tmp_path, capsys):
    assert main(["learn", str(teach), "--model", str(base)]) == 2
    assert "--out" in capsys.readouterr().err
    assert main(["learn", str(teach), "--model", str(base), "--out", str(base.parent)]) != 0
    assert "never overwritten" in capsys.readouterr().err


def test_examples_curve_takes_the_taught_classes_out_of_the_bank(base, tmp_path, capsys):
    write_class(tmp_path / "eval" / "Beta", "zooplankton", 16)
    write_class(tmp_path / "eval" / "Closterium", "Mesodinium", 32)
    curve = examples_curve([tmp_path / "eval"], base, sizes=(5, 20), folds=2)
    assert curve["bank_classes_kept"] == ["Alpha", "Gamma"]
    assert curve["classes"]["Beta"]["20"] is None  # 16 images: nothing left to test at 20
    assert curve["classes"]["Closterium"]["20"]["tested"] == 2 * 12
    assert 0.0 <= curve["classes"]["Beta"]["5"]["top1"] <= 1.0
    out = tmp_path / "curve"
    code = main(
        ["learn", "--evaluate", str(tmp_path / "eval"), "--model", str(base), "--out", str(out)]
    )
    assert code == 0 and (out / "learn_curve.json").exists()
    assert "| Closterium | 32 |" in capsys.readouterr().out


def test_the_shipped_model_carries_a_bank_that_belongs_to_it():
    from phytoscope.training.learn import base_card, kept_columns, load_base_bank

    card = base_card(Path(__file__).resolve().parents[2] / "models")
    features, labels, classes = load_base_bank(card)
    assert classes == card.class_names and features.shape[1] == 1280
    assert np.bincount(labels).max() <= 200
    weights, bias = kept_columns(card, classes, features, labels)  # raises on a foreign bank
    assert ((features @ weights + bias).argmax(axis=1) == labels).mean() > 0.95


def test_a_learnt_model_keeps_the_base_models_margin_for_whole_frames():
    from phytoscope.modelcard import NoveltySpec
    from phytoscope.training.openset_forms import frame_novelty

    base = NoveltySpec("cosine-prototypes", 0.22, frame_threshold=0.34)
    new = frame_novelty(NoveltySpec("cosine-prototypes", 0.25, chosen="rule"), base)
    assert new is not None and new.frame_threshold == pytest.approx(0.37)
    assert "carried over" in new.chosen
    # a base without a frame threshold: frames keep the crops' threshold
    plain = NoveltySpec("cosine-prototypes", 0.25)
    assert frame_novelty(plain, NoveltySpec("cosine-prototypes", 0.22)) == plain
