"""Gated-attention multiple-instance pooling (Ilse et al. 2018) as GMIC uses it over the crop features."""
from __future__ import annotations

import torch
from torch import Tensor, nn


def gated_attention(h: Tensor, attn_v: nn.Linear, attn_u: nn.Linear, attn_w: nn.Linear) -> tuple[Tensor, Tensor]:
    """``a = softmax_k(w(sigmoid(U h) * tanh(V h)))``, ``z = sum_k a_k h_k``.

    h: (B, K, D) crop features -> (z (B, D), a (B, K)).
    """
    gate = torch.sigmoid(attn_u(h)) * torch.tanh(attn_v(h))
    a = torch.softmax(attn_w(gate).squeeze(-1), dim=1)
    z = torch.einsum("bk,bkd->bd", a, h)
    return z, a
