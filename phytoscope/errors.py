"""One exception tree whose messages a technician can act on.

Every error raised on purpose by phytoscope derives from :class:`PhytoscopeError`; the CLI
and GUI show ``str(error)`` to the user without a traceback, so messages say what went wrong
and what to do about it.
"""

from enum import IntEnum


class PhytoscopeError(Exception):
    """Base of all errors phytoscope raises deliberately."""


class ConfigError(PhytoscopeError):
    """A setting or command-line value is invalid."""


class ModelError(PhytoscopeError):
    """No model installed, or a model does not match its card (hash, shape, classes)."""


class BackendUnavailable(PhytoscopeError):
    """An inference runtime is not installed or cannot run here (names what to install)."""


class BackendError(PhytoscopeError):
    """An inference runtime failed while loading or running a model."""


class SourceError(PhytoscopeError):
    """An input (file, folder, IFCB bin, camera) cannot be read."""


class StorageError(PhytoscopeError):
    """The results store cannot be opened or written (permissions, disk full, corruption)."""


class SensorError(PhytoscopeError):
    """A telemetry sensor is missing or unreadable."""


class Cancelled(PhytoscopeError):
    """Long work was cancelled by the user; partial results already written are kept."""


class ExitCode(IntEnum):
    """Exit statuses of the ``phytoscope`` command, shared by every sub-command."""

    OK = 0
    ERROR = 1
    USAGE = 2
    PARTIAL = 3
    """the run finished but some inputs were skipped (reported on stderr)"""
    NO_MODEL = 4
    UNAVAILABLE = 5
    """a requested runtime, device or sensor is not present here"""
    CANCELLED = 130


def number_ranges(numbers: list[int]) -> str:
    """``[3, 4, 5, 9]`` -> ``"3-5, 9"``: page or ROI numbers in a message, however many."""
    numbers = sorted(numbers)
    if not numbers:
        return ""
    parts: list[str] = []
    start = prev = numbers[0]
    for n in [*numbers[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if n is not None:
            start = prev = n
    return ", ".join(parts)
