"""SIGTERM handled as Ctrl-C: a scheduler's stop (Slurm's, before it kills a job) ends a command as an
interrupt does, with the shell's exit code for the signal."""
from __future__ import annotations

import os
import signal
import threading
from typing import Any


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's stop, Slurm's before it kills a job), handled as Ctrl-C: the run records itself
    interrupted, its temporary files go, and the command exits 143 saying how to resume."""


def exit_code(exc: KeyboardInterrupt) -> int:
    """The shell's code for the signal that stopped a command: 143 for SIGTERM, 130 for Ctrl-C."""
    return 143 if isinstance(exc, Terminated) else 130


def terminate_like_ctrl_c() -> Any:
    """Make SIGTERM raise :class:`Terminated` in this process (main thread only); returns the handler it
    replaced, or None where none could be set. DataLoader workers forked meanwhile keep the default action."""
    if threading.current_thread() is not threading.main_thread():
        return None
    owner = os.getpid()

    def on_sigterm(signum: int, frame: Any) -> None:
        if os.getpid() != owner:  # a forked worker: die as SIGTERM says
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        raise Terminated()

    return signal.signal(signal.SIGTERM, on_sigterm)
