"""Progress people see: rich bars on a terminal, plain log lines otherwise, nothing when switched off.

The training sinks' interface is :mod:`camkit.training.progress`; :func:`progress_bar` is the one factory of
rich progress displays (training, bench and evaluation use it). Data preparation draws nothing itself:
:func:`camkit.data.cache.prepare` reports to a sink its caller passes, and :func:`prepare_sink` gives the
commands that sink (a bar made by :func:`progress_bar` on a terminal, the data layer's plain lines otherwise).
"""
from __future__ import annotations

import sys
import time
from typing import IO, TYPE_CHECKING, Any

from camkit.training.progress import LogProgress, TrainProgress, format_record

if TYPE_CHECKING:
    from camkit.data.cache import PrepareProgress


def progress_bar(stream: IO[str] | None = None, transient: bool = False) -> Any:
    """A started-or-not ``rich.progress.Progress`` with camkit's columns, drawing on ``stream`` (stderr)."""
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=Console(file=stream or sys.stderr), transient=transient)


class RichProgress(TrainProgress):
    """A rich progress bar; pass an existing ``rich.progress.Progress`` to share one display."""

    def __init__(self, progress: Any = None, description: str = "train", stream: IO[str] | None = None):
        self._own = progress is None
        if progress is None:
            progress = progress_bar(stream)
        self.progress, self.description = progress, description
        self.task: Any = None
        self.epochs = 0

    def on_train_start(self, info: dict[str, Any]) -> None:
        self.epochs = info["epochs"]
        if self._own:
            self.progress.start()
        self.task = self.progress.add_task(self.description, total=info["steps_per_epoch"], info="")

    def on_epoch_start(self, epoch: int, steps: int) -> None:
        self.progress.reset(self.task, total=steps, description=f"{self.description} {epoch}/{self.epochs}",
                            info="")

    def on_step(self, epoch: int, step: int, steps: int, loss: float, images_per_s: float) -> None:
        self.progress.update(self.task, completed=step, info=f"loss {loss:.4f}  {images_per_s:.1f} img/s")

    def on_epoch_end(self, epoch: int, record: dict[str, Any]) -> None:
        self.progress.console.print(format_record(record, self.epochs))

    def on_message(self, text: str) -> None:
        self.progress.console.print(f"{self.description}: {text}")

    def on_train_end(self, result: Any) -> None:
        if self.task is not None and not self._own:
            self.progress.remove_task(self.task)
        if self._own:
            self.progress.stop()


def auto_progress(enabled: bool, stream: IO[str] | None = None) -> TrainProgress | None:
    """A rich bar when ``stream`` (default stderr) is a terminal, log lines otherwise, None when disabled."""
    if not enabled:
        return None
    s = stream or sys.stderr
    if getattr(s, "isatty", lambda: False)():
        return RichProgress(stream=s)
    return LogProgress(stream=s)


class BenchProgress:
    """Hands ``train()`` and the evaluation loop their progress sinks, all drawn on one display."""

    def __init__(self, mode: str = "auto", stream: IO[str] | None = None, n_rows: int = 1, name: str = "bench"):
        self.stream = stream or sys.stderr
        self.name = name  # the command whose lines these are (bench, distill)
        if mode == "auto":
            mode = "rich" if getattr(self.stream, "isatty", lambda: False)() else "log"
        self.mode = mode
        self.progress: Any = None
        self.matrix: Any = None
        if mode == "rich":
            self.progress = progress_bar(self.stream)
            self.progress.start()
            self.matrix = self.progress.add_task(f"{name}: rows", total=n_rows, info="")

    def log(self, text: str) -> None:
        if self.mode == "rich":
            self.progress.console.print(text)
        elif self.mode == "log":
            self.stream.write(f"{self.name}: {text}\n")
            self.stream.flush()

    def skip(self, row: str) -> None:
        self.log(f"{row}: already scored in this run directory, skipped")
        self._advance()

    def _advance(self) -> None:
        if self.matrix is not None:
            self.progress.advance(self.matrix)

    def train_sink(self, row: str) -> Any:
        if self.mode == "rich":
            return RichProgress(self.progress, description=f"train {row}")
        if self.mode == "log":
            return LogProgress(self.stream, prefix=f"train {row}")
        return None

    def eval_sink(self, row: str) -> EvalSink:
        return EvalSink(self, row)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


#: In plain-log mode a slow evaluation logs its progress at most this often.
LOG_EVERY_S = 30.0


class EvalSink:
    """Progress of the evaluation batches of one train-cam."""

    def __init__(self, parent: BenchProgress, row: str):
        self.parent, self.row, self.task = parent, row, None
        self.inner: Any = None  # the current batch's perturbation forwards (rich only)
        self.batch = self.total = 0
        self.last_line = time.monotonic()  # when plain-log mode last said where it is

    def start(self, total: int) -> None:
        self.total, self.last_line = total, time.monotonic()
        if self.parent.mode == "rich":
            self.task = self.parent.progress.add_task(f"eval {self.row}", total=total, info="")
        else:
            self.parent.log(f"{self.row}: evaluating {total} batches")

    def step(self, n: int = 1) -> None:
        self.batch += n
        if self.task is not None:
            self.parent.progress.advance(self.task, n)
        elif self.parent.mode == "log" and time.monotonic() - self.last_line > LOG_EVERY_S:
            # slow evaluations (perturbation methods) say where they are in plain logs too
            self.last_line = time.monotonic()
            self.parent.log(f"{self.row}: evaluated {self.batch}/{self.total} batches")

    def forwards(self, done: int, total: int) -> None:
        """The perturbation methods' extra forwards within the current batch (Score-CAM, Ablation-CAM...)."""
        if self.task is None:
            return
        if self.inner is None:
            self.inner = self.parent.progress.add_task("  perturbation forwards", total=total, info="")
        self.parent.progress.update(self.inner, completed=done, total=total,
                                    info=f"batch {self.batch + 1}")

    def end(self, summary: str) -> None:
        if self.inner is not None:
            self.parent.progress.remove_task(self.inner)
        if self.task is not None:
            self.parent.progress.remove_task(self.task)
        self.parent.log(f"{self.row}: {summary}")
        self.parent._advance()


class PrepareBar:
    """A :class:`camkit.data.cache.PrepareProgress` drawn as a rich bar, one per round of images to write."""

    def __init__(self, stream: IO[str] | None = None, description: str = "prepare"):
        self.stream, self.description = stream, description
        self.progress: Any = None
        self.task: Any = None

    def start(self, total: int) -> None:
        # a fresh display per round: a round of replacements (skip_bad) draws a bar of its own
        self.progress = progress_bar(self.stream)
        self.progress.start()
        self.task = self.progress.add_task(self.description, total=total, info="")

    def step(self, n: int = 1) -> None:
        if self.progress is not None:
            self.progress.advance(self.task, n)

    def end(self, summary: str) -> None:
        if self.progress is not None:
            self.progress.update(self.task, info=summary)
            self.progress.stop()  # the finished bar stays on screen, like the plain lines would
            self.progress = None


def prepare_sink(enabled: bool, stream: IO[str] | None = None) -> PrepareProgress | None:
    """The sink ``camkit prepare`` hands :func:`camkit.data.cache.prepare`: a :class:`PrepareBar` when
    ``stream`` (default stderr) is a terminal, :class:`camkit.data.cache.LineProgress`'s plain lines otherwise
    (logs, pipes), None when disabled (``--quiet``)."""
    if not enabled:
        return None
    if getattr(stream or sys.stderr, "isatty", lambda: False)():
        return PrepareBar(stream or sys.stderr)
    from camkit.data.cache import LineProgress

    return LineProgress(stream)  # None: whatever sys.stderr is when a line is written
