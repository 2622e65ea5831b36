"""The model-agnostic training loop: any model that follows the model contract trains here.

Adam; the paper's augmentation (horizontal flip + random shift/scale crop, see camkit.data.augment); autocast
and memory layout from :class:`~camkit.training.device.DeviceSettings`; gradient accumulation; per-epoch
validation AUC from ``model.predict``; ``best.pt`` + ``last.pt`` written atomically and loadable with
``weights_only=True``; resume (also mid-epoch, also after Ctrl-C inside a step) that reproduces an
uninterrupted run bit for bit on the CPU; data-parallel training under ``torchrun`` (DDP, gloo on CPU, NCCL on
CUDA). See docs/training.md.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import math
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from camkit.data import augment
from camkit.data.sample import collate
from camkit.errors import CamkitError
from camkit.protocols import require_model
from camkit.training import batching, distributed
from camkit.storage.lock import FolderLock
from camkit.training.checkpointer import Checkpointer
from camkit.training.config import (TrainConfig, TrainResult, config_fingerprint, config_hash, resolve_lr,
                                    scheduled_lr)
from camkit.training.device import DeviceSettings
from camkit.training.interrupts import DeferredInterrupts
from camkit.training.progress import LogProgress, notify
from camkit.training.state import Snapshot, TrainState


def train(model: Any, train_set: Any, val_set: Any = None, config: TrainConfig | None = None, *,
          progress: Any = None) -> TrainResult:
    """Train ``model`` on ``train_set`` (validating on ``val_set``) and write checkpoints to ``config.out_dir``.

    ``progress``: an object with some of the methods of :class:`camkit.training.progress.TrainProgress`
    (``camkit.ui.progress.auto_progress()`` gives a rich bar on a terminal); None prints plain log lines
    when ``config.progress`` and nothing otherwise. With ``config.resume`` a matching ``last.pt`` is continued,
    or, when complete, reused without training. An empty ``val_set`` is treated as none (and said so). On
    return the model holds the last weights (load ``best.pt`` with ``camkit.storage.checkpoint.load_checkpoint``
    for the best). Ctrl-C writes a resumable ``last.pt`` and re-raises.
    """
    config = (config or TrainConfig()).check()
    require_model(model, "train")
    info = distributed.setup(config.device)
    sink = None
    if info.is_main:
        sink = progress if progress is not None else (LogProgress() if config.progress else None)
    if val_set is not None and len(val_set) == 0:
        notify(sink, "on_message", "the validation split is empty: validation is skipped, and best.pt will hold "
                                   "the final weights")
        val_set = None
    # one writer per model folder: a second process training the same model-store entry waits, then reuses it
    lock = FolderLock(config.out_dir, "the model folder") if info.is_main else None
    if lock is not None:
        lock.acquire(wait=True, on_wait=lambda message: notify(sink, "on_message", message))
        lock.remove_leftovers()  # a killed training's half-written checkpoint (a paper last.pt is 170 MB)
    try:
        return _Loop(model, train_set, val_set, config, info, sink).fit()
    finally:
        if lock is not None:
            lock.release()


def _derive_seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint64)[0] >> 1)


def _loader_generator(seed: int) -> Any:
    import torch

    return torch.Generator().manual_seed(_derive_seed(seed, 0x6C6F6164))


def _loader_batch(samples: list[dict[str, Any] | None],
                  keys: tuple[str, ...] = ()) -> tuple[Any, Any, list[int], list[tuple[str, str]], dict[str, Any]]:
    """The loaders' ``collate_fn``: (images, labels, positions kept, newly skipped, the ``keys`` as per-image
    lists). :func:`camkit.data.collate` stacks the samples (leaving out those a skip_bad dataset could not read,
    None); the positions map the kept images back to their dataset indices, and what a DataLoader worker's copy
    of the dataset recorded about the unreadable ones travels with the batch. ``keys``: the sample keys the
    model's ``training_loss`` takes (its ``training_inputs``: a detector's boxes)."""
    batch = collate(samples, lists=keys)
    kept = [i for i, s in enumerate(samples) if s is not None]
    if batch is None:
        return None, None, kept, _worker_skips(), {}
    return batch["image"], batch["label"], kept, _worker_skips(), {k: batch[k] for k in keys}


def training_inputs(model: Any) -> tuple[str, ...]:
    """The sample keys ``model.training_loss`` takes as keywords besides images and labels (its optional
    ``training_inputs``; a detector trained on boxes: ``("boxes",)``), each a per-image list."""
    keys = tuple(str(k) for k in getattr(model, "training_inputs", ()) or ())
    reserved = {"image", "label"} & set(keys)
    if reserved:
        raise CamkitError(f"train: {type(model).__name__}.training_inputs names {sorted(reserved)}, which every "
                          "training_loss receives already (images, labels)")
    return keys


def _on_device(inputs: dict[str, Any], device: Any) -> dict[str, Any]:
    """The per-image lists of ``inputs`` with their tensors on ``device``."""
    return {k: [v.to(device, non_blocking=True) if hasattr(v, "to") else v for v in values]
            for k, values in inputs.items()}


def _worker_skips() -> list[tuple[str, str]]:
    """In a DataLoader worker: the ``skipped`` entries its copy of the dataset added since the last batch (a
    worker's list dies with it, so the main process would never report them); [] in the main process, where
    the dataset's own list is the record."""
    from torch.utils.data import get_worker_info

    info = get_worker_info()
    found = getattr(info.dataset, "skipped", None) if info is not None else None
    if not isinstance(found, list):
        return []
    sent = getattr(info.dataset, "_skips_sent", 0)
    info.dataset._skips_sent = len(found)
    return list(found[sent:])


def _adopt_skips(dataset: Any, skipped: list[tuple[str, str]]) -> None:
    """Add a worker's skipped entries to the main process's dataset (each once)."""
    own = getattr(dataset, "skipped", None)
    if not skipped or not isinstance(own, list):
        return
    for entry in skipped:
        if tuple(entry) not in {tuple(e) for e in own}:
            own.append(tuple(entry))


def _loss_module(model: Any) -> Any:
    """``model.training_loss`` wrapped as a forward, so DistributedDataParallel sees (and syncs) it."""
    import torch

    class LossModule(torch.nn.Module):
        def __init__(self, inner: Any):
            super().__init__()
            self.model = inner

        def forward(self, images: Any, labels: Any, progress: float, **inputs: Any) -> Any:
            return self.model.training_loss(images, labels, progress, **inputs)

    return LossModule(model)


class _EpochBatches:
    """A batch sampler whose content changes each epoch (so DataLoader workers can persist)."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class _Loop:
    """One call of ``train()``: the model, the optimizer, the state, the checkpointer, and the steps."""

    def __init__(self, model, train_set, val_set, config: TrainConfig, info: distributed.DistInfo, sink):
        import torch

        self.model, self.train_set, self.val_set, self.cfg, self.info, self.sink = (
            model, train_set, val_set, config, info, sink)
        self.dev = DeviceSettings.resolve(info.device, config.amp, config.channels_last)
        self.lr = resolve_lr(model, config)
        fingerprint = config_fingerprint(model, train_set, val_set, config, info.world_size, self.dev.device.type)
        self.hash = config_hash(fingerprint)
        self.global_batch = config.batch_size * config.accumulate * info.world_size
        self.steps = batching.steps_per_epoch(len(train_set), self.global_batch)
        if self.steps == 0:
            raise CamkitError(
                f"train: the training set has {len(train_set)} samples, fewer than one global batch of "
                f"{self.global_batch} (batch_size {config.batch_size} x accumulate {config.accumulate} x "
                f"{info.world_size} process(es)); lower --batch-size or --accumulate")
        self.ckpt = Checkpointer(config.out_dir, fingerprint, self.hash, config.to_dict(), self.steps,
                                 info.world_size)
        self.dev.prepare_model(model)
        # foreach: one kernel per op for all tensors (torch picks it only on CUDA; on a CPU it halves the step)
        self.optimizer = torch.optim.Adam(model.parameters(), lr=self.lr, weight_decay=config.weight_decay,
                                          foreach=True)
        self._trainable = [p for p in model.parameters() if p.requires_grad] or None
        self.scaler = torch.amp.GradScaler(self.dev.device.type) if self.dev.amp == "fp16" else None
        self.state = TrainState()
        self.resumed = False
        self._snapshot: Snapshot | None = None
        self._dirty = False  # inside a transaction: the live weights / optimizer may be ahead of the snapshot
        self._ddp: Any = None
        self._t0 = self._wall_base = 0.0

    # -- resume -----------------------------------------------------------------------------------------------
    def _try_resume(self) -> None:
        import torch

        ckpt = self.ckpt.read_last() if self.cfg.resume and self.info.is_main else None
        ckpt = distributed.broadcast_from_main(ckpt)
        if ckpt is None:
            torch.manual_seed(_derive_seed(self.cfg.seed, 0x746F7263, self.info.rank))
            return
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.scaler is not None and ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        self.state = TrainState.from_dict(ckpt["state"])
        self._set_rng(ckpt["rng"])
        if self.state.model_train_state is not None:
            self.model.load_train_state(self.state.model_train_state)
        self.resumed = True

    def _rng_state(self) -> dict[str, Any]:
        import torch

        cuda = torch.cuda.get_rng_state(self.dev.device) if self.dev.device.type == "cuda" else None
        return {"torch": torch.get_rng_state(), "cuda": cuda}

    def _set_rng(self, rng: dict[str, Any]) -> None:
        import torch

        states = rng["ranks"]
        mine = states[self.info.rank] if self.info.rank < len(states) else states[0]
        torch.set_rng_state(mine["torch"])
        if self.dev.device.type == "cuda" and mine.get("cuda") is not None:
            torch.cuda.set_rng_state(mine["cuda"], self.dev.device)

    # -- checkpoints ----------------------------------------------------------------------------------------------
    def _tick(self) -> None:
        self.state.totals["wall_seconds"] = self._wall_base + time.perf_counter() - self._t0

    def _sync_model_state(self) -> None:
        self.state.model_train_state = self.model.train_state() or None

    def _save_last(self) -> None:
        """Collective: the state now becomes the snapshot, rank 0 writes it with every rank's RNG state."""
        self._tick()
        self._take_snapshot()
        ranks = distributed.gather_to_main(self._snapshot.rng)
        if self.info.is_main:
            self._write_last(self._snapshot, ranks)
        distributed.barrier()

    def _write_last(self, snap: Snapshot, rng_ranks: list[Any]) -> None:
        self.ckpt.save_last(snap.model_state(self.model), self.model.config, snap.state, self.optimizer,
                            self.scaler, rng_ranks)

    def _save_best(self) -> None:
        if self.info.is_main:
            self.ckpt.save_best(self.model.state_dict(), self.model.config, self.state)

    def _take_snapshot(self) -> None:
        self._sync_model_state()
        self._snapshot = Snapshot.take(self.state, self._rng_state(), self.model)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """Run the block (what changes the weights, the optimizer or the grad scaler) and take a snapshot
        after it, as one unit: a Ctrl-C or SIGTERM arriving meanwhile is raised after the snapshot.

        Why this is exact for an interrupt at any point: last.pt is only ever written from a snapshot, and a
        snapshot is only taken where the live weights, optimizer and scaler belong to the state it copies
        (the step counters, history, RNG, buffers and the model's train_state, which the snapshot holds
        itself because a forward changes them). The weights, optimizer and scaler change only inside a
        transaction, which signals cannot split; everything else a step does before its transaction (the
        forward and backward, the running loss sums) touches only what the snapshot already copied. So an
        interrupt before a transaction saves the previous step boundary, one during it is raised at its end,
        with the new boundary saved. ``_dirty`` covers a KeyboardInterrupt no handler sees (raised in the
        block by other means, or the block run outside the main thread): then nothing is saved and the
        previous ``last.pt`` stands, older but consistent.
        """
        with DeferredInterrupts():
            self._dirty = True
            yield
            self._take_snapshot()
            self._dirty = False

    def _save_on_interrupt(self) -> None:
        """Ctrl-C / SIGTERM: write the last snapshot (the step boundary the run last passed), unless a
        transaction was cut (``_dirty``); then the previous ``last.pt`` stands."""
        snap = self._snapshot
        if not self.info.is_main or self._dirty or snap is None:
            return
        snap.state.totals["wall_seconds"] = self._wall_base + time.perf_counter() - self._t0
        self._write_last(snap, [snap.rng])

    # -- the loop -------------------------------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        self._t0 = time.perf_counter()
        self._try_resume()
        self._wall_base = self.state.totals["wall_seconds"]
        cfg, st = self.cfg, self.state
        if st.epoch >= cfg.epochs:
            return self._result(reused=True)
        if cfg.max_steps is not None and st.step >= cfg.max_steps:
            return self._result(reused=False)  # already stopped there; nothing to add
        self.ckpt.out_dir.mkdir(parents=True, exist_ok=True)
        if not self.resumed and self.info.is_main:
            self.ckpt.best_path.unlink(missing_ok=True)  # a best.pt of an earlier run must not pass for ours
        self._setup_data()
        self.model.train()
        notify(self.sink, "on_train_start", {
            "epochs": cfg.epochs, "steps_per_epoch": self.steps, "start_epoch": st.epoch + 1,
            "start_step": st.epoch_step, "resumed": self.resumed, "world_size": self.info.world_size,
            "global_batch": self.global_batch, "device": str(self.dev.device), "out_dir": str(self.ckpt.out_dir),
            "config_hash": self.hash})
        result = None
        self._take_snapshot()
        try:
            stopped = False
            while self.state.epoch < cfg.epochs and not stopped:
                notify(self.sink, "on_epoch_start", self.state.epoch + 1, self.steps)
                if self.state.epoch_step < self.steps:
                    stopped = self._train_epoch()
                if self.state.epoch_step == self.steps:
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
        from torch.utils.data import DataLoader

        self._sampler = _EpochBatches()
        workers = self.cfg.num_workers
        # the loader's own generator keeps it from drawing on the global RNG, which the model may use
        inputs = training_inputs(self.model)
        if inputs and (self.cfg.hflip or self.cfg.random_crop):  # flips and crops would move images, not boxes
            raise CamkitError(f"train: {type(self.model).__name__} trains on {', '.join(inputs)}, which camkit's "
                              "image augmentation does not transform: train it with hflip and random_crop off")
        self._loader = DataLoader(self.train_set, batch_sampler=self._sampler,
                                  collate_fn=functools.partial(_loader_batch, keys=inputs),
                                  num_workers=workers, persistent_workers=workers > 0,
                                  pin_memory=self.dev.pin_memory, generator=_loader_generator(self.cfg.seed))
        loss_module = _loss_module(self.model)
        if self.info.distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP

            # buffers (BatchNorm statistics) stay per rank during an epoch and are averaged at its end
            no_sync = ({"forward_sync_buffers": False} if "forward_sync_buffers" in inspect.signature(DDP).parameters
                       else {"broadcast_buffers": False})
            device_ids = [self.dev.device.index] if self.dev.device.type == "cuda" else None
            self._ddp = DDP(loss_module, device_ids=device_ids,
                            find_unused_parameters=self.cfg.find_unused_parameters, **no_sync)
            self._loss_fn = self._ddp
        else:
            self._loss_fn = loss_module
        self._checked_size = False

    def _prepare(self, images: Any, indices: list[int]) -> Any:
        if not self._checked_size:
            expected = tuple(self.model.input_size)
            if images.dim() != 4 or tuple(images.shape[-2:]) != expected:
                raise CamkitError(f"train: {type(self.train_set).__name__} yields images of shape "
                                  f"{tuple(images.shape[1:])} but the model expects (C, {expected[0]}, "
                                  f"{expected[1]}); create the dataset at the model's input_size")
            self._checked_size = True
        images = images.to(self.dev.device, non_blocking=True)
        crop = self.cfg.crop_scale if self.cfg.random_crop else None
        draws = [augment.draw_params(self.cfg.seed, self.state.epoch, i, hflip=self.cfg.hflip, crop_scale=crop)
                 for i in indices]
        return self.dev.prepare_images(augment.apply(images, draws))

    def _train_epoch(self) -> bool:
        """Run the remaining steps of the current epoch; True when ``max_steps`` stopped it early."""
        import torch

        cfg, st = self.cfg, self.state
        plan = batching.rank_micro_batches(len(self.train_set), cfg.seed, st.epoch, cfg.batch_size,
                                           cfg.accumulate, self.info.rank, self.info.world_size)[st.epoch_step:]
        self._sampler.batches = [mb for step in plan for mb in step]
        batches = iter(self._loader)
        t_epoch, images_seen = time.perf_counter(), 0
        for micro_batches in plan:
            t_step = time.perf_counter()
            frac = st.step / (cfg.epochs * self.steps)
            step_loss, step_parts = self._step(micro_batches, batches, frac)
            with self._transaction():  # the update and its recording: one step boundary to the next
                self._update(frac)
                st.record_step(self.global_batch, time.perf_counter() - t_step)
            images_seen += self.global_batch
            rate = images_seen / max(time.perf_counter() - t_epoch, 1e-9)
            notify(self.sink, "on_step", st.epoch + 1, st.epoch_step, self.steps, step_loss, rate)
            notify(self.sink, "on_step_detail", {"step": st.step, "epoch": st.epoch + 1, "loss": step_loss,
                                                 "parts": step_parts, "lr": self.optimizer.param_groups[0]["lr"],
                                                 "images_per_s": rate})
            if cfg.max_steps is not None and st.step >= cfg.max_steps:
                return st.epoch_step < self.steps or st.epoch + 1 < cfg.epochs
            if cfg.checkpoint_every and st.epoch_step % cfg.checkpoint_every == 0 and st.epoch_step < self.steps:
                self._save_last()
        if self.dev.device.type == "cuda":
            torch.cuda.synchronize(self.dev.device)
        return False

    def _step(self, micro_batches: list[list[int]], batches: Any, frac: float) -> tuple[float, dict[str, float]]:
        """The gradients of one optimizer step over ``micro_batches`` (accumulated; ``frac``: the training's
        progress); returns the step's mean loss and loss terms. The update is :meth:`_update`'s."""
        acc, st = self.cfg.accumulate, self.state
        self.optimizer.zero_grad(set_to_none=True)
        step_loss, step_parts = 0.0, {}
        for m, indices in enumerate(micro_batches):
            images, labels, kept, skipped, inputs = next(batches)
            _adopt_skips(self.train_set, skipped)
            sync = m == acc - 1 or self._ddp is None
            with (contextlib.nullcontext() if sync else self._ddp.no_sync()):
                if images is None:  # every image of this micro-batch failed to read (skip_bad)
                    loss, parts = sum(p.sum() for p in self.model.parameters()) * 0.0, {}
                else:
                    images = self._prepare(images, [indices[k] for k in kept])
                    labels = labels.to(self.dev.device, non_blocking=True)
                    with self.dev.autocast():
                        loss, parts = self._loss_fn(images, labels, frac, **_on_device(inputs, self.dev.device))
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise CamkitError(f"train: the loss became {value} at epoch {st.epoch + 1}, step "
                                      f"{st.epoch_step + 1}; lower the learning rate or turn amp off")
                scaled = loss / acc
                # into the trainable weights only: a loss that differentiates the input (GMIC's evidence
                # term) would otherwise also pay for the input's gradient here (~13% of a CPU step)
                (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward(
                    inputs=self._trainable)
            step_loss += value / acc
            for k, v in (parts or {}).items():
                step_parts[k] = step_parts.get(k, 0.0) + float(v) / acc
            st.record_micro_batch(value, parts)
        return step_loss, step_parts

    def _update(self, frac: float) -> None:
        """The optimizer update from the accumulated gradients (inside a transaction: see ``_transaction``)."""
        import torch

        for group in self.optimizer.param_groups:  # a function of the step alone: resumes exactly
            group["lr"] = scheduled_lr(self.lr, self.cfg.lr_schedule, frac)
        if self.cfg.grad_clip is not None:
            if self.scaler is not None:
                self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()

    def _end_epoch(self) -> None:
        cfg, st = self.cfg, self.state
        number = st.epoch + 1
        with self._transaction():  # under DDP the ranks' BatchNorm statistics are averaged
            distributed.average_buffers(self.model)
        validate = self.val_set is not None and (number % cfg.val_every == 0 or number == cfg.epochs)
        if validate:
            self._save_last()  # the epoch's steps are safe even if validation fails (resume re-validates)
        val_auc = self.evaluate() if validate else None
        record = st.close_epoch(val_auc, self.optimizer.param_groups[0]["lr"])
        if record["is_best"] or (number == cfg.epochs and st.best["epoch"] is None):
            self._save_best()
        self._save_last()
        notify(self.sink, "on_epoch_end", number, record)
        if getattr(self.sink, "on_epoch_model", None) is not None:
            was_training = self.model.training
            notify(self.sink, "on_epoch_model", number, self.model)
            self.model.train(was_training)

    def evaluate(self) -> float | None:
        """Validation AUC of ``model.predict``; each rank scores its shard, rank 0 computes the AUC once."""
        import torch
        from torch.utils.data import DataLoader

        shard = batching.validation_shard(len(self.val_set), self.info.rank, self.info.world_size)
        bs = self.cfg.val_batch_size or self.cfg.batch_size
        loader = DataLoader(self.val_set, batch_sampler=[shard[i:i + bs] for i in range(0, len(shard), bs)],
                            collate_fn=_loader_batch, num_workers=self.cfg.num_workers, pin_memory=self.dev.pin_memory,
                            generator=_loader_generator(self.cfg.seed))
        probs, labels = [], []
        self.model.eval()
        try:
            with torch.no_grad():
                for images, y, _, skipped, _ in loader:
                    _adopt_skips(self.val_set, skipped)
                    if images is None:
                        continue
                    with self.dev.autocast():
                        out = self.model(self.dev.prepare_images(images))
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
        st, t = self.state, self.state.totals
        return TrainResult(
            best_checkpoint=self.ckpt.best_path if self.ckpt.best_path.is_file() else None,
            last_checkpoint=self.ckpt.last_path, history=list(st.history), best_val_auc=st.best["val_auc"],
            best_epoch=st.best["epoch"],
            images_per_s=t["train_images"] / t["train_seconds"] if t["train_seconds"] else 0.0,
            seconds=t["wall_seconds"], epochs_done=st.epoch, step=st.step, complete=st.epoch >= self.cfg.epochs,
            reused=reused, config_hash=self.hash)
