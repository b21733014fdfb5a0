"""NVIDIA discrete-GPU board power through NVML (package nvidia-ml-py, module ``pynvml``).

Where the driver has the energy counter (``nvmlDeviceGetTotalEnergyConsumption``, mJ since
the driver loaded; Volta and later) power is ΔE/Δt from it; otherwise the driver's averaged
``nvmlDeviceGetPowerUsage`` (mW) is sampled and integrated like any instantaneous reading.
NVML does not exist on Jetson: there the INA3221 rails are the source.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable
from typing import Any

from phytoscope.errors import SensorError
from phytoscope.telemetry.base import EnergyCounter, PowerReading, PowerSource, SourceStatus


def _load_pynvml() -> Any:
    try:
        import pynvml  # type: ignore[import-not-found]
    except ImportError as exc:
        raise SensorError(
            "nvidia-ml-py is not installed (pip install 'phytoscope[nvidia]')"
        ) from exc
    return pynvml


class NvmlSource(PowerSource):
    """Sum of the board power of every NVIDIA GPU NVML sees.

    Parameters
    ----------
    nvml
        the ``pynvml`` module (injected by tests; imported lazily otherwise).
    use_energy_counter
        read ``nvmlDeviceGetTotalEnergyConsumption`` (exact energy). On an H100 that call
        costs about 4 ms of CPU (measured, results/telemetry/nvml_call_cost_h100.txt), 4 % of
        a core at 10 Hz; ``False`` reads ``nvmlDeviceGetPowerUsage`` instead (2 µs, but the
        driver averages it over about a second, so it lags every step).
    """

    name = "nvml"
    estimated = False

    def __init__(
        self,
        nvml: Any = None,
        clock: Callable[[], float] = time.monotonic,
        use_energy_counter: bool = True,
    ) -> None:
        self._nvml = nvml if nvml is not None else _load_pynvml()
        try:
            self._nvml.nvmlInit()
        except Exception as exc:  # noqa: BLE001 - pynvml.NVMLError and friends
            raise SensorError(f"NVML not available ({exc}): no NVIDIA driver here") from exc
        try:
            count = int(self._nvml.nvmlDeviceGetCount())
            if count == 0:
                raise SensorError("NVML sees no GPU")
            self._handles = [self._nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            self.gpu_names = [self._name(h, i) for i, h in enumerate(self._handles)]
            # One counter per GPU, or None where the driver has no energy counter.
            self._counters: list[EnergyCounter | None] = []
            for handle in self._handles:
                if not use_energy_counter:
                    self._counters.append(None)
                    continue
                try:
                    self._nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
                    self._counters.append(EnergyCounter(1e-3))
                except Exception:  # noqa: BLE001 - NVMLError_NotSupported before Volta
                    self._counters.append(None)
            self.read(clock())
        except SensorError:
            self._shutdown()
            raise
        except Exception as exc:  # noqa: BLE001
            self._shutdown()
            raise SensorError(f"NVML query failed: {exc}") from exc
        gpus = "1 GPU" if count == 1 else f"{count} GPUs"
        self.label = f"NVML {gpus} board power (measured)"

    def _name(self, handle: Any, index: int) -> str:
        try:
            name = self._nvml.nvmlDeviceGetName(handle)
        except Exception:  # noqa: BLE001
            return f"gpu{index}"
        return name.decode() if isinstance(name, bytes) else str(name)

    @property
    def uses_energy_counters(self) -> bool:
        return all(c is not None for c in self._counters)

    def read(self, t: float) -> PowerReading:
        rails = []
        total_w: float | None = 0.0
        mem_used = 0
        try:
            for index, (handle, counter) in enumerate(
                zip(self._handles, self._counters, strict=True)
            ):
                if counter is not None:
                    power = counter.update(
                        int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(handle)), t
                    )
                else:
                    power = self._nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0
                mem_used += int(self._nvml.nvmlDeviceGetMemoryInfo(handle).used)
                if power is None:
                    total_w = None
                else:
                    rails.append((f"gpu{index}", float(power)))
                    if total_w is not None:
                        total_w += power
        except Exception as exc:  # noqa: BLE001
            raise SensorError(f"NVML read failed: {exc}") from exc
        energy = sum(c.total_j for c in self._counters if c) if self.uses_energy_counters else None
        return PowerReading(total_w, tuple(rails), energy_j=energy, gpu_mem_used_bytes=mem_used)

    def _shutdown(self) -> None:
        try:
            self._nvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass

    def close(self) -> None:
        self._shutdown()


def probe_nvml() -> SourceStatus:
    if importlib.util.find_spec("pynvml") is None:
        return SourceStatus("nvml", "not found", "nvidia-ml-py not installed")
    try:
        source = NvmlSource()
    except SensorError as exc:
        return SourceStatus("nvml", "not found", str(exc))
    detail = f"{source.label}; {', '.join(source.gpu_names)}"
    source.close()
    return SourceStatus("nvml", "found", detail)


class SumSource(PowerSource):
    """Several measured sources added: CPU (RAPL) + discrete GPU (NVML) on a workstation.

    Inference on a discrete GPU spends energy in both: the CPU decodes and pre-processes,
    the GPU runs the network, so neither alone is the cost of the analysis. The sum is still
    a component figure (no fans, disks, PSU losses), not wall power; the label says which
    parts it covers.
    """

    name = "sum"

    def __init__(self, parts: list[PowerSource]) -> None:
        self.parts = parts
        self.estimated = any(p.estimated for p in parts)
        self.label = " + ".join(p.label.replace(" (measured)", "") for p in parts)
        self.label += " (estimated)" if self.estimated else " (measured)"

    def read(self, t: float) -> PowerReading:
        readings = [p.read(t) for p in self.parts]
        power = (
            None
            if any(r.power_w is None for r in readings)
            else sum(r.power_w or 0.0 for r in readings)
        )
        energies = [r.energy_j for r in readings]
        energy = None if any(e is None for e in energies) else sum(e or 0.0 for e in energies)
        rails = tuple(rail for r in readings for rail in r.rails_w)
        gpu = next(
            (r.gpu_mem_used_bytes for r in readings if r.gpu_mem_used_bytes is not None), None
        )
        return PowerReading(power, rails, energy_j=energy, gpu_mem_used_bytes=gpu)

    def close(self) -> None:
        for part in self.parts:
            part.close()
