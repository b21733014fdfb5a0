"""Terminal progress for every long command, drawn by tqdm from :mod:`phytoscope.progress`.

The work reports :class:`~phytoscope.progress.ProgressEvent` values; this module turns
them into one tqdm bar per stage on stderr (a new stage closes the previous bar), so
``classify``, ``archive``, ``train``, ``learn``, ``bench`` and ``build-engine`` look and
behave alike. Bars are drawn only when stderr is a terminal, unless asked otherwise, so
piped output and logs stay clean.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from tqdm import tqdm

from phytoscope.progress import CancelToken, Progress, ProgressEvent


class TerminalBars:
    """A :data:`~phytoscope.progress.ProgressCallback` drawing tqdm bars, one per stage.

    Thread-safe: engine lanes and decoding threads may report at once.
    """

    def __init__(self, stream: TextIO | None = None, units: dict[str, str] | None = None):
        self.stream = stream or sys.stderr
        self.units = units or {}
        self._bar: tqdm | None = None
        self._stage: str | None = None
        self._lock = threading.Lock()

    def __call__(self, event: ProgressEvent) -> None:
        with self._lock:
            bar = self._bar
            if bar is None or event.stage != self._stage:
                self._close()
                self._stage = event.stage
                bar = self._bar = tqdm(
                    total=event.total,
                    desc=event.stage,
                    unit=" " + self.units.get(event.stage, "items"),
                    file=self.stream,
                    dynamic_ncols=True,
                    leave=True,
                )
            if event.total is not None and bar.total != event.total:
                bar.total = max(event.total, event.done)
            bar.n = event.done
            postfix = {k: _short(v) for k, v in event.metrics.items()}
            if event.message:
                postfix["note"] = event.message
            bar.set_postfix(postfix, refresh=False)
            bar.refresh()

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def close(self) -> None:
        with self._lock:
            self._close()
            self._stage = None


def _short(value: float) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


@contextmanager
def terminal_progress(
    enabled: bool | None = None,
    units: dict[str, str] | None = None,
    cancel: CancelToken | None = None,
    stream: TextIO | None = None,
    interrupt_cancels: bool = False,
) -> Iterator[Progress]:
    """A :class:`~phytoscope.progress.Progress` for a command, with bars when wanted.

    ``enabled`` None means "when stderr is a terminal" (``--progress/--no-progress``
    force it). Bars are redrawn at most ten times a second and closed on exit, also when
    the work fails or is interrupted, so the error message starts on a clean line.

    ``interrupt_cancels``: the first Ctrl-C sets the cancel token, so the work stops at
    the next batch boundary (a batch is then either stored *and* written to the output,
    or neither); a second Ctrl-C interrupts at once.
    """
    stream = stream or sys.stderr
    draw = stream.isatty() if enabled is None else enabled
    bars = TerminalBars(stream, units) if draw else None
    progress = Progress(bars, cancel=cancel, min_interval=0.1)
    try:
        with _interrupt_sets(progress.cancel, stream, interrupt_cancels):
            yield progress
    finally:
        if bars is not None:
            bars.close()


@contextmanager
def _interrupt_sets(token: CancelToken, stream: TextIO, wanted: bool) -> Iterator[None]:
    """While inside, SIGINT sets ``token`` once, then behaves as usual (main thread only)."""
    if not wanted or threading.current_thread() is not threading.main_thread():
        yield
        return

    def first(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        token.cancel()
        print(
            "\nphytoscope: stopping at the next safe point (Ctrl-C again to stop at once)",
            file=stream,
            flush=True,
        )

    previous = signal.signal(signal.SIGINT, first)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def add_progress_option(parser: argparse.ArgumentParser, bars: str = "progress bar") -> None:
    """``--progress/--no-progress``, the same for every long command."""
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"{bars} on stderr (default: when stderr is a terminal)",
    )
