"""Only phytoscope.gui imports Qt: the headless packages import with PySide6 blocked."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.conftest import REPO


def run_blocked(code: str) -> subprocess.CompletedProcess:
    prelude = textwrap.dedent(
        """
        import sys
        for name in ("PySide6", "PySide6.QtCore", "PySide6.QtGui", "PySide6.QtWidgets", "pyqtgraph"):
            sys.modules[name] = None  # any import of them raises ImportError
        """
    )
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_headless_packages_import_without_qt():
    done = run_blocked(
        """
        import importlib, pkgutil
        import phytoscope
        names = []
        for package in ("core", "backends", "sources", "telemetry", "storage"):
            pkg = importlib.import_module(f"phytoscope.{package}")
            names.append(pkg.__name__)
            for info in pkgutil.walk_packages(pkg.__path__, f"{pkg.__name__}."):
                # engine adapters too: they import their runtime only when used
                names.append(importlib.import_module(info.name).__name__)
        # the gui command module and the GUI's headless parts must not pull Qt in either
        import phytoscope.cli, phytoscope.commands.gui
        import phytoscope.gui.camera, phytoscope.gui.jobs, phytoscope.gui.analysis
        import phytoscope.gui.session, phytoscope.storage.corrections
        assert not any(k.startswith(("PySide6", "pyqtgraph")) and sys.modules[k] is not None
                       for k in sys.modules), "Qt was imported"
        print(len(names), "modules")
        """
    )
    assert done.returncode == 0, done.stderr
    assert "modules" in done.stdout


def test_import_and_top_level_help_stay_cheap():
    """``import phytoscope`` and ``phytoscope --help`` import no command module and none of
    numpy, OpenCV, the engines or Qt (only the command being run is imported)."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import contextlib, io, sys
                import phytoscope
                from phytoscope.cli import main
                with contextlib.redirect_stdout(io.StringIO()) as out:
                    try:
                        main(["--help"])
                    except SystemExit:
                        pass
                assert "build-engine" in out.getvalue()
                heavy = ("numpy", "cv2", "onnx", "onnxruntime", "tensorflow", "keras", "PySide6",
                         "pyqtgraph", "tensorrt", "phytoscope.commands.", "phytoscope.backends")
                loaded = sorted(m for m in sys.modules if m.startswith(heavy))
                assert not loaded, loaded
                print("cheap")
                """
            ),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "cheap" in done.stdout


def test_nothing_outside_gui_imports_phytoscope_gui():
    offenders = []
    for path in (REPO / "phytoscope").rglob("*.py"):
        rel = path.relative_to(REPO / "phytoscope")
        if rel.parts[0] == "gui" or rel.as_posix() == "commands/gui.py":
            continue
        text = path.read_text(encoding="utf-8")
        if "phytoscope.gui" in text or "PySide6" in text or "pyqtgraph" in text:
            lines = [
                ln
                for ln in text.splitlines()
                if ("import" in ln)
                and ("phytoscope.gui" in ln or "PySide6" in ln or "pyqtgraph" in ln)
            ]
            if lines:
                offenders.append(f"{rel}: {lines}")
    assert not offenders


def test_gui_command_without_pyside_runs_headless(tmp_path):
    env_code = f"""
        import os
        os.environ.pop("DISPLAY", None); os.environ.pop("WAYLAND_DISPLAY", None)
        os.environ["PHYTOSCOPE_MODELS"] = {str(tmp_path / "none")!r}
        from phytoscope.cli import main
        raise SystemExit(main(["gui", "tests/data/images/pn_delicatissima_crop.jpg"]))
    """
    done = run_blocked(env_code)
    assert "pip install 'phytoscope[gui]'" in done.stderr
    assert "classifying without a window" in done.stderr
    assert "no model installed" in done.stderr  # the headless path ran and said why it stopped
    assert done.returncode == 4
