"""ROAD, RemOve And Debias (Rong et al., "A consistent and efficient evaluation strategy for attribution
methods", ICML 2022), with grad-cam 1.5.7's imputation and percentile convention.

Deletion metrics set removed pixels to a constant, which a model reads as a shape: the removal itself, not the
lost information, moves the score, and it leaks which pixels were removed. ROAD fills the removed pixels by
**noisy linear imputation** instead: each removed pixel takes the weighted mean of its 8 neighbours (edge
neighbours 1/6, diagonal ones 1/12, the weights of neighbours outside the image left out), solved for all
removed pixels at once as one sparse linear system, then noise of standard deviation ``noise`` is added.

- **MoRF** (most relevant first) at percentile p keeps a fixed number of the image's least relevant pixels,
  ``k = ceil(p / 100 * (H*W - 1))`` (:func:`keep_mask`), and imputes the rest, i.e. it removes the
  (100 - p)% most relevant pixels; a faithful map makes the score *drop*.
- **LeRF** (least relevant first) at p keeps the k *most* relevant pixels: it removes the (100 - p)% least
  relevant; the score should *stay*.
- Each value is the score after imputation minus the score of the original image (grad-cam's
  ``return_diff``); grad-cam's ``ROADCombined`` is the mean over percentiles of ``(lerf - morf) / 2``
  (higher is better).

Where camkit differs from grad-cam 1.5.7:

- **The removed share is fixed by rank**, as in the ROAD paper (a percentage of the pixels is removed). grad-cam
  keeps the pixels strictly below ``numpy.percentile(map, p)``; when p% or more of the map sits at its minimum
  (common with ReLU maps: all the zeros) the threshold *is* the minimum, nothing is below it, and the whole
  image is removed at every such p (LeRF likewise with a plateau at the maximum). camkit ranks the pixels by
  value, ties in row-major order (a stable sort), and keeps exactly k. Without ties, k is the number of values
  numpy's linear percentile puts strictly below its threshold, so both remove the same pixels.
- The noise comes from a ``torch.Generator`` seeded by ``seed`` (grad-cam draws from torch's global
  generator), drawn image by image and percentile by percentile, so a result is reproducible.
- When no pixel is kept (p = 0) the image is filled with its mean instead of an unsolvable system.

With ``noise=0`` the numbers equal grad-cam's on maps without ties (tests/test_metrics_road.py).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import math
from fractions import Fraction

import numpy as np

PERCENTILES = (10, 20, 30, 40, 50, 60, 70, 80, 90)
NOISE = 0.01
#: (row offset, column offset) -> weight of that neighbour in the imputed pixel's mean
NEIGHBOURS = (((-1, -1), 1 / 12), ((-1, 0), 1 / 6), ((-1, 1), 1 / 12), ((0, -1), 1 / 6),
              ((0, 1), 1 / 6), ((1, -1), 1 / 12), ((1, 0), 1 / 6), ((1, 1), 1 / 12))


@dataclass(frozen=True)
class ROADResult:
    """Per image (N, P): score after imputation minus the original score, for each of ``percentiles``."""

    percentiles: tuple[float, ...]
    morf: np.ndarray
    lerf: np.ndarray

    @property
    def combined(self) -> np.ndarray:
        """(N,) grad-cam's ROADCombined per image: mean over percentiles of (lerf - morf) / 2."""
        return ((self.lerf - self.morf) / 2).mean(axis=1)

    def summary(self) -> dict[str, float]:
        """Means over images and percentiles: ``{"morf", "lerf", "combined"}``."""
        return {"morf": float(self.morf.mean()), "lerf": float(self.lerf.mean()),
                "combined": float(self.combined.mean())}


def road(score_fn: Callable[[Any], Any], images: Any, maps: Any, percentiles: Sequence[float] = PERCENTILES,
         noise: float = NOISE, seed: int = 0, batch_size: int = 32) -> ROADResult:
    """ROAD's MoRF and LeRF score changes of each image's map at each percentile (module docstring).

    Args:
        score_fn: batch (B, C, H, W) -> (B,) target scores (for camkit models, the mass probability).
        images: (N, C, H, W) float tensor.
        maps: (N, H, W) relevance maps in [0, 1] (resized bilinearly to the images when they differ).
        percentiles: in [0, 100].
        noise: standard deviation of the noise added to imputed pixels (0: none).
        seed: seeds the noise.
        batch_size: most imputed images per ``score_fn`` call.

    Example:
        >>> import torch
        >>> img = torch.arange(16.).reshape(1, 1, 4, 4); m = img[:, 0] / 15
        >>> r = road(lambda b: b.mean(dim=(1, 2, 3)), img, m, percentiles=(50,), noise=0.0)
        >>> bool(r.morf[0, 0] < 0 < r.lerf[0, 0])
        True
    """
    import torch

    from camkit.metrics.faithfulness import checked_scores, image_and_map_batch

    x, m = image_and_map_batch(images, maps)
    ps = tuple(float(p) for p in percentiles)
    if not ps or any(not 0.0 <= p <= 100.0 for p in ps):
        raise ValueError(f"road: percentiles must be numbers in [0, 100], got {list(percentiles)!r}")
    if float(noise) < 0:
        raise ValueError(f"road: noise must be >= 0, got {noise!r}")
    gen = torch.Generator().manual_seed(int(seed))
    n = x.shape[0]
    maps_np = m.detach().cpu().double().numpy()
    out = {"morf": np.empty((n, len(ps))), "lerf": np.empty((n, len(ps)))}
    with torch.no_grad():
        base = torch.cat([checked_scores(score_fn, x[lo:lo + batch_size], x[lo:lo + batch_size].shape[0])
                          for lo in range(0, n, int(batch_size))]).numpy()
        for order in ("morf", "lerf"):
            pending: list[Any] = []
            where: list[tuple[int, int]] = []
            for i in range(n):
                # LeRF keeps the most relevant: rank by -map (exact, where 1 - map can round values together)
                rel = maps_np[i] if order == "morf" else -maps_np[i]
                rank = np.argsort(rel.reshape(-1), kind="stable")  # once per map, not once per percentile
                for j, p in enumerate(ps):
                    keep = keep_mask(rel, p, rank)
                    pending.append(impute(x[i], keep, noise, gen))
                    where.append((i, j))
                    if len(pending) == batch_size:
                        _flush(score_fn, pending, where, base, out[order], checked_scores)
            _flush(score_fn, pending, where, base, out[order], checked_scores)
    return ROADResult(ps, out["morf"], out["lerf"])


def keep_mask(relevance: Any, percentile: float, rank: np.ndarray | None = None) -> np.ndarray:
    """The pixels ROAD keeps at ``percentile``: the ``k = ceil(percentile / 100 * (n - 1))`` lowest of the n
    values of ``relevance`` (any shape; the mask has its shape), ties kept in row-major order.

    ``k`` is what ``relevance < numpy.percentile(relevance, p)`` keeps when no two values tie (numpy's linear
    interpolation puts its threshold at index ``p / 100 * (n - 1)`` of the sorted values), computed in exact
    arithmetic; with ties the percentile rule keeps fewer, and none once p% of the values share the minimum,
    while this mask keeps k whatever the ties (the ROAD paper's fixed fraction). Stable: the same input
    always gives the same mask, and among tied values the earlier pixels are kept. ``rank``: the flattened
    values' stable argsort, when the caller keeps it for several percentiles of one map.

    Example:
        >>> keep_mask(np.array([[0., 0., 0.], [0., 0.5, 1.]]), 50).astype(int).tolist()   # k = ceil(2.5)
        [[1, 1, 1], [0, 0, 0]]
    """
    rel = np.asarray(relevance, dtype=np.float64)
    p = float(percentile)
    if not 0.0 <= p <= 100.0:
        raise ValueError(f"road: percentiles must be numbers in [0, 100], got {percentile!r}")
    n = rel.size
    # the decimal the caller wrote (10, 33.3), exactly: float products like 0.1 * 30 land just above an integer
    k = math.ceil(Fraction(repr(p)) * (n - 1) / 100)
    keep = np.zeros(n, dtype=bool)
    if rank is None:
        rank = np.argsort(rel.reshape(-1), kind="stable")
    keep[rank[:k]] = True
    return keep.reshape(rel.shape)


def _flush(score_fn: Any, pending: list[Any], where: list[tuple[int, int]], base: np.ndarray, into: np.ndarray,
           scores: Any) -> None:
    import torch

    if not pending:
        return
    s = scores(score_fn, torch.stack(pending), len(pending)).numpy()
    for (i, j), v in zip(where, s):
        into[i, j] = v - base[i]
    pending.clear()
    where.clear()


def impute(image: Any, keep: np.ndarray, noise: float = NOISE, generator: Any = None) -> Any:
    """Noisy linear imputation of one image (C, H, W): the pixels where ``keep`` (H, W) is False are solved
    as the weighted mean of their neighbours (:data:`NEIGHBOURS`), every channel at once, plus noise."""
    import torch
    from scipy.sparse import csc_matrix
    from scipy.sparse.linalg import spsolve

    c, h, w = image.shape
    keep = np.asarray(keep, dtype=bool).reshape(h * w)
    flat = image.detach().cpu().double().reshape(c, h * w).numpy()
    unknown = np.flatnonzero(~keep)
    out = flat.copy()
    if unknown.size == 0:
        return image.clone()
    if unknown.size == h * w:  # nothing left to impute from: the image's mean
        out[:] = flat.mean(axis=1, keepdims=True)
    else:
        var = np.full(h * w, -1, dtype=np.int64)
        var[unknown] = np.arange(unknown.size)
        r, col = np.divmod(unknown, w)
        diag = np.zeros(unknown.size)
        rhs = np.zeros((unknown.size, c))
        rows, cols, vals = [], [], []
        for (dr, dc), wt in NEIGHBOURS:
            rr, cc = r + dr, col + dc
            inside = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
            diag[inside] += wt
            eq = np.flatnonzero(inside)
            nb = rr[inside] * w + cc[inside]
            known = keep[nb]
            rhs[eq[known]] -= wt * flat[:, nb[known]].T      # known neighbours: to the right-hand side
            rows.append(eq[~known])
            cols.append(var[nb[~known]])
            vals.append(np.full(int((~known).sum()), wt))
        rows.append(np.arange(unknown.size))
        cols.append(np.arange(unknown.size))
        vals.append(-diag)
        a = csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                       shape=(unknown.size, unknown.size))
        solved = spsolve(a, rhs).reshape(unknown.size, c)
        out[:, unknown] = solved.T
    result = torch.as_tensor(out, dtype=image.dtype).reshape(c, h, w)
    if noise > 0:
        mask = torch.as_tensor(~keep.reshape(h, w))
        result = result + float(noise) * torch.randn(c, h, w, generator=generator, dtype=image.dtype) * mask
    return result.to(image.device)
