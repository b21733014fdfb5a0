"""Integration of power over time: trapezoid, counters, windows, phases, estimate flags."""

from __future__ import annotations

import pytest

from phytoscope.telemetry import by_phase, energy_j, integrate, mean_power_w, phase_windows
from phytoscope.types import TelemetrySample


def sample(t, power, energy=None, estimated=False, source="test (measured)"):
    return TelemetrySample(
        t=t,
        wall=1e9 + t,
        power_w=power,
        power_source=source,
        estimated=estimated,
        rss_bytes=0,
        ram_used_bytes=0,
        ram_total_bytes=1,
        cpu_percent=0.0,
        energy_j=energy,
    )


def test_trapezoid_on_a_ramp_is_exact():
    # 0 W rising to 10 W over 2 s, then flat for 1 s: 10 J + 10 J
    samples = [sample(0, 0.0), sample(1, 5.0), sample(2, 10.0), sample(3, 10.0)]
    assert energy_j(samples) == pytest.approx(20.0)
    assert mean_power_w(samples) == pytest.approx(20.0 / 3)


def test_uneven_spacing_is_weighted_by_time_not_by_count():
    # 2 W for 9 s sampled once, 20 W for 1 s sampled ten times: mean is 3.8 W, not ~18 W
    samples = [sample(0, 2.0), sample(9, 2.0)] + [sample(9 + i / 10, 20.0) for i in range(1, 11)]
    summary = integrate(samples)
    # the step from 2 W to 20 W between t=9 and 9.1 is a ramp: 1.1 J there
    assert summary.energy_j == pytest.approx(18.0 + 1.1 + 18.0)
    assert summary.duration_s == pytest.approx(10.0)


def test_window_interpolates_at_both_ends():
    samples = [sample(0, 0.0), sample(4, 8.0)]  # P(t) = 2t
    assert energy_j(samples, 1.0, 3.0) == pytest.approx(8.0)  # ∫1..3 2t dt = 9 - 1
    assert mean_power_w(samples, 1.0, 3.0) == pytest.approx(4.0)
    # a window reaching past the samples is clipped to what they cover
    summary = integrate(samples, -5.0, 2.0)
    assert (summary.t0, summary.t1, summary.energy_j) == (0.0, 2.0, pytest.approx(4.0))


def test_counters_win_over_trapezoid_when_every_sample_has_them():
    samples = [
        sample(0, None, 0.0),
        sample(1, 10.0, 10.0),
        sample(2, 30.0, 40.0),
        sample(4, 10.0, 60.0),
    ]
    summary = integrate(samples)
    assert summary.method == "energy counters"
    assert summary.energy_j == pytest.approx(60.0)
    assert energy_j(samples, 0.5, 1.5) == pytest.approx(5.0 + 15.0)


def test_mixed_samples_fall_back_to_trapezoid():
    samples = [sample(0, 4.0, 0.0), sample(1, 4.0), sample(2, 4.0, 8.0)]
    summary = integrate(samples)
    assert summary.method == "trapezoid"
    assert summary.energy_j == pytest.approx(8.0)


def test_too_few_samples_give_none_not_zero():
    assert energy_j([]) is None
    assert energy_j([sample(0, 5.0)]) is None
    assert mean_power_w([sample(0, None), sample(1, None)]) is None
    assert integrate([sample(0, 1.0), sample(1, 1.0)], 5.0, 6.0) is None


def test_estimate_flag_travels_into_the_summary():
    est = "estimated: CPU load x 15 W"
    summary = integrate(
        [sample(0, 7.5, estimated=True, source=est), sample(2, 7.5, estimated=True, source=est)]
    )
    assert summary.estimated is True
    assert summary.source == est
    assert "estimated" in summary.text()
    assert "measured" not in summary.text()


def test_phases_split_at_marks():
    samples = [sample(t, p) for t, p in ((0, 2.0), (1, 2.0), (2, 6.0), (3, 6.0), (4, 6.0))]
    marks = [(0.0, "load"), (2.0, "warmup"), (3.0, "inference")]
    assert phase_windows(marks, 4.0) == [
        ("load", 0.0, 2.0),
        ("warmup", 2.0, 3.0),
        ("inference", 3.0, 4.0),
    ]
    phases = by_phase(samples, marks)
    assert phases["load"].energy_j == pytest.approx(2.0 + 4.0)  # 2 W, then the ramp to 6 W
    assert phases["warmup"].mean_w == pytest.approx(6.0)
    assert phases["inference"].energy_j == pytest.approx(6.0)


def test_counter_not_yet_refreshed_is_no_information_not_zero_watts():
    from phytoscope.telemetry.base import EnergyCounter

    counter = EnergyCounter(1e-3)  # mJ, like NVML
    assert counter.update(1_000, 0.0) is None
    assert counter.update(1_000, 0.005) is None  # 5 ms later, not refreshed: not 0 W
    assert counter.update(8_000, 0.100) == pytest.approx(70.0)  # 7 J over the 0.1 s since t=0
    assert counter.update(8_000, 0.105) == pytest.approx(70.0)  # held, baseline kept at 0.1
    assert counter.update(15_000, 0.200) == pytest.approx(70.0)
    assert counter.update(15_000, 1.300) == 0.0  # unchanged for over a second: really 0 W
    assert counter.total_j == pytest.approx(14.0)
