"""The one worker shell: plain functions and generators taking a Progress, run on a QThread."""

from __future__ import annotations

import threading

from phytoscope.errors import Cancelled, SourceError
from phytoscope.gui.shell import Outcome, Task, drive
from phytoscope.progress import CancelToken, Progress


def test_drive_turns_every_ending_into_an_outcome():
    assert drive(lambda p: 42, Progress()) == Outcome(value=42)

    def fails(progress):
        raise SourceError("cannot read x.png: not an image")

    assert drive(fails, Progress()) == Outcome(
        error="cannot read x.png: not an image", message="cannot read x.png: not an image"
    )
    assert drive(lambda p: 1 / 0, Progress()).error == "ZeroDivisionError: division by zero"

    def stops(progress):
        raise Cancelled("stopped after 3 items")

    assert drive(stops, Progress()) == Outcome(cancelled=True, message="stopped after 3 items")


def test_drive_drains_a_generator_and_stops_between_values():
    cancel = CancelToken()
    closed = []

    def numbers(progress):
        try:
            yield from range(10)
            return "all"
        finally:
            closed.append(True)

    seen = []
    assert drive(numbers, Progress(), seen.append) == Outcome(value="all")
    assert seen == list(range(10)) and closed == [True]

    seen.clear()

    def stop_at_three(n):
        seen.append(n)
        if n == 3:
            cancel.cancel()

    outcome = drive(numbers, Progress(cancel=cancel), stop_at_three)
    assert outcome.cancelled and seen == [0, 1, 2, 3]
    assert closed == [True, True]  # the generator's clean-up ran


def test_task_runs_off_the_gui_thread_and_reports_in_order(qtbot):
    gui = threading.get_ident()
    ran_on = []
    order = []

    def work(progress):
        ran_on.append(threading.get_ident())
        for done in range(1, 4):
            progress.update("steps", done, 3, "working")
            yield done
        return "done"

    task = Task(work, what="demo", min_interval=0.0, name="phytoscope-test-task")
    # closures as slots: queued into this (GUI) thread, never run on the worker's
    task.progress.connect(lambda event: order.append(("progress", event.done)))
    task.item.connect(lambda value: order.append(("item", value, threading.get_ident())))
    task.result.connect(lambda value: order.append(("result", value)))
    task.failed.connect(lambda message: order.append(("failed", message)))
    with qtbot.waitSignal(task.finished, timeout=10000) as blocker:
        task.start()
    task.join()
    assert not task.running
    assert ran_on and ran_on[0] != gui
    assert blocker.args[0] == Outcome(value="done") == task.outcome
    qtbot.waitUntil(lambda: ("result", "done") in order, timeout=5000)
    assert [e[:2] for e in order] == [
        ("progress", 1),
        ("item", 1),
        ("progress", 2),
        ("item", 2),
        ("progress", 3),
        ("item", 3),
        ("result", "done"),
    ]
    assert {e[2] for e in order if e[0] == "item"} == {gui}


def test_task_cancel_and_failure_are_messages(qtbot):
    started = threading.Event()

    def waits(progress):
        started.set()
        while not progress.cancel.wait(0.01):
            pass
        progress.check("stopped by the user")

    task = Task(waits, what="benchmark")
    messages = []
    task.failed.connect(messages.append)
    with qtbot.waitSignal(task.finished, timeout=10000):
        task.start()
        assert started.wait(5)
        task.cancel()
    task.join()
    qtbot.waitUntil(lambda: bool(messages), timeout=5000)
    assert messages == ["benchmark cancelled: stopped by the user"]
    assert task.outcome is not None and task.outcome.cancelled

    def broken(progress):
        raise SourceError("camera 0 is gone")

    failing = Task(broken, what="camera job")
    failing.failed.connect(messages.append)
    with qtbot.waitSignal(failing.finished, timeout=10000):
        failing.start()
    failing.join()
    qtbot.waitUntil(lambda: len(messages) == 2, timeout=5000)
    assert messages[1] == "camera job failed: camera 0 is gone"
