"""camkit plugin: registers the built-in detectors (``camkit.create_detector("fcos", backbone=..., ...)``).

Every factory builds its network offline with random weights, or loads ``weights``, a local state-dict file;
nothing is downloaded. The defaults train on a CPU: a ResNet-18 backbone (timm:resnet18, random weights) and a
64-channel FPN; among the backbones measured (resnet18, resnet10t, mobilenetv3_small_100, efficientnet_b0) it
learned easy boxes in the fewest steps at 0.45 to 0.75 s a step (batch 8, 256 x 160, 2 threads; docs/plugins.md).
"""
from __future__ import annotations

import os
from typing import Annotated

from camkit import hookimpl
from camkit.registry.options import ImageSize, Range

from .models import DetectorOptions, TorchvisionDetector, build_detector

Count = Annotated[int, Range(min=1)]
Channels = Annotated[int, Range(min=8, max=1024)]
Fraction = Annotated[float, Range(0.0, 1.0)]
Scale = Annotated[float, Range(min=0.25, max=64.0)]
DEFAULT_SIZE = (256, 160)


def create_fcos(input_size: ImageSize = DEFAULT_SIZE, backbone: str = "timm:resnet18", fpn_channels: Channels = 64,
                detections: Count = 20, score_threshold: Fraction = 0.05, nms_threshold: Fraction = 0.6,
                weights: str | os.PathLike | None = None) -> TorchvisionDetector:
    """FCOS (anchor-free, one stage) with an FPN (P3-P7) over ``backbone``; ``fpn_channels`` a multiple of 32.

    ``weights``: a local state dict of this detector (torch.save(detector.state_dict(), path)), loaded
    weights-only and strict; None trains from random weights.
    """
    return build_detector("fcos", _options(input_size, backbone, fpn_channels, None, detections,
                                           score_threshold, nms_threshold, weights))


def create_retinanet(input_size: ImageSize = DEFAULT_SIZE, backbone: str = "timm:resnet18",
                     fpn_channels: Channels = 64, anchor_scale: Scale = 4.0, detections: Count = 20,
                     score_threshold: Fraction = 0.05, nms_threshold: Fraction = 0.5,
                     weights: str | os.PathLike | None = None) -> TorchvisionDetector:
    """RetinaNet (anchors, one stage, focal loss) with an FPN (P3-P7) over ``backbone``; a group-normed head.

    Anchors are ``anchor_scale`` x the level's stride (three scales, three aspect ratios per level; 32 to 812
    pixels by default); ``fpn_channels`` a multiple of 32; ``weights`` as for fcos.
    """
    return build_detector("retinanet", _options(input_size, backbone, fpn_channels, anchor_scale, detections,
                                                score_threshold, nms_threshold, weights))


def create_fasterrcnn(input_size: ImageSize = DEFAULT_SIZE, backbone: str = "timm:resnet18",
                      fpn_channels: Channels = 64, anchor_scale: Scale = 2.0, detections: Count = 20,
                      score_threshold: Fraction = 0.05, nms_threshold: Fraction = 0.5,
                      weights: str | os.PathLike | None = None) -> TorchvisionDetector:
    """Faster R-CNN (region proposals, two stages) with an FPN (P2-P6) over ``backbone``.

    RPN anchors are ``anchor_scale`` x the level's stride (three aspect ratios; 8 to 128 pixels by default);
    ``weights`` as for fcos.
    """
    return build_detector("fasterrcnn", _options(input_size, backbone, fpn_channels, anchor_scale, detections,
                                                 score_threshold, nms_threshold, weights))


def _options(input_size: ImageSize, backbone: str, fpn_channels: int, anchor_scale: float | None, detections: int,
             score_threshold: float, nms_threshold: float, weights: str | os.PathLike | None) -> DetectorOptions:
    """The factory's keywords as one frozen options object (``input_size`` as ints, ``weights`` as text)."""
    return DetectorOptions((int(input_size[0]), int(input_size[1])), backbone, fpn_channels, anchor_scale,
                           detections, score_threshold, nms_threshold,
                           os.fspath(weights) if weights is not None else None)


@hookimpl
def register_detectors(register):
    register("fcos", create_fcos,
             description="FCOS (torchvision; anchor-free, one stage) with an FPN over any backbone (timm:<name>)")
    register("retinanet", create_retinanet,
             description="RetinaNet (torchvision; anchors, focal loss) with an FPN over any backbone (timm:<name>)")
    register("fasterrcnn", create_fasterrcnn,
             description="Faster R-CNN (torchvision; two stages) with an FPN over any backbone (timm:<name>)")
