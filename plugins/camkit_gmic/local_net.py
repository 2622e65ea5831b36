"""GMIC's local network: a ResNet trunk (timm's ResNet; ResNet-18 at the official widths) over the crops."""
from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from camkit.nn.stem import stride2_conv, use_rearranged


def build_local_resnet(widths: Sequence[int] = (64, 128, 256, 512), blocks: Sequence[int] = (2, 2, 2, 2),
                       stem_width: int = 64, in_chans: int = 3) -> nn.Module:
    """A timm ResNet with basic blocks and no classifier; key names match the released ``dn_resnet``.

    The stem (``conv1``, ``bn1``) is ``stem_width`` channels wide. timm's single-convolution stem is 64 wide
    whatever its ``stem_width`` says (it sizes only the deep stems), so another width rebuilds the stem and
    the stages after it with timm's own block builder and initialisation.
    """
    from timm.models.resnet import BasicBlock, ResNet, make_blocks

    net = ResNet(block=BasicBlock, layers=tuple(blocks), channels=tuple(widths), in_chans=in_chans,
                 num_classes=0)
    if net.conv1.out_channels != stem_width:
        net.conv1 = nn.Conv2d(in_chans, stem_width, kernel_size=7, stride=2, padding=3, bias=False)
        net.bn1 = nn.BatchNorm2d(stem_width)
        stages, net.feature_info = make_blocks((BasicBlock,) * len(widths), tuple(widths), tuple(blocks),
                                               stem_width)
        for name, stage in stages:
            setattr(net, name, stage)  # replaces layer1.. in place: the state dict keeps its key order
        net.feature_info.insert(0, dict(num_chs=stem_width, reduction=2, module="act1"))
        net.init_weights()
    return net


def local_features(resnet: nn.Module, crops: Tensor, in_chans: int) -> Tensor:
    """Per-crop feature vectors (B, K, D) from crops (B, K, ch, cw): grey repeated to ``in_chans``, mean pool.

    A grey crop repeated to 3 channels through ``conv1`` equals the crop through ``conv1`` with its weight
    summed over input channels (gradients included), so the stem runs on one channel: no 3x copy of the
    crops and a third of the stem's work. Needs timm's ResNet stem layout (conv1, bn1, act1, maxpool).
    Training on the CPU, the stem runs rearranged (:mod:`.stem`).
    """
    b, k, ch, cw = crops.shape
    x = crops.reshape(b * k, 1, ch, cw)
    conv = resnet.conv1
    weight = conv.weight if in_chans == 1 else conv.weight.sum(1, keepdim=True)
    if use_rearranged(x, resnet.training) and conv.stride == (2, 2) and conv.bias is None:
        x = stride2_conv(x, weight, conv.padding[0])  # same function, faster backward on the CPU (stem.py)
    else:
        x = F.conv2d(x, weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups)
    x = resnet.maxpool(resnet.act1(resnet.bn1(x)))
    feats = resnet.layer4(resnet.layer3(resnet.layer2(resnet.layer1(x))))
    return feats.mean((2, 3)).view(b, k, -1)
