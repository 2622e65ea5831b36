"""GMIC's training loss (paper eq. 2) and camkit's two optional map terms: flip consistency and evidence alignment."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .presets import EVIDENCE_SPACES

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


def evidence_alignment(saliency: Tensor, input_grad: Tensor, power: float, space: str = "map") -> Tensor:
    """Pull the saliency map's peak onto the pixels that actually move the score (a camkit addition).

    ``target = normalise(avgpool(|dy/dx|) ** power)`` on the map's grid, a constant (no gradient flows into it);
    the loss is ``KL(target || q)`` over the cells, averaged over the images given, where ``q`` is the map as a
    distribution: ``saliency / sum(saliency)`` (``space="map"``: the map boxes are cut from, so a cell at half
    the peak costs as much as it would widen a box) or ``softmax(logit(saliency))`` (``space="logit"``: only
    logit differences count, so a saturated plateau around the peak is free).
    Pooling the top t% of cells rewards a cell that fires *near* the mass as much as one *on* it; the input
    gradient is where the evidence is, so its mass sits on the lesion (docs/training.md).

    ``saliency``: (P, h, w) probabilities of the mass class; ``input_grad``: (P, 1, H, W) gradient of that class's
    ``y_global`` with respect to the input, for the same P (positive) images. ``power`` sharpens the target.
    """
    if space not in EVIDENCE_SPACES:
        raise ValueError(f"evidence space {space!r}: use one of {', '.join(EVIDENCE_SPACES)}")
    with torch.autocast(saliency.device.type, enabled=False):
        tiny = 1e-12
        e = F.adaptive_avg_pool2d(input_grad.float().abs().sum(1, keepdim=True), saliency.shape[-2:]).flatten(1)
        e = e ** power
        target = (e / e.sum(1, keepdim=True).clamp_min(tiny)).detach()
        s = saliency.float().flatten(1)
        if space == "map":
            logq = torch.log((s / s.sum(1, keepdim=True).clamp_min(tiny)).clamp_min(tiny))
        else:  # the logit of a saturated sigmoid is +-inf: clamp to keep the softmax finite
            logq = F.log_softmax(torch.logit(s, eps=1e-6), 1)
        return (target * (torch.log(target.clamp_min(tiny)) - logq)).sum(1).mean()

