"""A noise-map baseline for camkit: where a real CAM method should beat chance.

Formula: ``M = U`` with ``U ~ Uniform(0, 1)`` drawn per image at the hooked layer's resolution from a generator
seeded by ``seed``, so runs are reproducible. The map ignores the image.

Example::

    >>> import camkit
    >>> maps = camkit.cam_maps(model, x, ["noise"], model.cam_layers, targets=0)  # doctest: +SKIP
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


@hookimpl
def register_cams(register):
    register("noise", NoiseCAM)
