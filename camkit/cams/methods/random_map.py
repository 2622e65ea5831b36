"""Random CAM: channel weights drawn uniformly from [-1, 1], the baseline every method should beat."""
from __future__ import annotations

import torch
from torch import Tensor

from camkit.cams.base import CAMContext, CAMMethod


class RandomCAM(CAMMethod):
    """Random CAM (grad-cam's ``RandomCAM``): ``w_k ~ U(-1, 1)`` per image and channel; map =
    ``relu(sum_k w_k A_k)``. A sanity baseline (Adebayo et al., "Sanity checks for saliency maps", NeurIPS
    2018): a method that localises no better than this one has learnt nothing about the lesion.

    The draws come from a ``torch.Generator`` seeded with ``seed`` when the method is created, on the CPU
    (the same weights on every device), and advance with every map.

    Example::

        >>> import timm, torch, camkit
        >>> from camkit.cams.methods.random_map import RandomCAM
        >>> model = timm.create_model("resnet18", num_classes=2, in_chans=1).eval()
        >>> x = torch.randn(1, 1, 64, 64)
        >>> a = camkit.cam_maps(model, x, [RandomCAM(seed=3)], ["layer4"])["random"]
        >>> b = camkit.cam_maps(model, x, [RandomCAM(seed=3)], ["layer4"])["random"]
        >>> bool(torch.equal(a, b))
        True
    """

    name = "random"
    needs_gradients = False

    def __init__(self, seed: int = 0):
        self.seed = int(seed)
        self._generator = torch.Generator().manual_seed(self.seed)

    def __repr__(self) -> str:
        return f"RandomCAM(seed={self.seed})"

    def draw(self, batch: int, channels: int) -> Tensor:
        """The next (batch, channels) weights in [-1, 1), on the CPU."""
        return torch.rand(batch, channels, generator=self._generator, dtype=torch.float64) * 2 - 1

    def weights(self, ctx: CAMContext) -> Tensor:
        b, k = ctx.activations.shape[:2]
        return self.draw(b, k).to(device=ctx.activations.device, dtype=ctx.activations.dtype)
