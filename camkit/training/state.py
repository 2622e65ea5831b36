"""The resumable state of a training run: counters, records, RNG, and the snapshot Ctrl-C saves.

Everything a checkpoint restores besides the weights and the optimizer lives in one :class:`TrainState`
that turns itself into a checkpoint's fields and back, so no field is copied by hand anywhere else.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, fields
from typing import Any


def _sums() -> dict[str, float]:
    return {"loss": 0.0, "micro": 0.0, "images": 0.0, "seconds": 0.0}


def _totals() -> dict[str, float]:
    return {"train_seconds": 0.0, "train_images": 0.0, "wall_seconds": 0.0}


@dataclass
class TrainState:
    """Counters and records of a run (all JSON-able). ``epoch`` counts completed epochs."""

    epoch: int = 0
    epoch_step: int = 0  # optimizer steps done in the current epoch
    step: int = 0  # optimizer steps done in total
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=lambda: {"epoch": None, "val_auc": None})
    sums: dict[str, float] = field(default_factory=_sums)  # running sums of the current epoch
    parts: dict[str, float] = field(default_factory=dict)  # running sums of the loss parts
    totals: dict[str, float] = field(default_factory=_totals)  # over every session of the run
    model_train_state: dict[str, Any] | None = None  # the model's Python-side state (train_state())

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(asdict(self))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainState:
        names = {f.name for f in fields(cls)}
        return cls(**copy.deepcopy({k: v for k, v in d.items() if k in names}))

    def copy(self) -> TrainState:
        return TrainState.from_dict(self.to_dict())

    def record_micro_batch(self, loss: float, parts: dict[str, Any]) -> None:
        self.sums["loss"] += loss
        self.sums["micro"] += 1
        for k, v in (parts or {}).items():
            self.parts[k] = self.parts.get(k, 0.0) + float(v)

    def record_step(self, images: int, seconds: float) -> None:
        self.epoch_step += 1
        self.step += 1
        self.sums["images"] += images
        self.sums["seconds"] += seconds
        self.totals["train_images"] += images
        self.totals["train_seconds"] += seconds

    def close_epoch(self, val_auc: float | None, lr: float) -> dict[str, Any]:
        """Append the finished epoch's record to the history, update ``best``; returns the record."""
        import math

        number = self.epoch + 1
        micro = max(self.sums["micro"], 1.0)
        record = {"epoch": number, "step": self.step, "loss": self.sums["loss"] / micro,
                  "parts": {k: v / micro for k, v in self.parts.items()},
                  "images_per_s": self.sums["images"] / max(self.sums["seconds"], 1e-9),
                  "train_seconds": self.sums["seconds"], "lr": lr, "val_auc": val_auc, "is_best": False}
        if val_auc is not None and math.isfinite(val_auc) and (self.best["val_auc"] is None
                                                              or val_auc > self.best["val_auc"]):
            self.best = {"epoch": number, "val_auc": val_auc}
            record["is_best"] = True
        self.history.append(record)
        self.epoch, self.epoch_step = number, 0
        self.sums, self.parts = _sums(), {}
        return record


@dataclass
class Snapshot:
    """A point the run can resume from exactly: taken after every optimizer step and every epoch end.

    ``buffers`` holds the model's buffers (BatchNorm running statistics and ``num_batches_tracked``) at that
    point: a forward interrupted by Ctrl-C has already updated them, and saving the live ones would make the
    resumed run differ from an uninterrupted one. Parameters, the optimizer and the grad scaler are not copied:
    they change only inside the loop's transactions (``_Loop._transaction``), which end by taking a snapshot.
    """

    state: TrainState
    rng: dict[str, Any]
    buffers: dict[str, Any]

    @classmethod
    def take(cls, state: TrainState, rng: dict[str, Any], model: Any) -> Snapshot:
        return cls(state.copy(), rng, {name: b.detach().clone() for name, b in model.named_buffers()})

    def model_state(self, model: Any) -> dict[str, Any]:
        """The model's state dict with the buffers of this snapshot (parameters are the live ones)."""
        state = model.state_dict()
        for name, value in self.buffers.items():
            if name in state:
                state[name] = value
        return state
