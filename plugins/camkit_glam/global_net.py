"""GLAM's global network: GMIC's pre-activation ResNet-22 read at three scales, a sigmoid head on each.

Key names follow the release (``global_network.downsampling_branch.*``, ``global_network.postprocess_module.*``)
so its state dict loads with ``strict=True``. The trunk hands on two raw stage outputs (no BN or ReLU: stages 2
and 3 at the official sizes, 1/16 and 1/32) and ``relu(final_bn(last stage))`` (1/64); each gets a 1x1 head
without bias, nearest-upsampled to the finest grid, then a sigmoid.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from camkit.nn.pooling import top_fraction_mean
from camkit.nn.preact_resnet import PreActResNet
from camkit.nn.stem import stride2_conv, use_rearranged


class MultiScaleTrunk(PreActResNet):
    """GMIC's global ResNet returning ``(stage a, stage b, final)``; ``final_act`` is the ReLU after
    ``final_bn`` as a module, so CAM hooks can read the final map (it holds no weights)."""

    def __init__(self, widths: Sequence[int], blocks: Sequence[int], strides: Sequence[int],
                 map_stages: tuple[int, int]):
        super().__init__(widths, blocks, strides)
        self.map_stages = tuple(map_stages)
        self.final_act = nn.ReLU()

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:  # type: ignore[override]
        conv = self.first_conv
        x = stride2_conv(x, conv.weight, conv.padding[0]) if use_rearranged(x, self.training) else conv(x)
        x = self.first_pool(x)
        kept = []
        for i, layer in enumerate(self.layer_list):
            x = layer(x)
            if i in self.map_stages:
                kept.append(x)
        return kept[0], kept[1], self.final_act(self.final_bn(x))


class PostProcess(nn.Module):
    """The three 1x1 heads (``gn_conv_1`` finest .. ``gn_conv_last`` final) and the released, unused
    ``combine`` (kept so the released state dict loads strictly)."""

    def __init__(self, channels: tuple[int, int, int], num_classes: int):
        super().__init__()
        self.gn_conv_1 = nn.Conv2d(channels[0], num_classes, 1, bias=False)
        self.gn_conv_2 = nn.Conv2d(channels[1], num_classes, 1, bias=False)
        self.gn_conv_last = nn.Conv2d(channels[2], num_classes, 1, bias=False)
        self.combine = nn.Conv2d(3 * num_classes, num_classes, 1, bias=False)  # in the release, never called

    @property
    def heads(self) -> tuple[nn.Conv2d, nn.Conv2d, nn.Conv2d]:
        return self.gn_conv_1, self.gn_conv_2, self.gn_conv_last

    def forward(self, feats: Sequence[Tensor]) -> list[Tensor]:
        """The three sigmoid maps (B, C, h, w) on the finest map's grid, in float32 (scores and the patch
        argmax read them directly)."""
        size = feats[0].shape[-2:]
        out = []
        with torch.autocast(feats[0].device.type, enabled=False):
            for head, f in zip(self.heads, feats):
                logits = head(f.float())
                if logits.shape[-2:] != size:
                    logits = F.interpolate(logits, size=size)  # "nearest", torch's default, as released
                out.append(torch.sigmoid(logits))
        return out


class GlobalNetwork3(nn.Module):
    """``downsampling_branch`` (the trunk) and ``postprocess_module`` (the heads), as the release names them."""

    def __init__(self, widths: Sequence[int], blocks: Sequence[int], strides: Sequence[int],
                 map_stages: tuple[int, int], num_classes: int):
        super().__init__()
        self.downsampling_branch = MultiScaleTrunk(widths, blocks, strides, map_stages)
        chans = (widths[map_stages[0]], widths[map_stages[1]], widths[-1])
        self.postprocess_module = PostProcess(chans, num_classes)

    def forward(self, x: Tensor) -> tuple[tuple[Tensor, Tensor, Tensor], list[Tensor]]:
        feats = self.downsampling_branch(x)
        return feats, self.postprocess_module(feats)


def top_k_mean(maps: Tensor, fraction: float) -> Tensor:
    """GLAM's TopK: the mean of the top ``round(n * fraction)`` cells per image and class (half to even, as
    released: 364.5 -> 364)."""
    return top_fraction_mean(maps, fraction)
