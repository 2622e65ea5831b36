"""KPCA-CAM: the first kernel principal component of the activations."""
from __future__ import annotations

from torch import Tensor

from camkit.cams.base import CAMContext, CAMMethod, NonNegative
from camkit.cams.projection import sigmoid_kernel_component


class KPCACAM(CAMMethod):
    """KPCA-CAM (Karmani et al., "KPCA-CAM: Visual explainability of deep computer vision models using kernel
    PCA", IEEE MMSP 2024).

    EigenCAM with kernel PCA: the locations (h*w samples of K channels, centred) are compared with the sigmoid
    kernel ``tanh(gamma <a, b> + coef0)`` (``gamma`` None: ``1 / K``; ``coef0`` 1, scikit-learn's defaults) and
    map = ``relu(sqrt(lambda_1) u_1)``, ``u_1`` the top eigenvector of the double-centred Gram matrix, signed so
    that its largest-magnitude entry is positive, as scikit-learn's ``KernelPCA`` signs it. Class-agnostic;
    the Gram matrix is (h*w)^2 per image, so it is the slowest method of the one-pass group on large maps.

    Example::

        >>> import timm, torch, camkit
        >>> model = timm.create_model("resnet18", num_classes=2, in_chans=1).eval()
        >>> from camkit.cams.methods.kpcacam import KPCACAM
        >>> maps = camkit.cam_maps(model, torch.randn(1, 1, 64, 64), [KPCACAM(gamma=0.01)], ["layer3"])
        >>> tuple(maps["kpcacam"].shape)
        (1, 64, 64)
    """

    name = "kpcacam"
    needs_gradients = False

    def __init__(self, gamma: NonNegative | None = None, coef0: float = 1.0):
        self.gamma, self.coef0 = gamma, coef0

    def __repr__(self) -> str:
        return f"KPCACAM(gamma={self.gamma!r}, coef0={self.coef0!r})"

    def raw_map(self, ctx: CAMContext) -> Tensor:
        return sigmoid_kernel_component(ctx.activations, self.gamma, self.coef0)
