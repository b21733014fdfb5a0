"""RAPL powercap reader against a fake tree laid out like a real Intel machine."""

from __future__ import annotations

import os

import pytest

from phytoscope.errors import SensorError
from phytoscope.telemetry import NOT_READABLE, Sampler, describe_sensors, energy_j, integrate
from phytoscope.telemetry.rapl import RaplSource, find_zones
from tests.telemetry import fakesys


class FakeClock:
    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_zones_are_packages_and_dram_only(tmp_path):
    fakesys.rapl(tmp_path)
    zones = find_zones(tmp_path)
    assert [(z.zone_id, z.name, z.rail_name) for z in zones] == [
        ("intel-rapl:0", "package-0", "package-0"),
        ("intel-rapl:0:2", "dram", "dram-0"),
    ]  # core/uncore are inside the package; psys would count it twice


def test_power_is_energy_difference_over_time(tmp_path):
    zones = fakesys.rapl(tmp_path, package_uj=1_000_000, dram_uj=100_000)
    clock = FakeClock(10.0)
    source = RaplSource(tmp_path, clock=clock)  # primes the counters at t=10
    assert source.label == "RAPL package+dram (measured)"
    fakesys.set_energy(zones["package-0"], 21_000_000)  # +20 J
    fakesys.set_energy(zones["dram"], 2_100_000)  # +2 J
    reading = source.read(12.0)
    assert reading.power_w == pytest.approx(11.0)  # 22 J / 2 s
    assert dict(reading.rails_w) == pytest.approx({"package-0": 10.0, "dram-0": 1.0})
    assert reading.energy_j == pytest.approx(22.0)


def test_counter_wrap_adds_max_energy_range(tmp_path):
    zones = fakesys.rapl(tmp_path, package_uj=fakesys.RAPL_MAX - 5_000_000, dram_uj=0)
    source = RaplSource(tmp_path, clock=FakeClock(0.0))
    fakesys.set_energy(zones["package-0"], 5_000_000)  # wrapped: 5 J before, 5 J after
    fakesys.set_energy(zones["dram"], 1_000_000)
    reading = source.read(1.0)
    assert dict(reading.rails_w)["package-0"] == pytest.approx(10.0)
    assert reading.power_w == pytest.approx(11.0)
    assert reading.energy_j == pytest.approx(11.0)


def test_sampler_energy_comes_from_counters(tmp_path):
    zones = fakesys.rapl(tmp_path / "sys", package_uj=0, dram_uj=0)
    clock = FakeClock(50.0)
    sampler = Sampler(
        sysfs_root=tmp_path / "sys", procfs_root=fakesys.procfs(tmp_path / "proc"), clock=clock
    )
    assert sampler.power_label == "RAPL package+dram (measured)"
    assert not sampler.estimated
    # package: 10 W for 1 s, then 30 W for 1 s, then 10 W for 2 s; dram 0
    for t, uj in ((50.0, 0), (51.0, 10_000_000), (52.0, 40_000_000), (54.0, 60_000_000)):
        clock.t = t
        fakesys.set_energy(zones["package-0"], uj)
        sampler.read_once()
    samples = sampler.snapshot()
    # the first read comes at the instant the counters were primed: no interval, no power
    assert samples[0].power_w is None and samples[0].energy_j == 0.0
    assert [s.power_w for s in samples[1:]] == pytest.approx([10.0, 30.0, 10.0])
    assert [s.energy_j for s in samples] == pytest.approx([0.0, 10.0, 40.0, 60.0])
    summary = integrate(samples)
    assert summary.method == "energy counters"
    assert summary.energy_j == pytest.approx(60.0)  # exact, not trapezoid (which gives 70)
    assert summary.mean_w == pytest.approx(15.0)
    assert summary.estimated is False
    # [51.5, 53]: half of the 30 W second (15 J) + half of the 20 J interval (10 J)
    assert energy_j(samples, 51.5, 53.0) == pytest.approx(25.0)
    sampler.close()


def _denied_energy(path):
    # Tests run as root, where chmod 000 does not stop a read: this reader raises what a
    # normal user gets from energy_uj on a kernel with the 2020 side-channel fix.
    if path.name == "energy_uj":
        raise PermissionError(13, "Permission denied", str(path))
    return path.read_text()


def test_unreadable_energy_is_not_readable_never_zero_watts(tmp_path):
    fakesys.rapl(tmp_path / "sys")
    with pytest.raises(SensorError, match="needs root or a udev rule"):
        RaplSource(tmp_path / "sys", reader=_denied_energy)
    proc = fakesys.procfs(tmp_path / "proc")
    info = describe_sensors(tmp_path / "sys", proc, reader=_denied_energy)
    assert info["rapl"] == NOT_READABLE
    assert info["estimated"] is True
    sampler = Sampler(sysfs_root=tmp_path / "sys", procfs_root=proc, reader=_denied_energy)
    assert sampler.estimated and sampler.power_label.startswith("estimated")
    rapl_status = next(s for s in sampler.source_statuses if s.name == "rapl")
    assert rapl_status.state == "not readable"
    sampler.close()


@pytest.mark.skipif(
    os.geteuid() == 0, reason="root reads chmod 000 files; covered by the reader hook test"
)
def test_unreadable_energy_with_real_permissions(tmp_path):
    zones = fakesys.rapl(tmp_path)
    for zone in zones.values():
        (zone / "energy_uj").chmod(0)
    with pytest.raises(SensorError, match="needs root or a udev rule"):
        RaplSource(tmp_path)


def test_no_powercap_is_not_found(tmp_path):
    with pytest.raises(SensorError, match="no RAPL zone"):
        RaplSource(tmp_path)
