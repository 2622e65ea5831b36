"""XGrad-CAM: gradients weighted by the activations normalised by their spatial sum."""
from __future__ import annotations

from torch import Tensor

from camkit.cams.base import CAMContext, CAMMethod


class XGradCAM(CAMMethod):
    """XGrad-CAM (Fu et al., "Axiom-based Grad-CAM: Towards accurate visualization and explanation of CNNs",
    BMVC 2020).

    ``w_k = sum_ij G_kij * A_kij / (sum_ab A_kab + 1e-7)`` (divide elementwise, then sum);
    map = ``relu(sum_k w_k A_k)``.

    Example::

        >>> import timm, torch, camkit
        >>> model = timm.create_model("resnet18", num_classes=3, in_chans=1).eval()
        >>> maps = camkit.cam_maps(model, torch.randn(1, 1, 64, 48), ["xgradcam"], ["layer3", "layer4"], 2)
        >>> tuple(maps["xgradcam"].shape)
        (1, 64, 48)
    """

    name = "xgradcam"
    needs_gradients = True

    def weights(self, ctx: CAMContext) -> Tensor:
        a = ctx.activations
        sum_a = a.sum(dim=(2, 3), keepdim=True)
        return (ctx.gradients * a / (sum_a + 1e-7)).sum(dim=(2, 3))
