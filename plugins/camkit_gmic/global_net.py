"""GMIC's global network: camkit's pre-activation ResNet (:mod:`camkit.nn.preact_resnet`) and the saliency
head, with the released key names."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from camkit.nn.pooling import top_fraction_mean
from camkit.nn.preact_resnet import BasicBlockV2, PreActResNet, feature_size

GlobalNetwork = PreActResNet  # GMIC's name for it ("ds_net")
__all__ = ["BasicBlockV2", "GlobalNetwork", "SaliencyHead", "feature_size", "top_t_pool"]


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
    return top_fraction_mean(saliency, t)
