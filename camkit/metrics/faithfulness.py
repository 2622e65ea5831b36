"""Faithfulness of activation maps: does the model's score follow the pixels a map ranks highest?

- :func:`deletion_insertion` (Petsiuk et al., RISE, BMVC 2018): remove the most relevant pixels first and
  watch the score fall (deletion; lower area is better), or reveal them first on a blank image and watch it
  rise (insertion; higher area is better).
- :func:`confidence_change` (Chattopadhay et al., Grad-CAM++, WACV 2018): average drop and increase in
  confidence when the image is multiplied by its map.

``score_fn(batch) -> (B,)`` is the target score of a batch of images (for camkit models, the probability of
the mass class). Images are (N, C, H, W); maps are (N, H, W) (or (N, 1, H, W)) and are resized bilinearly to
the images' size when they differ. Everything stays on the images' device; the perturbed images are built and
scored in chunks of at most ``batch_size`` images, so memory is bounded whatever ``steps`` is.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

BASELINES = ("min", "zero", "blur")
BLUR_KERNEL = 11   # the blur baseline's Gaussian: 11 x 11 taps, sigma 5 (RISE's insertion baseline)
BLUR_SIGMA = 5.0


@dataclass(frozen=True)
class DeletionInsertion:
    """Curves (N, steps + 1) of the score after each step, and their areas (N,) over x = step / steps."""

    deletion: np.ndarray
    insertion: np.ndarray
    deletion_auc: np.ndarray
    insertion_auc: np.ndarray

    def summary(self) -> dict[str, float]:
        """Mean areas over the images: ``{"deletion": ..., "insertion": ...}``."""
        return {"deletion": float(self.deletion_auc.mean()), "insertion": float(self.insertion_auc.mean())}


def deletion_insertion(score_fn: Callable[[Any], Any], images: Any, maps: Any, steps: int = 50,
                       baseline: str = "min", batch_size: int = 32) -> DeletionInsertion:
    """Deletion and insertion curves of each image's map.

    Pixels are ordered by descending map value (equal values: ascending row-major index). At step ``s`` the
    first ``round(s * H * W / steps)`` pixels (Python's ``round``) are set to the baseline in every channel
    (deletion), or, starting from the all-baseline image, set back to the original (insertion); step 0 is the
    original image for deletion and the baseline for insertion. Areas use the trapezoidal rule over
    ``x = s / steps``.

    Args:
        score_fn: batch (B, C, H, W) -> (B,) target scores.
        images: (N, C, H, W) float tensor.
        maps: (N, H, W) relevance maps; only their order matters.
        steps: number of steps (>= 1).
        baseline: ``"min"`` each image's minimum, ``"zero"``, or ``"blur"`` the image blurred by an 11 x 11
            Gaussian with sigma 5 (reflect padding).
        batch_size: most perturbed images per ``score_fn`` call.

    Example:
        >>> import torch
        >>> img = torch.zeros(1, 1, 2, 2); img[0, 0, 0, 0] = 1.0
        >>> r = deletion_insertion(lambda b: b.sum(dim=(1, 2, 3)), img, img[:, 0], steps=4, baseline="zero")
        >>> r.deletion[0].tolist(), r.insertion[0].tolist()
        ([1.0, 0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 1.0, 1.0, 1.0])
    """
    import torch

    x, m = image_and_map_batch(images, maps)
    if int(steps) < 1:
        raise ValueError(f"deletion_insertion: steps must be >= 1, got {steps!r}")
    if int(batch_size) < 1:
        raise ValueError(f"deletion_insertion: batch_size must be >= 1, got {batch_size!r}")
    steps = int(steps)
    n, _, h, w = x.shape
    base = _baseline(x, baseline)
    counts = torch.tensor([round(s * h * w / steps) for s in range(steps + 1)], dtype=torch.int32,
                          device=x.device)
    dele = torch.empty(n, steps + 1, dtype=torch.float64)
    ins = torch.empty(n, steps + 1, dtype=torch.float64)
    for i in range(n):
        order = torch.argsort(-m[i].reshape(-1), stable=True)
        rank = torch.empty(h * w, dtype=torch.int32, device=x.device)   # int32: half the traffic of int64
        rank[order] = torch.arange(h * w, dtype=torch.int32, device=x.device)
        rank = rank.reshape(1, 1, h, w)
        for lo in range(0, steps + 1, batch_size):
            k = counts[lo:lo + batch_size].reshape(-1, 1, 1, 1)
            first = rank < k                                                   # (S, 1, H, W)
            with torch.no_grad():
                dele[i, lo:lo + len(k)] = checked_scores(score_fn, torch.where(first, base[i], x[i]), len(k))
                ins[i, lo:lo + len(k)] = checked_scores(score_fn, torch.where(first, x[i], base[i]), len(k))
    d, a = dele.numpy(), ins.numpy()
    return DeletionInsertion(d, a, _trapezoid(d), _trapezoid(a))


def confidence_change(score_fn: Callable[[Any], Any], images: Any, maps: Any,
                      batch_size: int = 32) -> dict[str, Any]:
    """Average drop and increase in confidence (Chattopadhay et al., WACV 2018).

    With ``Y`` the score of the image and ``O`` the score of the image multiplied by its map (broadcast over
    channels): ``average_drop = mean(max(0, Y - O) / Y)`` and ``increase = mean(O > Y)``, as fractions (the
    paper prints percentages). Images whose ``Y`` is not > 0 are rejected: the drop is undefined.

    Returns:
        ``{"average_drop": float, "increase": float, "drop": (N,) array, "y": (N,), "o": (N,)}``.

    Example:
        >>> import torch
        >>> img = torch.ones(2, 1, 2, 2); maps = torch.tensor([[[1., 1.], [0., 0.]], [[1., 1.], [1., 1.]]])
        >>> r = confidence_change(lambda b: b.mean(dim=(1, 2, 3)), img, maps)
        >>> r["average_drop"], r["increase"]
        (0.25, 0.0)
    """
    import torch

    x, m = image_and_map_batch(images, maps)
    y = torch.empty(x.shape[0], dtype=torch.float64)
    o = torch.empty_like(y)
    with torch.no_grad():
        for lo in range(0, x.shape[0], int(batch_size)):
            sl = slice(lo, lo + int(batch_size))
            y[sl] = checked_scores(score_fn, x[sl], x[sl].shape[0])
            o[sl] = checked_scores(score_fn, x[sl] * m[sl, None], x[sl].shape[0])
    if not bool((y > 0).all()):
        bad = (y <= 0).nonzero().reshape(-1)[:10].tolist()
        raise ValueError(f"confidence_change: the score of image(s) {bad} is <= 0, so the relative drop is "
                         "undefined; evaluate on images the model scores above 0 (e.g. the positives)")
    drop = (y - o).clamp_min(0) / y
    return {"average_drop": float(drop.mean()), "increase": float((o > y).double().mean()),
            "drop": drop.numpy(), "y": y.numpy(), "o": o.numpy()}


# --- shared steps (ROAD, camkit.metrics.imputation, uses the first two) and internals ---------------------------

def image_and_map_batch(images: Any, maps: Any) -> tuple[Any, Any]:
    """``(images (N, C, H, W) float tensor, maps (N, H, W) of the images' dtype and size)``, checked; maps of
    another size are resized bilinearly. The inputs every perturbation metric (here and ROAD's) starts from."""
    import torch
    import torch.nn.functional as F

    x = images if isinstance(images, torch.Tensor) else torch.as_tensor(np.asarray(images))
    if x.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W); got shape {tuple(x.shape)}")
    x = x if x.is_floating_point() else x.float()
    m = maps if isinstance(maps, torch.Tensor) else torch.as_tensor(np.asarray(maps))
    m = m.to(x.device, torch.float32)
    if m.ndim == 4 and m.shape[1] == 1:
        m = m[:, 0]
    if m.ndim != 3 or m.shape[0] != x.shape[0]:
        raise ValueError(f"maps must be (N, H, W) with N = {x.shape[0]} images; got shape {tuple(m.shape)}")
    if m.shape[-2:] != x.shape[-2:]:
        m = F.interpolate(m[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    return x, m.to(x.dtype)


def _baseline(x: Any, kind: str) -> Any:
    import torch
    import torch.nn.functional as F

    if kind == "zero":
        return torch.zeros_like(x)
    if kind == "min":
        return x.amin(dim=(1, 2, 3), keepdim=True).expand_as(x)
    if kind == "blur":
        r = BLUR_KERNEL // 2
        t = torch.arange(BLUR_KERNEL, device=x.device, dtype=x.dtype) - r
        g = torch.exp(-(t ** 2) / (2 * BLUR_SIGMA ** 2))
        g = g / g.sum()
        c = x.shape[1]
        # reflect needs more pixels than the radius; a tiny image repeats its edge instead
        pad = "reflect" if min(x.shape[-2:]) > r else "replicate"
        y = F.pad(x, (r, r, 0, 0), mode=pad)
        y = F.conv2d(y, g.reshape(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
        y = F.pad(y, (0, 0, r, r), mode=pad)
        return F.conv2d(y, g.reshape(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    raise ValueError(f"unknown baseline {kind!r}; choose one of {', '.join(BASELINES)}")


def checked_scores(score_fn: Callable[[Any], Any], batch: Any, expected: int) -> Any:
    """``score_fn(batch)`` as a float64 CPU tensor of ``expected`` scores; a ValueError when the count differs."""
    import torch

    s = score_fn(batch)
    s = s if isinstance(s, torch.Tensor) else torch.as_tensor(np.asarray(s))
    s = s.reshape(-1)
    if s.numel() != expected:
        raise ValueError(f"score_fn returned {s.numel()} scores for a batch of {expected} images; it must "
                         "return one target score per image, shape (B,)")
    return s.detach().to("cpu", torch.float64)


def _trapezoid(curves: np.ndarray) -> np.ndarray:
    steps = curves.shape[1] - 1
    return (curves.sum(axis=1) - 0.5 * (curves[:, 0] + curves[:, -1])) / steps
