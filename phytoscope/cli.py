"""The ``phytoscope`` command: one entry point, one sub-command per job.

Each sub-command lives in ``phytoscope/commands/<name>.py`` with ``HELP``,
``configure(parser)`` and ``run(args) -> int``. Only the module of the command being run is
imported (its ``HELP`` is read from its source for the list), so ``phytoscope --help`` stays
instant although command modules import what they use at their top; optional runtimes
(ONNX Runtime, TensorFlow, TensorRT, Qt) are imported by their adapters only when used, so a
missing one only affects the command that needs it.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from phytoscope import __version__
from phytoscope.errors import (
    BackendUnavailable,
    Cancelled,
    ExitCode,
    ModelError,
    PhytoscopeError,
)

COMMANDS = (
    "gui",
    "classify",
    "report",
    "bench",
    "train",
    "learn",
    "evaluate",
    "export",
    "build-engine",
    "telemetry",
    "archive",
    "ecotaxa-import",
    "info",
)


ALL = "*"
"""``build_parser(ALL)``: configure every sub-command (tests, shell completion)."""


def _module_name(command: str) -> str:
    return "phytoscope.commands." + command.replace("-", "_")


def _command_module(command: str) -> ModuleType | None:
    """The command's module, or None when it is not part of this build."""
    try:
        return importlib.import_module(_module_name(command))
    except ModuleNotFoundError as exc:
        if exc.name != _module_name(command):
            raise
        return None


def command_help(command: str) -> str | None:
    """A command's ``HELP`` read from its module's source, without importing the module
    (and all it imports); None when the module is absent. A ``HELP`` that is not a plain
    string is read by importing the module."""
    spec = importlib.util.find_spec(_module_name(command))
    if spec is None or spec.origin is None:
        return None
    try:
        tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        tree = ast.Module(body=[], type_ignores=[])
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "HELP" for t in node.targets)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            return node.value.value
    module = _command_module(command)
    return None if module is None else str(module.HELP)


def build_parser(command: str | None = ALL) -> argparse.ArgumentParser:
    """The argument parser; only ``command``'s options are configured (``ALL``: every
    command's, None: none, for the top-level ``--help``)."""
    parser = argparse.ArgumentParser(
        prog="phytoscope",
        description="Classify plankton by genus, turn counts into cells/L and raise HAB alerts.",
    )
    parser.add_argument("--version", action="version", version=f"phytoscope {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        help_text = command_help(name)
        if help_text is None:
            continue  # command not part of this build yet
        child = sub.add_parser(name, help=help_text, description=help_text)
        if command in (ALL, name):
            module = _command_module(name)
            if module is None:
                continue
            module.configure(child)
            child.set_defaults(_module=module)
    return parser


def with_default_command(argv: Sequence[str]) -> list[str]:
    """No sub-command means the desktop application: ``phytoscope --open X`` is
    ``phytoscope gui --open X``. Global options (``-v``) stay in front of it."""
    argv = list(argv)
    if any(a in COMMANDS for a in argv) or any(a in ("-h", "--help", "--version") for a in argv):
        return argv
    lead = 0
    while lead < len(argv) and (
        argv[lead] == "--verbose" or (argv[lead].startswith("-v") and set(argv[lead][1:]) == {"v"})
    ):
        lead += 1
    return [*argv[:lead], "gui", *argv[lead:]]


def _printable_streams() -> None:
    """File names that are not valid UTF-8 (possible on Linux) print with ``\\xNN``
    escapes instead of stopping the command with UnicodeEncodeError half-way through its
    output (stdout is strict outside the C locale)."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None and getattr(stream, "errors", "") == "strict":
            reconfigure(errors="backslashreplace")


def main(argv: Sequence[str] | None = None) -> int:
    _printable_streams()
    argv = with_default_command(sys.argv[1:] if argv is None else argv)
    parser = build_parser(next((a for a in argv if a in COMMANDS), None))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=[logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)],
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args._module.run(args))
    except Cancelled as exc:
        print(f"cancelled: {exc}", file=sys.stderr)
        return ExitCode.CANCELLED
    except ModelError as exc:
        print(f"phytoscope: {exc}", file=sys.stderr)
        return ExitCode.NO_MODEL
    except BackendUnavailable as exc:
        print(f"phytoscope: {exc}", file=sys.stderr)
        return ExitCode.UNAVAILABLE
    except PhytoscopeError as exc:
        print(f"phytoscope: {exc}", file=sys.stderr)
        return ExitCode.ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return ExitCode.CANCELLED


if __name__ == "__main__":
    raise SystemExit(main())
