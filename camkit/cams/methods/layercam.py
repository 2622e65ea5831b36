"""LayerCAM: every location weighted by its own positive gradient (no channel weight)."""
from __future__ import annotations

from torch import Tensor

from camkit.cams.base import CAMContext, CAMMethod


class LayerCAM(CAMMethod):
    """LayerCAM (Jiang et al., "LayerCAM: Exploring hierarchical class activation maps for localization",
    IEEE TIP 30, 2021).

    map = ``relu(sum_k relu(G_k) * A_k)`` (elementwise); no tanh scaling of shallow layers. The authors fuse
    several layers by their maximum: ``camkit.cam_maps(..., fuse="max")``.

    Example::

        >>> import timm, torch, camkit
        >>> model = timm.create_model("resnet18", num_classes=2, in_chans=1).eval()
        >>> maps = camkit.cam_maps(model, torch.randn(1, 1, 64, 64), ["layercam"],
        ...                        ["layer2", "layer3", "layer4"], targets=0, fuse="max")
        >>> tuple(maps["layercam"].shape)
        (1, 64, 64)
    """

    name = "layercam"
    needs_gradients = True

    def raw_map(self, ctx: CAMContext) -> Tensor:
        return (ctx.gradients.clamp(min=0) * ctx.activations).sum(dim=1)
