"""Which samples each rank sees in each step: a seeded permutation split the same way for any layout.

An optimizer step consumes a *global batch* of ``batch_size x accumulate x world_size`` samples, taken in
order from the epoch's permutation. Rank ``r`` takes the ``r``-th contiguous slice of ``batch_size x
accumulate`` samples and feeds it as ``accumulate`` micro-batches of ``batch_size``. So the micro-batches
of one step are the same sets of samples whether they run on 2 ranks x 1 micro-batch or 1 rank x 2
micro-batches, and the summed gradient is the same up to float rounding.
The last incomplete global batch of an epoch is dropped (every step has equal micro-batches, and every rank
runs the same number of steps); the permutation changes each epoch, so different samples are left out.
"""
from __future__ import annotations

import numpy as np

_TAG = 0x70657266  # separates the data order from augmentation draws of the same seed


def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """The order of ``n`` samples in ``epoch`` (0-based), from ``(seed, epoch)`` only."""
    return np.random.default_rng([_TAG, int(seed), int(epoch)]).permutation(n)


def steps_per_epoch(n: int, global_batch: int) -> int:
    """Optimizer steps in one epoch of ``n`` samples (incomplete global batches are dropped)."""
    return n // global_batch


def rank_micro_batches(n: int, seed: int, epoch: int, batch_size: int, accumulate: int, rank: int,
                       world_size: int) -> list[list[list[int]]]:
    """``out[step][micro]`` = the sample indices rank ``rank`` feeds in that micro-batch of that step."""
    perm = epoch_permutation(n, seed, epoch)
    per_rank = batch_size * accumulate
    global_batch = per_rank * world_size
    out = []
    for step in range(steps_per_epoch(n, global_batch)):
        start = step * global_batch + rank * per_rank
        mine = perm[start:start + per_rank].tolist()
        out.append([mine[m * batch_size:(m + 1) * batch_size] for m in range(accumulate)])
    return out


def validation_shard(n: int, rank: int, world_size: int) -> list[int]:
    """Rank ``rank``'s contiguous share of ``n`` validation samples: no padding, no sample twice."""
    lo, hi = n * rank // world_size, n * (rank + 1) // world_size
    return list(range(lo, hi))
