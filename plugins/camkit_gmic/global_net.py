"""GMIC's global network: a pre-activation ResNet ("ResNet-22" at the official widths) and the saliency head.

Layout and key names follow the released model (docs/gmic.md) so its state dict loads with strict=True:
``first_conv`` (7x7/2, no BN/ReLU after it) -> ``first_pool`` (max 3x3/2, pad 0) -> ``layer_list`` of
pre-activation blocks, the first block of every layer with a 1x1 projection (no BN) -> ``final_bn`` + ReLU.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .stem import stride2_conv, use_rearranged


class BasicBlockV2(nn.Module):
    """Pre-activation basic block: BN-ReLU-conv3x3(stride) -> BN-ReLU-conv3x3, plus the (projected) input."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, project: bool):
        super().__init__()
        # attribute order = released key order: bn1, conv1, bn2, conv2, downsample
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, stride=1, padding=1, bias=False)
        self.downsample = (nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False))
                           if project else None)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(x))
        # the projection sees the pre-activated input; the identity path sees the raw input
        residual = self.downsample(out) if self.downsample is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out), inplace=True))
        return out + residual


class GlobalNetwork(nn.Module):
    """The global ResNet; its output is ``h_g`` (B, widths[-1], h, w), already through final BN + ReLU."""

    def __init__(self, widths: Sequence[int] = (16, 32, 64, 128, 256), blocks: Sequence[int] = (2, 2, 2, 2, 2),
                 strides: Sequence[int] = (1, 2, 2, 2, 2), in_ch: int = 1):
        super().__init__()
        self.first_conv = nn.Conv2d(in_ch, widths[0], 7, stride=2, padding=3, bias=False)
        self.first_pool = nn.MaxPool2d(3, stride=2, padding=0)
        layers, prev = [], widths[0]
        for width, n, stride in zip(widths, blocks, strides):
            layer = [BasicBlockV2(prev, width, stride, project=True)]
            layer += [BasicBlockV2(width, width, 1, project=False) for _ in range(n - 1)]
            layers.append(nn.Sequential(*layer))
            prev = width
        self.layer_list = nn.ModuleList(layers)
        self.final_bn = nn.BatchNorm2d(prev)
        self.out_channels = prev

    def forward(self, x: Tensor) -> Tensor:
        conv = self.first_conv
        # training on the CPU: the same convolution rearranged, with a ~3x faster backward (stem.py)
        x = stride2_conv(x, conv.weight, conv.padding[0]) if use_rearranged(x, self.training) else conv(x)
        x = self.first_pool(x)
        for layer in self.layer_list:
            x = layer(x)
        return F.relu(self.final_bn(x))  # not in place: CAM hooks keep this tensor


def feature_size(hw: tuple[int, int], strides: Sequence[int]) -> tuple[int, int]:
    """Spatial size of ``h_g`` for an input of size ``hw`` (ceil/2, then pool, then ceil/stride per layer)."""
    out = []
    for n in hw:
        n = -(-n // 2)
        n = (n - 3) // 2 + 1
        for s in strides:
            n = -(-n // s)
        out.append(n)
    return out[0], out[1]


class SaliencyHead(nn.Module):
    """GMIC's CAM head: ``sigmoid(conv1x1(h_g))`` without bias, one map per class (key ``gn_conv_last``)."""

    def __init__(self, in_ch: int, num_classes: int):
        super().__init__()
        self.gn_conv_last = nn.Conv2d(in_ch, num_classes, 1, bias=False)

    def forward(self, h_g: Tensor) -> Tensor:
        # float32 even under autocast: y_global and the ROI argmaxes read these values directly (tiny conv)
        with torch.autocast(h_g.device.type, enabled=False):
            return torch.sigmoid(self.gn_conv_last(h_g.float()))


def top_t_pool(saliency: Tensor, t: float) -> Tensor:
    """Mean of the top ``round(h*w*t)`` (at least 1) values of each class map: (B,C,h,w) -> (B,C)."""
    flat = saliency.flatten(2)
    k = max(1, min(flat.shape[-1], int(round(flat.shape[-1] * t))))
    return flat.topk(k, dim=-1, sorted=False).values.mean(-1)
