"""Data-parallel plumbing for training under ``torchrun``: process group, device, gathers, buffer sync.

One process per device. ``setup()`` joins the process group that torchrun describes in the environment
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``): NCCL on CUDA, gloo on CPU.
Without those variables everything runs as a single process and the helpers below are no-ops.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from camkit.errors import CamkitError


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: its rank, the world size and the device it trains on."""

    rank: int
    world_size: int
    local_rank: int
    device: Any  # torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def env_world_size() -> int:
    """WORLD_SIZE as torchrun sets it (1 when not launched by torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def setup(device: str | None = None) -> DistInfo:
    """Join torchrun's process group if there is one, pick this process's device, and say where we are.

    ``device`` None picks ``cuda:<LOCAL_RANK>`` when CUDA is available and the CPU otherwise. A group that
    is already initialised (by the caller) is used as is.
    """
    import torch
    import torch.distributed as dist

    from camkit.training.device import check_device

    check_device(device)
    world = env_world_size()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local_rank if world > 1 else torch.cuda.current_device())
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not (dist.is_available() and dist.is_initialized()):
        if not dist.is_available():
            raise CamkitError("WORLD_SIZE > 1 but this torch build has no torch.distributed support")
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if backend == "gloo" and not dist.is_gloo_available():
            raise CamkitError("CPU data-parallel training needs the gloo backend, which this torch lacks")
        dist.init_process_group(backend=backend, device_id=dev if dev.type == "cuda" else None)
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, dev)
    return DistInfo(0, 1, 0, dev)


def cleanup() -> None:
    """Leave the process group (call once at the end of a torchrun script)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def rank() -> int:
    """This process's rank in the process group (0 outside one)."""
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """The number of processes in the process group (1 outside one)."""
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _active() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    import torch.distributed as dist

    if _active():
        dist.barrier()


def gather_to_main(obj: Any) -> list[Any] | None:
    """Every rank's ``obj`` as a list on rank 0 (None elsewhere); ``[obj]`` in a single process."""
    import torch.distributed as dist

    if not _active():
        return [obj]
    out: list[Any] | None = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(obj, out, dst=0)
    return out


def broadcast_from_main(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    import torch.distributed as dist

    if not _active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def average_buffers(module: Any) -> None:
    """Average floating-point buffers (BatchNorm running statistics) over ranks, in place.

    Each rank's BatchNorm sees only its own micro-batches; averaging before validation and checkpoints makes
    every rank evaluate, and rank 0 save, the same statistics.
    """
    import torch
    import torch.distributed as dist

    if not _active():
        return
    world = dist.get_world_size()
    for buf in module.buffers():
        if torch.is_floating_point(buf):
            dist.all_reduce(buf, op=dist.ReduceOp.SUM)
            buf.div_(world)
