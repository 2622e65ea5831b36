"""Evidence alignment: a training term that pulls a model's map onto the pixels whose input gradient moves its
score (a camkit addition to GMIC and GLAM, docs/training.md)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

# how evidence alignment reads the map as a distribution
EVIDENCE_SPACES = ("map", "logit")


def evidence_alignment(saliency: Tensor, input_grad: Tensor, power: float, space: str = "map") -> Tensor:
    """Pull the saliency map's peak onto the pixels that actually move the score (a camkit addition).

    ``target = normalise(avgpool(|dy/dx|) ** power)`` on the map's grid, a constant (no gradient flows into it);
    the loss is ``KL(target || q)`` over the cells, averaged over the images given, where ``q`` is the map as a
    distribution: ``saliency / sum(saliency)`` (``space="map"``: the map boxes are cut from, so a cell at half
    the peak costs as much as it would widen a box) or ``softmax(logit(saliency))`` (``space="logit"``: only
    logit differences count, so a saturated plateau around the peak is free).
    Pooling the top t% of cells rewards a cell that fires *near* the mass as much as one *on* it; the input
    gradient is where the evidence is, so its mass sits on the lesion (docs/training.md). GMIC and GLAM use it.

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

