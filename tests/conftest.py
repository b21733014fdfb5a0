"""Shared fixtures and the test tiers. Everything a test writes goes under tmp_path; nothing
reads ../shared.

Tiers (markers; see the README): ``gui`` (PySide6, set by tests/gui/conftest.py), ``slow``
(training, real benchmark child processes, archive process pools: marked here by path, so
a new test in those files is slow too), ``deb`` (builds the .deb), ``gpu`` (NVIDIA). The
inner loop is ``pytest -m "not slow and not gui and not deb"``: it needs neither TensorFlow
nor Qt.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from tests.data.build_tiny_models import write_tiny_model

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[1]
TINY_MODELS = DATA / "models"


SLOW_PATHS = (
    "tests/archive/",  # process pools and Ray
    "tests/bench/test_bench_run.py",  # real benchmark child processes and telemetry
    "tests/training/test_training_end_to_end.py",  # trains a MobileNetV2
)
"""Files and folders whose tests take seconds to minutes each (``slow``)."""


WHOLE_PATHS = {"slow": SLOW_PATHS, "gui": ("tests/gui/",)}
"""Paths every test of which carries the marker."""


def pytest_ignore_collect(collection_path, config):
    """With ``-m "not slow"`` (or ``"not gui"``), paths every test of which would be
    deselected are not even imported: the training tests import TensorFlow at collection,
    the GUI tests PySide6 and pyqtgraph (seconds to tens of seconds on a loaded machine)."""
    markexpr = config.getoption("markexpr") or ""
    try:
        relative = Path(collection_path).resolve().relative_to(REPO).as_posix()
    except ValueError:
        return None
    if Path(collection_path).is_dir():
        relative += "/"
    for marker, paths in WHOLE_PATHS.items():
        if re.search(rf"\bnot\s+{marker}\b", markexpr) and relative.startswith(paths):
            return True
    return None


def pytest_collection_modifyitems(config, items):
    for item in items:
        relative = Path(item.path).resolve().relative_to(REPO).as_posix()
        if relative.startswith(SLOW_PATHS):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory, monkeypatch):
    """Keep settings, caches and databases of tests out of the user's home."""
    home = tmp_path_factory.mktemp("home")
    for var, sub in (
        ("PHYTOSCOPE_DATA", "data"),
        ("PHYTOSCOPE_CACHE", "cache"),
        ("PHYTOSCOPE_CONFIG", "config"),
    ):
        monkeypatch.setenv(var, str(home / sub))


def make_tiny_model(folder: Path, classes=("Alpha", "Beta", "Gamma"), size: int = 32) -> Path:
    """A tiny but real ONNX CNN (random weights) with its card, written with ``onnx.helper``.

    Test-only, built in milliseconds without TensorFlow (``tests/data/build_tiny_models.py``):
    it exercises the backend contract on real runtimes and is never shipped or presented as a
    classifier. For the default classes use the checked-in copy (:func:`tiny_model_dir`).
    """
    write_tiny_model(folder, tuple(classes), size)
    return folder


def _copy_model(name: str, folder: Path) -> Path:
    """A private copy of a checked-in model folder (tests may rewrite cards or files)."""
    shutil.copytree(TINY_MODELS / name, folder, dirs_exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """``tiny.onnx`` (3 classes, logits only) and its Keras twin ``tiny.keras`` with the same
    weights, each with its card. Only the TensorFlow tests open the Keras file, so every
    ONNX Runtime test runs without TensorFlow installed."""
    return _copy_model("tiny", tmp_path_factory.mktemp("tiny_model"))


@pytest.fixture(scope="session")
def tiny_novelty_model_dir(tmp_path_factory) -> Path:
    """``tiny.onnx`` with a second output ``novelty`` (N,), the energy score
    ``-logsumexp(logits)``, and a card whose ``novelty`` section names it."""
    return _copy_model("tiny_novelty", tmp_path_factory.mktemp("tiny_novelty_model"))
