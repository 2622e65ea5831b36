"""Holding Ctrl-C and SIGTERM back while a few statements run all or not at all.

Python raises KeyboardInterrupt (and camkit's SIGTERM handler :class:`camkit.cli.signals.Terminated`) from a
Python-level signal handler, which CPython runs in the main thread between any two bytecodes, also between the
Python-level calls inside ``optimizer.step()``. A training step changes the weights, Adam's moments, the grad
scaler and the step counter in several statements; an interrupt between two of them would leave a state no run
ever passed through. :class:`DeferredInterrupts` replaces the Python-level handlers of SIGINT and SIGTERM for
the duration of a ``with`` block with one that only records the signal, and on leaving the block restores them
and calls the recorded signal's own handler, so the interrupt is raised right after the block instead of inside
it. Entering and leaving are written so that a signal at any point of them is either deferred or raised, never
lost, and no recorder stays in charge after the block. Handlers that are not Python functions (the default
action, ignoring) are left alone: they raise nothing to defer.
"""
from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any, Callable

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class DeferredInterrupts:
    """``with DeferredInterrupts(): ...`` runs the block whole; a SIGINT or SIGTERM that arrives meanwhile is
    handled (its handler raises) when the block ends. Outside the main thread it does nothing: Python runs
    signal handlers in the main thread only, so nothing can interrupt another thread this way.

    Reentrant (an inner block defers to the outer one, whose recorder is the inner block's "own handler").
    A second signal during the block is dropped: the first one already stops the run after the block. Use a
    fresh instance for each block.
    """

    def __init__(self) -> None:
        self._saved: dict[int, Callable[[int, FrameType | None], Any]] = {}
        self._pending: tuple[int, FrameType | None] | None = None
        self._active = False

    def _record(self, signum: int, frame: FrameType | None) -> None:
        if self._active:
            if self._pending is None:
                self._pending = (signum, frame)
            return
        # left installed by a signal that cut the restoring in __exit__: put back the handler this one
        # replaced, and behave as it does
        handler = self._saved[signum]
        signal.signal(signum, handler)
        handler(signum, frame)

    def __enter__(self) -> DeferredInterrupts:
        if threading.current_thread() is not threading.main_thread():
            return self
        self._active = True
        try:
            for signum in _SIGNALS:
                handler = signal.getsignal(signum)
                if callable(handler):
                    self._saved[signum] = handler  # before installing: restoring an uninstalled one is harmless
                    signal.signal(signum, self._record)
        except BaseException:  # a signal that came before its recorder was in place: put everything back
            self._active = False
            self._restore()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        # restore while still recording: a signal meanwhile is either recorded (its recorder still in place) or
        # raised by its own handler (already back), never lost; whatever happens, no recorder stays active
        try:
            self._restore()
        finally:
            self._active = False
        pending, self._pending = self._pending, None
        if pending is not None:
            signum, frame = pending
            self._saved[signum](signum, frame)  # the signal's own handler: raises KeyboardInterrupt / Terminated

    def _restore(self) -> None:
        items = list(self._saved.items())
        try:
            for signum, handler in items:
                signal.signal(signum, handler)
        finally:  # once more, should a signal raised by a handler already back have cut the loop above
            for signum, handler in items:
                signal.signal(signum, handler)
