"""Fake /sys and /proc trees laid out like the real ones (see the layouts in the docstrings).

Real sysfs reaches devices through symlinks (``/sys/bus/i2c/devices/1-0040`` ->
``../../../devices/platform/.../i2c-1/1-0040``; ``/sys/class/powercap/intel-rapl:0`` ->
``../../devices/virtual/powercap/intel-rapl/intel-rapl:0``), so these trees do the same.
"""

from __future__ import annotations

import os
from pathlib import Path


def _write(path: Path, value: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{value}\n")
    return path


def _link(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(os.path.relpath(target, link.parent))


def i2c_device(sysfs: Path, bus_addr: str, name: str, controller: str) -> Path:
    """A device under /sys/devices/platform/<controller>/i2c-N/<bus-addr>, linked from
    /sys/bus/i2c/devices/<bus-addr>, with its ``name`` file."""
    bus = bus_addr.split("-")[0]
    real = sysfs / "devices" / "platform" / controller / f"i2c-{bus}" / bus_addr
    _write(real / "name", name)
    _link(sysfs / "bus" / "i2c" / "devices" / bus_addr, real)
    return real


def hwmon_channel(hwmon: Path, k: int, label: str, mv: int, ma: int) -> None:
    """One INA3221 channel as the JetPack 5/6 hwmon driver shows it."""
    _write(hwmon / f"in{k}_label", label)
    _write(hwmon / f"in{k}_input", mv)
    _write(hwmon / f"curr{k}_input", ma)
    _write(hwmon / f"curr{k}_max", 32760)
    _write(hwmon / f"curr{k}_crit", 32760)
    _write(hwmon / f"curr{k}_max_alarm", 0)
    _write(hwmon / f"curr{k}_crit_alarm", 0)


def _sum_of_shunts(hwmon: Path) -> None:
    # channels 4-6 are shunt voltages (no label); 7 is their sum and must be skipped
    for k in (4, 5, 6):
        _write(hwmon / f"in{k}_input", 12)
    _write(hwmon / "in7_label", "sum of shunt voltages")
    _write(hwmon / "in7_input", 36)
    _write(hwmon / "curr7_input", 999)  # would be counted if channel 7 were not skipped


def orin_nano(sysfs: Path, vdd_in=(5072, 1464), cpu_gpu_cv=(5072, 304), soc=(5072, 496)) -> Path:
    """Jetson Orin Nano / Orin NX, JetPack 5/6: one INA3221 at 1-0040 with VDD_IN (the
    module's input, the total), VDD_CPU_GPU_CV and VDD_SOC; channel 7 = sum of shunts.
    A temperature sensor on the same bus must be ignored."""
    dev = i2c_device(sysfs, "1-0040", "ina3221", "bus@0/c240000.i2c")
    hwmon = dev / "hwmon" / "hwmon3"
    _write(hwmon / "name", "ina3221")
    hwmon_channel(hwmon, 1, "VDD_IN", *vdd_in)
    hwmon_channel(hwmon, 2, "VDD_CPU_GPU_CV", *cpu_gpu_cv)
    hwmon_channel(hwmon, 3, "VDD_SOC", *soc)
    _sum_of_shunts(hwmon)
    other = i2c_device(sysfs, "1-004c", "tmp451", "bus@0/c240000.i2c")
    _write(other / "hwmon" / "hwmon1" / "temp1_input", 45000)
    return hwmon


def agx_orin(sysfs: Path) -> tuple[Path, Path]:
    """Jetson AGX Orin, JetPack 5/6: two INA3221 (1-0040, 1-0041), no VDD_IN rail; 1-0041
    has two channels labelled NC (not connected)."""
    dev0 = i2c_device(sysfs, "1-0040", "ina3221", "bus@0/c240000.i2c")
    h0 = dev0 / "hwmon" / "hwmon1"
    hwmon_channel(h0, 1, "VDD_GPU_SOC", 19936, 400)  # 7974.4 mW
    hwmon_channel(h0, 2, "VDD_CPU_CV", 19936, 200)  # 3987.2 mW
    hwmon_channel(h0, 3, "VIN_SYS_5V0", 5000, 600)  # 3000.0 mW
    _sum_of_shunts(h0)
    dev1 = i2c_device(sysfs, "1-0041", "ina3221", "bus@0/c240000.i2c")
    h1 = dev1 / "hwmon" / "hwmon2"
    hwmon_channel(h1, 1, "NC", 5000, 5000)
    hwmon_channel(h1, 2, "VDDQ_VDD2_1V8AO", 5000, 100)  # 500.0 mW
    hwmon_channel(h1, 3, "NC", 5000, 5000)
    _sum_of_shunts(h1)
    return h0, h1


def nano(sysfs: Path, in_mw=(5000, 1120, 5600), gpu=(5000, 80, 400), cpu=(5000, 240, 1200)) -> Path:
    """Jetson Nano, JetPack 4: INA3221 at 6-0040 through the iio driver; rails POM_5V_IN
    (the total), POM_5V_GPU, POM_5V_CPU; values as (mV, mA, mW)."""
    dev = i2c_device(sysfs, "6-0040", "ina3221x", "7000c400.i2c")
    iio = dev / "iio:device0"
    for k, (name, (mv, ma, mw)) in enumerate(
        (("POM_5V_IN", in_mw), ("POM_5V_GPU", gpu), ("POM_5V_CPU", cpu))
    ):
        _write(iio / f"rail_name_{k}", name)
        _write(iio / f"in_voltage{k}_input", mv)
        _write(iio / f"in_current{k}_input", ma)
        _write(iio / f"in_power{k}_input", mw)
        _write(iio / f"warn_current_limit_{k}", 32760)
        _write(iio / f"crit_current_limit_{k}", 32760)
    _write(iio / "name", "ina3221x")
    return iio


RAPL_MAX = 262143328850
"""max_energy_range_uj of a real Intel package zone"""


def rapl(sysfs: Path, package_uj: int = 0, dram_uj: int = 0, psys: bool = True) -> dict[str, Path]:
    """Intel RAPL through powercap: package-0 with sub-zones core, uncore, dram; a psys zone
    (whole platform, left out); the flat links in /sys/class/powercap as on a real system."""
    virt = sysfs / "devices" / "virtual" / "powercap" / "intel-rapl"
    cls = sysfs / "class" / "powercap"
    _write(virt / "enabled", 1)
    _link(cls / "intel-rapl", virt)
    pkg = virt / "intel-rapl:0"
    zones = {
        "package-0": pkg,
        "core": pkg / "intel-rapl:0:0",
        "uncore": pkg / "intel-rapl:0:1",
        "dram": pkg / "intel-rapl:0:2",
    }
    if psys:
        zones["psys"] = virt / "intel-rapl:1"
    values = {
        "package-0": package_uj,
        "core": package_uj // 2,
        "uncore": package_uj // 10,
        "dram": dram_uj,
        "psys": package_uj * 2,
    }
    for name, path in zones.items():
        _write(path / "name", name)
        _write(path / "energy_uj", values[name])
        _write(path / "max_energy_range_uj", RAPL_MAX if name != "dram" else 65712999613)
        _write(path / "constraint_0_name", "long_term")
        _write(path / "enabled", 1)
        _link(cls / path.name, path)
    return zones


def set_energy(zone: Path, microjoules: int) -> None:
    _write(zone / "energy_uj", microjoules)


MEMINFO = """MemTotal:        7999212 kB
MemFree:          512000 kB
MemAvailable:    3999606 kB
Buffers:           40000 kB
Cached:          2000000 kB
SwapTotal:       3999604 kB
SwapFree:        3999604 kB
NvMapMemUsed:     262144 kB
HugePages_Total:       0
"""


def procfs(root: Path, meminfo: str = MEMINFO) -> Path:
    _write(root / "meminfo", meminfo.rstrip("\n"))
    return root
