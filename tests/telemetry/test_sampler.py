"""The sampler's thread, ring buffer, phase marks, CSV log, and the command line."""

from __future__ import annotations

import csv
import threading
import time

import pytest

from phytoscope import cli
from phytoscope.errors import ConfigError, ExitCode
from phytoscope.telemetry import Sampler, csv_columns, idle_baseline
from phytoscope.telemetry.base import PowerReading, PowerSource
from tests.telemetry import fakesys


class ConstantSource(PowerSource):
    """A stand-in source at a fixed power, so thread tests check plumbing, not sensors."""

    name = "constant"
    label = "constant 4 W (measured)"

    def __init__(self, watts=4.0):
        self.watts = watts
        self.closed = False

    def read(self, t):
        return PowerReading(self.watts, (("rail", self.watts),))

    def close(self):
        self.closed = True


def wait_until(condition, limit=20.0):
    """Poll (not a timing assertion): generous limit for a loaded shared machine."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def test_thread_samples_calls_back_on_its_own_thread_and_stops(tmp_path):
    sampler = Sampler(rate_hz=50, source=ConstantSource(), procfs_root=fakesys.procfs(tmp_path))
    seen, threads = [], set()

    def on_sample(s):
        seen.append(s)
        threads.add(threading.current_thread().name)

    sampler.on_sample = on_sample
    sampler.start()
    sampler.start()  # idempotent
    wait_until(lambda: len(seen) >= 3)
    sampler.stop()
    assert not sampler.running
    count = len(sampler.snapshot())
    time.sleep(0.1)
    assert len(sampler.snapshot()) == count  # stopped means stopped
    assert threads == {"phytoscope-telemetry"}
    ts = [s.t for s in sampler.snapshot()]
    assert ts == sorted(ts) and len(set(ts)) == len(ts)
    assert sampler.own_cpu_s >= 0.0
    sampler.close()
    assert sampler.source.closed


def test_a_failing_callback_does_not_kill_the_thread(tmp_path, caplog):
    sampler = Sampler(rate_hz=50, source=ConstantSource(), procfs_root=fakesys.procfs(tmp_path))
    calls = []

    def bad(s):
        calls.append(s)
        raise RuntimeError("slot blew up")

    sampler.on_sample = bad
    with sampler:
        wait_until(lambda: len(calls) >= 2)
    assert "slot blew up" in caplog.text


def test_ring_buffer_keeps_the_newest(tmp_path):
    sampler = Sampler(capacity=3, source=ConstantSource(), procfs_root=fakesys.procfs(tmp_path))
    taken = [sampler.read_once() for _ in range(5)]
    assert sampler.snapshot() == taken[-3:]
    assert sampler.latest() is taken[-1]


def test_marks_and_csv_log(tmp_path):
    log = tmp_path / "logs" / "run.csv"
    clock = [10.0]
    sampler = Sampler(
        csv_path=log,
        source=ConstantSource(),
        procfs_root=fakesys.procfs(tmp_path),
        clock=lambda: clock[0],
    )
    sampler.read_once()
    clock[0] = 11.0
    assert sampler.mark("warm-up") == 11.0
    sampler.read_once()
    clock[0] = 12.0
    sampler.mark("inference")
    sampler.read_once()
    assert sampler.marks() == [(11.0, "warm-up"), (12.0, "inference")]
    summary = sampler.summary(11.0, 12.0)
    assert summary.energy_j == pytest.approx(4.0) and not summary.estimated
    sampler.close()
    with log.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == csv_columns(estimated=False)
    assert [(r["kind"], r["phase"]) for r in rows] == [
        ("sample", ""),
        ("mark", "warm-up"),
        ("sample", "warm-up"),
        ("mark", "inference"),
        ("sample", "inference"),
    ]
    assert rows[2]["power_w"] == "4.0000" and rows[2]["estimated"] == "measured"
    assert rows[2]["rails_w"] == "rail=4.0000"
    # appending to the same log again keeps one header
    again = Sampler(csv_path=log, source=ConstantSource(), procfs_root=fakesys.procfs(tmp_path))
    again.read_once()
    again.close()
    assert log.read_text().count("kind,") == 1


def test_csv_with_other_columns_is_refused(tmp_path):
    log = tmp_path / "other.csv"
    log.write_text("a,b\n1,2\n")
    sampler = Sampler(csv_path=log, source=ConstantSource(), procfs_root=fakesys.procfs(tmp_path))
    with pytest.raises(ConfigError, match="other columns"):
        sampler.start()
    sampler.close()


def test_bad_rate_is_refused():
    with pytest.raises(ConfigError, match="between 0.1 and 100 Hz"):
        Sampler(rate_hz=0)


def test_idle_baseline_on_a_running_sampler(tmp_path):
    sampler = Sampler(rate_hz=50, source=ConstantSource(3.0), procfs_root=fakesys.procfs(tmp_path))
    sampler.start()
    summary = idle_baseline(0.2, sampler=sampler)
    assert sampler.running  # left running as found
    sampler.close()
    assert summary.mean_w == pytest.approx(3.0)
    assert [name for _, name in sampler.marks()] == ["idle"]


def test_idle_baseline_with_its_own_sampler(tmp_path):
    summary = idle_baseline(
        0.1, source=ConstantSource(2.0), rate_hz=5, procfs_root=fakesys.procfs(tmp_path)
    )
    assert summary.mean_w == pytest.approx(2.0)


# --- command line --------------------------------------------------------------------------


def test_cli_telemetry_on_fake_orin(tmp_path, capsys):
    fakesys.orin_nano(tmp_path / "sys")
    log = tmp_path / "run.csv"
    code = cli.main(
        [
            "telemetry",
            "--seconds",
            "0.2",
            "--rate",
            "20",
            "--csv",
            str(log),
            "--sysfs-root",
            str(tmp_path / "sys"),
            "--procfs-root",
            str(fakesys.procfs(tmp_path / "proc")),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "power source: Jetson INA3221 VDD_IN (measured)" in out
    assert "7.425 W (measured)" in out
    assert "RAM  50.0 %" in out  # (7999212 - 3999606) / 7999212
    assert "GPU mem 256.0 MiB" in out
    assert "mean power: 7.425 W (measured" in out
    assert "estimated" not in out
    assert log.exists()


def test_cli_telemetry_estimated_without_sensors(tmp_path, capsys):
    code = cli.main(
        [
            "telemetry",
            "--seconds",
            "0.2",
            "--rate",
            "20",
            "--cpu-tdp",
            "10",
            "--sysfs-root",
            str(tmp_path / "empty"),
            "--quiet",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "power source: estimated: CPU load x 10 W" in out
    assert "ESTIMATED" in out
    assert "rapl: not found" in out
    assert ("(estimated)" in out) or ("energy: -" in out)


def test_cli_named_source_missing_is_unavailable(tmp_path, capsys):
    code = cli.main(
        ["telemetry", "--seconds", "0.1", "--source", "rapl", "--sysfs-root", str(tmp_path)]
    )
    assert code == ExitCode.UNAVAILABLE
    assert "no RAPL zone" in capsys.readouterr().err


def test_info_has_the_telemetry_section():
    from phytoscope.commands import info

    section = info.collect()["telemetry"]
    assert isinstance(section, dict)
    assert {"power source", "estimated", "rapl", "ina3221", "estimate"} <= set(section)


def test_cli_telemetry_with_a_meter_log_on_this_clock(tmp_path, capsys):
    now = time.time()
    log = tmp_path / "meter.csv"
    log.write_text("time,watts\n" + "".join(f"{now + k:.3f},3.3\n" for k in range(-5, 30)))
    code = cli.main(
        [
            "telemetry",
            "--seconds",
            "0.2",
            "--rate",
            "20",
            "--meter-csv",
            str(log),
            "--procfs-root",
            str(fakesys.procfs(tmp_path / "proc")),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "power source: USB meter log meter.csv (measured)" in out
    assert "mean power: 3.300 W (measured" in out
    # shifted 1000 s away the log no longer covers the run: no power, not a guess
    code = cli.main(
        [
            "telemetry",
            "--seconds",
            "0.1",
            "--rate",
            "20",
            "--meter-csv",
            str(log),
            "--meter-offset",
            "1000",
            "--quiet",
        ]
    )
    assert code == 0
    assert "energy: - (fewer than two samples with power)" in capsys.readouterr().out


def test_cli_align_meter_says_when_the_marker_did_not_show(tmp_path, capsys):
    # a meter logging a flat 3.3 W: nothing correlates with the CPU burst
    now = time.time()
    log = tmp_path / "flat.csv"
    log.write_text("time,watts\n" + "".join(f"{now + k / 2:.3f},3.3\n" for k in range(-20, 60)))
    code = cli.main(
        ["telemetry", "--meter-csv", str(log), "--align-meter", "--marker-seconds", "0.5"]
    )
    out = capsys.readouterr().out
    assert code == ExitCode.PARTIAL
    assert "do not trust it" in out


def test_cli_align_meter_needs_a_meter(capsys):
    assert cli.main(["telemetry", "--align-meter"]) == ExitCode.ERROR
    assert "--meter-csv" in capsys.readouterr().err
