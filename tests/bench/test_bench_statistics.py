"""Benchmark statistics against hand-computed cases (tier 1: pure logic)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from phytoscope.bench.config import BenchConfig
from phytoscope.bench.findings import study_table
from phytoscope.bench.labelled import (
    LabelledSet,
    labelled_from_card,
    labelled_from_folder,
    stratified_subset,
)
from phytoscope.bench.metrics import agreement
from phytoscope.bench.stats import (
    energy_per_image,
    fps_per_watt,
    is_stable,
    process_share_samples,
    summarize,
)
from phytoscope.errors import ConfigError
from phytoscope.modelcard import ClassInfo, ModelCard
from phytoscope.types import TelemetrySample


def test_percentiles_and_iqr_of_1_to_100():
    # numpy's linear interpolation: position (n-1)q -> 1 + 99q
    s = summarize(list(range(1, 101)))
    assert s.n == 100
    assert s.p50 == pytest.approx(50.5)
    assert s.median == pytest.approx(50.5)
    assert s.p95 == pytest.approx(95.05)
    assert s.p99 == pytest.approx(99.01)
    assert s.q1 == pytest.approx(25.75)
    assert s.q3 == pytest.approx(75.25)
    assert s.iqr == pytest.approx(49.5)
    assert s.mean == pytest.approx(50.5)
    assert (s.min, s.max) == (1.0, 100.0)


def test_summary_of_a_small_sample_and_of_nothing():
    s = summarize([4.0, 1.0, 3.0, 2.0])  # sorted 1 2 3 4
    assert s.median == pytest.approx(2.5)
    assert s.q1 == pytest.approx(1.75)
    assert s.q3 == pytest.approx(3.25)
    assert s.iqr == pytest.approx(1.5)
    assert s.p95 == pytest.approx(3.85)
    empty = summarize([])
    assert empty.n == 0 and empty.median is None and empty.iqr is None


def test_warm_up_is_stable_when_two_windows_agree():
    assert not is_stable([1.0, 1.0, 1.0], window=2, tolerance=0.05)  # fewer than two windows
    assert not is_stable([9.0, 8.0, 2.0, 2.0], window=2, tolerance=0.05)  # 8.5 -> 2.0
    assert is_stable([9.0, 2.0, 2.0, 2.04, 2.0], window=2, tolerance=0.05)  # 2.02 vs 2.00
    assert is_stable([1.0, 1.0, 1.04, 1.04], window=2, tolerance=0.05)  # +4 %
    assert not is_stable([1.0, 1.0, 1.06, 1.06], window=2, tolerance=0.05)  # +6 %


def test_fps_per_watt_reproduces_the_studys_table():
    study = json.loads((Path(__file__).parents[2] / "resources/paper/table2.json").read_text())
    for row in study["variants"].values():
        whole = fps_per_watt(row["fps"], row["avg_power_total_mw"] / 1000)
        inference = fps_per_watt(row["fps"], row["avg_power_inference_mw"] / 1000)
        assert whole == pytest.approx(row["fps_per_w_total"], abs=0.05)
        assert inference == pytest.approx(row["fps_per_w_inference"], abs=0.05)
    assert fps_per_watt(41, 3.386) == pytest.approx(12.1087, abs=1e-4)
    assert fps_per_watt(10.0, None) is None
    assert fps_per_watt(10.0, 0.0) is None
    assert fps_per_watt(None, 5.0) is None


def test_energy_per_image_gross_and_net_of_idle():
    # 100 J for 50 images over 20 s with a 1 W idle machine: 2 J gross, (100-20)/50 net
    assert energy_per_image(100.0, 50, idle_w=1.0, seconds=20.0) == pytest.approx((2.0, 1.6))
    assert energy_per_image(100.0, 50) == (2.0, None)
    assert energy_per_image(None, 50, 1.0, 20.0) == (None, None)
    assert energy_per_image(100.0, 0, 1.0, 20.0) == (None, None)


def _sample(t, power=None, cpu=None, rss=100):
    return TelemetrySample(
        t=t,
        wall=1000.0 + t,
        power_w=power,
        power_source="estimated: CPU load x 10 W",
        estimated=True,
        rss_bytes=rss,
        ram_used_bytes=50,
        ram_total_bytes=100,
        cpu_percent=100.0,
        process_cpu_percent=cpu,
    )


def test_process_share_of_an_estimate_integrates_to_hand_computed_joules():
    from phytoscope.telemetry import energy_j, mean_power_w

    # 2 logical CPUs, 10 W rated: a process at 100 % (one core) is 5 W, at 200 % 10 W.
    samples = [
        _sample(0.0, 10.0, 100.0),
        _sample(1.0, 10.0, 100.0),
        _sample(2.0, 10.0, 200.0),
        _sample(3.0, 10.0, None),
    ]
    share = process_share_samples(samples, tdp_w=10.0, logical_cpus=2)
    assert [s.power_w for s in share] == [5.0, 5.0, 10.0]
    assert all(s.estimated and "process CPU share" in s.power_source for s in share)
    # trapezoid: 0-1 s at 5 W = 5 J, 1-2 s from 5 to 10 W = 7.5 J
    assert energy_j(share, 0.0, 2.0) == pytest.approx(12.5)
    assert mean_power_w(share, 0.0, 2.0) == pytest.approx(6.25)
    assert process_share_samples([_sample(0.0, 10.0, 900.0)], 10.0, 2)[0].power_w == 10.0  # capped


def test_agreement_lists_the_images_that_flip():
    base = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]])
    other = np.array([[0.8, 0.2], [0.45, 0.55], [0.2, 0.8]])
    labelled = LabelledSet((("a.png", "A"), ("b.png", "A"), ("c.png", "B")), "test")
    a = agreement(base, other, ["A", "B"], labelled)
    assert a.top1_agreement == pytest.approx(2 / 3)
    assert a.max_prob_diff == pytest.approx(0.15)
    assert a.flips == 1
    flip = a.flipped_images[0]
    assert (flip.image, flip.base, flip.this) == ("b.png", "A", "B")
    assert flip.base_p == pytest.approx(0.6) and flip.this_p == pytest.approx(0.55)
    assert agreement(base, other[:2], ["A", "B"], labelled).comparable is False


def test_stratified_subset_keeps_every_class_and_is_seeded():
    items = [(f"a{i}", "A") for i in range(90)] + [(f"b{i}", "B") for i in range(5)] + [("c0", "C")]
    subset = stratified_subset(items, 12)
    assert len(subset) == 12
    counts = {c: sum(1 for _, k in subset if k == c) for c in "ABC"}
    assert counts == {"A": 6, "B": 5, "C": 1}
    assert subset == stratified_subset(items, 12)
    assert stratified_subset(items[:3], 12) == tuple(items[:3])


def test_labelled_folder_maps_sub_folders_to_classes(tmp_path):
    for name in ("Pseudo-nitzschia", "detritus_other", "not_a_class"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x.png").write_bytes(b"")
    (tmp_path / "Pseudo-nitzschia" / "notes.txt").write_text("not an image")
    ls = labelled_from_folder(tmp_path, ["Pseudo-nitzschia", "detritus/other"])
    assert sorted(c for _, c in ls.items) == ["Pseudo-nitzschia", "detritus/other"]
    assert "not_a_class" in ls.note
    with pytest.raises(ConfigError, match="sub-folders named after"):
        labelled_from_folder(tmp_path / "not_a_class", ["Pseudo-nitzschia"])


def _card(folder: Path, training: dict) -> ModelCard:
    card = ModelCard(
        name="m",
        version="1",
        file="m.onnx",
        format="onnx",
        precision="fp32",
        sha256="0" * 64,
        classes=(ClassInfo("A"), ClassInfo("B")),
        training=training,
    )
    return ModelCard.load(card.save(folder / "m.onnx.json"))


def test_labelled_set_from_the_models_split_file(tmp_path):
    data = tmp_path / "data"
    (data / "imgs").mkdir(parents=True)
    for name in ("1.png", "2.png", "3.png"):
        (data / "imgs" / name).write_bytes(b"")
    models = tmp_path / "models"
    models.mkdir()
    with open(models / "split.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "split", "class", "label", "source", "group"])
        w.writerow(["imgs/f.jpg#roi=1,2,3,4", "test", "A", "A", "s", "g0"])  # a frame's segment
        w.writerow(["imgs/1.png", "train", "A", "A", "s", "g1"])
        w.writerow(["imgs/2.png", "test", "A", "A", "s", "g2"])
        w.writerow(["imgs/3.png", "test", "B", "B", "s", "g3"])
    ls = labelled_from_card(_card(models, {"split_file": "split.csv", "dataset_root": str(data)}))
    assert [(Path(p).name, c) for p, c in ls.items] == [("2.png", "A"), ("3.png", "B")]
    assert "1 test segment(s) of whole frames" in ls.note

    # the card names a manifest inside the dataset (training's "dataset"), or the user says where
    (data / "manifest.csv").write_text("path\n")
    by_manifest = labelled_from_card(
        _card(models, {"split_file": "split.csv", "dataset": str(data / "manifest.csv")})
    )
    assert by_manifest.items == ls.items
    assert (
        labelled_from_card(_card(models, {"split_file": "split.csv"}), data_root=data).items
        == ls.items
    )

    # images not on this machine: a clear message naming --images
    with pytest.raises(ConfigError, match="--images FOLDER"):
        labelled_from_card(
            _card(models, {"split_file": "split.csv", "dataset_root": str(tmp_path / "gone")})
        )
    with pytest.raises(ConfigError, match="--images FOLDER"):
        labelled_from_card(_card(models, {}))


def test_config_validation_and_quick_settings(tmp_path):
    quick = BenchConfig.quick_settings(tmp_path, rounds=2)
    assert quick.quick and quick.rounds == 2 and quick.limit == 100
    with pytest.raises(ConfigError, match="unknown variant"):
        BenchConfig(out_dir=tmp_path, variants=("tf_base", "nope")).validate()
    with pytest.raises(ConfigError):
        BenchConfig(out_dir=tmp_path, batch_sizes=(0,)).validate()


def test_study_table_is_read_from_resources():
    study = study_table()
    assert "10.1145/3555776.3577742" in study.source
    assert study.variants["tf_base"].fps == 41
    assert study.variants["trt_fp16"].fps_per_w_total == 26.01


class _FakeClock:
    """perf_counter stand-in: each call of the benchmarked function advances it."""

    def __init__(self, latencies):
        self.now = 0.0
        self.latencies = list(latencies)

    def __call__(self):
        return self.now

    def work(self):
        self.now += self.latencies.pop(0) if self.latencies else 1.0


def test_warm_up_runs_until_two_windows_agree():
    from phytoscope.bench.worker import warm_until_stable

    clock = _FakeClock([5, 5, 3, 3, 1, 1, 1, 1, 9, 9])
    out = warm_until_stable(clock.work, window=2, tolerance=0.05, cap_s=100.0, clock=clock)
    # window medians 5, 3, 1, 1: stable after the fourth window
    assert out["iterations"] == 8 and out["stable"] is True
    assert out["last_window_median_ms"] == 1000.0
    assert out["seconds"] == 20.0


def test_warm_up_stops_at_its_cap_when_latency_never_settles():
    from phytoscope.bench.worker import warm_until_stable

    clock = _FakeClock([2.0**-i for i in range(100)])  # halves every call
    out = warm_until_stable(clock.work, window=2, tolerance=0.05, cap_s=1.9, clock=clock)
    assert out["stable"] is False
    # windows end at 1.5 s, 1.875 s, then 1.96875 s >= 1.9 s: three windows, never stable
    assert out["iterations"] == 6


def test_other_load_is_machine_cpu_minus_the_process():
    from phytoscope.bench.stats import other_load

    def sample(t, machine, proc):
        return TelemetrySample(
            t=t,
            wall=t,
            power_w=None,
            power_source="none",
            estimated=False,
            rss_bytes=1,
            ram_used_bytes=1,
            ram_total_bytes=2,
            cpu_percent=machine,
            process_cpu_percent=proc,
        )

    # 2 CPUs: machine 75 % = 150 % of a core; the process uses 100 % -> others 50 %
    samples = [
        sample(0, 75.0, 100.0),
        sample(1, 50.0, 100.0),
        sample(2, 100.0, 50.0),
        sample(3, float("nan"), 10.0),
        sample(9, 100.0, 0.0),
    ]
    out = other_load(samples, (0.0, 3.0), logical_cpus=2)
    assert out.n == 3
    assert out.cpu_percent_of_a_core_median == pytest.approx(50.0)  # 50, 0, 150
    assert out.cpu_percent_of_a_core_p95 == pytest.approx(140.0)
    assert other_load([], None, 2).cpu_percent_of_a_core_median is None
