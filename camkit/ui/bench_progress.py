"""One progress display for a whole bench: a bar per stage on a terminal, log lines otherwise, or nothing."""
from __future__ import annotations

import sys
from typing import IO, Any

from camkit.ui.progress import LogProgress, RichProgress


class BenchProgress:
    """Hands ``train()`` and the evaluation loop their progress sinks, all drawn on one display."""

    def __init__(self, mode: str = "auto", stream: IO[str] | None = None, n_train_cams: int = 1):
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "rich" if getattr(self.stream, "isatty", lambda: False)() else "log"
        self.mode = mode
        self.progress: Any = None
        self.matrix: Any = None
        if mode == "rich":
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                                     TimeRemainingColumn(), console=Console(file=self.stream))
            self.progress.start()
            self.matrix = self.progress.add_task("bench: train-cams", total=n_train_cams, info="")

    @classmethod
    def auto(cls, n_train_cams: int) -> BenchProgress:
        return cls("auto", n_train_cams=n_train_cams)

    def log(self, text: str) -> None:
        if self.mode == "rich":
            self.progress.console.print(text)
        elif self.mode == "log":
            self.stream.write(f"bench: {text}\n")
            self.stream.flush()

    def skip(self, train_cam: str) -> None:
        self.log(f"{train_cam}: already scored in this run directory, skipped")
        self._advance()

    def _advance(self) -> None:
        if self.matrix is not None:
            self.progress.advance(self.matrix)

    def train_sink(self, train_cam: str) -> Any:
        if self.mode == "rich":
            return RichProgress(self.progress, description=f"train {train_cam}")
        if self.mode == "log":
            return LogProgress(self.stream, prefix=f"train {train_cam}")
        return None

    def eval_sink(self, train_cam: str) -> EvalSink:
        return EvalSink(self, train_cam)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


class EvalSink:
    """Progress of the evaluation batches of one train-cam."""

    def __init__(self, parent: BenchProgress, train_cam: str):
        self.parent, self.train_cam, self.task = parent, train_cam, None

    def start(self, total: int) -> None:
        if self.parent.mode == "rich":
            self.task = self.parent.progress.add_task(f"eval {self.train_cam}", total=total, info="")
        else:
            self.parent.log(f"{self.train_cam}: evaluating {total} batches")

    def step(self, n: int = 1) -> None:
        if self.task is not None:
            self.parent.progress.advance(self.task, n)

    def end(self, summary: str) -> None:
        if self.task is not None:
            self.parent.progress.remove_task(self.task)
        self.parent.log(f"{self.train_cam}: {summary}")
        self.parent._advance()
