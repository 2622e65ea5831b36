"""GMIC's training loss (paper eq. 2) and camkit's optional flip-consistency term (evidence alignment, the other
camkit term, is :func:`camkit.nn.evidence.evidence_alignment`, which GLAM uses too)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

HEADS = ("y_global", "y_local", "y_fusion")


def gmic_loss(out: dict[str, Tensor], targets: Tensor, beta: float, flip_weight: float = 0.0,
              flipped_saliency: Tensor | None = None, flip_dim: int = 3) -> tuple[Tensor, dict[str, Tensor]]:
    """``sum_c BCE(y_global) + BCE(y_local) + BCE(y_fusion) + beta * mean|saliency| [+ w * flip term]``.

    BCE is averaged over the batch and summed over classes. The flip term (a camkit addition, not the
    paper's) is ``mean |saliency(flip(x)) - flip(saliency(x))|``; ``flipped_saliency`` is the first.
    Computed in float32 outside autocast (BCE on probabilities is not autocast-safe).
    Returns (loss, parts) with parts as detached 0-dim tensors.
    """
    with torch.autocast(targets.device.type, enabled=False):
        parts: dict[str, Tensor] = {}
        total = 0.0
        for head in HEADS:
            bce = F.binary_cross_entropy(out[head].float(), targets, reduction="none").mean(0).sum()
            parts[f"bce_{head[2:]}"] = bce
            total = total + bce
        reg = out["saliency"].float().abs().mean()
        parts["saliency_l1"] = reg
        total = total + beta * reg
        cons = torch.zeros((), device=targets.device)
        if flip_weight > 0 and flipped_saliency is not None:
            cons = (flipped_saliency.float() - out["saliency"].float().flip(flip_dim)).abs().mean()
            total = total + flip_weight * cons
        parts["flip_consistency"] = cons  # always present (0 when off) so logs keep the same columns
        parts = {"loss": total, **parts}
    return total, {k: v.detach() for k, v in parts.items()}
