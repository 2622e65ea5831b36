"""ShapleyCAM: Grad-CAM with the gradient corrected by half the Hessian-vector product."""
from __future__ import annotations

from torch import Tensor

from camkit.cams.base import CAMContext, CAMMethod


class ShapleyCAM(CAMMethod):
    """ShapleyCAM (Cai et al., "CAMs as Shapley value-based explainers", arXiv:2501.06261, 2025).

    ``w_k = mean_ij (G - 0.5 H A)_kij`` with ``H`` the Hessian of the target score with respect to ``A``
    (``H A`` a Hessian-vector product the engine takes with one double-backward); map = ``relu(sum_k w_k A_k)``.
    The second-order term is the Shapley-value correction of a quadratic expansion of the score around 0.
    Through a piecewise-linear head (ReLU, max-pooling, a linear classifier) ``H A`` is 0 and ShapleyCAM is
    Grad-CAM. Through a 1x1 convolution followed by a pointwise non-linearity and pooling (GMIC's saliency head)
    ``G`` and ``H A`` are both multiples of the head's weight at every location, so the map is Grad-CAM's up
    to scale; it differs where the head mixes channels non-linearly (a LayerNorm, an MLP).

    Example::

        >>> import timm, torch, camkit
        >>> model = timm.create_model("convnext_atto", num_classes=3).eval()
        >>> maps = camkit.cam_maps(model, torch.randn(1, 3, 64, 64), ["shapleycam"], ["stages.3"], targets=2)
        >>> tuple(maps["shapleycam"].shape)
        (1, 64, 64)
    """

    name = "shapleycam"
    needs_gradients = True
    needs_hessian_vector = True
    cost = "second-order"

    def weights(self, ctx: CAMContext) -> Tensor:
        return (ctx.gradients - 0.5 * ctx.hessian_vector).mean(dim=(2, 3))
