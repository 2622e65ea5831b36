"""The complexity family of explanation metrics: how concentrated a map is, with no ground truth and no forward
(docs/metrics.md section 7).

- :func:`sparseness`: the Gini index of the map's absolute values (Chalasani et al., *Concise explanations of
  neural networks using adversarial training*, ICML 2020). 0 for a flat map, (n - 1) / n for one hot pixel out of
  n: **higher is more concentrated**.
- :func:`complexity`: the Shannon entropy (nats) of the map's absolute values normalised to sum to one (Bhatt et
  al., *Evaluating and aggregating feature-based model explanations*, IJCAI 2020). 0 for one hot pixel, log(n)
  for a flat map: **lower is simpler**.

Both follow Quantus 0.6's ``Sparseness`` and ``Complexity`` with their defaults (``abs=True``,
``normalise=True`` by the maximum absolute value, and their stabilising constants: ``eps``), computed per map,
each map on its own (Quantus normalises by the maximum of the whole batch one call is given). ``eps=0`` gives the
textbook Gini index and entropy. A map of zeros counts as flat (sparseness 0, complexity that of a flat map), where
Quantus gives NaN for its complexity. The sums run in float64 on the maps' device (on the CPU, numpy sorts).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

#: Quantus 0.6 ``Sparseness``: added to every max-normalised absolute value before the Gini index
SPARSENESS_EPS = 1e-7
#: Quantus 0.6 ``Complexity``: the entropy is ``-sum p log(p + eps)``
COMPLEXITY_EPS = 1e-12


def sparseness(maps: Any, eps: float = SPARSENESS_EPS) -> np.ndarray:
    """Per map (N,): the Gini index of ``|map|``, Quantus 0.6's ``Sparseness``.

    ``maps`` (N, H, W) or (N, ...) (every axis after the first is flattened; numpy or torch, any device). With
    ``a`` the map's absolute values divided by their maximum (a map of zeros left as is), plus ``eps``, sorted
    ascending over its n pixels, ``G = sum_i (2i - n - 1) a_i / (n sum_i a_i)`` (i = 1 .. n). The sort is the
    cost: O(n log n) per map.

    Example:
        >>> m = np.zeros((1, 4, 4)); m[0, 1, 2] = 5.0
        >>> float(sparseness(m, eps=0)[0])  # one hot pixel out of 16: (n - 1) / n
        0.9375
        >>> abs(float(sparseness(np.full((1, 4, 4), 0.3))[0])) < 1e-15  # a flat map, up to rounding
        True
    """
    import torch

    s = _ascending(_flat_abs(maps))
    n = s.shape[1]
    if s.shape[0] == 0:
        return np.zeros(0)
    weights = 2 * torch.arange(1, n + 1, device=s.device, dtype=torch.float64) - n - 1
    # with a = s / max + eps the weights sum to 0, so sum w a / (n sum a) = sum w s / (n (sum s + n eps max)): the
    # same index without dividing every pixel (equal to Quantus's to ~1e-15; a map of zeros: 0 / 0, given as 0)
    num = s @ weights
    den = n * (_finite(s.sum(dim=1)) + n * eps * s[:, -1])
    gini = torch.where(den > 0, num / torch.where(den > 0, den, 1.0), 0.0)
    return gini.cpu().numpy()


def complexity(maps: Any, eps: float = COMPLEXITY_EPS) -> np.ndarray:
    """Per map (N,): the entropy (nats) of ``|map|`` normalised to a distribution, Quantus 0.6's ``Complexity``.

    ``maps`` as :func:`sparseness`. With ``p = |map| / sum |map|`` over the map's n pixels,
    ``H = -sum_i p_i log(p_i + eps)``; ``eps=0`` takes ``0 log 0 = 0``. A map of zeros counts as flat
    (``p_i = 1 / n``: about ``log n``). Linear in n.

    Example:
        >>> m = np.zeros((1, 4, 4)); m[0, 1, 2] = 5.0
        >>> float(complexity(m, eps=0)[0])
        0.0
        >>> abs(float(complexity(np.full((1, 4, 4), 0.3), eps=0)[0]) - math.log(16)) < 1e-12
        True
    """
    import torch

    x = _flat_abs(maps).to(torch.float64)
    n = x.shape[1]
    total = _finite(x.sum(dim=1))
    # with p = x / T: -sum p log(p + eps) = log T - sum x log(x + eps T) / T, without dividing every pixel
    # (equal to Quantus's to ~1e-15); in place, one temporary; xlogy takes 0 log 0 = 0 when eps is 0
    if eps:
        acc = (x + eps * total[:, None]).log_().mul_(x).sum(dim=1)
    else:
        acc = torch.xlogy(x, x).sum(dim=1)
    h = torch.log(total) - acc / total
    h = torch.where(total > 0, h, flat_complexity(n, eps))  # a map of zeros: flat
    return (h + 0.0).cpu().numpy()  # -0.0 (one hot pixel, eps 0) + 0.0 is 0.0


def flat_complexity(n: int, eps: float = COMPLEXITY_EPS) -> float:
    """The complexity of a flat map of ``n`` pixels (the largest a map of n pixels can have): ``log n`` when
    ``eps`` is 0."""
    return -math.log(1.0 / n + eps) if eps else math.log(n)


def _ascending(x: Any) -> Any:
    """(N, n) -> each row sorted ascending, as float64, on ``x``'s device. On the CPU numpy sorts (its
    vectorised sort is 4 to 15 times faster than torch's on float32 maps); the order is that of the maps' own
    values, so sorting before the conversion to float64 gives the same rows."""
    import torch

    if x.device.type != "cpu":
        return torch.sort(x, dim=1).values.to(torch.float64)
    if x.dtype not in (torch.float32, torch.float64):
        x = x.to(torch.float32)  # exact for half and bfloat16
    return torch.from_numpy(np.sort(x.numpy(), axis=1)).to(torch.float64)


def _flat_abs(maps: Any) -> Any:
    """(N, ...) numpy or torch -> (N, n) absolute values as a torch tensor on the maps' device (floating)."""
    import torch

    x = maps.detach() if isinstance(maps, torch.Tensor) else torch.as_tensor(np.asarray(maps))
    if x.dim() < 2 or math.prod(x.shape[1:]) == 0:
        raise ValueError(f"maps must be (N, H, W) with at least one pixel per map, got shape {tuple(x.shape)}")
    if not torch.is_floating_point(x):
        x = x.to(torch.float64)
    return x.reshape(x.shape[0], math.prod(x.shape[1:])).abs()


def _finite(sums: Any) -> Any:
    """The per-map sums (N,), refused when a map held NaN or an infinite value (its sum is not finite)."""
    import torch

    if not torch.isfinite(sums).all():
        raise ValueError("maps hold NaN or infinite values")
    return sums
