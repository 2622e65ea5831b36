"""A training run's recipe (:class:`TrainConfig`), what it produced (:class:`TrainResult`), and its fingerprint:
everything that decides the trained weights, hashed, so a checkpoint is resumed or reused only by the same run.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from camkit.errors import OptionError
from camkit.training.device import AMP_MODES

LR_SCHEDULES = ("constant", "cosine")


def scheduled_lr(lr: float, schedule: str, progress: float) -> float:
    """The learning rate of the optimizer step taken at ``progress`` (steps done / all steps) in [0, 1)."""
    if schedule == "cosine":
        return lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    return lr


# Fields that change what training produces; the others (paths, logging, workers, test stops) do not.
UNHASHED = {"out_dir", "resume", "progress", "num_workers", "max_steps", "checkpoint_every", "device",
            "val_batch_size", "accumulate", "find_unused_parameters"}


@dataclass
class TrainConfig:
    """Options of one training run; ``batch_size`` is the micro-batch one process feeds per forward.

    One optimizer step sees ``batch_size x accumulate x world_size`` images (the global batch).
    ``lr`` None takes ``model.config["lr"]``, else 1e-3. ``amp`` "auto" means bf16 on CUDA and off on the CPU;
    ``channels_last`` None means on for CUDA (see :mod:`camkit.training.device`). ``crop_scale``: side length
    of the random crop as a fraction of the image (the window is then resized back to the input size).
    ``max_steps`` stops after that many optimizer steps in total (a resumable stop, for tests and smoke runs);
    ``checkpoint_every`` also writes ``last.pt`` every that many steps within an epoch (0: only at epoch ends
    and on Ctrl-C). ``progress``: plain log lines on stderr when no progress object is given.
    ``lr_schedule``: ``"constant"``, or ``"cosine"`` (``lr * (1 + cos(pi * progress)) / 2`` at each optimizer
    step, ``progress`` = steps done / all steps: a short run ends with small, careful steps).
    """

    epochs: int = 10
    batch_size: int = 6
    lr: float | None = None
    weight_decay: float = 0.0
    accumulate: int = 1
    seed: int = 0
    amp: str = "auto"
    channels_last: bool | None = None
    hflip: bool = True
    random_crop: bool = True
    crop_scale: tuple[float, float] = (0.9, 1.0)
    grad_clip: float | None = None
    num_workers: int = 0
    val_every: int = 1
    val_batch_size: int | None = None
    out_dir: str = "runs/train"
    resume: bool = True
    progress: bool = True
    max_steps: int | None = None
    checkpoint_every: int = 0
    device: str | None = None
    find_unused_parameters: bool = False
    lr_schedule: str = "constant"

    def check(self) -> TrainConfig:
        """Raise OptionError naming the first invalid option."""
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "accumulate": self.accumulate,
                    "val_every": self.val_every}
        for name, value in positive.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise OptionError(f"train: {name} must be a positive integer, got {value!r}")
        if self.amp not in AMP_MODES:
            raise OptionError(f"train: amp must be one of {', '.join(AMP_MODES)}, got {self.amp!r}")
        lo, hi = self.crop_scale
        if not 0.0 < lo <= hi <= 1.0:
            raise OptionError(f"train: crop_scale must satisfy 0 < low <= high <= 1, got {self.crop_scale}")
        if self.lr is not None and not self.lr > 0:
            raise OptionError(f"train: lr must be > 0, got {self.lr}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise OptionError(f"train: lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got "
                              f"{self.lr_schedule!r}")
        if self.weight_decay < 0:
            raise OptionError(f"train: weight_decay must be >= 0, got {self.weight_decay}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise OptionError(f"train: grad_clip must be > 0 or None, got {self.grad_clip}")
        if self.max_steps is not None and self.max_steps < 1:
            raise OptionError(f"train: max_steps must be >= 1 or None, got {self.max_steps}")
        if self.num_workers < 0 or self.checkpoint_every < 0:
            raise OptionError("train: num_workers and checkpoint_every must be >= 0")
        if self.val_batch_size is not None and self.val_batch_size < 1:
            raise OptionError(f"train: val_batch_size must be >= 1 or None, got {self.val_batch_size}")
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass
class TrainResult:
    """What a run produced. ``seconds`` and ``images_per_s`` add up every session of a resumed run."""

    best_checkpoint: Path | None
    last_checkpoint: Path
    history: list[dict[str, Any]]
    best_val_auc: float | None
    best_epoch: int | None
    images_per_s: float
    seconds: float
    epochs_done: int
    step: int
    complete: bool
    reused: bool
    config_hash: str


def resolve_lr(model: Any, config: TrainConfig) -> float:
    """config.lr, else the model's own default (``model.config["lr"]``), else 1e-3."""
    if config.lr is not None:
        return float(config.lr)
    return float((getattr(model, "config", None) or {}).get("lr") or 1e-3)


def config_fingerprint(model: Any, train_set: Any, val_set: Any, config: TrainConfig, world_size: int = 1,
                       device_type: str = "cpu") -> dict[str, Any]:
    """Everything that decides the trained weights (model options, data, recipe), JSON-able.

    The data layout enters only as the micro-batch and the global batch, so 2 ranks x 1 micro-batch and
    1 rank x 2 accumulated micro-batches share a fingerprint (and can resume each other's checkpoints).
    Datasets must follow the dataset contract (a stable ``config``): without it two different datasets would
    share a fingerprint and a stale checkpoint could be reused.
    """
    from camkit.protocols import require_dataset
    from camkit.training.device import resolve_amp, resolve_channels_last

    for where, dataset in (("training set", train_set), ("validation set", val_set)):
        if dataset is not None:
            require_dataset(dataset, f"train: the {where}")
    recipe = {k: v for k, v in config.to_dict().items() if k not in UNHASHED}
    recipe["lr"] = resolve_lr(model, config)
    recipe["amp"] = resolve_amp(config.amp, device_type)
    recipe["channels_last"] = resolve_channels_last(config.channels_last, device_type)
    recipe["global_batch"] = config.batch_size * config.accumulate * world_size
    return jsonable({"model": f"{type(model).__module__}.{type(model).__qualname__}",
                     "model_config": getattr(model, "config", {}), "train_set": _describe(train_set),
                     "val_set": _describe(val_set), "recipe": recipe})


def config_hash(fingerprint: dict[str, Any]) -> str:
    """A short stable hash of a fingerprint (what ``camkit bench`` compares to reuse a checkpoint): the one
    hashing rule, :func:`camkit.storage.hashing.stable_hash` (the fingerprint is JSON already, so the digest is
    the one earlier camkits gave: existing model stores stay valid)."""
    from camkit.storage.hashing import stable_hash

    return stable_hash(fingerprint, 16)


def fingerprint_diff(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> str:
    """A short description of where two fingerprints differ."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            sub = fingerprint_diff(a, b, f"{prefix}{key}.")
            if sub:
                out.append(sub)
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return "; ".join(out[:6])


def jsonable(obj: Any) -> Any:
    """``obj`` through JSON and back (tuples become lists, unknown objects their str)."""
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def _describe(dataset: Any) -> dict[str, Any] | None:
    if dataset is None:
        return None
    return {"class": f"{type(dataset).__module__}.{type(dataset).__qualname__}", "len": len(dataset),
            "config": dataset.config}
