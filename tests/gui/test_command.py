"""``phytoscope gui`` as a user runs it: the window driven headless, and no display at all."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO

from .conftest import DATA


def run_cli(args, env_extra, tmp_path, drop=("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")):
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-m", "phytoscope", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_window_opens_analyses_and_saves_a_screenshot(tmp_path, hab_model_dir, artefacts):
    shot = artefacts / "cli_main_window.png"
    done = run_cli(
        [
            "-v",
            "gui",
            "--open",
            str(DATA / "ifcb"),
            "--screenshot",
            str(shot),
            "--quit-after",
            "120",
        ],
        {"QT_QPA_PLATFORM": "offscreen", "PHYTOSCOPE_MODELS": str(hab_model_dir)},
        tmp_path,
        drop=("DISPLAY", "WAYLAND_DISPLAY"),
    )
    assert done.returncode == 0, done.stderr
    assert "organisms classified" in done.stderr and "screenshot written" in done.stderr
    assert shot.stat().st_size > 10_000
    from PySide6.QtGui import QGuiApplication, QImage

    # no fixed size: the window fits the available screen (offscreen here, as in the run)
    QGuiApplication.instance() or QGuiApplication([])
    available = QGuiApplication.primaryScreen().availableGeometry()
    image = QImage(str(shot))
    assert 0 < image.width() <= available.width() and 0 < image.height() <= available.height()


def test_without_a_display_it_classifies_and_prints_counts_and_alerts(tmp_path, hab_model_dir):
    done = run_cli(
        ["gui", "--open", str(DATA / "ifcb"), "--open", str(DATA / "images")],
        {"PHYTOSCOPE_MODELS": str(hab_model_dir)},
        tmp_path,
    )
    assert "no display found" in done.stderr
    # the bins: counts, cells/L and the rule set's verdict; the images: counts
    assert "IFCB134" in done.stdout and "mL analysed" in done.stdout
    assert "scotland_habreports" in done.stdout
    assert "not monitored by this model" in done.stdout
    assert str(DATA / "images") in done.stdout
    assert "corrupt.png" in done.stderr  # the bad file is reported
    assert done.returncode == 3  # PARTIAL: one input skipped
