"""``phytoscope gui``: the desktop application, or the same job headless.

Where there is no display (Linux without ``DISPLAY``/``WAYLAND_DISPLAY`` and no
``QT_QPA_PLATFORM``), or PySide6 is not installed, the command still does the main job:
it classifies the given paths (default: the bundled sample images) with the installed
model through the same core session as the window and ``phytoscope classify``, stores the
IFCB bins as samples and prints the per-genus counts, cells/L and the HAB alerts.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

HELP = "open the desktop analyser (without a display: classify and print counts and alerts)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths", nargs="*", metavar="PATH", help="images, folders or IFCB bins to open"
    )
    parser.add_argument(
        "--open",
        dest="open_paths",
        action="append",
        default=[],
        metavar="PATH",
        help="image, folder or IFCB bin to analyse at start (repeatable)",
    )
    parser.add_argument(
        "--screenshot",
        type=Path,
        metavar="FILE",
        help="save a PNG of the window once the opened inputs (and --run-benchmark) are "
        "done, or at --quit-after if that comes first, then close the window",
    )
    parser.add_argument(
        "--quit-after",
        type=float,
        metavar="SECONDS",
        help="close the window after at most this many seconds (threads are joined)",
    )
    parser.add_argument(
        "--tab", choices=("analysis", "benchmark"), default=None, help="page shown at start"
    )
    parser.add_argument(
        "--run-benchmark",
        action="store_true",
        help="start the benchmark page's run at once (quick settings)",
    )
    parser.add_argument(
        "--headless",
        action="store_true",
        help="do not open a window: classify and print counts and alerts",
    )


def has_display() -> bool:
    """Whether Qt can open a window here (an explicit QT_QPA_PLATFORM counts: offscreen, xcb)."""
    if os.environ.get("QT_QPA_PLATFORM"):
        return True
    if sys.platform.startswith("linux") or "bsd" in sys.platform:
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True  # Windows and macOS always have a window server


def gui_installed() -> bool:
    for name in ("PySide6", "pyqtgraph"):
        if name in sys.modules:
            if sys.modules[name] is None:  # blocked, as the layering tests do
                return False
            continue
        try:
            if importlib.util.find_spec(name) is None:
                return False
        except (ImportError, ValueError):
            return False
    return True


def default_paths() -> list[str]:
    from phytoscope.config import resources_dir

    samples = resources_dir() / "samples"
    return [str(samples)] if samples.exists() else []


def headless_request(paths: list[str]) -> Any:
    """What the window would do with ``paths``, as a classify request built from the user's
    settings (no argv round trip): the core session stores the IFCB bins as samples (their
    volume and time come from the bins) and counts the other images (their volume is unknown
    here), printing cells/L and the HAB verdict."""
    from phytoscope.commands.classify import ClassifyRequest
    from phytoscope.config import Settings
    from phytoscope.core.session import SampleSettings
    from phytoscope.errors import ConfigError

    try:
        settings = Settings.load()
    except ConfigError as exc:
        print(f"phytoscope: {exc}; using defaults", file=sys.stderr)
        settings = Settings()
    return ClassifyRequest(
        paths=list(paths),
        backend=settings.backend,
        precision=settings.precision,
        model=settings.model_dir or None,
        batch_size=settings.batch_size,
        rows=False,
        db="",
        sample=SampleSettings(),
        require_sample=False,
        rules=settings.rule_set,
        settings={"command": "gui --headless"},
    )


def run_headless(paths: list[str], note: str) -> int:
    """Classify ``paths`` through the core session and print counts, cells/L and alerts."""
    from phytoscope.commands.classify import execute

    print(f"phytoscope: {note}", file=sys.stderr)
    if not paths:
        print(
            "phytoscope: nothing to classify (no PATH given and no bundled samples found)",
            file=sys.stderr,
        )
        return 2
    return int(execute(headless_request(paths)))


def run(args: argparse.Namespace) -> int:
    paths = [*args.paths, *args.open_paths]
    if args.headless:
        return run_headless(paths or default_paths(), "running headless (--headless)")
    if not gui_installed():
        return run_headless(
            paths or default_paths(),
            "the desktop application needs PySide6 and pyqtgraph, which are not installed "
            "(pip install 'phytoscope[gui]'); classifying without a window instead",
        )
    if not has_display():
        return run_headless(
            paths or default_paths(),
            "no display found (DISPLAY/WAYLAND_DISPLAY unset); classifying without a window "
            "(QT_QPA_PLATFORM=offscreen forces the window)",
        )
    from phytoscope.gui import app  # lazily: only this command imports Qt

    return app.run(
        paths,
        screenshot=args.screenshot,
        quit_after=args.quit_after,
        run_benchmark=args.run_benchmark,
        tab=args.tab,
    )
