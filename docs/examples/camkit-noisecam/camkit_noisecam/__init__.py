"""Two noise-driven CAMs for camkit: a chance-level baseline, and SmoothGrad on Grad-CAM.

``noise``: ``M = U`` with ``U ~ Uniform(0, 1)`` drawn per image at the hooked layer's resolution from a
generator seeded by ``seed``, so runs are reproducible. The map ignores the image: where a real CAM method
should beat chance.

``noisygrad``: Grad-CAM's weights averaged over noisy copies of the image (SmoothGrad, Smilkov et al. 2017, on
Grad-CAM): ``w_k = mean_m mean_ij G_m,kij`` with ``G_m`` the target score's activation gradient on
``x + eps_m``, ``eps_m ~ N(0, std^2)``, ``m = 1..num_samples``; map ``relu(sum_k w_k A_k)``. It needs the model
again, with gradients, on every copy: cost class ``"gradient-reruns"`` and ``ctx.rerun.activation_gradients``
(docs/plugins.md, "Gradients on extra forwards"); camkit then treats it as test-time only.

Example::

    >>> import camkit
    >>> maps = camkit.cam_maps(model, x, ["noise", "noisygrad"], model.cam_layers, targets=0)  # doctest: +SKIP
"""
from __future__ import annotations

import torch

from camkit import CAMMethod, hookimpl


class NoiseCAM(CAMMethod):
    """Uniform noise at feature resolution: a chance-level baseline."""

    name = "noise"
    needs_gradients = False

    def __init__(self, seed: int = 0):
        self.seed = seed

    def raw_map(self, ctx):
        a = ctx.activations
        g = torch.Generator(device="cpu").manual_seed(self.seed)
        return torch.rand((a.shape[0], a.shape[2], a.shape[3]), generator=g).to(a.device)


class NoisyGradCAM(CAMMethod):
    """Grad-CAM on gradients averaged over ``num_samples`` noisy copies of each image (SmoothGrad)."""

    name = "noisygrad"
    cost = "gradient-reruns"  # one forward and backward of the whole model per copy; test-time only

    def __init__(self, num_samples: int = 8, std: float = 0.2, seed: int = 0):
        self.num_samples, self.std, self.seed = num_samples, std, seed

    def forwards(self, batch: int, channels: int) -> int:
        return self.num_samples * batch  # the progress total: every copy the method runs

    def weights(self, ctx):
        x = ctx.rerun.inputs  # the batch (B, C, H, W)
        g = torch.Generator(device="cpu").manual_seed(self.seed)
        copies = torch.cat([x + self.std * torch.randn(x.shape, generator=g).to(x) for _ in range(self.num_samples)])
        found = ctx.rerun.activation_gradients(copies, ctx.targets.repeat(self.num_samples))
        # copies are sample-major: (num_samples * B, K, h, w) -> (num_samples, B, K, h, w)
        return found.gradients.unflatten(0, (self.num_samples, x.shape[0])).mean(dim=(0, 3, 4))


@hookimpl
def register_cams(register):
    register("noise", NoiseCAM)
    register("noisygrad", NoisyGradCAM)
