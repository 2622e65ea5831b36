"""SS-CAM: Score-CAM weights averaged over masks with Gaussian noise added."""
from __future__ import annotations

import torch
from torch import Tensor

from camkit.cams.base import CAMContext, CAMMethod, Count, NonNegative
from camkit.cams.rerun import chunks, feature_masks


class SSCAM(CAMMethod):
    """SS-CAM (Wang et al., "SS-CAM: Smoothed Score-CAM for sharper visual feature localization",
    arXiv:2006.14255, 2020), as torchcam 0.5 computes it.

    ``M_k`` = channel ``k`` min-max normalised at feature resolution and upsampled to the input;
    ``w = softmax_k( mean_i [ S(x * (M_k + delta_i)) - S(x) ] )`` over ``num_samples`` draws of
    ``delta_i ~ N(0, std^2)`` at input resolution, ``S`` the target score; map = ``relu(sum_k w_k A_k)``.
    ``num_samples`` x channels extra forwards per image, ``chunk`` at a time. The noise comes from a CPU
    ``torch.Generator`` seeded with ``seed`` for every map (the same images give the same map), drawn per
    sample, image and chunk in that order.

    Example::

        >>> import timm, torch, camkit
        >>> from camkit.cams.methods.sscam import SSCAM
        >>> model = timm.create_model("resnet18", num_classes=2, in_chans=1).eval()
        >>> maps = camkit.cam_maps(model, torch.randn(1, 1, 64, 64), [SSCAM(num_samples=2)], ["layer4"], 1)
        >>> tuple(maps["sscam"].shape)
        (1, 64, 64)
    """

    name = "sscam"
    needs_gradients = False
    cost = "perturbation"

    def __init__(self, num_samples: Count = 35, std: NonNegative = 2.0, chunk: Count = 32, seed: int = 0):
        self.num_samples, self.std, self.chunk, self.seed = int(num_samples), float(std), int(chunk), int(seed)

    def __repr__(self) -> str:
        return f"SSCAM(num_samples={self.num_samples}, std={self.std:g}, chunk={self.chunk}, seed={self.seed})"

    def noise(self, generator: torch.Generator, count: int, size: tuple[int, int]) -> Tensor:
        """The next ``count`` noise fields (count, H, W) of the stream, on the CPU."""
        return torch.randn(count, *size, generator=generator, dtype=torch.float32) * self.std

    def forwards(self, batch: int, channels: int) -> int:
        return self.num_samples * batch * channels

    def weights(self, ctx: CAMContext) -> Tensor:
        rerun, a = ctx.rerun, ctx.activations
        x = rerun.inputs
        b, k = a.shape[:2]
        targets = ctx.targets.tolist()  # one host sync, not one per chunk
        size = tuple(x.shape[-2:])
        base = ctx.scores.gather(1, ctx.targets[:, None])[:, 0].double()
        total = torch.zeros(b, k, dtype=torch.float64, device=a.device)
        generator = torch.Generator().manual_seed(self.seed)
        for _ in range(self.num_samples):
            for i in range(b):
                for part in chunks(k, self.chunk):  # masks per chunk: (K, H, W) at input size may not fit
                    masks = feature_masks(a[i, part].to(x.dtype), size)
                    delta = self.noise(generator, part.stop - part.start, size).to(x.device, x.dtype)
                    s = rerun.score_inputs(x[i:i + 1] * (masks + delta)[:, None])
                    total[i, part] += s[:, targets[i]].double() - base[i]
        return torch.softmax(total / self.num_samples, dim=1).to(a.dtype)
