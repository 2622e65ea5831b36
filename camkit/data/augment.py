"""Training augmentation of the paper (after GMIC): horizontal flip and a random shift/scale crop.

Every random draw comes from ``(seed, epoch, sample index)`` alone, so a sample is augmented the same way
whatever batch, worker or rank it lands in; that is what makes resumed and data-parallel runs reproduce a
single uninterrupted process.

Pixel values are never re-normalised here. Per-image normalisation is the dataset's job, with statistics
taken from the un-augmented (and, for synthetic data, lesion-free) image: statistics recomputed on a crop would
depend on whether the crop holds the mass, and the network could read the label from them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

_TAG = 0x61756775  # separates augmentation draws from any other use of the same seed


@dataclass(frozen=True)
class AugmentParams:
    """One sample's draw: mirror left-right, then crop a window of ``scale`` x the image and resize it back.

    ``dy``, ``dx`` in [-1, 1] place the window: -1 at the top/left edge, 1 at the bottom/right edge.
    """

    flip: bool
    scale: float
    dy: float
    dx: float


def draw_params(seed: int, epoch: int, index: int, *, hflip: bool = True,
                crop_scale: tuple[float, float] | None = (0.9, 1.0)) -> AugmentParams:
    """The augmentation of sample ``index`` in ``epoch`` (``crop_scale`` None: no crop)."""
    rng = np.random.default_rng([_TAG, int(seed), int(epoch), int(index)])
    u = rng.random(4)
    flip = bool(hflip and u[0] < 0.5)
    if crop_scale is None:
        return AugmentParams(flip, 1.0, 0.0, 0.0)
    lo, hi = crop_scale
    return AugmentParams(flip, float(lo + (hi - lo) * u[1]), float(2 * u[2] - 1), float(2 * u[3] - 1))


def apply(images: Any, params: list[AugmentParams]) -> Any:
    """Augment a batch (B, C, H, W) on its own device; ``params[i]`` is image i's draw.

    The flip is exact (``torch.flip``); the crop samples the window bilinearly at the output size, which is
    a crop followed by a resize in one step. The window always lies inside the image, so no padding enters.
    """
    import torch
    import torch.nn.functional as F

    if images.dim() != 4 or len(params) != images.shape[0]:
        raise ValueError(f"augment.apply: expected a (B, C, H, W) batch and one draw per image, got "
                         f"{tuple(images.shape)} and {len(params)} draws")
    flips = torch.tensor([p.flip for p in params], device=images.device)
    if bool(flips.any()):
        images = torch.where(flips.view(-1, 1, 1, 1), images.flip(-1), images)
    crops = [i for i, p in enumerate(params) if p.scale < 1.0]
    if not crops:
        return images
    sub = images[crops]
    dtype = sub.dtype if sub.is_floating_point() else torch.float32
    cropped = F.grid_sample(sub.to(dtype), _window_grid([params[i] for i in crops], sub.shape[-2:], sub.device,
                                                        dtype),
                            mode="bilinear", padding_mode="border", align_corners=False)
    out = images.clone()
    out[crops] = cropped.to(images.dtype)
    return out


def _window_grid(params: list[AugmentParams], size: Any, device: Any, dtype: Any) -> Any:
    """The sampling grid (N, H, W, 2) of each crop window: ``x_in = scale * x_out + (1 - scale) * dx`` (and the
    same in y) in grid_sample's [-1, 1] coordinates, pixel centres as with ``align_corners=False``.

    What ``F.affine_grid`` gives for a diagonal theta (to one float32 ulp), built from its two separable axes:
    affine_grid multiplies a full (H*W, 3) base grid by theta and was 85% of the augmentation's time on a CPU.
    """
    import torch

    h, w = int(size[0]), int(size[1])
    scale = torch.tensor([p.scale for p in params], dtype=dtype, device=device)[:, None]
    tx = torch.tensor([(1.0 - p.scale) * p.dx for p in params], dtype=dtype, device=device)[:, None]
    ty = torch.tensor([(1.0 - p.scale) * p.dy for p in params], dtype=dtype, device=device)[:, None]
    xs = (torch.arange(w, dtype=dtype, device=device) * 2 + 1) / w - 1
    ys = (torch.arange(h, dtype=dtype, device=device) * 2 + 1) / h - 1
    gx = (scale * xs + tx)[:, None, :].expand(-1, h, -1)
    gy = (scale * ys + ty)[:, :, None].expand(-1, -1, w)
    return torch.stack([gx, gy], -1)
