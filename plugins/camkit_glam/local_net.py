"""GLAM's local network: a ResNet-34 trunk (post-activation basic blocks) with every stage at stride 1, and a
1x1 sigmoid head: a segmentation map of the patch at 1/4 of its size (128 x 128 for the 512 x 512 patch).

Built with timm's ResNet (whose key names are torchvision's: ``conv1``, ``bn1``, ``layerN.i.conv1`` ...,
``downsample.0`` conv + ``downsample.1`` BN) and its strides then set to 1, without dilation, as released.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from camkit.nn.stem import stride2_conv, use_rearranged


def build_stride1_resnet(widths: Sequence[int], blocks: Sequence[int], in_chans: int) -> nn.Module:
    """timm's basic-block ResNet with no classifier and stride 1 in every stage (the stem keeps its /4)."""
    from timm.models.resnet import BasicBlock, ResNet

    net = ResNet(block=BasicBlock, layers=tuple(blocks), channels=tuple(widths), in_chans=in_chans,
                 num_classes=0, global_pool="")
    for name in [f"layer{i}" for i in range(1, len(widths) + 1)]:
        for block in getattr(net, name):
            block.conv1.stride = (1, 1)  # 3x3, padding 1: the same padding at stride 1
            if block.downsample is not None:
                block.downsample[0].stride = (1, 1)  # 1x1, padding 0
    return net


class DetectionNetwork(nn.Module):
    """``dn_resnet`` (the trunk) and ``gn_conv_last`` (the head), as the release names them."""

    def __init__(self, widths: Sequence[int], blocks: Sequence[int], in_chans: int, num_classes: int):
        super().__init__()
        self.dn_resnet = build_stride1_resnet(widths, blocks, in_chans)
        self.gn_conv_last = nn.Conv2d(widths[-1], num_classes, 1, bias=False)
        self.in_chans = in_chans
        self.n_stages = len(widths)

    def forward(self, patches: Tensor) -> Tensor:
        """Sigmoid maps (P, C, ph/4, pw/4), float32, of grey patches (P, 1, ph, pw).

        The released net repeats the grey patch to 3 channels; the stem's weight summed over its input
        channels is the same function (equal up to float rounding) on one channel, at a third of the work.
        """
        net = self.dn_resnet
        conv = net.conv1
        weight = conv.weight if self.in_chans == 1 else conv.weight.sum(1, keepdim=True)
        if use_rearranged(patches, net.training):
            x = stride2_conv(patches, weight, conv.padding[0])
        else:
            x = F.conv2d(patches, weight, None, conv.stride, conv.padding)
        x = net.maxpool(net.act1(net.bn1(x)))
        for i in range(1, self.n_stages + 1):
            x = getattr(net, f"layer{i}")(x)
        with torch.autocast(x.device.type, enabled=False):
            return torch.sigmoid(self.gn_conv_last(x.float()))
