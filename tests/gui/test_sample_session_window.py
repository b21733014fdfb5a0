"""The window drives the core sample session (#16): each finding of the issue in the real
window (offscreen, real ONNX Runtime backend on its thread, real store), and the parity
test: the same inputs through ``phytoscope classify`` and through the window give the same
stored samples, counts, concentrations and alerts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from phytoscope.cli import main
from phytoscope.core.sample_text import stored_concentrations
from phytoscope.storage import Store
from tests.ifcb_bins import copy_bin, make_bin, ml_of

from .conftest import DATA, analyse

TIME = "2024-06-01T10:00:00+00:00"


@pytest.fixture
def images(tmp_path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("smhi_cryptomonadales.png", "pn_delicatissima_crop.jpg", "pwssc_blob.png"):
        shutil.copyfile(DATA / "images" / name, folder / name)
    return folder


def _samples(db: Path) -> list:
    with Store(db) as store:
        return store.samples()


# -- the findings of #16, in the window ---------------------------------------------------------


def test_time_comes_from_the_bins_with_its_zone_and_new_sample_forgets_a_typed_one(
    qtbot, window, tmp_path
):
    window.sample_panel.site.setText("Loch Creran")
    window.sample_panel.set_sampled_at("2030-01-01T12:00:00+00:00")  # typed: not for bins
    analyse(qtbot, window, [copy_bin(tmp_path / "bins")])
    (sample,) = _samples(window.database)  # a site was given: saved at the end
    assert sample.sampled_at == "2022-05-22T00:30:51+00:00" and sample.time_source == "bins"
    assert sample.created_at.endswith("+00:00")  # analysed-at carries its zone too
    window.new_sample()
    assert window.sample_panel.sampled_at_text() is None
    assert window.sample_session.settings.sampled_at is None and len(window.sample_session) == 0


def test_a_truncated_bin_is_flagged_scaled_and_its_warning_stays(qtbot, window, tmp_path):
    stem = make_bin(tmp_path / "bins", "D20220519T124533_IFCB134", rois=17, keep_rois=8)
    window.sample_panel.site.setText("Skagerrak")
    analyse(qtbot, window, [stem])
    for i in range(3):  # later messages replace the status bar, not the sample's warning
        window._message(f"something else {i}")
    window.refresh_panels()
    panel = window.sample_panel
    assert panel.warnings.isVisibleTo(window) and "8 of 17 ROIs classified" in panel.warnings.text()
    assert "[partial]" in panel.choice.currentText()
    (sample,) = _samples(window.database)
    assert sample.flags == ("partial",)
    assert sample.volume.ml_analyzed == pytest.approx(ml_of() * 8 / 17)


def test_utermohl_is_empty_until_typed_and_counts_by_fields(qtbot, window, images):
    panel = window.sample_panel
    panel.sampled_at.setDateTime(panel.sampled_at.dateTime().addYears(24))
    panel.method.setCurrentText("Utermöhl chamber")
    analyse(qtbot, window, [images])
    window.refresh_panels()
    boxes = (panel.settled_ml, panel.chamber_mm2, panel.counted_mm2, panel.fields,
             panel.field_mm2, panel.sample_ml, panel.preservative_ml, panel.dilution)  # fmt: skip
    assert all(box.text() == "not given" for box in boxes)
    (draft,) = window.sample_session.samples()
    assert draft.volume is None and draft.concentrations == ()  # nothing from defaults
    assert "no volume" in window.alert_panel.title.text()
    column = [panel.table.item(r, 2).text() for r in range(panel.table.rowCount())]
    assert set(column) == {"—"}
    panel.settled_ml.setValue(10.0)
    panel.chamber_mm2.setValue(530.9)
    panel.fields.setValue(20)
    panel.field_mm2.setValue(0.5)
    window.refresh_panels()
    (draft,) = window.sample_session.samples()
    assert draft.kind == "microscope"
    assert draft.volume.ml_analyzed == pytest.approx(10 * 10 / 530.9)


def test_nothing_is_saved_without_a_site_and_bins_opened_one_by_one_make_one_record(
    qtbot, window, tmp_path
):
    bins = [copy_bin(tmp_path / "bins", f"D20220522T0{h}3051_IFCB134") for h in (0, 1, 2)]
    analyse(qtbot, window, [bins[0]])
    assert _samples(window.database) == []  # no site: not saved by itself
    assert any("not saved yet" in m for m in window.messages)
    window.sample_panel.site.setText("Loch Creran")
    for stem in bins[1:]:
        analyse(qtbot, window, [stem])
    (sample,) = _samples(window.database)
    assert sample.revision == 2 and len(sample.volume.details) == 3  # one record, updated
    # Save sample after corrections updates the same record too
    window.correct([window.session.records[0]], "Alexandrium")
    assert window.save_sample() == sample.id
    (again,) = _samples(window.database)
    assert again.id == sample.id and again.revision == 3


def test_bins_of_different_years_and_instruments_are_not_pooled_silently(qtbot, window, tmp_path):
    folder = tmp_path / "bins"
    copy_bin(folder)
    for suffix in (".adc", ".hdr", ".roi"):
        shutil.copyfile(DATA / "ifcb" / f"IFCB5_2012_028_081515{suffix}",
                        folder / f"IFCB5_2012_028_081515{suffix}")  # fmt: skip
    window.sample_panel.site.setText("x")
    analyse(qtbot, window, [folder])
    window.refresh_panels()
    panel = window.sample_panel
    assert panel.choice.count() == 2 and "NOT pooled" in panel.warnings.text()
    assert [len(s.volume.details) for s in _samples(window.database)] == [1, 1]
    panel.choice.setCurrentIndex(1)  # the 2012 bin: 0.0034 mL, implausible
    assert "outside the usual" in panel.warnings.text()
    panel.grouping.setCurrentIndex(panel.grouping.findData("pool"))
    window.refresh_panels()
    assert panel.choice.count() == 1 and "by choice" in panel.warnings.text()


# -- parity: the same inputs through the command line and the window --------------------------


def _content(db: Path) -> list[dict]:
    """What a technician signs, without ids, runs and clock times."""
    out = []
    with Store(db) as store:
        for s in store.samples():
            out.append(
                {
                    "sample": (s.kind, s.site, s.sampled_at, s.time_source, s.sources, s.model,
                               s.rule_set, s.flags, s.warnings, s.unidentified),
                    "volume": (round(s.volume.ml_analyzed, 9), s.volume.method, s.volume.details),
                    "counts": store.sample_counts(s.id),
                    "concentrations": [
                        (c.taxon, c.count, round(c.per_l, 6), round(c.low_per_l, 6),
                         round(c.high_per_l, 6), c.unit)
                        for c in stored_concentrations(store, s.id)
                    ],
                    "alerts": [
                        (a.taxon, a.level, a.threshold_per_l, round(a.concentration_per_l, 6),
                         a.count, a.unit, a.flags, a.evidence, a.rule_set_version)
                        for a in store.alerts(s.id)
                    ],
                }
            )  # fmt: skip
    return out


def test_cli_and_window_store_identical_samples(qtbot, window, tmp_path, images, hab_model_dir):
    bins = tmp_path / "bins"
    copy_bin(bins, "D20220522T003051_IFCB134")
    copy_bin(bins, "D20220522T013051_IFCB134")  # same instrument and day: pooled
    site = "Loch Creran"
    utermohl = {"settled_ml": 10.0, "chamber_mm2": 530.9, "fields": 20, "field_mm2": 0.5,
                "sample_ml": 100.0, "preservative_ml": 1.0}  # fmt: skip

    cli_db = tmp_path / "cli.sqlite"
    common = ["--db", str(cli_db), "--model", str(hab_model_dir), "--backend", "onnxruntime",
              "--batch-size", "4", "--rules", "scotland_habreports", "--site", site]  # fmt: skip
    assert main(["classify", str(bins), *common]) == 0
    assert main(["classify", str(images), *common, "--sample-volume", "10",
                 "--sampled-at", TIME]) == 0  # fmt: skip
    assert main(["classify", str(images), *common, "--settled-ml", "10", "--chamber-area",
                 "530.9", "--fields", "20", "--field-area", "0.5", "--sample-ml", "100",
                 "--preservative-ml", "1", "--sampled-at", TIME]) == 0  # fmt: skip

    panel = window.sample_panel
    panel.site.setText(site)
    analyse(qtbot, window, [bins])  # saved at the end: a site was given
    window.new_sample()
    panel.set_sampled_at(TIME)
    panel.method.setCurrentText("Volume I give")
    panel.given_ml.setValue(10.0)
    analyse(qtbot, window, [images])
    window.new_sample()
    panel.set_sampled_at(TIME)
    panel.method.setCurrentText("Utermöhl chamber")
    panel.settled_ml.setValue(utermohl["settled_ml"])
    panel.chamber_mm2.setValue(utermohl["chamber_mm2"])
    panel.fields.setValue(utermohl["fields"])
    panel.field_mm2.setValue(utermohl["field_mm2"])
    panel.sample_ml.setValue(utermohl["sample_ml"])
    panel.preservative_ml.setValue(utermohl["preservative_ml"])
    analyse(qtbot, window, [images])

    cli, gui = _content(cli_db), _content(window.database)
    assert [s["sample"][0] for s in cli] == ["ifcb", "files", "microscope"]
    assert len(cli[0]["volume"][2]) == 2  # the two bins pooled
    assert any(s["alerts"] for s in cli)  # alerts are compared, not only empty lists
    assert gui == cli
