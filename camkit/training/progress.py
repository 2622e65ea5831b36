"""Training progress sinks: what ``train()`` calls, and the plain log-line sink it uses by default.

``train()`` calls these methods on rank 0 only; any object with some of them works (missing ones are
skipped), so a caller such as ``camkit bench`` can drive one shared display (rich bars live in
:mod:`camkit.ui.progress`)::

    on_train_start(info: dict)        # epochs, steps_per_epoch, start_epoch, start_step, world_size, out_dir
    on_epoch_start(epoch: int, steps: int)            # epoch counts from 1
    on_step(epoch: int, step: int, steps: int, loss: float, images_per_s: float)
    on_epoch_end(epoch: int, record: dict)            # the history record (loss, val_auc, best, ...)
    on_train_end(result)                              # the TrainResult
    on_message(text: str)                             # a one-off note (e.g. validation skipped)
    on_step_detail(detail: dict)                      # step, epoch, loss, parts (each loss term), lr, images_per_s
    on_epoch_model(epoch: int, model)                 # after on_epoch_end: the model (trackers draw CAM overlays)

:class:`Tee` sends every event to several sinks (a display and a tracker).
"""
from __future__ import annotations

import sys
import time
from typing import IO, Any


class TrainProgress:
    """A progress sink that ignores everything; subclass it and override what you need."""

    def on_train_start(self, info: dict[str, Any]) -> None: ...
    def on_epoch_start(self, epoch: int, steps: int) -> None: ...
    def on_step(self, epoch: int, step: int, steps: int, loss: float, images_per_s: float) -> None: ...
    def on_epoch_end(self, epoch: int, record: dict[str, Any]) -> None: ...
    def on_train_end(self, result: Any) -> None: ...
    def on_message(self, text: str) -> None: ...


class Tee:
    """A sink that forwards every event to each of ``sinks`` that has the method (None entries are skipped)."""

    def __init__(self, *sinks: Any):
        self.sinks = [s for s in sinks if s is not None]

    def __getattr__(self, method: str) -> Any:
        if method.startswith("__") or not any(hasattr(s, method) for s in self.sinks):
            raise AttributeError(method)
        return lambda *args: [notify(s, method, *args) for s in self.sinks] and None


def notify(sink: Any, method: str, *args: Any) -> None:
    """Call ``sink.method(*args)`` when the sink has it."""
    fn = getattr(sink, method, None) if sink is not None else None
    if fn is not None:
        fn(*args)


def format_record(record: dict[str, Any], epochs: int) -> str:
    """One log line for an epoch's history record."""
    parts = [f"epoch {record['epoch']}/{epochs}", f"loss {record['loss']:.4f}"]
    parts += [f"{k} {v:.4f}" for k, v in record.get("parts", {}).items() if k != "loss"]
    parts.append(f"{record.get('images_per_s', 0.0):.1f} img/s")
    if record.get("val_auc") is not None:
        parts.append(f"val_auc {record['val_auc']:.4f}" + (" (best)" if record.get("is_best") else ""))
    return "  ".join(parts)


class LogProgress(TrainProgress):
    """Plain lines (for logs and pipes): one per epoch, plus one every ``interval`` seconds within an epoch."""

    def __init__(self, stream: IO[str] | None = None, interval: float = 30.0, prefix: str = "train"):
        self.stream, self.interval, self.prefix = stream, interval, prefix
        self.epochs = 0
        self._last = 0.0

    def _write(self, text: str) -> None:
        stream = self.stream or sys.stderr
        stream.write(f"{self.prefix}: {text}\n")
        stream.flush()

    def on_train_start(self, info: dict[str, Any]) -> None:
        self.epochs = info["epochs"]
        start = f", resuming at epoch {info['start_epoch']} step {info['start_step']}" if info.get("resumed") else ""
        self._write(f"{info['epochs']} epochs x {info['steps_per_epoch']} steps, global batch "
                    f"{info['global_batch']}, {info['world_size']} process(es) on {info['device']}{start}")

    def on_epoch_start(self, epoch: int, steps: int) -> None:
        self._last = time.monotonic()

    def on_step(self, epoch: int, step: int, steps: int, loss: float, images_per_s: float) -> None:
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._write(f"epoch {epoch}/{self.epochs} step {step}/{steps}  loss {loss:.4f}  "
                        f"{images_per_s:.1f} img/s")

    def on_epoch_end(self, epoch: int, record: dict[str, Any]) -> None:
        self._write(format_record(record, self.epochs))

    def on_message(self, text: str) -> None:
        self._write(text)
