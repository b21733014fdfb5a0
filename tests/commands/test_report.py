"""``phytoscope report`` and the sample options of ``phytoscope classify``, in-process."""

from __future__ import annotations

import base64
import csv
import shutil
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path

import pytest

from phytoscope import cli
from phytoscope.commands import report
from phytoscope.commands.classify import ClassifyResult
from phytoscope.core import reports
from phytoscope.core.hab import load_rule_set, record_sample
from phytoscope.core.sample import volume_from_meta
from phytoscope.modelcard import ClassInfo, ModelCard
from phytoscope.sources import iter_inputs
from phytoscope.storage import Store
from phytoscope.types import Prediction, Roi, Sample

DATA = Path(__file__).resolve().parents[1] / "data"
BIN = "D20220522T003051_IFCB134"
CLOCK = lambda: datetime(2026, 5, 1, 9, 0, tzinfo=timezone.utc)  # noqa: E731

CARD = ModelCard(
    name="test-card", version="0", file="t.onnx", format="onnx", precision="fp32", sha256="0",
    classes=(
        ClassInfo("Pseudo-nitzschia", hab=True, chain_forming=True), ClassInfo("Dinophysis", hab=True),
        ClassInfo("Dolichospermum", group="Cyanobacteria"), ClassInfo("detritus"),
    ),
)  # fmt: skip


@pytest.fixture
def ifcb_bin(tmp_path) -> Path:
    """A copy of the tests/data bin, so a test may delete it (thumbnails of vanished files)."""
    folder = tmp_path / "bins"
    folder.mkdir()
    for suffix in (".adc", ".hdr", ".roi"):
        shutil.copy(DATA / "ifcb" / (BIN + suffix), folder / (BIN + suffix))
    return folder / BIN


def _ml_by_hand() -> float:
    # runTime 715.6575 s, inhibitTime 0.15215060763888888 s in the .hdr
    return 0.25 * (715.6575 - 0.15215060763888888) / 60


def _stored_sample(tmp_path, ifcb_bin, rules="scotland_habreports", site="Gullmarsfjord"):
    """A real bin's two ROIs classified (by hand) as Dinophysis and Pseudo-nitzschia, stored."""
    rois = [r for r in iter_inputs([ifcb_bin]) if isinstance(r, Roi)]
    labels = ["Dinophysis", "Pseudo-nitzschia"]
    preds = [
        Prediction(r.source, r.index, label, 0.9, ((label, 0.9),))
        for r, label in zip(rois, labels, strict=True)
    ]
    volume = volume_from_meta(r.meta for r in rois)
    sample = Sample(kind="ifcb", sources=(str(ifcb_bin),), volume=volume, site=site)
    db = tmp_path / "r.sqlite"
    with Store(db) as store:
        result = record_sample(store, sample, preds, CARD, load_rule_set(rules), clock=CLOCK)
    return db, result


class _Tables(HTMLParser):
    """Cells of every table by id, and every image source."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.images: list[str] = []
        self._table = None
        self._cell = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._table = self.tables.setdefault(attrs.get("id") or f"t{len(self.tables)}", [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(attrs["src"])

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            self._table[-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def test_report_writes_csv_and_html_with_the_alerts(tmp_path, ifcb_bin, capsys):
    db, result = _stored_sample(tmp_path, ifcb_bin)
    sid = result.sample.id
    ml = _ml_by_hand()
    assert result.sample.volume.ml_analyzed == pytest.approx(ml)
    assert result.sample.sampled_at is None
    per_one = 1000 / ml  # 335.4 per L: one ROI in 2.98 mL
    # Scotland: 335 Dinophysis/L >= 100 -> red; 335 PN chains/L -> yellow (a lower bound)
    assert {(a.taxon, a.level) for a in result.alerts} == {
        ("Dinophysis", "red"),
        ("Pseudo-nitzschia", "yellow"),
    }

    out = tmp_path / "out"
    code = cli.main(["report", str(sid), "--db", str(db), "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "RED Dinophysis" in printed and "AT LEAST YELLOW Pseudo-nitzschia" in printed

    with open(out / f"sample-{sid}.csv", newline="", encoding="utf-8") as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["site"] == "Gullmarsfjord"
    assert float(row["ml_analyzed"]) == pytest.approx(ml, rel=1e-3)
    assert row["Dinophysis"] == f"{per_one:.0f}" == "335"
    assert row["Pseudo-nitzschia (chains/L)"] == "335"
    assert row["Dolichospermum"] == "ND" and row["detritus"] == "ND"
    assert row["detection_limit_cells_per_l"] == "335"

    page = (out / f"sample-{sid}.html").read_text(encoding="utf-8")
    parsed = _Tables()
    parsed.feed(page)
    alerts = parsed.tables["alerts"]
    assert alerts[0][:3] == ["Alert", "Taxon", "Level"]
    by_taxon = {r[1]: r for r in alerts[1:]}
    assert by_taxon["Dinophysis"][2] == "red" and by_taxon["Dinophysis"][-1] == "OPEN"
    assert by_taxon["Pseudo-nitzschia"][2] == "at least yellow"
    assert "cells underestimated" in by_taxon["Pseudo-nitzschia"][8]
    levels = {r[0]: r[1] for r in parsed.tables["levels"][1:]}
    assert levels == {"Dinophysis": "red", "Pseudo-nitzschia": "at least yellow"}
    assert "Not monitored by this model" in page and "Alexandrium" in page
    # one thumbnail per flagged taxon, decoded from the bin's ROI pixels
    assert len(parsed.images) == 2
    for src in parsed.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"


def test_thumbnails_of_vanished_sources_say_so(tmp_path, ifcb_bin):
    db, result = _stored_sample(tmp_path, ifcb_bin)
    for f in ifcb_bin.parent.iterdir():
        f.unlink()
    with Store(db) as store:
        page = reports.html_report(store, result.sample.id)
    assert "not readable" in page and "data:image/png" not in page


def test_the_html_template_escapes_what_the_store_holds(tmp_path, ifcb_bin):
    hostile = '<script>alert("x")</script> & Co'
    db, result = _stored_sample(tmp_path, ifcb_bin, site=hostile)
    with Store(db) as store:
        page = reports.html_report(store, result.sample.id)
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Co" in page
    parsed = _Tables()
    parsed.feed(page)
    assert parsed.tables["alerts"][0][:3] == ["Alert", "Taxon", "Level"]  # markup intact


def test_list_acknowledge_and_missing_sample(tmp_path, ifcb_bin, capsys):
    db, result = _stored_sample(tmp_path, ifcb_bin, rules="england_wales_fsa")
    (alert,) = result.alerts  # E&W: Dinophysis 335 >= 100; PN 335 chains/L < 150,000
    assert cli.main(["report", "--list", "--db", str(db)]) == 0
    assert "open alerts: 1" in capsys.readouterr().out
    assert cli.main(["report", "--db", str(db), "--acknowledge", str(alert.id)]) == 1
    assert "--by NAME" in capsys.readouterr().err
    assert (
        cli.main(["report", "--db", str(db), "--acknowledge", str(alert.id), "--by", "J. Doe"]) == 0
    )
    assert "acknowledged by J. Doe" in capsys.readouterr().out
    with Store(db) as store:
        assert store.open_alerts() == []
    assert cli.main(["report", "99", "--db", str(db), "--out", str(tmp_path)]) == 1
    assert "no sample 99" in capsys.readouterr().err
    assert cli.main(["report", "1", "--db", str(tmp_path / "none.sqlite")]) == 1


def _classify_args(tmp_path, *extra):
    card_path = CARD.save(tmp_path / "t.onnx.json")
    parser = cli.build_parser()
    return parser.parse_args(
        ["classify", "x", "--model", str(card_path), "--db", str(tmp_path / "c.sqlite"), *extra]
    )


def test_classify_sample_options_store_a_sample_with_alerts(tmp_path, ifcb_bin):
    rois = [r for r in iter_inputs([ifcb_bin]) if isinstance(r, Roi)]
    result = ClassifyResult(model=CARD.label)
    result.predictions = [
        Prediction(r.source, r.index, "Dinophysis", 0.9, (("Dinophysis", 0.9),)) for r in rois
    ]
    result.meta = {(r.source, r.index): {"sample": BIN, **r.meta} for r in rois}
    args = _classify_args(tmp_path, "--site", "Loch Creran", "--rules", "england_wales_fsa")
    text = report.classify_hook(args, result)
    assert text is not None
    assert "sample 1 (ifcb" in text and "ALERTS (1)" in text and "RED Dinophysis" in text
    assert "not monitored by this model: Alexandrium" in text
    with Store(tmp_path / "c.sqlite") as store:
        sample = store.sample(1)
        assert sample.site == "Loch Creran" and sample.kind == "ifcb"
        assert sample.sampled_at == "2022-05-22T00:30:51+00:00"  # from the bin's name
        assert sample.volume.ml_analyzed == pytest.approx(_ml_by_hand())
        # 2 Dinophysis in 2.98 mL = 671 cells/L
        assert store.alerts(1)[0].concentration_per_l == pytest.approx(2000 / _ml_by_hand())
    # no sample option: classify behaves as before
    assert report.classify_hook(_classify_args(tmp_path), result) is None


def test_microscope_volumes_on_the_command_line(tmp_path):
    preds = [
        Prediction(f"frame{i}.png", 0, "Dinophysis", 0.9, (("Dinophysis", 0.9),)) for i in range(12)
    ]
    result = ClassifyResult(model=CARD.label, predictions=preds)
    args = _classify_args(
        tmp_path, "--settled-ml", "10", "--chamber-area", "530.9", "--fields", "20", "--field-area", "0.5",
        "--sample-ml", "100", "--preservative-ml", "1", "--rules", "denmark_fvst",
    )  # fmt: skip
    text = report.classify_hook(args, result)
    assert "microscope" in text and "64,300 cells/L" in text  # 12 x 53.09 x 100 x 1.01
    with Store(tmp_path / "c.sqlite") as store:
        (alert,) = store.alerts(1)
        assert alert.concentration_per_l == pytest.approx(12 * 53.09 * 100 * 1.01)
        assert alert.rule_taxon == "Dinophysis acuta"


def test_images_without_a_volume_are_a_clear_error(tmp_path):
    preds = [Prediction("a.png", 0, "Dinophysis", 0.9, (("Dinophysis", 0.9),))]
    result = ClassifyResult(model=CARD.label, predictions=preds)
    from phytoscope.errors import ConfigError

    with pytest.raises(ConfigError, match="--sample-volume"):
        report.classify_hook(_classify_args(tmp_path, "--site", "x"), result)


def test_sampling_time_from_new_and_old_ifcb_bin_names():
    assert report._bin_time(["D20220522T003051_IFCB134"]) == "2022-05-22T00:30:51+00:00"
    # old names count days of the year: day 028 of 2012 is 28 January
    assert report._bin_time(["IFCB5_2012_028_081515"]) == "2012-01-28T08:15:15+00:00"
    assert report._bin_time(["IFCB5_2012_028_081515", "D20220522T003051_IFCB134"]).startswith(
        "2012"
    )
    assert report._bin_time(["frame.png"]) is None


def test_bins_mixed_with_images_need_an_explicit_volume(tmp_path):
    from phytoscope.errors import ConfigError

    args = _classify_args(tmp_path, "--site", "x")
    with pytest.raises(ConfigError, match="mixes IFCB bins"):
        report.sample_volume(args, [{"bin": "b", "ml_analyzed": 5.0}, {}])
    assert (
        report.sample_volume(_classify_args(tmp_path, "--sample-volume", "50"), [{}]).ml_analyzed
        == 50
    )


SHIPPED = Path(__file__).resolve().parents[2] / "models" / "genus.onnx.json"


@pytest.mark.skipif(
    not SHIPPED.exists(), reason="shipped model models/genus.onnx not in this checkout"
)
def test_classify_then_report_end_to_end_with_the_shipped_model(tmp_path, ifcb_bin, capsys):
    db = tmp_path / "e2e.sqlite"
    code = cli.main(
        ["classify", str(ifcb_bin), "--model", str(SHIPPED), "--backend", "onnxruntime",
         "--db", str(db), "--site", "Gullmarsfjord", "--rules", "sweden_algaware"]
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "sample 1 (ifcb, 2.981 mL" in out and "report: phytoscope report 1" in out
    with Store(db) as store:
        sample = store.sample(1)
        assert sample.run_id == 1 and sample.volume.ml_analyzed == pytest.approx(_ml_by_hand())
        counts = store.sample_counts(1)
        assert sum(n for n, _ in counts.values()) == 2  # the bin's two ROIs, whatever their class
        for c in reports.stored_concentrations(store, 1):
            assert c.per_l == pytest.approx(c.count * 1000 / _ml_by_hand())
    assert cli.main(["report", "1", "--db", str(db), "--out", str(tmp_path / "rep")]) == 0
    parsed = _Tables()
    parsed.feed((tmp_path / "rep" / "sample-1.html").read_text(encoding="utf-8"))
    assert parsed.tables["concentrations"][0] == [
        "Class",
        "Count",
        "Concentration",
        "95 % interval",
    ]
    # every class of the shipped card, zeros included
    assert len(parsed.tables["concentrations"]) == 1 + ModelCard.load(SHIPPED).num_classes


def test_the_card_of_a_run_is_found_from_the_model_option(tmp_path):
    from phytoscope.errors import ModelError

    CARD.save(tmp_path / "t.onnx.json")
    other = ModelCard(**{**CARD.__dict__, "format": "keras", "file": "t.keras", "path": None})
    other.save(tmp_path / "t.keras.json")
    ns = cli.build_parser().parse_args(["classify", "x", "--model", str(tmp_path / "t.onnx")])
    assert report._card_of_run(ns, CARD.label).format == "onnx"  # card beside the model file
    ns = cli.build_parser().parse_args(["classify", "x", "--model", str(tmp_path)])
    assert report._card_of_run(ns, other.label).format == "keras"  # exact label in a folder
    assert report._card_of_run(ns, "test-card 0 tensorrt/fp16").name == "test-card"  # same model
    with pytest.raises(ModelError, match="not found"):
        report._card_of_run(ns, "another-model 2 onnx/fp32")


def test_pdf_report_has_a_summary_page_and_an_evidence_page(tmp_path, ifcb_bin):
    pytest.importorskip("matplotlib", reason="PDF reports need matplotlib")
    import re

    db, result = _stored_sample(tmp_path, ifcb_bin)
    out = tmp_path / "pdf"
    assert (
        cli.main(
            ["report", str(result.sample.id), "--db", str(db), "--out", str(out), "--format", "pdf"]
        )
        == 0
    )
    data = (out / f"sample-{result.sample.id}.pdf").read_bytes()
    assert data.startswith(b"%PDF")
    # summary page + one evidence page per alert with a readable ROI (Dinophysis, Pseudo-nitzschia)
    assert len(re.findall(rb"/Type /Page\b", data)) == 3
    assert cli.main(["report", "1", "--db", str(db), "--format", "docx"]) == 1
