"""The training-time map ("train-cam") that picks GLAM's patch.

``cam`` is GLAM's own patch map, as released: ``0.2 x_layer3 + 0.6 x_layer2 + 0.2 x_layer1`` (finest to final
weights ``patch_weights``). Any other registered CAM method is computed, inside the forward and without a
second forward of the network, on each of the three feature maps for that scale's own score (the top-k mean
of its sigmoid head, on its own grid), through the train-cam machinery GMIC uses too (``camkit.nn.traincam``); each
scale's map is min-max normalised per image and class (methods differ in scale, GLAM's maps are all
sigmoids), brought to the finest grid by nearest upsampling, and mixed with the same weights. Full-backward
methods (FullGrad) read the graph from the input, which this per-scale route does not record: refused.
"""
from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from camkit.errors import OptionError
from camkit.nn.traincam import NATIVE, method_cost, roi_source_maps, train_method

__all__ = ["NATIVE", "glam_train_method", "patch_source_maps"]


def glam_train_method(name: str, options: dict[str, Any] | None = None) -> Any:
    """The method instance behind train-cam ``name`` (None for ``cam``); refuses full-backward methods."""
    method = train_method(name, options)
    if method is not None and method_cost(method) == "full-backward":
        raise OptionError(f"train-cam {name!r} (full-backward) cannot drive GLAM's patch choice yet: it reads "
                          "the graph from the input, and GLAM's train-cams are computed per scale from the "
                          "feature maps; use a one-pass, second-order or perturbation method")
    return method


class _Scale(nn.Module):
    """One scale of the trunk as a network of its own (what a perturbation train-cam re-runs)."""

    def __init__(self, trunk: nn.Module, index: int):
        super().__init__()
        self.trunk, self.index = trunk, index

    def forward(self, x: Tensor) -> Tensor:
        return self.trunk(x)[self.index]


def patch_source_maps(method: Any, feats: tuple[Tensor, Tensor, Tensor], heads: tuple[nn.Conv2d, ...],
                      top_k: float, weights: tuple[float, float, float], native: Tensor, *,
                      inputs: Tensor | None = None, trunk: nn.Module | None = None) -> Tensor:
    """Class maps (B, C, h, w) on the finest grid, detached, float32, that pick the patch."""
    if method is None:
        return native.detach().float()
    size = feats[0].shape[-2:]
    mixed = None
    # summed in the release's order (final, middle, finest) so that "cam"-like maps round alike
    for i in (2, 1, 0):
        maps = roi_source_maps(method, feats[i], heads[i].weight, top_k, None, inputs=inputs,
                               ds_net=_Scale(trunk, i) if trunk is not None else None)
        flat = maps.flatten(2)
        lo = flat.amin(-1, keepdim=True)
        maps = ((flat - lo) / (flat.amax(-1, keepdim=True) - lo).clamp_min(1e-12)).view_as(maps)
        if maps.shape[-2:] != size:
            maps = F.interpolate(maps, size=size)
        term = weights[i] * maps
        mixed = term if mixed is None else mixed + term
    return mixed
