"""Element-wise Grad-CAM: the positive part of activations times gradients, summed over channels."""
from __future__ import annotations

from torch import Tensor

from camkit.cams.base import CAMContext, CAMMethod


class GradCAMElementWise(CAMMethod):
    """Element-wise Grad-CAM (grad-cam's ``GradCAMElementWise``; HiResCAM with the ReLU moved inside the sum).

    map = ``relu(sum_k relu(G_k * A_k))``: a location counts only where a channel's activation and gradient
    agree in sign, so negative evidence of one channel cannot cancel positive evidence of another.

    Example::

        >>> import timm, torch, camkit
        >>> model = timm.create_model("resnet18", num_classes=2, in_chans=1).eval()
        >>> maps = camkit.cam_maps(model, torch.randn(1, 1, 64, 64), ["gradcam-elementwise"], ["layer4"], 0)
        >>> bool(maps["gradcam-elementwise"].min() >= 0)
        True
    """

    name = "gradcam-elementwise"
    needs_gradients = True

    def raw_map(self, ctx: CAMContext) -> Tensor:
        return (ctx.gradients * ctx.activations).clamp(min=0).sum(dim=1)
