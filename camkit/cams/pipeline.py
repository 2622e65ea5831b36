"""The post-processing every method shares: ReLU, per-image min-max, upsampling and multi-layer fusion.

The order and the constants match grad-cam 1.5.7 to about 1e-7 (docs/cams.md), all in torch on the
maps' own device. At full resolution this is the engine's main cost beyond the forward, so the functions
avoid passes: maps of several methods are upsampled in one call and normalised in place where they own
the memory.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

EPS = 1e-7
FUSIONS = ("mean", "max")
_FEW_ROWS = 64


def _lo_hi(maps: Tensor) -> tuple[Tensor, Tensor]:
    """Per-map min and max over the last two dims, shaped (..., 1, 1)."""
    rows = maps.reshape(-1, maps.shape[-2] * maps.shape[-1])
    if maps.device.type == "cpu" and rows.shape[0] <= _FEW_ROWS:
        # On the CPU a whole-tensor reduction is vectorised, a reduction along dim over few rows is not (~8x)
        pairs = [torch.aminmax(r) for r in rows]
        lo, hi = torch.stack([p.min for p in pairs]), torch.stack([p.max for p in pairs])
    else:
        lo, hi = rows.aminmax(dim=-1)
    shape = (*maps.shape[:-2], 1, 1)
    return lo.reshape(shape), hi.reshape(shape)


def minmax(maps: Tensor, inplace: bool = False) -> Tensor:
    """``(x - min) / (1e-7 + max(x - min))`` per map over the last two dims; a constant map becomes zeros."""
    # max(x - min) == max - min exactly in floating point (subtraction is monotone), so one min/max pass will do
    lo, hi = _lo_hi(maps)
    out = maps.sub_(lo) if inplace else maps - lo
    return out.div_(EPS + (hi - lo))


def layer_maps(raw: Tensor, size: tuple[int, int]) -> Tensor:
    """Raw maps (N, h, w) of one layer -> ReLU, min-max, bilinear upsampling to ``size`` -> (N, H, W)."""
    m = minmax(raw.clamp(min=0), inplace=True)
    if tuple(m.shape[-2:]) != tuple(size):
        m = F.interpolate(m.unsqueeze(1), size=size, mode="bilinear", align_corners=False,
                          antialias=False).squeeze(1)
    return m


def fuse_layers(maps: list[Tensor], fuse: str = "mean", owned: bool = False) -> Tensor:
    """Per-layer maps (each (B, H, W)) -> ReLU, mean or max over layers, min-max again -> (B, H, W).

    ``owned=True``: the maps come straight from ``layer_maps`` (non-negative, nobody else holds them), so one
    map is normalised in its own memory and the identity ReLU is skipped.
    """
    if len(maps) == 1:  # the mean or max of one map is the map
        return minmax(maps[0], inplace=True) if owned else minmax(maps[0].clamp(min=0), inplace=True)
    stacked = torch.stack(maps, dim=1).clamp_(min=0)
    fused = stacked.mean(dim=1) if fuse == "mean" else stacked.amax(dim=1)
    return minmax(fused, inplace=True)
