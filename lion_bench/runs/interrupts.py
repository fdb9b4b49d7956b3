"""Ctrl-C (SIGINT) and SIGTERM: what a signal does at each moment of a command, so that an interrupt
never saves a half-updated model and never ends in a traceback.

    immediate  (setup, between trials)    the signal raises Interrupted where the program is
    deferred   (the training loop)        the first signal is only noted: the loop sees ``requested()``
                                          between two steps, saves a checkpoint at that step and stops;
                                          a second signal before then raises Interrupted at once (the
                                          step it cuts is not saved)
    stopping   (acting on a stop)         signals are noted, nothing is raised, so the checkpoint, the
                                          record and the one-line message are written whole; a third
                                          signal ends the process where it is, quietly (as SIGKILL
                                          would: the resume point is the last checkpoint written)
    finished   (the last line is printed) a signal ends the process at once, quietly: no "Exception
                                          ignored in atexit callback" during interpreter shutdown

The handler only changes this state or raises; it never does I/O beyond flushing before an exit.
``install`` (the command line) puts it on both signals for the whole command; ``deferred`` puts it
there for the loop alone when the trainer runs without the command line (a library call, a test).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Any, Iterator

from lion_bench.runs.errors import Interrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM)
IMMEDIATE, DEFERRED, STOPPING, FINISHED = "immediate", "deferred", "stopping", "finished"
# Signals, counted from the first, after which a stopping process exits where it is.
SIGNALS_TO_FORCE = 3


class _State:
    def __init__(self) -> None:
        self.mode = IMMEDIATE
        self.count = 0  # signals received since install()
        self.pending: int | None = None  # the signal of a stop noted and not yet acted on
        self.exit_status: int | None = None


_state = _State()


def _exit_quietly(status: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed or broken stream: exit all the same
            pass
    os._exit(status)


def _handle(signum: int, frame: Any) -> None:
    _state.count += 1
    if _state.mode == FINISHED:
        _exit_quietly(_state.exit_status if _state.exit_status is not None else 128 + signum)
    if _state.mode == STOPPING:
        if _state.count >= SIGNALS_TO_FORCE:
            _exit_quietly(128 + (_state.pending or signum))
        return
    if _state.mode == DEFERRED and _state.pending is None:
        _state.pending = signum
        return
    _state.pending = _state.pending or signum
    _state.mode = STOPPING
    raise Interrupted(signum)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def install() -> None:
    """Handle SIGINT and SIGTERM as this module says, from now on in this process (main thread only)."""
    _state.__init__()
    if _in_main_thread():
        for signum in SIGNALS:
            signal.signal(signum, _handle)


def requested() -> int | None:
    """The signal of a stop asked for inside ``deferred`` and not yet acted on, or None."""
    return _state.pending


def stopping() -> None:
    """The process is acting on a stop: from now on signals are only noted (see the module docstring)."""
    _state.mode = STOPPING


def finished(exit_status: int) -> None:
    """The command has said its last line: a signal from now on exits with ``exit_status`` at once."""
    _state.exit_status = exit_status
    _state.mode = FINISHED


@contextmanager
def deferred() -> Iterator[None]:
    """Within: the first signal is noted for the caller to act on between steps (``requested``)."""
    installed = []
    if _in_main_thread():
        for signum in SIGNALS:
            if signal.getsignal(signum) is not _handle:
                installed.append((signum, signal.signal(signum, _handle)))
    if installed:  # not under install(): this state is the loop's alone
        _state.__init__()
    previous, _state.mode = _state.mode, DEFERRED
    try:
        yield
    finally:
        if _state.mode == DEFERRED:
            _state.mode = previous
            _state.pending = None
        for signum, handler in installed:
            signal.signal(signum, handler)


__all__ = ["deferred", "finished", "install", "requested", "stopping"]
