"""One contract for long work: progress reports out, cancellation in.

Every long job (classify, train, learn, bench, build-engine, archive) is a plain function
that takes one :class:`Progress` and calls ``progress.update(...)`` as it goes and
``progress.check()`` where stopping is safe. The command line renders the updates as a
terminal progress bar (:mod:`phytoscope.commands.progressbar`, tqdm) and turns Ctrl-C
into a cancel; the window's single worker shell turns them into queued Qt signals and its
Cancel button into :meth:`CancelToken.cancel`. The work itself never knows which front end
drives it, so it is unit-tested without threads or terminals (DESIGN section 4).

This module sits at the bottom of the layer graph (beside :mod:`phytoscope.types`) because
backends (TensorRT engine builds) report progress too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from phytoscope.errors import Cancelled

__all__ = ["CancelToken", "Progress", "ProgressEvent", "ProgressCallback"]


@dataclass(frozen=True)
class ProgressEvent:
    """One report of long work, immutable so it can cross thread boundaries as it is.

    ``stage`` names the step a user would recognise ("features", "classify", "build");
    ``total`` is ``None`` when the amount of work is not known in advance (a segmented
    frame holds any number of organisms); ``metrics`` carries numbers worth showing
    (loss, organisms/s).
    """

    stage: str
    done: int
    total: int | None = None
    message: str = ""
    metrics: Mapping[str, float] = field(default_factory=dict)

    @property
    def fraction(self) -> float | None:
        """``done / total`` in 0..1, or None when the total is unknown."""
        if not self.total:
            return None
        return min(1.0, max(0.0, self.done / self.total))


ProgressCallback = Callable[[ProgressEvent], None]


class CancelToken:
    """A thread-safe "please stop" flag, set by the user and polled by the work.

    It also answers ``is_set()`` (like :class:`threading.Event`) and can be called
    (``token()`` is True once cancelled), so code that polls either style works with it.
    """

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    set = cancel  # Event-style name, used by Qt jobs

    def is_set(self) -> bool:
        return self._event.is_set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def __call__(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep up to ``timeout`` s, waking early when cancelled; True if cancelled."""
        return self._event.wait(timeout)


class Progress:
    """What long work receives: where to report progress and how to learn of a cancel.

    Parameters
    ----------
    callback
        Receives every :class:`ProgressEvent` that passes the rate limit (None: reports
        are dropped, as in tests and library use).
    cancel
        The token a front end sets to stop the work (None: never cancelled).
    min_interval
        Seconds between two delivered reports of the same stage; the first and the last
        (``done == total``) report of a stage always pass. A GUI thread must never drown
        in messages, and a terminal bar need not redraw per image.
    """

    def __init__(
        self,
        callback: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        min_interval: float = 0.0,
    ) -> None:
        self.callback = callback
        self.cancel = cancel if cancel is not None else CancelToken()
        self.min_interval = min_interval
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def update(
        self,
        stage: str,
        done: int,
        total: int | None = None,
        message: str = "",
        **metrics: float,
    ) -> None:
        """Report ``done`` of ``total`` units of ``stage`` (thread-safe, rate-limited)."""
        if self.callback is None:
            return
        now = time.monotonic()
        final = total is not None and done >= total
        with self._lock:
            last = self._last.get(stage)
            if last is not None and not final and now - last < self.min_interval:
                return
            self._last[stage] = now
        self.callback(ProgressEvent(stage, int(done), total, message, dict(metrics)))

    @property
    def cancelled(self) -> bool:
        return self.cancel.is_set()

    def check(self, message: str = "cancelled") -> None:
        """Raise :class:`~phytoscope.errors.Cancelled` if the user asked to stop.

        Call it only where stopping keeps everything already produced (after a batch is
        written, between epochs), so "cancelled" never means "lost".
        """
        if self.cancel.is_set():
            raise Cancelled(message)

    @classmethod
    def of(cls, progress: Progress | None) -> Progress:
        """``progress`` itself, or a silent one that is never cancelled."""
        return progress if progress is not None else cls()

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        state: dict[str, Any] = {"cancelled": self.cancelled, "min_interval": self.min_interval}
        return f"Progress({state})"
