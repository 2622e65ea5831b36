"""The training-time map ("train-cam") that drives a model's region retrieval (GMIC's ROIs, GLAM's patch).

``cam`` is the model's own map (GMIC's saliency head, as released). Any other name is a registered CAM method
(created with the config's ``train_cam_options``, e.g. ``{"k": 3}`` for ``fem``), computed inside the forward
from a feature map ``h_g`` (its score: the top-t mean of a sigmoid 1x1 head) and one ``autograd.grad`` of that
score through the camkit CAM engine: no second forward of the network, no parameter gradients, and the map
never reaches the loss (retrieval is non-differentiable). It works in eval under ``torch.no_grad`` too: the gradient is taken w.r.t. a detached
copy of ``h_g`` pushed through the saliency head and top-t pooling again (cheap: a 1x1 convolution).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from camkit.cams.rerun import ScoreRerun, eval_mode
from camkit.errors import OptionError

from .pooling import top_fraction_mean as top_t_pool

NATIVE = "cam"


def engine_train_time_map() -> Callable[..., Tensor]:
    """``camkit.cams.engine.train_time_map`` (looked up late so tests and plugins may replace it)."""
    from camkit.cams.engine import train_time_map

    return train_time_map


def train_method(name: str, options: dict[str, Any] | None = None) -> Any:
    """The method instance behind train-cam ``name`` with its constructor ``options``; None for ``cam``.

    Fails early, with close matches, when ``name`` is neither ``cam`` nor a registered CAM method, and names
    the method's options when one is not taken.
    """
    if name == NATIVE:
        if options:
            raise OptionError(f"train_cam_options {sorted(options)}: train-cam 'cam' (GMIC's own saliency head) "
                              "takes no options")
        return None
    import camkit
    from camkit.cams.base import train_time_problem

    method = camkit.get_cam(name, **dict(options or {}))
    problem = train_time_problem(method)
    if problem:  # refused when the model is built, not at its first training step
        raise OptionError(f"train-cam {name!r}: {problem}; choose another train-cam (camkit list cams: train_cam yes)")
    return method


def _instance(method: str | Any) -> Any:
    """A method given by name (a registry look-up) or already as an instance (:func:`train_method`)."""
    if isinstance(method, str):
        import camkit

        return camkit.get_cam(method)
    return method


def method_cost(method: str | Any) -> str:
    """The cost class of a train-cam, given by name or as a method instance ("native" for GMIC's own map)."""
    if isinstance(method, str) and method == NATIVE:
        return "native"
    return str(getattr(_instance(method), "cost", "one-pass"))


def global_features(ds_net: nn.Module, x: Tensor, method: str | Any) -> tuple[Tensor, dict | None]:
    """``h_g = ds_net(x)``; for a full-backward train-cam (FullGrad) also what its map reads: the input and
    every biased layer's output, recorded in one graph from the input (under ``enable_grad``, in eval too).
    ``method``: a name or an instance (:func:`train_method`)."""
    if method_cost(method) != "full-backward":
        return ds_net(x), None
    from camkit.cams.capture import LayerCapture

    layers = _instance(method).gradient_layers(ds_net)
    with torch.enable_grad(), LayerCapture(layers, track_grad=True, what="gradient layer") as capture:
        leaf = x if x.requires_grad else x.detach().requires_grad_(True)
        h_g = ds_net(leaf)
    return h_g, {"inputs": leaf, "layers": {n: (layers[n], a) for n, a in capture.activations.items()}}


def roi_source_maps(method: str | Any, h_g: Tensor, head_weight: Tensor, top_t: float, saliency: Tensor, *,
                    inputs: Tensor | None = None, ds_net: nn.Module | None = None,
                    full_inputs: dict | None = None) -> Tensor:
    """Class maps (B, C, h, w), detached, float32, for ROI retrieval with train-cam ``method``.

    A perturbation method re-runs the global network on masked ``inputs`` (``ds_net`` in eval mode, so
    BatchNorm uses and keeps its running statistics) or only the saliency head on ablated ``h_g``; a
    full-backward method (FullGrad) reads ``full_inputs`` from :func:`global_features`, its map at the input's
    resolution pooled to ``h_g``'s (ROI retrieval works on the saliency grid).
    """
    if isinstance(method, str) and method == NATIVE:
        return saliency.detach().float()
    weight = head_weight.detach().float()

    def global_score(h: Tensor) -> Tensor:
        return top_t_pool(torch.sigmoid(F.conv2d(h.float(), weight)), top_t)

    cost = method_cost(method)
    with torch.enable_grad(), torch.autocast(h_g.device.type, enabled=False):
        # float32 and off autocast: ROI picks are argmaxes, where bf16 ties would move crops
        if cost == "full-backward":
            maps = engine_train_time_map()(method, h_g, global_score(h_g), full_inputs=full_inputs)
            return F.adaptive_avg_pool2d(maps.detach().float(), h_g.shape[-2:])
        rerun = None
        if cost == "perturbation":
            if inputs is None or ds_net is None:
                raise ValueError(f"train-cam {method!r} re-runs the global network: pass inputs= and ds_net=")

            def score_inputs(images: Tensor) -> Tensor:
                with eval_mode(ds_net):
                    return global_score(ds_net(images))

            rerun = ScoreRerun(inputs.detach(), score_inputs, global_score)
        leaf = h_g.detach().float().requires_grad_(True)
        maps = engine_train_time_map()(method, leaf, global_score(leaf), rerun=rerun)
    return maps.detach().float()
