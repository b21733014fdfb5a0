"""INA3221 readers against fake Jetson trees (Orin Nano and AGX Orin hwmon, Nano iio), and
the pure logic of the jtop adapter."""

from __future__ import annotations

import sys
import types

import pytest

from phytoscope.errors import SensorError
from phytoscope.telemetry import NOT_READABLE, Sampler, describe_sensors, energy_j, mean_power_w
from phytoscope.telemetry.jetson import (
    Ina3221Source,
    JtopSource,
    find_rails,
    parse_jtop_power,
    parse_jtop_shared_kb,
)
from tests.telemetry import fakesys


class FakeClock:
    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_orin_nano_total_is_vdd_in_and_rails_are_listed(tmp_path):
    fakesys.orin_nano(tmp_path)
    source = Ina3221Source(tmp_path)
    assert source.label == "Jetson INA3221 VDD_IN (measured)"
    assert not source.estimated
    reading = source.read(0.0)
    # 5072 mV x 1464 mA = 7425.408 mW; the parts are reported but never added to it
    assert reading.power_w == pytest.approx(7.425408)
    rails = dict(reading.rails_w)
    assert rails == pytest.approx(
        {"VDD_IN": 7.425408, "VDD_CPU_GPU_CV": 1.541888, "VDD_SOC": 2.515712}
    )


def test_channel_7_sum_of_shunts_and_other_devices_are_skipped(tmp_path):
    fakesys.orin_nano(tmp_path)
    names = [r.name for r in find_rails(tmp_path)]
    assert names == ["VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"]
    assert all(r.device.startswith("1-0040/hwmon/hwmon3") for r in find_rails(tmp_path))


def test_agx_orin_skips_nc_and_sums_rails_without_vdd_in(tmp_path):
    fakesys.agx_orin(tmp_path)
    source = Ina3221Source(tmp_path)
    assert [r.name for r in source.rails] == [
        "VDD_GPU_SOC",
        "VDD_CPU_CV",
        "VIN_SYS_5V0",
        "VDDQ_VDD2_1V8AO",
    ]
    assert source.label.startswith("Jetson INA3221 sum of rails")
    # 7974.4 + 3987.2 + 3000.0 + 500.0 mW; the NC channels (25 W each) are not in it
    assert source.read(0.0).power_w == pytest.approx(15.4616)


def test_nano_iio_uses_pom_5v_in_and_the_driver_power(tmp_path):
    fakesys.nano(tmp_path)
    source = Ina3221Source(tmp_path)
    assert source.label == "Jetson INA3221 POM_5V_IN (measured)"
    reading = source.read(0.0)
    assert reading.power_w == pytest.approx(5.6)  # in_power0_input, not 5000 x 1120
    assert dict(reading.rails_w) == pytest.approx(
        {"POM_5V_IN": 5.6, "POM_5V_GPU": 0.4, "POM_5V_CPU": 1.2}
    )


def test_no_ina3221_raises_sensor_error(tmp_path):
    with pytest.raises(SensorError, match="no INA3221"):
        Ina3221Source(tmp_path)


def test_unreadable_rail_says_not_readable(tmp_path):
    fakesys.orin_nano(tmp_path)

    def reader(path):
        if path.name == "curr1_input":
            raise PermissionError(13, "Permission denied", str(path))
        return path.read_text()

    with pytest.raises(SensorError, match="not readable"):
        Ina3221Source(tmp_path, reader=reader)
    info = describe_sensors(tmp_path, fakesys.procfs(tmp_path / "proc"), reader=reader)
    assert info["ina3221"] == NOT_READABLE


def test_sampler_on_orin_integrates_watts_into_joules(tmp_path):
    hwmon = fakesys.orin_nano(tmp_path / "sys")
    proc = fakesys.procfs(tmp_path / "proc")
    clock = FakeClock(100.0)
    sampler = Sampler(sysfs_root=tmp_path / "sys", procfs_root=proc, clock=clock)
    assert sampler.power_label == "Jetson INA3221 VDD_IN (measured)"
    assert sampler.estimated is False
    # VDD_IN at 5000 mV: 1000 mA (5 W) at t=0 and t=1, 1400 mA (7 W) at t=2 and t=3
    for t, ma in ((100.0, 1000), (101.0, 1000), (102.0, 1400), (103.0, 1400)):
        clock.t = t
        (hwmon / "in1_input").write_text("5000\n")
        (hwmon / "curr1_input").write_text(f"{ma}\n")
        sample = sampler.read_once()
        assert sample.t == t
    samples = sampler.snapshot()
    assert [s.power_w for s in samples] == pytest.approx([5.0, 5.0, 7.0, 7.0])
    # trapezoid: 5 + (5+7)/2 + 7 = 18 J over 3 s
    assert energy_j(samples) == pytest.approx(18.0)
    assert mean_power_w(samples) == pytest.approx(6.0)
    # window [100.5, 102.5]: 0.5*5 + (5+7)/2*1 + 0.5*7 = 12 J
    assert energy_j(samples, 100.5, 102.5) == pytest.approx(12.0)
    # Jetson GPU-mapped RAM comes from NvMapMemUsed (262144 kB); used = total - available
    assert samples[0].gpu_mem_used_bytes == 262144 * 1024
    assert samples[0].ram_total_bytes == 7999212 * 1024
    assert samples[0].ram_used_bytes == (7999212 - 3999606) * 1024
    sampler.close()


def test_describe_sensors_on_orin(tmp_path):
    fakesys.orin_nano(tmp_path / "sys")
    info = describe_sensors(tmp_path / "sys", fakesys.procfs(tmp_path / "proc"))
    assert info["power source"] == "Jetson INA3221 VDD_IN (measured)"
    assert info["estimated"] is False
    assert info["ina3221"].startswith("found: Jetson INA3221 VDD_IN (measured)")
    assert info["rapl"].startswith("not found")
    assert info["jtop"].startswith("not found")
    assert "256 MiB" in info["gpu memory"]


# --- jtop: its data shapes, and the adapter against a stand-in module -----------------------

JTOP_POWER = {
    "rail": {
        "VDD_CPU_GPU_CV": {"volt": 5072, "curr": 304, "power": 1541, "avg": 1200, "online": True},
        "VDD_SOC": {"volt": 5072, "curr": 496, "power": 2515, "avg": 2000, "online": True},
    },
    "tot": {"volt": 5072, "curr": 1464, "power": 7425, "avg": 6000, "name": "VDD_IN"},
}


def test_parse_jtop_power_uses_instantaneous_power_not_avg():
    total, rails = parse_jtop_power(JTOP_POWER)
    assert total == pytest.approx(7.425)
    assert dict(rails) == pytest.approx({"VDD_CPU_GPU_CV": 1.541, "VDD_SOC": 2.515})
    assert parse_jtop_power({}) == (None, ())


def test_parse_jtop_shared_memory_kb_to_bytes():
    assert (
        parse_jtop_shared_kb({"RAM": {"tot": 7999212, "used": 3000000, "shared": 262144}})
        == 262144 * 1024
    )
    assert parse_jtop_shared_kb({}) is None


def _install_fake_jtop(monkeypatch, start_error=None):
    class FakeJtop:
        def __init__(self, interval=1.0):
            self.interval = interval
            self.power = JTOP_POWER
            self.memory = {"RAM": {"shared": 1024}}
            self.closed = False

        def start(self):
            if start_error is not None:
                raise start_error

        def close(self):
            self.closed = True

    module = types.ModuleType("jtop")
    module.jtop = FakeJtop
    monkeypatch.setitem(sys.modules, "jtop", module)


def test_jtop_source_reads_total_rails_and_shared_memory(monkeypatch):
    _install_fake_jtop(monkeypatch)
    source = JtopSource(interval_s=0.25)
    assert source.label == "jtop VDD_IN (measured)"
    reading = source.read(0.0)
    assert reading.power_w == pytest.approx(7.425)
    assert reading.gpu_mem_used_bytes == 1024 * 1024
    source.close()


def test_jtop_service_down_is_a_sensor_error(monkeypatch):
    _install_fake_jtop(monkeypatch, start_error=RuntimeError("The jtop.service is not active"))
    with pytest.raises(SensorError, match="jtop service not reachable"):
        JtopSource()
