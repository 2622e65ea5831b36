"""FEM: channels weighted by how often they fire above their own k-sigma threshold."""
from __future__ import annotations

from torch import Tensor

from camkit.cams.base import CAMContext, CAMMethod, NonNegative


class FEM(CAMMethod):
    """FEM, the Feature Explanation Method (Fuad et al., "Features understanding in 3D CNNs for actions
    recognition in video", IPTA 2020).

    ``w_k = mean_ij [A_kij > mu_k + k * sigma_k]`` with ``mu_k``, ``sigma_k`` the mean and (population) standard
    deviation of channel k over the map; map = ``relu(sum_k w_k A_k)``. No gradients; class-agnostic.
    ``k`` = 2 by default, as in grad-cam 1.5.7.

    Example::

        >>> import timm, torch, camkit
        >>> from camkit.cams.methods.fem import FEM
        >>> model = timm.create_model("resnet18", num_classes=2, in_chans=1).eval()
        >>> maps = camkit.cam_maps(model, torch.randn(1, 1, 64, 64), [FEM(k=3)], ["layer3"])
        >>> tuple(maps["fem"].shape)
        (1, 64, 64)
    """

    name = "fem"
    needs_gradients = False

    def __init__(self, k: NonNegative = 2.0):
        self.k = float(k)

    def __repr__(self) -> str:
        return f"FEM(k={self.k:g})"

    def weights(self, ctx: CAMContext) -> Tensor:
        a = ctx.activations
        mean = a.mean(dim=(2, 3), keepdim=True)
        std = a.std(dim=(2, 3), correction=0, keepdim=True)
        return (a > mean + self.k * std).to(a.dtype).mean(dim=(2, 3))
