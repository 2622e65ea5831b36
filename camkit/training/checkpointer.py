"""``last.pt``, ``best.pt`` and ``history.json`` of a training run: what goes in them, and reading them back.

Writes are atomic (:mod:`camkit.storage`); reads are weights-only. A ``last.pt`` from another configuration is
refused with the difference spelled out, and a damaged one with how to start over.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from camkit.errors import CheckpointError
from camkit.storage.atomic import atomic_write_json
from camkit.storage.checkpoint import FORMAT, VERSION, read_checkpoint, save_checkpoint
from camkit.training.config import fingerprint_diff, jsonable
from camkit.training.state import TrainState


class Checkpointer:
    """Writes and reads one run directory's checkpoints (rank 0 writes; every rank may read)."""

    def __init__(self, out_dir: str | Path, fingerprint: dict[str, Any], config_hash: str, config: dict[str, Any],
                 steps_per_epoch: int, world_size: int):
        self.out_dir = Path(out_dir)
        self.last_path, self.best_path = self.out_dir / "last.pt", self.out_dir / "best.pt"
        self.fingerprint, self.hash, self.config = fingerprint, config_hash, config
        self.steps_per_epoch, self.world_size = steps_per_epoch, world_size

    def read_last(self) -> dict[str, Any] | None:
        """The matching ``last.pt`` to resume from, None when there is none; raises CheckpointError otherwise."""
        if not self.last_path.is_file():
            return None
        try:
            ckpt = read_checkpoint(self.last_path)
        except CheckpointError as exc:
            raise CheckpointError(f"{str(exc).rstrip('.')}. To start this run over, delete "
                                  f"{str(self.last_path)!r} or pass resume=False (--no-resume)") from None
        if ckpt.get("format") != FORMAT or ckpt.get("kind") != "last":
            raise CheckpointError(f"{str(self.last_path)!r} is not a camkit last.pt; move it away or pass "
                                  "resume=False (--no-resume) to start over")
        if ckpt.get("config_hash") != self.hash:
            raise CheckpointError(
                f"{str(self.last_path)!r} was trained with a different configuration "
                f"({fingerprint_diff(ckpt.get('fingerprint', {}), self.fingerprint)}); use another out_dir, or "
                "pass resume=False (--no-resume) to overwrite it")
        missing = [k for k in ("model", "optimizer", "state", "rng") if k not in ckpt]
        if missing:
            raise CheckpointError(f"{str(self.last_path)!r} lacks {', '.join(missing)} (damaged or from another "
                                  "camkit); delete it or pass resume=False (--no-resume) to start over")
        return ckpt

    def _payload(self, kind: str, model_state: dict[str, Any], state: TrainState, model_config: Any) -> dict:
        import camkit

        return {"format": FORMAT, "version": VERSION, "kind": kind, "camkit_version": camkit.__version__,
                "model": _to_cpu(model_state), "model_config": jsonable(model_config),
                "epoch": state.epoch, "epoch_step": state.epoch_step, "step": state.step,
                "steps_per_epoch": self.steps_per_epoch, "world_size": self.world_size,
                "config": jsonable(self.config), "config_hash": self.hash, "fingerprint": self.fingerprint,
                "history": jsonable(state.history), "best": state.best, "totals": state.totals}

    def save_last(self, model_state: dict[str, Any], model_config: Any, state: TrainState, optimizer: Any,
                  scaler: Any, rng_ranks: list[Any]) -> None:
        """Everything to resume: weights, optimizer, grad scaler, the state and every rank's RNG."""
        obj = self._payload("last", model_state, state, model_config)
        obj.update(optimizer=_to_cpu(optimizer.state_dict()),
                   scaler=scaler.state_dict() if scaler is not None else None,
                   state=jsonable(state.to_dict()), rng={"ranks": rng_ranks})
        save_checkpoint(obj, self.last_path)
        atomic_write_json(self.out_dir / "history.json", {"config_hash": self.hash, "history": state.history,
                                                          "best": state.best, "totals": state.totals})

    def save_best(self, model_state: dict[str, Any], model_config: Any, state: TrainState) -> None:
        """The weights of the best epoch so far (no optimizer)."""
        save_checkpoint(self._payload("best", model_state, state, model_config), self.best_path)


def _to_cpu(obj: Any) -> Any:
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj
