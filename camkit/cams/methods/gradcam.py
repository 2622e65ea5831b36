"""Grad-CAM: channel weights are the spatially averaged gradients."""
from __future__ import annotations

from torch import Tensor

from camkit.cams.base import CAMContext, CAMMethod


class GradCAM(CAMMethod):
    """Grad-CAM (Selvaraju et al., "Grad-CAM: Visual explanations from deep networks via gradient-based
    localization", ICCV 2017).

    ``w_k = mean_{ij} G_kij``;  map = ``relu(sum_k w_k A_k)``, where ``G = dS/dA`` for the target score ``S``.

    Example::

        >>> import timm, torch, camkit
        >>> model = timm.create_model("resnet18", num_classes=2, in_chans=1).eval()
        >>> maps = camkit.cam_maps(model, torch.randn(2, 1, 64, 64), ["gradcam"], ["layer4"], targets=[0, 1])
        >>> tuple(maps["gradcam"].shape)
        (2, 64, 64)
    """

    name = "gradcam"
    needs_gradients = True

    def weights(self, ctx: CAMContext) -> Tensor:
        return ctx.gradients.mean(dim=(2, 3))
