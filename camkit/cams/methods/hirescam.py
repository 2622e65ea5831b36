"""HiResCAM: each location's activations times their own gradients, summed over channels."""
from __future__ import annotations

from torch import Tensor

from camkit.cams.base import CAMContext, CAMMethod


class HiResCAM(CAMMethod):
    """HiResCAM (Draelos & Carin, "Use HiResCAM instead of Grad-CAM for faithful explanations of convolutional
    neural networks", arXiv:2011.08891, 2020).

    map = ``relu(sum_k G_k * A_k)`` (elementwise; Grad-CAM averages ``G_k`` over the map first). For a model
    whose score is a linear function of the upsampled map, HiResCAM shows exactly the locations that raise it.

    Example::

        >>> import timm, torch, camkit
        >>> model = timm.create_model("resnet18", num_classes=2, in_chans=1).eval()
        >>> maps = camkit.cam_maps(model, torch.randn(2, 1, 64, 64), ["hirescam"], ["layer4"], targets=1)
        >>> tuple(maps["hirescam"].shape)
        (2, 64, 64)
    """

    name = "hirescam"
    needs_gradients = True

    def raw_map(self, ctx: CAMContext) -> Tensor:
        return (ctx.gradients * ctx.activations).sum(dim=1)
