"""FinerCAM: Grad-CAM of the target's margin over the classes the model confuses it with."""
from __future__ import annotations

import torch
from torch import Tensor

from camkit.cams.base import CAMContext, CAMMethod, Count


class FinerCAM(CAMMethod):
    """Finer-CAM (Zhang et al., "Finer-CAM: Spotting the difference reveals finer details for visual
    explanation", CVPR 2025), with Grad-CAM as the base method, as grad-cam 1.5.7's default.

    The score explained is ``S' = sum_j p_j (y_c - alpha y_j) / (sum_j p_j + 1e-9)`` over the ``comparisons``
    classes ``j`` whose scores are closest to the target's ``y_c`` (the target excluded), ``p = softmax(y)``
    (differentiated too, as in grad-cam); ``w_k = mean_ij dS'/dA_kij``; map = ``relu(sum_k w_k A_k)``. It
    costs one more activation gradient than the other one-pass methods, no extra forward. A model with one
    class has nothing to compare with: FinerCAM does not apply (its map is None, reported as not applicable).

    Example::

        >>> import timm, torch, camkit
        >>> from camkit.cams.methods.finercam import FinerCAM
        >>> model = timm.create_model("resnet18", num_classes=5).eval()
        >>> maps = camkit.cam_maps(model, torch.randn(1, 3, 64, 64), [FinerCAM(alpha=0.6)], ["layer4"], targets=3)
        >>> tuple(maps["finercam"].shape)
        (1, 64, 64)
    """

    name = "finercam"
    needs_gradients = True
    not_applicable = "FinerCAM contrasts the target class with others; this model scores a single class"

    def __init__(self, alpha: float = 1.0, comparisons: Count = 3):
        self.alpha, self.comparisons = float(alpha), int(comparisons)

    def __repr__(self) -> str:
        return f"FinerCAM(alpha={self.alpha:g}, comparisons={self.comparisons})"

    def target_score(self, scores: Tensor, targets: Tensor) -> Tensor:
        k = min(self.comparisons, scores.shape[1] - 1)
        own = scores.gather(1, targets[:, None])
        if k < 1:
            return own[:, 0] * 0.0  # nothing to compare with; raw_map reports "not applicable"
        distance = (scores.detach() - own.detach()).abs().scatter(1, targets[:, None], float("inf"))
        closest = distance.topk(k, dim=1, largest=False).indices
        p = torch.softmax(scores, dim=1).gather(1, closest)
        return (p * (own - self.alpha * scores.gather(1, closest))).sum(1) / (p.sum(1) + 1e-9)

    def raw_map(self, ctx: CAMContext) -> Tensor | None:
        if ctx.scores is not None and ctx.scores.shape[1] < 2:
            return None
        return torch.einsum("bk,bkhw->bhw", ctx.gradients.mean(dim=(2, 3)), ctx.activations)
