"""Archive re-analysis: Ray Data and the process pool give the same rows as classify."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from phytoscope import backends
from phytoscope.core.archive import ArchiveConfig, plan_units, run_archive
from phytoscope.core.classifier import Classifier
from phytoscope.core.pipeline import classify_items
from phytoscope.errors import ConfigError
from phytoscope.sources import iter_inputs
from phytoscope.sources.ifcb import IfcbBin

DATA = Path(__file__).resolve().parents[1] / "data"
pq = pytest.importorskip(
    "pyarrow.parquet", reason="pyarrow not installed (pip install 'phytoscope[archive]')"
)


@pytest.fixture()
def tree(tmp_path):
    """Two IFCB bins (old and new format) and a folder of images."""
    root = tmp_path / "archive"
    (root / "bins").mkdir(parents=True)
    for f in (DATA / "ifcb").iterdir():
        if f.suffix in (".adc", ".hdr", ".roi"):
            shutil.copy(f, root / "bins" / f.name)
    shutil.copytree(DATA / "images", root / "images")
    return root


def _single_machine(paths, model_dir):
    with backends.create("onnxruntime", model=model_dir) as backend:
        classifier = Classifier(backend)
        return [p for preds, _ in classify_items(iter_inputs(paths), classifier) for p in preds]


def _check_outputs(out: Path, tree: Path, model_dir: Path) -> None:
    expected = {
        (Path(p.source).name, p.roi_index): p.label
        for p in _single_machine([tree / "bins"], model_dir)
    }
    got = {}
    for part in (out / "rois").glob("bin=*/part-0.parquet"):
        for row in pq.read_table(part).to_pylist():
            got[(Path(row["source"]).name, row["roi_index"])] = row["genus"]
            assert row["top_k_labels"][0] == row["genus"] or row["genus"] == "unknown"
    bin_rows = {k: v for k, v in got.items() if not k[0].endswith((".png", ".jpg"))}
    assert bin_rows == expected
    summaries = {p.stem: json.loads(p.read_text()) for p in (out / "units").glob("*.json")}
    for stem in ("D20220522T003051_IFCB134", "IFCB5_2012_028_081515"):
        summary = summaries[stem]
        ml = IfcbBin(tree / "bins" / stem).ml_analyzed
        assert summary["ml_analyzed"] == pytest.approx(ml)
        for taxon, conc in summary["concentrations"].items():
            assert conc["per_l"] == pytest.approx(summary["counts"].get(taxon, 0) * 1000.0 / ml)
    assert (out / "bins.csv").exists() and (out / "bins.parquet").exists()


def test_plan_units_groups_bins_and_folders(tree):
    units = plan_units([tree])
    kinds = sorted(u.kind for u in units)
    assert kinds.count("bin") == 2 and "images" in kinds
    with pytest.raises(ConfigError, match="no such file"):
        plan_units([tree / "nope"])


def test_local_process_pool_matches_classify_and_resumes(tree, tiny_model_dir, tmp_path):
    config = ArchiveConfig(out_dir=str(tmp_path / "out"), model=str(tiny_model_dir))
    summary = run_archive([tree], config, runner="local", workers=2)
    assert not summary.failed and summary.rois > 0
    _check_outputs(tmp_path / "out", tree, tiny_model_dir)
    again = run_archive([tree], config, runner="local", workers=2)
    assert again.skipped_done == again.planned and again.results == []


def test_failed_bin_is_recorded_and_does_not_stop_the_run(tree, tiny_model_dir, tmp_path):
    (tree / "bins" / "D20990101T000000_IFCB999.hdr").write_text("garbage")
    (tree / "bins" / "D20990101T000000_IFCB999.adc").write_text("1,2,3\n")
    (tree / "bins" / "D20990101T000000_IFCB999.roi").write_bytes(b"")
    config = ArchiveConfig(out_dir=str(tmp_path / "out"), model=str(tiny_model_dir))
    summary = run_archive([tree], config, runner="local", workers=1)
    assert [r.key for r in summary.failed] == ["D20990101T000000_IFCB999"]
    assert "D20990101T000000_IFCB999" in (tmp_path / "out" / "failures.jsonl").read_text()
    assert len(summary.results) == summary.planned  # the other units were processed


def test_progress_cancel_and_class_scores_through_the_one_contract(tree, tiny_model_dir, tmp_path):
    import h5py

    from phytoscope.core.archive import STAGE
    from phytoscope.errors import Cancelled
    from phytoscope.progress import CancelToken, Progress

    out, scores = tmp_path / "out", tmp_path / "scores"
    config = ArchiveConfig(out_dir=str(out), model=str(tiny_model_dir), class_scores=str(scores))
    events = []
    token = CancelToken()

    def stop_after_first(event):
        events.append(event)
        if event.done == 1:
            token.cancel()  # the user presses Ctrl-C while the second unit runs

    with pytest.raises(Cancelled, match="stopped after 1 of 3 units; re-run to resume"):
        run_archive(
            [tree], config, runner="local", workers=1, progress=Progress(stop_after_first, token)
        )
    assert [(e.stage, e.done, e.total) for e in events] == [(STAGE, 0, 3), (STAGE, 1, 3)]
    assert (out / "bins.csv").exists()  # the finished unit is in the tables already
    events.clear()
    summary = run_archive(
        [tree], config, runner="local", workers=1, progress=Progress(events.append)
    )
    # units already handed to a worker when the cancel came finish and are kept: a re-run
    # does only what is left
    assert summary.skipped_done >= 1 and summary.skipped_done + len(summary.results) == 3
    assert not summary.failed and events[-1].done == events[-1].total
    for stem in ("D20220522T003051_IFCB134", "IFCB5_2012_028_081515"):
        with h5py.File(scores / f"{stem}_class.h5", "r") as f:
            rows = [
                r
                for part in (out / "rois").glob(f"bin={stem}/part-0.parquet")
                for r in pq.read_table(part).to_pylist()
            ]
            assert sorted(int(n) for n in f["roi_numbers"][:]) == sorted(
                r["roi_index"] for r in rows
            )
    # scores asked for later on a finished archive: the bins are done again, the rest skipped
    (scores / "IFCB5_2012_028_081515_class.h5").unlink()
    again = run_archive([tree], config, runner="local", workers=1)
    assert [r.key for r in again.results] == ["IFCB5_2012_028_081515"]
    assert (scores / "IFCB5_2012_028_081515_class.h5").exists()


def test_ray_matches_classify(tree, tiny_model_dir, tmp_path):
    ray = pytest.importorskip("ray", reason="Ray not installed (pip install 'phytoscope[archive]')")
    config = ArchiveConfig(out_dir=str(tmp_path / "out"), model=str(tiny_model_dir))
    try:
        summary = run_archive([tree], config, runner="ray", workers=2)
    finally:
        ray.shutdown()
    assert summary.runner == "ray" and not summary.failed
    _check_outputs(tmp_path / "out", tree, tiny_model_dir)
