"""The first Ctrl-C asks long commands to stop at a batch boundary; the second stops at once."""

from __future__ import annotations

import io
import os
import signal

import pytest

from phytoscope.commands.progressbar import terminal_progress


def test_first_interrupt_sets_the_cancel_token_the_second_raises():
    before = signal.getsignal(signal.SIGINT)
    stream = io.StringIO()
    with terminal_progress(False, stream=stream, interrupt_cancels=True) as progress:
        os.kill(os.getpid(), signal.SIGINT)
        assert progress.cancelled
        assert "stopping at the next safe point" in stream.getvalue()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before


def test_without_the_flag_an_interrupt_is_untouched():
    with terminal_progress(False, stream=io.StringIO()) as progress:
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
        assert not progress.cancelled
