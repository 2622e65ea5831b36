"""Fault injection for the training loop: a Ctrl-C at the k-th line boundary of one training step.

Test-only, and nothing in camkit knows about it: :class:`LineInterrupter` watches the run through
``sys.settrace`` (so the production code carries no hooks) and counts the *line* events of the Python frames
whose file lies under ``roots`` (camkit's training loop by default) and not under ``exclude``. Its window is
one step cycle: it opens when ``train()`` reports step ``window`` through the progress sink's ``on_step`` (0:
at the start) and closes at the next ``on_step``, so it covers the rest of that step's bookkeeping (a periodic
checkpoint, an epoch's end with validation), the next step's forward, backward, optimizer update and its
recording. With ``at=None`` it only counts (``count`` is then the number of boundaries); with ``at=k`` it
interrupts before the k-th line of the window runs, in one of two ways:

- ``how="signal"``: delivers a real signal (SIGINT, or ``signum``) to the process at that point. The signal's
  handler runs as it would for a Ctrl-C arriving between two statements: the default one raises
  KeyboardInterrupt there; one the loop installed to defer interrupts records it instead.
- ``how="raise"``: raises KeyboardInterrupt directly from the trace function, bypassing any handler: an
  interrupt nothing can defer (the worst case; the loop must still leave a consistent ``last.pt``).

A line event comes before the line runs; a statement that spans several bytecodes is interrupted only at its
start (CPython runs Python-level signal handlers between bytecodes, which line events approximate).
"""
from __future__ import annotations

import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import camkit

TRAINING = str(Path(camkit.__file__).resolve().parent / "training")


class LineInterrupter:
    """A progress sink and a trace function: interrupts the run at line event ``at`` of window ``window``."""

    def __init__(self, window: int, at: int | None = None, how: str = "signal", *, signum: int = signal.SIGINT,
                 roots: tuple[str, ...] = (TRAINING,), exclude: tuple[str, ...] = ()):
        if how not in ("signal", "raise"):
            raise ValueError(how)
        self.window, self.at, self.how, self.signum = window, at, how, signum
        self.roots, self.exclude = roots, exclude
        self.steps_seen = 0
        self.count = 0  # line events seen inside the window so far
        self.fired_at: str | None = None  # "file:line (function)" where the interrupt went in

    # -- the progress sink ----------------------------------------------------------------------------------------
    def on_step(self, epoch: int, step: int, steps: int, loss: float, images_per_s: float) -> None:
        self.steps_seen += 1

    # -- the tracer -----------------------------------------------------------------------------------------------
    def run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, progress=self, **kwargs)`` under this tracer (the previous tracer is restored)."""
        previous = sys.gettrace()
        sys.settrace(self._on_call)
        try:
            return fn(*args, progress=self, **kwargs)
        finally:
            sys.settrace(previous)

    def _on_call(self, frame: FrameType, event: str, arg: Any) -> Any:
        # a new frame: trace its lines only when its code lies under one of the roots (and not under exclude)
        name = frame.f_code.co_filename
        return self._on_line if name.startswith(self.roots) and not name.startswith(self.exclude) else None

    def _on_line(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event != "line" or self.fired_at is not None or self.steps_seen != self.window:
            return self._on_line
        if self.count == self.at:
            code = frame.f_code
            self.fired_at = f"{Path(code.co_filename).name}:{frame.f_lineno} ({code.co_name})"
            if self.how == "raise":
                raise KeyboardInterrupt(f"injected at {self.fired_at}")
            signal.raise_signal(self.signum)  # the handler runs here, before this line
        self.count += 1
        return self._on_line
