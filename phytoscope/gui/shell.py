"""The one Qt worker shell: long work off the GUI thread, spoken to by queued signals only.

Long work is written once, without Qt, as a plain function taking the one progress/cancel
contract (:class:`phytoscope.progress.Progress`): it reports with ``progress.update(...)``,
stops at ``progress.check()`` and returns its result, or is a generator whose values are
results as they come (superqt's and napari's generator workers, Orange3's
``run(data, state)``). The command line calls the same functions with a terminal bar.

- :func:`drive` runs such work to its end on the current thread and turns every way it can
  end into an :class:`Outcome` (value, cancelled, or an error message for the user).
- :class:`Task` runs one piece of work on its own QThread and tells the GUI thread by
  signals: ``progress`` (each :class:`~phytoscope.progress.ProgressEvent`), ``item`` (each
  value a generator yields), ``result`` (the return value), ``failed`` (a message, also when
  cancelled) and, always last, ``finished`` (the :class:`Outcome`). Its Cancel is the
  work's :class:`~phytoscope.progress.CancelToken`; :meth:`Task.join` waits for it.
- :class:`WorkerThread` hosts a long-lived worker object that must keep its resources on
  one thread (the inference worker's backend and CUDA context); it runs its jobs through
  :func:`drive` too.

The Task's signal object lives in the thread that made it (the GUI thread) while the work
runs in another, so every connected slot — a widget's method or a closure — is queued into
the GUI thread, never run on the worker's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal

from phytoscope.errors import Cancelled, PhytoscopeError
from phytoscope.progress import CancelToken, Progress

log = logging.getLogger(__name__)

Work = Callable[[Progress], Any]
"""Long work: takes the progress/cancel contract, returns a value or yields values."""


def describe_error(exc: BaseException) -> str:
    """A message for the user: ours are written for technicians, others get their type."""
    if isinstance(exc, PhytoscopeError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "out of memory: close other programs or choose a smaller batch size in Settings"
    if isinstance(exc, OSError) and exc.errno == 28:
        return f"the disk is full: {exc}"
    return f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class Outcome:
    """How a piece of work ended: its value, a cancel, or an error message (never two)."""

    value: Any = None
    cancelled: bool = False
    error: str | None = None
    message: str = ""
    """why it was cancelled (the work's own words), or the error message"""

    @property
    def ok(self) -> bool:
        return not self.cancelled and self.error is None


def drive(
    work: Work,
    progress: Progress,
    on_item: Callable[[Any], None] | None = None,
    what: str = "task",
) -> Outcome:
    """Run ``work(progress)`` to its end on this thread.

    A generator is drained, each value handed to ``on_item`` as it comes, and the cancel
    token is checked between values; its return value (``StopIteration.value``) is the
    outcome's value. :class:`~phytoscope.errors.Cancelled` (or a cancel seen between
    values) gives a cancelled outcome; any other exception an error outcome whose message
    the user can act on (the traceback goes to the log), so nothing escapes into Qt.
    """
    try:
        value = work(progress)
        if isinstance(value, Iterator):
            value = _drain(value, progress, on_item)
    except Cancelled as exc:
        return Outcome(cancelled=True, message=str(exc) or "cancelled")
    except Exception as exc:  # noqa: BLE001 - every failure becomes a message, never a crash
        log.exception("%s failed", what)
        message = describe_error(exc)
        return Outcome(error=message, message=message)
    return Outcome(value=value)


def _drain(values: Iterator[Any], progress: Progress, on_item: Callable[[Any], None] | None) -> Any:
    try:
        while True:
            progress.check()
            try:
                item = next(values)
            except StopIteration as stop:
                return stop.value
            if on_item is not None:
                on_item(item)
    finally:
        close = getattr(values, "close", None)
        if callable(close):  # a generator's own clean-up (threads, files) runs now
            close()


class Task(QObject):
    """One piece of long work on its own QThread (see the module docstring).

    Parameters
    ----------
    work
        The function to run (takes a :class:`~phytoscope.progress.Progress`).
    what
        What it is, in the user's words: "benchmark" gives "benchmark failed: …" and
        "benchmark cancelled: …" on ``failed``.
    cancel
        The token that stops it (default: a new one; :meth:`cancel` sets it).
    min_interval
        Seconds between two progress reports of one stage (the GUI must not drown).
    name
        The thread's name (shown by ``threads_running`` and debuggers).
    """

    progress = Signal(object)  # ProgressEvent, or whatever the work reports
    item = Signal(object)  # each value of a generator
    result = Signal(object)  # the return value, when the work ended normally
    failed = Signal(str)  # "<what> failed: …" or "<what> cancelled: …"
    finished = Signal(object)  # Outcome, always last

    def __init__(
        self,
        work: Work,
        what: str = "task",
        cancel: CancelToken | None = None,
        min_interval: float = 0.1,
        name: str = "phytoscope-task",
    ):
        super().__init__()
        self.work = work
        self.what = what
        self.name = name
        self.token = cancel if cancel is not None else CancelToken()
        self.min_interval = min_interval
        self.outcome: Outcome | None = None
        self._thread: _TaskThread | None = None

    def start(self) -> Task:
        """Start the work on a new thread; connect the signals first."""
        if self._thread is not None:
            raise RuntimeError(f"{self.name} was already started")
        self._thread = _TaskThread(self)
        self._thread.setObjectName(self.name)
        self._thread.start()
        return self

    def cancel(self) -> None:
        self.token.cancel()

    def join(self, cancel: bool = False) -> None:
        """Wait until the work has ended (``cancel``: ask it to stop first)."""
        if cancel:
            self.cancel()
        if self._thread is not None:
            self._thread.wait()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.isRunning()

    def _run(self) -> None:
        """The worker thread's body: every signal is emitted from there, received here."""
        progress = Progress(self.progress.emit, self.token, self.min_interval)
        outcome = drive(self.work, progress, self.item.emit, self.what)
        self.outcome = outcome
        if outcome.cancelled:
            self.failed.emit(f"{self.what} cancelled: {outcome.message}")
        elif outcome.error is not None:
            self.failed.emit(f"{self.what} failed: {outcome.error}")
        else:
            self.result.emit(outcome.value)
        self.finished.emit(outcome)


class _TaskThread(QThread):
    def __init__(self, task: Task):
        super().__init__()
        self._task = task

    def run(self) -> None:  # noqa: D102 - QThread's entry point, on the new thread
        self._task._run()


class WorkerThread:
    """A long-lived QThread hosting one worker object.

    ``stop()`` asks the worker to release what it holds on its own thread (its ``shutdown``
    slot ends with ``thread.quit()``) and joins the thread.
    """

    def __init__(self, worker: QObject, name: str):
        self.worker = worker
        self.thread = QThread()
        self.thread.setObjectName(name)
        worker.moveToThread(self.thread)
        self.thread.start()

    def stop(self, shutdown_signal: Any | None = None) -> None:
        if not self.thread.isRunning():
            return
        if shutdown_signal is not None:
            shutdown_signal.emit()  # queued: runs after the job in progress returns
        else:
            self.thread.quit()
        self.thread.wait()

    @property
    def running(self) -> bool:
        return self.thread.isRunning()


def quit_own_thread(worker: QObject) -> None:
    """End the event loop of the thread ``worker`` lives on (from a ``shutdown`` slot)."""
    thread = worker.thread()
    if thread is not None:
        thread.quit()
