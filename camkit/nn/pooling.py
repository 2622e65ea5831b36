"""Top-fraction pooling: the mean of a map's largest cells (GMIC's top-t, GLAM's top-k)."""
from __future__ import annotations

from torch import Tensor


def top_fraction_mean(maps: Tensor, fraction: float) -> Tensor:
    """Mean of the top ``round(n * fraction)`` values (at least 1) of each (B, C, ...) map over everything after
    C. Python's ``round`` (half to even, as both released models: 364.5 -> 364)."""
    flat = maps.flatten(2)
    k = max(1, min(flat.shape[-1], int(round(flat.shape[-1] * fraction))))
    return flat.topk(k, dim=-1, sorted=False).values.mean(-1)
