"""Spatial pooling of class maps: how a weakly supervised classifier turns a map per class into a score.

Each head takes the class maps ``s`` (B, C, h, w) -- the linear classifier applied at every location of the
last stage's features -- and returns logits (B, C). Pooling after the classifier keeps CAM exact for every head:
the map a head pools is the map CAM reads (for average pooling it equals pooling first, Zhou et al. 2016).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

POOLINGS = ("avg", "max", "topt", "lse", "attention")


def top_t_mean(s: Tensor, t: float) -> Tensor:
    """Mean of the top ``round(h*w*t)`` (at least 1) cells of each map, GMIC's pooling: (B,C,h,w) -> (B,C)."""
    flat = s.flatten(2)
    k = max(1, min(flat.shape[-1], int(round(flat.shape[-1] * t))))
    return flat.topk(k, dim=-1, sorted=False).values.mean(-1)


def log_sum_exp(s: Tensor, r: float) -> Tensor:
    """``(1/r) log mean exp(r s)`` (Pinheiro & Collobert, CVPR 2015): the mean as r -> 0, the max as r -> inf."""
    flat = s.flatten(2)
    return (torch.logsumexp(r * flat, dim=-1) - math.log(flat.shape[-1])) / r


class GatedAttentionPool(nn.Module):
    """Gated-attention MIL over locations (Ilse et al., ICML 2018): ``a = softmax_hw(w(sigmoid(U f) * tanh(V f)))``
    from the features ``f``, logits ``sum_hw a * s``. The attention is class-agnostic, the class maps are not."""

    def __init__(self, channels: int, dim: int):
        super().__init__()
        self.attn_v = nn.Conv2d(channels, dim, 1, bias=False)
        self.attn_u = nn.Conv2d(channels, dim, 1, bias=False)
        self.attn_w = nn.Conv2d(dim, 1, 1, bias=False)

    def weights(self, features: Tensor) -> Tensor:
        """Attention (B, 1, h, w), summing to 1 over each image's locations."""
        gate = torch.sigmoid(self.attn_u(features)) * torch.tanh(self.attn_v(features))
        logits = self.attn_w(gate)
        return torch.softmax(logits.flatten(2), dim=-1).view_as(logits)

    def forward(self, s: Tensor, features: Tensor) -> Tensor:
        return (self.weights(features) * s).sum((2, 3))


def pool(kind: str, s: Tensor, features: Tensor, *, top_t: float, lse_r: float,
         attention: GatedAttentionPool | None) -> Tensor:
    """Logits (B, C) from class maps ``s`` (B, C, h, w) with head ``kind`` (one of :data:`POOLINGS`)."""
    if kind == "avg":
        return s.mean((2, 3))
    if kind == "max":
        return s.amax((2, 3))
    if kind == "topt":
        return top_t_mean(s, top_t)
    if kind == "lse":
        return log_sum_exp(s, lse_r)
    if kind == "attention" and attention is not None:
        return attention(s, features)
    raise ValueError(f"pooling {kind!r}: use one of {', '.join(POOLINGS)}")
