"""The ``phytoscope`` command: one entry point, one sub-command per job.

Each sub-command lives in ``phytoscope/commands/<name>.py`` with ``HELP``,
``configure(parser)`` and ``run(args) -> int``; those modules import heavy packages
(ONNX Runtime, TensorFlow, Qt) only inside ``run``, so ``phytoscope --help`` stays instant
and a missing optional package only affects the command that needs it.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

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
    "evaluate",
    "export",
    "build-engine",
    "telemetry",
    "archive",
    "ecotaxa-import",
    "info",
)


def _module_name(command: str) -> str:
    return "phytoscope.commands." + command.replace("-", "_")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="phytoscope",
        description="Classify plankton by genus, turn counts into cells/L and raise HAB alerts.",
    )
    parser.add_argument("--version", action="version", version=f"phytoscope {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        try:
            module = importlib.import_module(_module_name(command))
        except ModuleNotFoundError as exc:
            if exc.name != _module_name(command):
                raise
            continue  # command not part of this build yet
        child = sub.add_parser(command, help=module.HELP, description=module.HELP)
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
    parser = build_parser()
    args = parser.parse_args(with_default_command(sys.argv[1:] if argv is None else argv))
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
