"""EigenGradCAM: the first principal component of activations times gradients."""
from __future__ import annotations

from torch import Tensor

from camkit.cams.base import CAMContext, CAMMethod
from camkit.cams.projection import first_component


class EigenGradCAM(CAMMethod):
    """EigenGradCAM (grad-cam's class-discriminative variant of Eigen-CAM, Muhammad & Yeasin, IJCNN 2020).

    map = ``relu((G * A) v_1)``: EigenCAM's projection of the elementwise product ``G_k * A_k`` (read as h*w
    samples of K channels, centred per channel), signed so that ``|max| >= |min|`` (see :class:`EigenCAM`).

    Example::

        >>> import timm, torch, camkit
        >>> model = timm.create_model("resnet18", num_classes=2, in_chans=1).eval()
        >>> maps = camkit.cam_maps(model, torch.randn(1, 1, 64, 64), ["eigengradcam"], ["layer3"], targets=1)
        >>> tuple(maps["eigengradcam"].shape)
        (1, 64, 64)
    """

    name = "eigengradcam"
    needs_gradients = True

    def raw_map(self, ctx: CAMContext) -> Tensor:
        return first_component(ctx.gradients * ctx.activations)
