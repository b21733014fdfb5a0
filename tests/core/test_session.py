"""The core sample session: the rules of #16 (time, partial bins, Utermöhl, one record,
pooling, acknowledgements, kinds) on real IFCB bins (copied or written under tmp_path)
with labels given by hand, so every number can be checked by hand. No model, no Qt."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from phytoscope.core.analysis import AnalysisBatch, BinRead, RoiFacts
from phytoscope.core.hab import load_rule_set
from phytoscope.core.samples import PARTIAL, VolumeSpec, parse_time
from phytoscope.core.session import IMAGES, SampleSession, SampleSettings
from phytoscope.modelcard import ClassInfo
from phytoscope.sources import iter_inputs
from phytoscope.sources.ifcb import IfcbBin
from phytoscope.storage import Store
from phytoscope.types import Prediction, Roi
from tests.cards import card_of
from tests.ifcb_bins import FIXTURE, FIXTURE_ML, copy_bin, make_bin, ml_of

CARD = card_of(
    ClassInfo("Pseudo-nitzschia", chain_forming=True),
    ClassInfo("Dinophysis"),
    ClassInfo("Mesodinium"),
    ClassInfo("detritus"),
)
RULES = load_rule_set("scotland_habreports")
CLOCK = lambda: datetime(2026, 5, 1, 9, 0, tzinfo=timezone.utc)  # noqa: E731


def _p(source: str, index: int, label: str, reason: str = "") -> Prediction:
    return Prediction(source, index, label, 0.9, ((label, 0.9),), unknown_reason=reason)


def bin_batch(stem: Path, labels=None) -> AnalysisBatch:
    """What an analysis of a bin hands on, read by the real reader; labels by hand."""
    items = list(iter_inputs([stem]))
    rois = [r for r in items if isinstance(r, Roi)]
    problems = tuple(s.reason for s in items if not isinstance(s, Roi))
    labels = labels or ["Dinophysis"] * len(rois)
    preds = tuple(_p(r.source, r.index, label) for r, label in zip(rois, labels, strict=False))
    b = IfcbBin(stem)
    read = BinRead(b.bin_id, str(b.stem), b.ml_analyzed, len(b), problems)
    return AnalysisBatch(preds, facts=(RoiFacts(str(stem), b.bin_id),) * len(preds), bins=(read,))


def image_batch(path: str, labels: list[str]) -> AnalysisBatch:
    preds = tuple(_p(f"{path}/img{i}.png", 0, label) for i, label in enumerate(labels))
    return AnalysisBatch(preds, facts=(RoiFacts(path),) * len(preds))


def session(**settings) -> SampleSession:
    return SampleSession(CARD, RULES, SampleSettings(**settings), clock=CLOCK)


# -- 1. sampling time ----------------------------------------------------------------------


def test_time_comes_from_the_bins_in_utc_with_its_zone(tmp_path):
    s = session(site="Loch Creran", sampled_at=parse_time("2030-01-01T12:00Z"))
    s.add(bin_batch(copy_bin(tmp_path)))
    (d,) = s.samples()
    # the bin's name, not the time typed (for images) nor the time of analysis
    assert d.sampled_at == "2022-05-22T00:30:51+00:00" and d.time_source == "bins"


def test_images_need_a_typed_time_stored_with_its_zone_and_new_sample_forgets_it():
    s = session(volume=VolumeSpec(method="given", given_ml=10.0))
    s.add(image_batch("/x", ["Dinophysis"]))
    (d,) = s.samples()
    assert d.sampled_at is None and any("no sampling time" in p for p in d.problems)
    s.update(sampled_at="2024-06-01T10:00:00+02:00")
    (d,) = s.samples()
    assert d.sampled_at == "2024-06-01T08:00:00+00:00" and not d.problems
    # a time typed without a zone is local time, stored in UTC with its zone
    naive = parse_time("2024-06-01 10:00")
    assert naive.endswith("+00:00")
    local = datetime(2024, 6, 1, 10, 0).astimezone()
    assert datetime.fromisoformat(naive) == local
    s.clear()
    assert s.settings.sampled_at is None and len(s) == 0


# -- 2. truncated bin (#19.2) ---------------------------------------------------------------


def test_a_truncated_bin_is_partial_and_its_volume_scaled_to_the_rois_read(tmp_path):
    stem = make_bin(tmp_path, "D20220519T124533_IFCB134", rois=17, keep_rois=8)
    s = session(site="x")
    s.add(bin_batch(stem, ["Mesodinium"] * 8))
    (d,) = s.samples()
    assert d.flags == (PARTIAL,)
    assert d.volume.ml_analyzed == pytest.approx(ml_of() * 8 / 17)
    meso = next(c for c in d.concentrations if c.taxon == "Mesodinium")
    # 8 organisms in 8/17 of the bin: the whole bin's rate, not 8 over the full 4 mL
    assert meso.per_l == pytest.approx(17 * 1000 / ml_of())
    (warning,) = d.warnings
    assert "8 of 17 ROIs" in warning and "scaled" in warning and "estimate" in warning
    assert "ROIs 9-17 lie past the end" in warning  # why it stopped, named
    with Store(tmp_path / "r.sqlite") as store:
        (saved,) = s.save(store)
        stored = store.sample(saved.sample_id)
        assert stored.flags == (PARTIAL,) and "8 of 17" in stored.warnings[0]
        (b,) = store.sample_bins(saved.sample_id)
        assert (b["rois_expected"], b["rois_classified"]) == (17, 8)


def test_a_truncated_bin_can_be_excluded_by_choice(tmp_path):
    s = session(partial="exclude")
    s.add(bin_batch(make_bin(tmp_path, "D20220519T124533_IFCB134", rois=17, keep_rois=8)))
    s.add(bin_batch(make_bin(tmp_path, "D20220519T134533_IFCB134", rois=4)))
    (d,) = s.samples()
    assert [b.bin_id for b in d.bins] == ["D20220519T134533_IFCB134"] and not d.flags
    assert any("left out" in n and "8 of 17" in n for n in s.notices())


# -- 3. Utermöhl: nothing from defaults --------------------------------------------------------


def test_utermohl_gives_nothing_until_typed_and_takes_fields_times_field_area():
    s = session(sampled_at=parse_time("2024-06-01T10:00Z"), volume=VolumeSpec(method="utermohl"))
    s.add(image_batch("/frames", ["Dinophysis"] * 12))
    (d,) = s.samples()
    assert d.volume is None and d.concentrations == () and d.hab is None
    assert any("no volume" in p for p in d.problems)
    s.update(volume=VolumeSpec.of(settled_ml=10.0, chamber_area_mm2=530.9, fields=20,
                                  field_area_mm2=0.5, sample_ml=100.0, preservative_ml=1.0))  # fmt: skip
    (d,) = s.samples()
    assert d.kind == "microscope"
    dino = next(c for c in d.concentrations if c.taxon == "Dinophysis")
    assert dino.per_l == pytest.approx(12 * 53.09 * 100 * 1.01)


# -- 4. one record per sample -------------------------------------------------------------------


def test_nothing_is_auto_saved_without_a_site_and_saving_again_updates_one_record(tmp_path):
    s = session()
    with Store(tmp_path / "r.sqlite") as store:
        bins = [copy_bin(tmp_path / "b", f"D20220522T0{h}3051_IFCB134") for h in (0, 1, 2)]
        s.add(bin_batch(bins[0]))
        assert s.auto_save(store) == [] and store.samples() == []  # no site: nothing saved
        s.update(site="Loch Creran")
        (first,) = s.auto_save(store)
        assert first.created and first.revision == 1
        for stem in bins[1:]:  # three bins opened one by one: one sample, updated
            s.add(bin_batch(stem))
            (again,) = s.auto_save(store)
            assert again.sample_id == first.sample_id and not again.created
        assert len(store.samples()) == 1
        sample = store.sample(first.sample_id)
        assert sample.revision == 3 and sample.volume.ml_analyzed == pytest.approx(3 * FIXTURE_ML)
        assert [r["revision"] for r in store.sample_revisions(first.sample_id)] == [1, 2, 3]
        assert store.sample_revisions(first.sample_id)[0]["record"]["counts"]["Dinophysis"] == 2
        # saving an unchanged sample writes nothing
        (same,) = s.save(store)
        assert same.unchanged and store.sample(first.sample_id).revision == 3


def test_corrections_update_the_same_record(tmp_path):
    s = session(site="x")
    stem = copy_bin(tmp_path)
    s.add(bin_batch(stem, ["Dinophysis", "detritus"]))
    with Store(tmp_path / "r.sqlite") as store:
        (first,) = s.save(store)
        p = s.samples()[0].predictions[1]
        s.correct(p.source, p.roi_index, "Dinophysis")
        assert not s.samples()[0].saved
        (second,) = s.save(store)
        assert second.sample_id == first.sample_id and second.revision == 2
        assert store.sample_counts(first.sample_id)["Dinophysis"][0] == 2
        assert len(store.samples()) == 1


# -- 5. pooling and plausibility --------------------------------------------------------------------


def test_bins_of_different_days_or_instruments_are_not_pooled_without_a_choice(tmp_path):
    s = session(site="x")
    s.add(bin_batch(copy_bin(tmp_path / "a")))
    s.add(bin_batch(Path(__file__).parents[1] / "data" / "ifcb" / "IFCB5_2012_028_081515"))
    drafts = s.samples()
    assert [len(d.bins) for d in drafts] == [1, 1]
    (notice,) = s.notices()
    assert "NOT pooled" in notice and "IFCB134, IFCB5" in notice and "2012-01-28" in notice
    # a second bin of the same instrument and day joins the first one's sample
    s.add(bin_batch(copy_bin(tmp_path / "b", "D20220522T013051_IFCB134")))
    assert [[b.bin_id for b in d.bins] for d in s.samples()] == [
        ["D20220522T003051_IFCB134", "D20220522T013051_IFCB134"],
        ["IFCB5_2012_028_081515"],
    ]
    s.update(grouping="pool")
    (pooled,) = s.samples()
    assert len(pooled.bins) == 3 and "by choice" in s.notices()[0]
    s.update(grouping="per-bin")
    assert len(s.samples()) == 3


def test_an_implausible_bin_volume_warns_with_what_one_organism_counts_for():
    s = session()
    s.add(bin_batch(Path(__file__).parents[1] / "data" / "ifcb" / "IFCB5_2012_028_081515"))
    (d,) = s.samples()
    assert d.volume.ml_analyzed == pytest.approx(0.00339, rel=1e-2)
    assert any("outside the usual" in w and "295,000 per L" in w for w in d.warnings)


# -- 6. acknowledgements -----------------------------------------------------------------------------


def test_a_later_change_reopens_an_acknowledged_alert_and_withdraws_one_no_longer_reached(tmp_path):
    s = session(site="x")
    stem = copy_bin(tmp_path)
    s.add(bin_batch(stem, ["Dinophysis", "detritus"]))
    with Store(tmp_path / "r.sqlite") as store:
        (saved,) = s.save(store)
        (alert,) = [a for a in saved.alerts if a.taxon == "Dinophysis"]
        assert alert.level == "red" and alert.concentration_per_l == pytest.approx(
            1000 / FIXTURE_ML
        )
        acked = s.acknowledge(store, alert.id, "A. Tester", note="seen")
        assert acked.acknowledged_by == "A. Tester" and not acked.open
        row = store.db.execute("SELECT * FROM alert_acks").fetchone()
        assert row["concentration_per_l"] == pytest.approx(alert.concentration_per_l)
        # a correction doubles the count: the acknowledgement no longer covers it
        p = s.samples()[0].predictions[1]
        s.correct(p.source, p.roi_index, "Dinophysis")
        s.save(store)
        again = store.alert(alert.id)
        assert again.open and again.acknowledged_by is None and "A. Tester" in again.reopened
        assert again.concentration_per_l == pytest.approx(2000 / FIXTURE_ML) and again.count == 2
        assert again.id == alert.id and len(store.alerts()) == 1  # the same alert, updated
        # every Dinophysis corrected away: the alert is withdrawn, not left open
        for q in s.samples()[0].predictions:
            s.correct(q.source, q.roi_index, "detritus")
        s.save(store)
        assert store.alert(alert.id).withdrawn_at and store.open_alerts() == []


# -- 7. kinds and mixed inputs; unknown organisms --------------------------------------------------


def test_bins_and_images_are_separate_samples_with_their_own_volume_and_time(tmp_path):
    s = session(volume=VolumeSpec(method="given", given_ml=10.0),
                sampled_at=parse_time("2024-06-01T10:00Z"))  # fmt: skip
    s.add(bin_batch(copy_bin(tmp_path)))
    s.add(image_batch("/images", ["Dinophysis", "unknown"]))
    bins, images = s.samples()
    assert bins.kind == "ifcb" and bins.volume.method == "ifcb"
    assert images.key == IMAGES and images.kind == "files" and images.volume.ml_analyzed == 10.0
    assert images.sources == ("/images",)
    assert any("mix IFCB bins and other images" in n for n in s.notices())


def test_unknown_organisms_are_counted_shown_and_never_in_an_alert(tmp_path):
    s = session(site="x")
    stem = copy_bin(tmp_path)
    batch = bin_batch(stem)
    unknown = tuple(
        Prediction(p.source, p.roi_index, "unknown", 0.3, (("Dinophysis", 0.3),), novelty=9.0,
                   unknown_reason="novel")
        for p in batch.predictions
    )  # fmt: skip
    s.add(AnalysisBatch(unknown, facts=batch.facts, bins=batch.bins))
    (d,) = s.samples()
    assert d.unidentified == {"novel": 2} and d.hab.unidentified == 2
    assert not d.hab.alerts  # two organisms the model could not identify raise nothing
    from phytoscope.core.sample_text import describe

    text = describe(d)
    assert "2 organisms not identified: check by microscope" in text
    with Store(tmp_path / "r.sqlite") as store:
        (saved,) = s.save(store)
        assert store.sample(saved.sample_id).unidentified == 2
        assert store.sample_summary(saved.sample_id)["unidentified"] == 2


def test_the_same_input_added_twice_counts_once(tmp_path):
    s = session()
    stem = copy_bin(tmp_path)
    s.add(bin_batch(stem))
    s.add(bin_batch(stem))
    assert s.samples()[0].counts["Dinophysis"] == 2


def test_a_saved_sample_can_be_reopened_and_updated_in_place(tmp_path):
    from phytoscope.core.analysis import Analysis  # noqa: F401 - the API the window will use

    s = session(site="Loch Creran")
    stem = copy_bin(tmp_path)
    batch = bin_batch(stem, ["Dinophysis", "detritus"])
    with Store(tmp_path / "r.sqlite") as store:
        run_id = store.start_run("onnxruntime", CARD.label, CARD.sha256)
        store.add_predictions(run_id, batch.predictions)
        s.add_run(run_id)
        s.add(batch)
        (saved,) = s.save(store)
        again = SampleSession.reopen(store, saved.sample_id, CARD, RULES)
        (d,) = again.samples()
        assert d.sample_id == saved.sample_id and d.saved and d.counts["Dinophysis"] == 1
        assert d.site == "Loch Creran" and len(d.bins) == 1
        p = d.predictions[1]
        again.correct(p.source, p.roi_index, "Dinophysis")
        (updated,) = again.save(store)
        assert updated.sample_id == saved.sample_id and updated.revision == 2


def test_summary_json_says_how_many_were_not_identified(tmp_path):
    s = session(site="x")
    s.add(bin_batch(copy_bin(tmp_path), ["Dinophysis", "unknown"]))
    with Store(tmp_path / "r.sqlite") as store:
        (saved,) = s.save(store)
        row = store.db.execute("SELECT summary FROM samples").fetchone()
        assert json.loads(row["summary"])["unidentified"] == 1
    assert FIXTURE in s.samples()[0].sources[0]


def test_a_copy_of_a_bin_opened_from_elsewhere_counts_once(tmp_path):
    s = session()
    s.add(bin_batch(copy_bin(tmp_path / "a")))
    s.add(bin_batch(copy_bin(tmp_path / "b")))  # the same bin id, another folder
    (d,) = s.samples()
    assert d.counts["Dinophysis"] == 2 and d.volume.ml_analyzed == pytest.approx(FIXTURE_ML)
    assert any("more than one place" in n for n in s.notices())


def test_a_truncated_copy_of_a_bin_read_in_the_same_run_neither_counts_nor_taints_it(
    tmp_path, tiny_model_dir
):
    from phytoscope import backends
    from phytoscope.core.analysis import Analysis
    from phytoscope.core.classifier import Classifier

    whole = make_bin(tmp_path / "a", "D20220519T124533_IFCB134", rois=6)
    copy = make_bin(tmp_path / "b", "D20220519T124533_IFCB134", rois=6, keep_rois=2)
    s = session()
    with backends.create("onnxruntime", model=tiny_model_dir / "tiny.onnx.json") as backend:
        skipped = []
        for batch in Analysis(Classifier(backend), paths=[whole, copy]).batches():
            s.add(batch)
            skipped += batch.skipped
    (d,) = s.samples()
    assert d.organisms == 6 and not d.flags and d.volume.ml_analyzed == pytest.approx(ml_of())
    assert [x.kind for x in skipped] == ["duplicate"] and str(copy) in skipped[0].source
    # the sources read the bin once and name the copy (the session's own check of bins
    # opened twice is a second guard for streams that do not share an input index)
    assert not any("left out" in n for n in s.notices())
