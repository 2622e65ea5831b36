"""The model-agnostic training loop: any model that follows the protocol's ``training_loss`` trains here.

Adam; the paper's augmentation (horizontal flip + random shift/scale crop, see camkit.augment); optional
bf16/fp16 autocast and channels-last (on by default on CUDA only); gradient accumulation; per-epoch
validation AUC from ``model.predict``; ``best.pt`` + ``last.pt`` written atomically and loadable with
``weights_only=True``; resume (also mid-epoch) that reproduces an uninterrupted run bit for bit on the CPU;
data-parallel training under ``torchrun`` (DDP, gloo on CPU, NCCL on CUDA). See docs/training.md.
"""
from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from camkit.data import augment
from camkit.training import batching, distributed
from camkit.storage.checkpoint import (FORMAT, VERSION, CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint)
from camkit.errors import CamkitError
from camkit.ui.progress import auto_progress, notify

AMP_MODES = ("auto", "off", "bf16", "fp16")
# Fields that change what training produces; the others (paths, logging, workers, test stops) do not.
_UNHASHED = {"out_dir", "resume", "progress", "num_workers", "max_steps", "checkpoint_every", "device",
             "val_batch_size", "accumulate", "find_unused_parameters"}


@dataclass
class TrainConfig:
    """Options of one training run; ``batch_size`` is the micro-batch one process feeds per forward.

    One optimizer step sees ``batch_size x accumulate x world_size`` images (the global batch).
    ``lr`` None takes ``model.config["lr"]``, else 1e-3. ``amp`` "auto" means bf16 on CUDA and off on the CPU;
    ``channels_last`` None means on for CUDA. ``crop_scale``: side length of the random crop as a fraction of
    the image (the window is then resized back to the input size). ``max_steps`` stops after that many
    optimizer steps in total (a resumable stop, for tests and smoke runs); ``checkpoint_every`` also writes
    ``last.pt`` every that many steps within an epoch (0: only at epoch ends and on Ctrl-C).
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

    def check(self) -> TrainConfig:
        """Raise CamkitError naming the first invalid option."""
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "accumulate": self.accumulate,
                    "val_every": self.val_every}
        for name, value in positive.items():
            if not isinstance(value, int) or value < 1:
                raise CamkitError(f"train: {name} must be a positive integer, got {value!r}")
        if self.amp not in AMP_MODES:
            raise CamkitError(f"train: amp must be one of {', '.join(AMP_MODES)}, got {self.amp!r}")
        lo, hi = self.crop_scale
        if not 0.0 < lo <= hi <= 1.0:
            raise CamkitError(f"train: crop_scale must satisfy 0 < low <= high <= 1, got {self.crop_scale}")
        if self.lr is not None and not self.lr > 0:
            raise CamkitError(f"train: lr must be > 0, got {self.lr}")
        if self.max_steps is not None and self.max_steps < 1:
            raise CamkitError(f"train: max_steps must be >= 1 or None, got {self.max_steps}")
        if self.num_workers < 0 or self.checkpoint_every < 0:
            raise CamkitError("train: num_workers and checkpoint_every must be >= 0")
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


def train(model: Any, train_set: Any, val_set: Any = None, config: TrainConfig | None = None, *,
          progress: Any = None) -> TrainResult:
    """Train ``model`` on ``train_set`` (validating on ``val_set``) and write checkpoints to ``config.out_dir``.

    ``progress``: an object with some of on_train_start/on_epoch_start/on_step/on_epoch_end/on_train_end
    (see camkit.progress); None uses a rich bar on a terminal, log lines otherwise, nothing when
    ``config.progress`` is False. With ``config.resume`` a matching ``last.pt`` is continued, or, when
    complete, reused without training. On return the model holds the last weights (load ``best.pt`` with
    ``camkit.checkpoint.load_checkpoint`` for the best). Ctrl-C writes a resumable ``last.pt`` and re-raises.
    """
    config = (config or TrainConfig()).check()
    _check_protocol(model)
    info = distributed.setup(config.device)
    return _Run(model, train_set, val_set, config, info, progress).fit()


def config_fingerprint(model: Any, train_set: Any, val_set: Any, config: TrainConfig,
                       world_size: int = 1, device_type: str = "cpu") -> dict[str, Any]:
    """Everything that decides the trained weights (model options, data, recipe), JSON-able.

    The data layout enters only as the micro-batch and the global batch, so 2 ranks x 1 micro-batch and
    1 rank x 2 accumulated micro-batches share a fingerprint (and can resume each other's checkpoints).
    """
    recipe = {k: v for k, v in config.to_dict().items() if k not in _UNHASHED}
    recipe["lr"] = resolve_lr(model, config)
    recipe["amp"] = resolve_amp(config.amp, device_type)
    recipe["channels_last"] = resolve_channels_last(config.channels_last, device_type)
    recipe["global_batch"] = config.batch_size * config.accumulate * world_size
    return _jsonable({"model": f"{type(model).__module__}.{type(model).__qualname__}",
                      "model_config": getattr(model, "config", {}), "train_set": _describe(train_set),
                      "val_set": _describe(val_set), "recipe": recipe})


def config_hash(fingerprint: dict[str, Any]) -> str:
    """A short stable hash of a fingerprint (what ``camkit bench`` compares to reuse a checkpoint)."""
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:16]


def resolve_lr(model: Any, config: TrainConfig) -> float:
    """config.lr, else the model's own default (``model.config["lr"]``), else 1e-3."""
    if config.lr is not None:
        return float(config.lr)
    return float((getattr(model, "config", None) or {}).get("lr") or 1e-3)


def resolve_amp(amp: str, device_type: str) -> str:
    """"auto" -> "bf16" on CUDA, "off" elsewhere."""
    return ("bf16" if device_type == "cuda" else "off") if amp == "auto" else amp


def resolve_channels_last(channels_last: bool | None, device_type: str) -> bool:
    """None -> on for CUDA (convolutions there are faster in NHWC), off elsewhere."""
    return device_type == "cuda" if channels_last is None else bool(channels_last)


# -- internals -------------------------------------------------------------------------------------------------

def _check_protocol(model: Any) -> None:
    missing = [a for a in ("training_loss", "predict", "parameters", "state_dict") if not hasattr(model, a)]
    if missing:
        raise CamkitError(f"train: {type(model).__name__} lacks {', '.join(missing)}; a trainable model is an "
                          "nn.Module with training_loss(images, labels, progress) and predict(outputs)")


def _describe(dataset: Any) -> dict[str, Any] | None:
    if dataset is None:
        return None
    return {"class": f"{type(dataset).__module__}.{type(dataset).__qualname__}", "len": len(dataset),
            "config": getattr(dataset, "config", None)}


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def _derive_seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint64)[0] >> 1)


def _to_cpu(obj: Any) -> Any:
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def _loader_generator(seed: int) -> Any:
    import torch

    return torch.Generator().manual_seed(_derive_seed(seed, 0x6C6F6164))


def _collate(samples: list[dict[str, Any]]) -> tuple[Any, Any]:
    import torch

    return (torch.stack([s["image"] for s in samples]),
            torch.tensor([int(s["label"]) for s in samples], dtype=torch.long))


def _loss_module(model: Any) -> Any:
    """``model.training_loss`` wrapped as a forward, so DistributedDataParallel sees (and syncs) it."""
    import torch

    class LossModule(torch.nn.Module):
        def __init__(self, inner: Any):
            super().__init__()
            self.model = inner

        def forward(self, images: Any, labels: Any, progress: float) -> Any:
            return self.model.training_loss(images, labels, progress)

    return LossModule(model)


class _EpochBatches:
    """A batch sampler whose content changes each epoch (so DataLoader workers can persist)."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class _Run:
    """One call of ``train()``: the state that a checkpoint holds, and the loop that advances it."""

    def __init__(self, model, train_set, val_set, config: TrainConfig, info: distributed.DistInfo, progress):
        import torch

        self.model, self.train_set, self.val_set, self.cfg, self.info = model, train_set, val_set, config, info
        self.device = info.device
        self.amp = resolve_amp(config.amp, self.device.type)
        self.channels_last = resolve_channels_last(config.channels_last, self.device.type)
        if self.amp == "fp16" and self.device.type == "cpu":
            raise CamkitError("train: amp='fp16' needs CUDA; use amp='bf16' or 'off' on the CPU")
        self.lr = resolve_lr(model, config)
        self.fingerprint = config_fingerprint(model, train_set, val_set, config, info.world_size, self.device.type)
        self.hash = config_hash(self.fingerprint)
        self.out_dir = Path(config.out_dir)
        self.last_path, self.best_path = self.out_dir / "last.pt", self.out_dir / "best.pt"
        self.global_batch = config.batch_size * config.accumulate * info.world_size
        self.steps = batching.steps_per_epoch(len(train_set), self.global_batch)
        if self.steps == 0:
            raise CamkitError(
                f"train: the training set has {len(train_set)} samples, fewer than one global batch of "
                f"{self.global_batch} (batch_size {config.batch_size} x accumulate {config.accumulate} x "
                f"{info.world_size} process(es)); lower --batch-size or --accumulate")
        model.to(self.device, memory_format=torch.channels_last if self.channels_last else torch.preserve_format)
        self.optimizer = torch.optim.Adam(model.parameters(), lr=self.lr, weight_decay=config.weight_decay)
        self.scaler = torch.amp.GradScaler(self.device.type) if self.amp == "fp16" else None
        self.sink = (progress if progress is not None else auto_progress(config.progress)) if info.is_main else None
        # the resumable state
        self.epoch = 0  # completed epochs
        self.epoch_step = 0  # optimizer steps done in the current epoch
        self.step = 0  # optimizer steps done in total
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {"epoch": None, "val_auc": None}
        self.sums: dict[str, float] = {"loss": 0.0, "micro": 0.0, "images": 0.0, "seconds": 0.0}
        self.parts: dict[str, float] = {}
        self.totals = {"train_seconds": 0.0, "train_images": 0.0, "wall_seconds": 0.0}
        self.resumed = False
        # what Ctrl-C may save: the state right after the last completed optimizer step
        self._consistent = True
        self._snapshot: dict[str, Any] = {}
        self._loader: Any = None
        self._ddp: Any = None

    # -- resume ---------------------------------------------------------------------------------------------------
    def _try_resume(self) -> None:
        import torch

        ckpt = None
        if self.cfg.resume and self.info.is_main and self.last_path.is_file():
            ckpt = read_checkpoint(self.last_path)
        ckpt = distributed.broadcast_from_main(ckpt)
        if ckpt is None:
            torch.manual_seed(_derive_seed(self.cfg.seed, 0x746F7263, self.info.rank))
            return
        if ckpt.get("format") != FORMAT or ckpt.get("kind") != "last":
            raise CheckpointError(f"{str(self.last_path)!r} is not a camkit last.pt; move it away or pass "
                                  "resume=False (--no-resume) to start over")
        if ckpt.get("config_hash") != self.hash:
            raise CheckpointError(
                f"{str(self.last_path)!r} was trained with a different configuration "
                f"({_diff(ckpt.get('fingerprint', {}), self.fingerprint)}); use another out_dir, or pass "
                "resume=False (--no-resume) to overwrite it")
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.scaler is not None and ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        self.epoch, self.epoch_step, self.step = int(ckpt["epoch"]), int(ckpt["epoch_step"]), int(ckpt["step"])
        self.history, self.best = list(ckpt["history"]), dict(ckpt["best"])
        self.sums, self.parts = dict(ckpt["sums"]), dict(ckpt["parts"])
        self.totals = dict(ckpt["totals"])
        self._set_rng(ckpt["rng"])
        if ckpt.get("model_train_state") is not None and hasattr(self.model, "load_train_state"):
            self.model.load_train_state(ckpt["model_train_state"])
        self.resumed = True

    def _rng_state(self) -> dict[str, Any]:
        import torch

        cuda = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        return {"torch": torch.get_rng_state(), "cuda": cuda}

    def _set_rng(self, rng: dict[str, Any]) -> None:
        import torch

        states = rng["ranks"]
        mine = states[self.info.rank] if self.info.rank < len(states) else states[0]
        torch.set_rng_state(mine["torch"])
        if self.device.type == "cuda" and mine.get("cuda") is not None:
            torch.cuda.set_rng_state(mine["cuda"], self.device)

    # -- checkpoints ----------------------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        """The loop's counters and records (copied): with the weights, what a checkpoint restores."""
        # a model may keep Python-side training state (e.g. a step counter) outside its state dict:
        # optional protocol methods train_state() -> dict and load_train_state(dict) carry it
        extra = getattr(self.model, "train_state", None)
        return {"epoch": self.epoch, "epoch_step": self.epoch_step, "step": self.step,
                "history": list(self.history), "best": dict(self.best), "sums": dict(self.sums),
                "parts": dict(self.parts), "totals": dict(self.totals),
                "model_train_state": extra() if callable(extra) else None}

    def _payload(self, kind: str, state: dict[str, Any], rng_ranks: list[Any] | None) -> dict[str, Any]:
        import camkit

        obj: dict[str, Any] = {
            "format": FORMAT, "version": VERSION, "kind": kind, "camkit_version": camkit.__version__,
            "model": _to_cpu(self.model.state_dict()), "model_config": _jsonable(getattr(self.model, "config", {})),
            "epoch": state["epoch"], "epoch_step": state["epoch_step"], "step": state["step"],
            "steps_per_epoch": self.steps, "world_size": self.info.world_size,
            "config": _jsonable(self.cfg.to_dict()), "config_hash": self.hash, "fingerprint": self.fingerprint,
            "history": _jsonable(state["history"]), "best": state["best"], "totals": state["totals"],
        }
        if kind == "last":
            obj.update(optimizer=_to_cpu(self.optimizer.state_dict()),
                       scaler=self.scaler.state_dict() if self.scaler is not None else None,
                       sums=state["sums"], parts=state["parts"], rng={"ranks": rng_ranks},
                       model_train_state=state["model_train_state"])
        return obj

    def _tick(self) -> None:
        self.totals["wall_seconds"] = self._wall_base + time.perf_counter() - self._t0

    def _save_last(self) -> None:
        """Collective: gathers every rank's RNG state; rank 0 writes."""
        self._tick()
        ranks = distributed.gather_to_main(self._rng_state())
        if self.info.is_main:
            save_checkpoint(self._payload("last", self._state(), ranks), self.last_path)
            from camkit.storage.atomic import atomic_write_json

            atomic_write_json(self.out_dir / "history.json", {"config_hash": self.hash, "history": self.history,
                                                              "best": self.best, "totals": self.totals})
        distributed.barrier()

    def _save_best(self) -> None:
        if self.info.is_main:
            save_checkpoint(self._payload("best", self._state(), None), self.best_path)

    def _save_on_interrupt(self) -> None:
        """Ctrl-C: write the state after the last completed step, if the weights are not half-updated."""
        if not (self.info.is_main and self._consistent and self._snapshot):
            return
        self._snapshot["state"]["totals"]["wall_seconds"] = self._wall_base + time.perf_counter() - self._t0
        save_checkpoint(self._payload("last", self._snapshot["state"], [self._snapshot["rng"]]), self.last_path)

    def _take_snapshot(self) -> None:
        # taken after every optimizer step and epoch end: a point the run can resume from exactly
        self._snapshot = {"state": self._state(), "rng": self._rng_state()}

    # -- the loop -------------------------------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        self._t0 = time.perf_counter()
        self._try_resume()
        self._wall_base = self.totals["wall_seconds"]
        cfg = self.cfg
        if self.epoch >= cfg.epochs:
            return self._result(reused=True)
        if cfg.max_steps is not None and self.step >= cfg.max_steps:
            return self._result(reused=False)  # already stopped there; nothing to add
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if not self.resumed and self.info.is_main:
            self.best_path.unlink(missing_ok=True)  # a best.pt from an earlier run must not pass for this one's
        self._setup_data()
        self.model.train()
        notify(self.sink, "on_train_start", {
            "epochs": cfg.epochs, "steps_per_epoch": self.steps, "start_epoch": self.epoch + 1,
            "start_step": self.epoch_step, "resumed": self.resumed, "world_size": self.info.world_size,
            "global_batch": self.global_batch, "device": str(self.device), "out_dir": str(self.out_dir),
            "config_hash": self.hash})
        result = None
        self._take_snapshot()
        try:
            stopped = False
            while self.epoch < cfg.epochs and not stopped:
                notify(self.sink, "on_epoch_start", self.epoch + 1, self.steps)
                if self.epoch_step < self.steps:
                    stopped = self._train_epoch()
                if self.epoch_step == self.steps:
                    self._end_epoch()
                elif stopped:
                    self._save_last()
            self._tick()
            result = self._result(reused=False)
            return result
        except KeyboardInterrupt:
            self._save_on_interrupt()
            raise
        finally:
            notify(self.sink, "on_train_end", result)

    def _setup_data(self) -> None:
        import torch
        from torch.utils.data import DataLoader

        self._sampler = _EpochBatches()
        workers = self.cfg.num_workers
        # the loader's own generator keeps it from drawing on the global RNG, which the model may use
        self._loader = DataLoader(self.train_set, batch_sampler=self._sampler, collate_fn=_collate,
                                  num_workers=workers, persistent_workers=workers > 0,
                                  pin_memory=self.device.type == "cuda", generator=_loader_generator(self.cfg.seed))
        loss_module = _loss_module(self.model)
        if self.info.distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP

            # buffers (BatchNorm statistics) stay per rank during an epoch and are averaged at its end
            no_sync = ({"forward_sync_buffers": False} if "forward_sync_buffers" in inspect.signature(DDP).parameters
                       else {"broadcast_buffers": False})
            self._ddp = DDP(loss_module, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                            find_unused_parameters=self.cfg.find_unused_parameters, **no_sync)
            self._loss_fn = self._ddp
        else:
            self._loss_fn = loss_module
        self._autocast = (lambda: torch.autocast(self.device.type, dtype=torch.bfloat16)) if self.amp == "bf16" \
            else (lambda: torch.autocast(self.device.type, dtype=torch.float16)) if self.amp == "fp16" \
            else contextlib.nullcontext
        self._checked_size = False

    def _prepare(self, images: Any, indices: list[int]) -> Any:
        import torch

        if not self._checked_size:
            expected = tuple(getattr(self.model, "input_size", images.shape[-2:]))
            if images.dim() != 4 or tuple(images.shape[-2:]) != expected:
                raise CamkitError(f"train: {type(self.train_set).__name__} yields images of shape "
                                  f"{tuple(images.shape[1:])} but the model expects (C, {expected[0]}, "
                                  f"{expected[1]}); create the dataset at the model's input_size")
            self._checked_size = True
        images = images.to(self.device, non_blocking=True)
        crop = self.cfg.crop_scale if self.cfg.random_crop else None
        draws = [augment.draw_params(self.cfg.seed, self.epoch, i, hflip=self.cfg.hflip, crop_scale=crop)
                 for i in indices]
        images = augment.apply(images, draws)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images

    def _train_epoch(self) -> bool:
        """Run the remaining steps of the current epoch; True when ``max_steps`` stopped it early."""
        import torch

        cfg, acc = self.cfg, self.cfg.accumulate
        plan = batching.rank_micro_batches(len(self.train_set), cfg.seed, self.epoch, cfg.batch_size, acc,
                                           self.info.rank, self.info.world_size)[self.epoch_step:]
        self._sampler.batches = [mb for step in plan for mb in step]
        batches = iter(self._loader)
        total_steps = cfg.epochs * self.steps
        t_epoch = time.perf_counter()
        images_seen = 0
        for micro_batches in plan:
            t_step = time.perf_counter()
            self.optimizer.zero_grad(set_to_none=True)
            frac = self.step / total_steps
            step_loss = 0.0
            for m, indices in enumerate(micro_batches):
                images, labels = next(batches)
                images, labels = self._prepare(images, indices), labels.to(self.device, non_blocking=True)
                sync = m == acc - 1 or self._ddp is None
                with (contextlib.nullcontext() if sync else self._ddp.no_sync()):
                    with self._autocast():
                        loss, parts = self._loss_fn(images, labels, frac)
                    value = float(loss.detach())
                    if not math.isfinite(value):
                        raise CamkitError(f"train: the loss became {value} at epoch {self.epoch + 1}, step "
                                          f"{self.epoch_step + 1}; lower the learning rate or turn amp off")
                    scaled = loss / acc
                    (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
                step_loss += value / acc
                self.sums["loss"] += value
                self.sums["micro"] += 1
                for k, v in (parts or {}).items():
                    self.parts[k] = self.parts.get(k, 0.0) + float(v)
            self._optimizer_step()
            seconds = time.perf_counter() - t_step
            images_seen += self.global_batch
            self.sums["images"] += self.global_batch
            self.sums["seconds"] += seconds
            self.totals["train_images"] += self.global_batch
            self.totals["train_seconds"] += seconds
            self._take_snapshot()
            self._consistent = True  # weights, counters and snapshot agree again
            rate = images_seen / max(time.perf_counter() - t_epoch, 1e-9)
            notify(self.sink, "on_step", self.epoch + 1, self.epoch_step, self.steps, step_loss, rate)
            if cfg.max_steps is not None and self.step >= cfg.max_steps:
                return self.epoch_step < self.steps or self.epoch + 1 < cfg.epochs
            if cfg.checkpoint_every and self.epoch_step % cfg.checkpoint_every == 0 and self.epoch_step < self.steps:
                self._save_last()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return False

    def _optimizer_step(self) -> None:
        import torch

        self._consistent = False  # an interrupt inside the update would leave half-updated weights
        if self.cfg.grad_clip is not None:
            if self.scaler is not None:
                self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.epoch_step += 1
        self.step += 1

    def _end_epoch(self) -> None:
        cfg = self.cfg
        number = self.epoch + 1
        self._consistent = False
        distributed.average_buffers(self.model)
        self._consistent = True
        validate = self.val_set is not None and (number % cfg.val_every == 0 or number == cfg.epochs)
        val_auc = self.evaluate() if validate else None
        micro = max(self.sums["micro"], 1.0)
        record = {"epoch": number, "step": self.step, "loss": self.sums["loss"] / micro,
                  "parts": {k: v / micro for k, v in self.parts.items()},
                  "images_per_s": self.sums["images"] / max(self.sums["seconds"], 1e-9),
                  "train_seconds": self.sums["seconds"], "lr": self.lr, "val_auc": val_auc, "is_best": False}
        if val_auc is not None and math.isfinite(val_auc) and (self.best["val_auc"] is None
                                                              or val_auc > self.best["val_auc"]):
            self.best = {"epoch": number, "val_auc": val_auc}
            record["is_best"] = True
        self.history.append(record)
        self.epoch, self.epoch_step = number, 0
        self.sums = {"loss": 0.0, "micro": 0.0, "images": 0.0, "seconds": 0.0}
        self.parts = {}
        if record["is_best"] or (number == cfg.epochs and self.best["epoch"] is None):
            self._save_best()
        self._save_last()
        self._take_snapshot()
        notify(self.sink, "on_epoch_end", number, record)

    def evaluate(self) -> float:
        """Validation AUC of ``model.predict``; each rank scores its shard, rank 0 computes the AUC once."""
        import torch
        from torch.utils.data import DataLoader

        shard = batching.validation_shard(len(self.val_set), self.info.rank, self.info.world_size)
        bs = self.cfg.val_batch_size or self.cfg.batch_size
        loader = DataLoader(self.val_set, batch_sampler=[shard[i:i + bs] for i in range(0, len(shard), bs)],
                            collate_fn=_collate, num_workers=self.cfg.num_workers,
                            pin_memory=self.device.type == "cuda", generator=_loader_generator(self.cfg.seed))
        probs, labels = [], []
        self.model.eval()
        try:
            with torch.no_grad():
                for images, y in loader:
                    images = images.to(self.device, non_blocking=True)
                    if self.channels_last:
                        images = images.contiguous(memory_format=torch.channels_last)
                    with self._autocast():
                        out = self.model(images)
                    probs.append(self.model.predict(out).float().cpu().reshape(-1))
                    labels.append(y)
        finally:
            self.model.train()
        mine = (shard, torch.cat(probs).tolist() if probs else [], torch.cat(labels).tolist() if labels else [])
        gathered = distributed.gather_to_main(mine)
        auc = None
        if gathered is not None:
            order, p, y = [], [], []
            for idx, pr, lab in gathered:
                order += idx
                p += pr
                y += lab
            from camkit.metrics import roc_auc

            sort = np.argsort(order, kind="stable")
            auc = roc_auc(np.asarray(y)[sort], np.asarray(p)[sort])
        return distributed.broadcast_from_main(auc)

    def _result(self, reused: bool) -> TrainResult:
        t = self.totals
        complete = self.epoch >= self.cfg.epochs
        return TrainResult(
            best_checkpoint=self.best_path if self.best_path.is_file() else None, last_checkpoint=self.last_path,
            history=list(self.history), best_val_auc=self.best["val_auc"], best_epoch=self.best["epoch"],
            images_per_s=t["train_images"] / t["train_seconds"] if t["train_seconds"] else 0.0,
            seconds=t["wall_seconds"], epochs_done=self.epoch, step=self.step, complete=complete, reused=reused,
            config_hash=self.hash)


def _diff(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> str:
    """A short description of where two fingerprints differ."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            sub = _diff(a, b, f"{prefix}{key}.")
            if sub:
                out.append(sub)
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return "; ".join(out[:6])


__all__ = ["TrainConfig", "TrainResult", "train", "load_checkpoint", "config_fingerprint", "config_hash",
           "resolve_lr", "resolve_amp", "resolve_channels_last"]
