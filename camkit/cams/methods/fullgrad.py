"""FullGrad: the input-gradient map plus every bias's gradient map, summed over the whole network."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from camkit.cams.base import CAMContext, CAMMethod
from camkit.cams.pipeline import minmax


class FullGrad(CAMMethod):
    """FullGrad (Srinivas & Fleuret, "Full-gradient representation for neural network visualization",
    NeurIPS 2019).

    map = ``psi(|x * dS/dx|) + sum_l sum_c psi(|b_l,c * dS/dz_l,c|)`` over every ``nn.Conv2d`` and
    ``nn.BatchNorm2d`` with a bias (``z_l`` the layer's output, ``b`` its bias; a BatchNorm's is its effective
    bias ``beta - mu * gamma / sqrt(var + eps)`` from the running statistics), ``psi`` = per-channel min-max
    then bilinear upsampling to the input, as grad-cam 1.5.7 computes it. The target layers are not used: the
    map comes from the input and the biases, at the input's resolution. Modules are matched by exact type, as in
    grad-cam (a subclass such as timm's ``BatchNormAct2d`` folds an activation into its output and is left out);
    a BatchNorm without running statistics has no fixed bias and is left out too. Cost: the engine's shared
    backward runs on to the input (class ``full-backward``), no extra forward.

    Example::

        >>> import timm, torch, camkit
        >>> model = timm.create_model("resnet18", num_classes=2, in_chans=1).eval()
        >>> maps = camkit.cam_maps(model, torch.randn(2, 1, 64, 64), ["fullgrad"], ["layer4"], targets=1)
        >>> tuple(maps["fullgrad"].shape)
        (2, 64, 64)
    """

    name = "fullgrad"
    needs_gradients = True
    cost = "full-backward"
    resolution = "input"
    not_applicable = ("FullGrad needs a convolution or BatchNorm with a bias (nn.Conv2d, nn.BatchNorm2d with "
                      "running statistics) on the path to the score, and the model has none")

    def gradient_layers(self, model: nn.Module) -> dict[str, nn.Module]:
        return {name: m for name, m in model.named_modules()
                if type(m) in (nn.Conv2d, nn.BatchNorm2d) and m.bias is not None
                and (type(m) is nn.Conv2d or m.running_mean is not None)}

    @staticmethod
    def bias(module: nn.Module) -> Tensor:
        """The bias a layer adds to its output: a convolution's own, a BatchNorm's effective one."""
        if isinstance(module, nn.BatchNorm2d):
            scale = module.weight / torch.sqrt(module.running_var + module.eps)
            return module.bias - module.running_mean * scale
        return module.bias

    def raw_map(self, ctx: CAMContext) -> Tensor | None:
        full = ctx.full
        if full is None or not full.layers:  # another target layer's context, or a model without biases
            return None
        size = tuple(full.inputs.shape[-2:])
        total = minmax((full.inputs * full.input_gradient).abs()).sum(dim=1)
        for _, module, grad in full.layers:
            b = self.bias(module).detach().to(grad.dtype)
            part = minmax((b[None, :, None, None] * grad).abs()).sum(dim=1)  # psi per channel, then sum
            if tuple(part.shape[-2:]) != size:  # resize once: upsampling is linear, so sum-then-resize is equal
                part = F.interpolate(part[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
            total = total + part
        return total
