"""Power, memory and CPU telemetry: where the figures come from and how they are integrated.

Public interface::

    from phytoscope.telemetry import Sampler, energy_j, mean_power_w, describe_sensors

Sources, best first: jtop (Jetson, total input rail), INA3221 sysfs (hwmon / iio), RAPL
package+dram (+ NVML GPU when both exist), NVML, and last an *estimate* from CPU load x rated
power, always labelled as such. An external USB meter's CSV log can replace them all.
"""

from phytoscope.telemetry.base import NOT_READABLE, PowerReading, PowerSource, SourceStatus
from phytoscope.telemetry.discovery import SOURCE_CHOICES, describe_sensors, select_source
from phytoscope.telemetry.energy import (
    PowerSummary,
    by_phase,
    energy_j,
    integrate,
    mean_power_w,
    phase_windows,
)
from phytoscope.telemetry.estimate import DEFAULT_CPU_TDP_W, TDP_ENV
from phytoscope.telemetry.sampler import Sampler, csv_columns, idle_baseline

__all__ = [
    "DEFAULT_CPU_TDP_W",
    "NOT_READABLE",
    "SOURCE_CHOICES",
    "TDP_ENV",
    "PowerReading",
    "PowerSource",
    "PowerSummary",
    "Sampler",
    "SourceStatus",
    "by_phase",
    "csv_columns",
    "describe_sensors",
    "energy_j",
    "idle_baseline",
    "integrate",
    "mean_power_w",
    "phase_windows",
    "select_source",
]
