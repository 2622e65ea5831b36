"""EigenCAM: the activations' first principal component (no gradients, no class)."""
from __future__ import annotations

from torch import Tensor

from camkit.cams.base import CAMContext, CAMMethod
from camkit.cams.projection import first_component


class EigenCAM(CAMMethod):
    """EigenCAM (Muhammad & Yeasin, "Eigen-CAM: Class activation map using principal components", IJCNN 2020).

    With ``A`` read as h*w samples of K channels, centred per channel: map = ``relu(A v_1)``, ``v_1`` the first
    right singular vector of ``A``. The map explains the layer, not a class: every target gives the same map.
    The sign of a singular vector is arbitrary; camkit fixes it so that ``|max| >= |min|``
    (:func:`camkit.cams.projection.first_component`), where grad-cam 1.5.7's ``EigenCAM`` keeps LAPACK's
    sign and can return the map of the opposite direction (docs/cams.md).

    Example::

        >>> import timm, torch, camkit
        >>> model = timm.create_model("resnet18", num_classes=2, in_chans=1).eval()
        >>> maps = camkit.cam_maps(model, torch.randn(2, 1, 64, 64), ["eigencam"], ["layer3"])
        >>> tuple(maps["eigencam"].shape)
        (2, 64, 64)
    """

    name = "eigencam"
    needs_gradients = False

    def raw_map(self, ctx: CAMContext) -> Tensor:
        return first_component(ctx.activations)
