"""A random-map baseline for camkit: where a real CAM method should beat chance.

Formula: ``M = U``, with ``U ~ Uniform(0, 1)`` drawn per image at the feature map's resolution from a generator
seeded by the batch's activations' shape and ``seed``, so runs are reproducible. The map ignores the image.

Example::

    >>> import camkit
    >>> maps = camkit.cam_maps(model, x, ["random"], model.cam_layers, targets=0)  # doctest: +SKIP
"""
from __future__ import annotations

import torch

from camkit import CAMMethod, hookimpl


class RandomCAM(CAMMethod):
    """Uniform noise at feature resolution: a chance-level baseline."""

    name = "random"
    needs_gradients = False

    def __init__(self, seed: int = 0):
        self.seed = seed

    def raw_map(self, ctx):
        a = ctx.activations
        g = torch.Generator(device="cpu").manual_seed(self.seed)
        noise = torch.rand((a.shape[0], a.shape[2], a.shape[3]), generator=g)
        return noise.to(a.device)


@hookimpl
def register_cams(register):
    register("random", RandomCAM)
