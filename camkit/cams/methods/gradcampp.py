"""Grad-CAM++: positive gradients weighted by second/third-order terms (the paper's closed form)."""
from __future__ import annotations

import torch
from torch import Tensor

from camkit.cams.base import CAMContext, CAMMethod


class GradCAMPlusPlus(CAMMethod):
    """Grad-CAM++ (Chattopadhay et al., "Grad-CAM++: Generalized gradient-based visual explanations for deep
    convolutional networks", WACV 2018), eq. 19 with the exponential-score simplification.

    ``alpha_kij = G_kij^2 / (2 G_kij^2 + sum_ab A_kab * G_kij^3 + 1e-6)``, ``alpha = 0`` where ``G == 0``;
    ``w_k = sum_ij relu(G_kij) * alpha_kij``;  map = ``relu(sum_k w_k A_k)``.
    No ReLU on alpha and no guard on the denominator's sign, as in the paper and grad-cam 1.5.7.

    Example::

        >>> import timm, torch, camkit
        >>> model = timm.create_model("resnet18", num_classes=2, in_chans=1).eval()
        >>> maps = camkit.cam_maps(model, torch.randn(1, 1, 64, 64), ["gradcampp"], ["layer4"], targets=1)
        >>> bool(maps["gradcampp"].min() >= 0) and bool(maps["gradcampp"].max() <= 1)
        True
    """

    name = "gradcampp"
    needs_gradients = True

    def weights(self, ctx: CAMContext) -> Tensor:
        g, a = ctx.gradients, ctx.activations
        g2 = g * g
        sum_a = a.sum(dim=(2, 3), keepdim=True)
        alpha = g2 / (2 * g2 + sum_a * g2 * g + 1e-6)
        alpha = torch.where(g != 0, alpha, torch.zeros_like(alpha))
        return (g.clamp(min=0) * alpha).sum(dim=(2, 3))
