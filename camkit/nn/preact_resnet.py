"""The pre-activation ResNet of GMIC's and GLAM's global networks ("ResNet-22" at the released widths).

Layout and key names follow the released models (docs/gmic.md) so their state dicts load with strict=True:
``first_conv`` (7x7/2, no BN/ReLU after it) -> ``first_pool`` (max 3x3/2, pad 0) -> ``layer_list`` of
pre-activation blocks, the first block of every layer with a 1x1 projection (no BN) -> ``final_bn`` + ReLU.
"""
from __future__ import annotations

from collections.abc import Sequence

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


class PreActResNet(nn.Module):
    """The global ResNet; its output (B, widths[-1], h, w) is already through the final BN + ReLU (GMIC's ``h_g``)."""

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
