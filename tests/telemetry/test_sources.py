"""The estimate (always labelled), the USB meter log, NVML and RAPL+NVML sums, memory."""

from __future__ import annotations

import collections
import time

import pytest

from phytoscope.errors import ConfigError, SensorError
from phytoscope.telemetry import Sampler, energy_j
from phytoscope.telemetry.estimate import CpuLoad, EstimatedSource, rated_power_w
from phytoscope.telemetry.memory import MemoryReader, parse_meminfo
from phytoscope.telemetry.meter import MeterCsvSource
from phytoscope.telemetry.nvml import NvmlSource, SumSource
from phytoscope.telemetry.rapl import RaplSource
from tests.telemetry import fakesys

CpuTimes = collections.namedtuple(
    "CpuTimes", "user nice system idle iowait irq softirq steal guest guest_nice"
)


class FakeCpuTimes:
    def __init__(self):
        self.value = CpuTimes(100, 0, 50, 800, 50, 0, 0, 0, 30, 0)

    def __call__(self):
        return self.value


def test_cpu_load_from_cpu_times_excludes_guest_and_counts_iowait_idle():
    times = FakeCpuTimes()
    load = CpuLoad(times)
    assert load.update() is None  # no interval yet: no figure, not 0 %
    # +3 s user, +1 s system, +4 s idle, +2 s iowait, +5 s guest (inside user already)
    times.value = CpuTimes(103, 0, 51, 804, 52, 0, 0, 0, 35, 0)
    assert load.update() == pytest.approx(100 * 4 / 10)


def test_estimate_is_load_times_rated_power_and_says_so():
    source = EstimatedSource(cpu_tdp_w=20.0, utilisation_percent=lambda: 50.0)
    assert source.estimated is True
    assert source.label == "estimated: CPU load x 20 W"
    assert source.read(0.0).power_w == pytest.approx(10.0)
    assert EstimatedSource(20.0, lambda: None).read(0.0).power_w is None


def test_rated_power_default_env_and_override(monkeypatch):
    monkeypatch.delenv("PHYTOSCOPE_CPU_TDP_W", raising=False)
    assert rated_power_w() == 15.0
    monkeypatch.setenv("PHYTOSCOPE_CPU_TDP_W", "65")
    assert rated_power_w() == 65.0
    assert rated_power_w(10) == 10.0
    monkeypatch.setenv("PHYTOSCOPE_CPU_TDP_W", "lots")
    with pytest.raises(ConfigError, match="PHYTOSCOPE_CPU_TDP_W"):
        rated_power_w()
    with pytest.raises(ConfigError):
        rated_power_w(0)


def test_sampler_on_a_machine_without_sensors_is_estimated_everywhere(tmp_path):
    # an empty sysfs: no Jetson, no RAPL; jtop/NVML are not tried on a fake root
    log = tmp_path / "telemetry.csv"
    sampler = Sampler(
        sysfs_root=tmp_path / "sys",
        procfs_root=fakesys.procfs(tmp_path / "proc"),
        csv_path=log,
        cpu_tdp_w=12.0,
    )
    assert sampler.estimated is True
    assert sampler.power_label == "estimated: CPU load x 12 W"
    first = sampler.read_once()
    time.sleep(0.05)
    samples = [first] + [sampler.read_once() for _ in range(3)]
    sampler.close()
    for s in samples:
        assert s.estimated and "estimated" in s.power_source
        assert s.rss_bytes > 0
    assert all(0.0 <= s.power_w <= 12.0 for s in samples[1:] if s.power_w is not None)
    header, *rows = log.read_text().splitlines()
    assert "power_w_estimated" in header.split(",") and "power_w" not in header.split(",")
    assert rows and all(",estimated," in row for row in rows)


# --- USB meter log --------------------------------------------------------------------------


def test_meter_log_is_interpolated_at_sample_wall_time(tmp_path):
    log = tmp_path / "meter.csv"
    log.write_text("timestamp,watts\n1000.0,5.0\n1001.0,7.0\n1002.0,7.0\n")
    # monotonic 0 = wall 1000; the meter runs 0.5 s behind, so add 0.5 s to its times
    source = MeterCsvSource(log, offset_s=0.5, mono_to_wall=1000.0)
    assert source.label == "USB meter log meter.csv (measured)" and not source.estimated
    assert source.read(1.0).power_w == pytest.approx(6.0)  # halfway between 1000.5 and 1001.5
    assert source.read(2.5).power_w == pytest.approx(7.0)
    assert source.read(10.0).power_w is None  # past the log by more than 2 s: nothing, not a guess


def test_meter_log_growing_while_read(tmp_path):
    log = tmp_path / "meter.csv"
    log.write_text("time;power_mw\n")
    source = MeterCsvSource(log, mono_to_wall=0.0)
    assert source.read(1.0).power_w is None
    with open(log, "a") as handle:
        handle.write("1.0;4000\n2.0;6000\n3.0;60")  # last line still being written
    assert source.read(1.5).power_w == pytest.approx(5.0)
    assert source.times == [1.0, 2.0]
    with open(log, "a") as handle:
        handle.write("00\n")
    assert source.read(2.5).power_w == pytest.approx(6.0)
    assert source.watts[-1] == pytest.approx(6.0)


def test_meter_log_without_header_and_iso_times(tmp_path):
    log = tmp_path / "meter.csv"
    log.write_text("2026-01-01T00:00:00+00:00,3.0\n2026-01-01T00:00:02+00:00,5.0\nbroken,row\n")
    source = MeterCsvSource(log, mono_to_wall=0.0)
    t0 = source.times[0]
    assert source.power_at_wall(t0 + 1.0) == pytest.approx(4.0)
    assert source.bad_rows == 1


def test_sampler_with_meter_integrates_the_meter(tmp_path):
    log = tmp_path / "meter.csv"
    log.write_text(
        "t,W\n" + "".join(f"{t},{w}\n" for t, w in ((0, 2.0), (1, 2.0), (2, 4.0), (3, 4.0)))
    )
    clock = [0.0]
    meter = MeterCsvSource(log, mono_to_wall=0.0)
    sampler = Sampler(
        source=meter, procfs_root=fakesys.procfs(tmp_path / "proc"), clock=lambda: clock[0]
    )
    for t in (0.0, 1.0, 2.0, 3.0):
        clock[0] = t
        sampler.read_once()
    assert sampler.power_label == "USB meter log meter.csv (measured)"
    assert energy_j(sampler.snapshot()) == pytest.approx(2.0 + 3.0 + 4.0)
    sampler.close()


def test_missing_meter_log_is_a_sensor_error(tmp_path):
    with pytest.raises(SensorError, match="not found"):
        Sampler(meter_csv=tmp_path / "nope.csv")


# --- NVML (a stand-in for pynvml with the real function names and units) ----------------------


class FakeNvml:
    class NotSupported(Exception):
        pass

    Memory = collections.namedtuple("Memory", "total free used")

    def __init__(self, energy_mj=(0, 0), power_mw=(50_000, 70_000), counters=True):
        self.energy_mj = list(energy_mj)
        self.power_mw = list(power_mw)
        self.counters = counters
        self.shut = False

    def nvmlInit(self):
        pass

    def nvmlShutdown(self):
        self.shut = True

    def nvmlDeviceGetCount(self):
        return len(self.energy_mj)

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetName(self, h):
        return b"NVIDIA H100 80GB HBM3"

    def nvmlDeviceGetTotalEnergyConsumption(self, h):
        if not self.counters:
            raise self.NotSupported("Not Supported")
        return self.energy_mj[h]

    def nvmlDeviceGetPowerUsage(self, h):
        return self.power_mw[h]

    def nvmlDeviceGetMemoryInfo(self, h):
        return self.Memory(80 * 2**30, 70 * 2**30, 10 * 2**30)


def test_nvml_power_from_energy_counters():
    nvml = FakeNvml(energy_mj=(1_000, 5_000))
    source = NvmlSource(nvml, clock=lambda: 0.0)
    assert source.label == "NVML 2 GPUs board power (measured)"
    assert source.gpu_names == ["NVIDIA H100 80GB HBM3"] * 2
    nvml.energy_mj = [201_000, 105_000]  # +200 J and +100 J in 2 s
    reading = source.read(2.0)
    assert dict(reading.rails_w) == pytest.approx({"gpu0": 100.0, "gpu1": 50.0})
    assert reading.power_w == pytest.approx(150.0)
    assert reading.energy_j == pytest.approx(300.0)
    assert reading.gpu_mem_used_bytes == 2 * 10 * 2**30
    source.close()
    assert nvml.shut


def test_nvml_without_energy_counter_uses_power_usage():
    source = NvmlSource(FakeNvml(counters=False), clock=lambda: 0.0)
    reading = source.read(1.0)
    assert reading.power_w == pytest.approx(120.0)
    assert reading.energy_j is None


def test_rapl_plus_nvml_are_added_and_labelled_as_both(tmp_path):
    zones = fakesys.rapl(tmp_path, package_uj=0, dram_uj=0)
    nvml = FakeNvml(energy_mj=(0,))
    both = SumSource([RaplSource(tmp_path, clock=lambda: 0.0), NvmlSource(nvml, clock=lambda: 0.0)])
    assert both.label == "RAPL package+dram + NVML 1 GPU board power (measured)"
    fakesys.set_energy(zones["package-0"], 30_000_000)
    nvml.energy_mj = [200_000]
    reading = both.read(2.0)
    assert reading.power_w == pytest.approx(15.0 + 100.0)
    assert reading.energy_j == pytest.approx(230.0)
    assert [name for name, _ in reading.rails_w] == ["package-0", "dram-0", "gpu0"]


# --- memory --------------------------------------------------------------------------------


def test_meminfo_parse_and_memory_reader(tmp_path):
    info = parse_meminfo(fakesys.MEMINFO)
    assert info["MemTotal"] == 7999212 * 1024 and info["HugePages_Total"] == 0
    reader = MemoryReader(procfs_root=fakesys.procfs(tmp_path))
    reading = reader.read()
    assert reading.ram_used_bytes == (7999212 - 3999606) * 1024
    assert reading.gpu_shared_bytes == 262144 * 1024
    assert reading.rss_bytes > 0


def test_memory_without_meminfo_falls_back_to_psutil(tmp_path):
    used, total, gpu = MemoryReader(procfs_root=tmp_path / "absent").system_ram()
    assert 0 < used < total and gpu is None


def test_unknown_pid_is_a_sensor_error():
    with pytest.raises(SensorError, match="no process"):
        MemoryReader(pid=2**22 + 12345)


def test_nvml_can_skip_the_costly_energy_counter():
    source = NvmlSource(FakeNvml(), clock=lambda: 0.0, use_energy_counter=False)
    assert not source.uses_energy_counters
    assert source.read(1.0).power_w == pytest.approx(120.0)


def test_meter_offset_found_from_an_idle_then_burst_marker(tmp_path):
    from phytoscope.telemetry.meter import estimate_offset

    def load_at(w):  # this machine: idle, a 5 s burst from wall 110, idle again
        return 100.0 if 110.0 <= w < 115.0 else 5.0

    # the meter's clock runs 3.2 s behind: it logs local time w as w - 3.2, every 0.5 s
    log = tmp_path / "meter.csv"
    rows = [(w - 3.2, 5.0 + 0.2 * load_at(w)) for w in (100.0 + 0.5 * k for k in range(50))]
    log.write_text("time,watts\n" + "".join(f"{t:.2f},{p:.2f}\n" for t, p in rows))
    meter = MeterCsvSource(log, mono_to_wall=0.0)
    walls = [100.0 + 0.25 * k for k in range(100)]
    offset, r = estimate_offset(meter, walls, [load_at(w) for w in walls], search_s=10.0)
    assert offset == pytest.approx(3.2, abs=0.25)  # within half the meter's 0.5 s interval
    assert r > 0.95
    aligned = MeterCsvSource(log, offset_s=offset, mono_to_wall=0.0)
    assert aligned.power_at_wall(112.0) == pytest.approx(25.0)
    assert estimate_offset(meter, [0.0, 1.0], [1.0, 2.0]) is None  # no overlap at all
