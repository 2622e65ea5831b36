"""The training-time map ("train-cam") that drives GMIC's ROI retrieval.

``cam`` is GMIC's own saliency head, as released. Any other name is a registered CAM method, computed inside
the forward from ``h_g`` and one ``autograd.grad`` of the global score through the camkit CAM engine: no second
forward of the network, no parameter gradients, and the map never reaches the loss (retrieval is
non-differentiable). It works in eval under ``torch.no_grad`` too: the gradient is taken w.r.t. a detached
copy of ``h_g`` pushed through the saliency head and top-t pooling again (cheap: a 1x1 convolution).
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .global_net import top_t_pool

NATIVE = "cam"


def engine_train_time_map() -> Callable[..., Tensor]:
    """``camkit.cams.engine.train_time_map`` (looked up late so tests and plugins may replace it)."""
    from camkit.cams.engine import train_time_map

    return train_time_map


def check_train_cam(name: str) -> None:
    """Fail early, with close matches, when ``name`` is neither ``cam`` nor a registered CAM method, and when it
    is a perturbation method (those need extra forwards of the whole model, not possible inside its own)."""
    if name != NATIVE:
        import camkit
        from camkit.errors import OptionError

        method = camkit.get_cam(name)  # raises UnknownNameError listing the registered methods
        if getattr(method, "cost", "one-pass") == "perturbation":
            raise OptionError(f"gmic: train_cam {name!r} is a perturbation method (one extra forward per channel) "
                              "and cannot drive ROI retrieval yet; choose a one-pass or second-order method")


def roi_source_maps(method: str, h_g: Tensor, head_weight: Tensor, top_t: float, saliency: Tensor) -> Tensor:
    """Class maps (B, C, h, w), detached, float32, for ROI retrieval with train-cam ``method``."""
    if method == NATIVE:
        return saliency.detach().float()
    with torch.enable_grad(), torch.autocast(h_g.device.type, enabled=False):
        # float32 and off autocast: ROI picks are argmaxes, where bf16 ties would move crops
        leaf = h_g.detach().float().requires_grad_(True)
        score = top_t_pool(torch.sigmoid(F.conv2d(leaf, head_weight.detach().float())), top_t)
        maps = engine_train_time_map()(method, leaf, score)
    return maps.detach().float()
