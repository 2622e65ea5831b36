"""torchvision's FCOS, RetinaNet and Faster R-CNN on a camkit backbone with an FPN, in the model frame.

Each detector takes single-channel, already z-scored images at its ``input_size`` and returns boxes in the same
frame: torchvision's :class:`~torchvision.models.detection.transform.GeneralizedRCNNTransform` is set so that it
neither resizes (``min_size``/``max_size`` are the image's own sides) nor renormalises (mean 0, std 1), because
camkit hands model-frame images and scores model-frame boxes. Anchors scale with the feature strides instead of
torchvision's COCO sizes (32 to 512 pixels), which would dwarf a mass in a 256 x 160 frame.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from functools import partial
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from camkit.errors import ContractError, OptionError

Kind = Literal["fcos", "retinanet", "fasterrcnn"]
#: the feature strides each head reads from the backbone; the FPN adds the coarser levels after them
STRIDES: dict[str, tuple[int, ...]] = {"fcos": (8, 16, 32), "retinanet": (8, 16, 32), "fasterrcnn": (4, 8, 16, 32)}
#: the label of "mass": FCOS and RetinaNet score each class with its own sigmoid, so the background needs no
#: logit (one more would be trained to stay off, and would take detection slots from masses at the start); Faster
#: R-CNN's softmax counts the background as class 0
MASS_LABEL: dict[str, int] = {"fcos": 0, "retinanet": 0, "fasterrcnn": 1}


class FPNBackbone(nn.Module):
    """A registered backbone's feature maps at ``strides``, through a feature pyramid (``out_channels`` each).

    ``extra`` adds the coarser levels the head expects: ``"p6p7"`` (FCOS, RetinaNet: two strided convs over
    P5) or ``"pool"`` (Faster R-CNN: a max-pooled P6 for the RPN only).
    """

    def __init__(self, backbone: str, strides: Sequence[int], out_channels: int,
                 extra: Literal["p6p7", "pool"]) -> None:
        super().__init__()
        from torchvision.ops import FeaturePyramidNetwork
        from torchvision.ops.feature_pyramid_network import LastLevelMaxPool, LastLevelP6P7

        from camkit.registry.api import create_backbone

        # built once with every stage (the later ones need the earlier anyway); the strides are picked in forward
        self.body = create_backbone(backbone, features_only=True, in_chans=1, pretrained=False)
        reductions = list(self.body.feature_info.reduction())
        missing = [s for s in strides if s not in reductions]
        if missing:
            raise OptionError(f"--detector-opt backbone={backbone}: its features come at strides {reductions}, and "
                              f"this detector reads strides {list(strides)}; choose a CNN backbone with a feature "
                              "map at each (e.g. timm:resnet18)")
        # the last stage of a given stride (timm may list two at one stride)
        self.picks = [max(i for i, r in enumerate(reductions) if r == s) for s in strides]
        channels = [self.body.feature_info.channels()[i] for i in self.picks]
        blocks = LastLevelP6P7(out_channels, out_channels) if extra == "p6p7" else LastLevelMaxPool()
        self.fpn = FeaturePyramidNetwork(channels, out_channels, extra_blocks=blocks)
        self.out_channels = out_channels  # what torchvision's detectors read off a backbone

    def forward(self, x: Tensor) -> "OrderedDict[str, Tensor]":
        feats = self.body(x)
        return self.fpn(OrderedDict((str(k), feats[i]) for k, i in enumerate(self.picks)))


class TorchvisionDetector(nn.Module):
    """A torchvision detector behind camkit's :class:`camkit.protocols.Detector` contract (one class: mass)."""

    def __init__(self, net: nn.Module, input_size: tuple[int, int], config: dict[str, Any],
                 detections: int, mass_label: int) -> None:
        super().__init__()
        self.net = net
        self.mass_label = mass_label
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.config = config
        self.detections = detections

    def _images(self, images: Tensor, where: str) -> list[Tensor]:
        if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[1] != 1 \
                or tuple(images.shape[-2:]) != self.input_size:
            shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise ContractError(f"{where}: images must be (B, 1, H, W) with (H, W) = input_size {self.input_size}, "
                                f"got {shape}")
        return list(images.float())

    def detection_loss(self, images: Tensor, targets: Sequence[Mapping[str, Tensor]]
                       ) -> tuple[Tensor, dict[str, float]]:
        """The summed torchvision losses of ``images`` (B, 1, H, W) against ``targets[i]["boxes"]`` (N, 4)
        (x1 y1 x2 y2 in the model frame; N = 0 for a normal image), and each part as a float."""
        batch = self._images(images, f"{type(self).__name__}.detection_loss")
        if len(targets) != len(batch):
            raise ContractError(f"detection_loss: {len(batch)} images but {len(targets)} targets")
        prepared = []
        for t, image in zip(targets, batch):
            boxes = torch.as_tensor(t["boxes"], dtype=torch.float32, device=image.device).reshape(-1, 4)
            prepared.append({"boxes": boxes,
                             "labels": torch.full((len(boxes),), self.mass_label, dtype=torch.int64,
                                                  device=image.device)})
        losses = self.net(batch, prepared)
        total = sum(losses.values())
        return total, {k.removeprefix("loss_"): float(v.detach()) for k, v in losses.items()}

    def detect(self, images: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Per image, the mass boxes (N, 4) float32 in the model frame and their scores (N,) in [0, 1], best
        first, at most ``detections`` of them."""
        batch = self._images(images, f"{type(self).__name__}.detect")
        was_training = self.training
        self.eval()  # torchvision's detectors only return boxes in eval mode
        try:
            outputs = self.net(batch)
        finally:
            self.train(was_training)
        out = []
        for o in outputs:
            keep = o["labels"] == self.mass_label
            boxes, scores = o["boxes"][keep].float(), o["scores"][keep].float().clamp(0, 1)
            order = scores.argsort(descending=True, stable=True)[: self.detections]
            out.append((boxes[order], scores[order]))
        return out


@dataclass(frozen=True)
class DetectorOptions:
    """A built-in detector's options, as its factory took them (``anchor_scale`` None: FCOS, which has none)."""

    input_size: tuple[int, int]
    backbone: str
    fpn_channels: int
    anchor_scale: float | None
    detections: int
    score_threshold: float
    nms_threshold: float
    weights: str | None

    def config(self) -> dict[str, Any]:
        """The JSON config that rebuilds the detector (``create_detector(name, **config)``)."""
        out = asdict(self)
        out["input_size"] = list(self.input_size)
        if self.anchor_scale is None:
            del out["anchor_scale"]
        return out


def build_detector(kind: Kind, options: DetectorOptions) -> TorchvisionDetector:
    """Build ``kind`` with random weights, or with the state dict in the local file ``options.weights``."""
    h, w = options.input_size
    if kind in ("fcos", "retinanet") and options.fpn_channels % 32:
        raise OptionError(f"--detector-opt fpn_channels={options.fpn_channels}: {kind}'s head normalises in groups "
                          "of 32 channels; give a multiple of 32")
    strides = STRIDES[kind]
    body = FPNBackbone(options.backbone, strides, options.fpn_channels, "pool" if kind == "fasterrcnn" else "p6p7")
    levels = [*strides, strides[-1] * 2] + ([strides[-1] * 4] if kind != "fasterrcnn" else [])
    net = _torchvision_net(kind, body, levels, options)
    detector = TorchvisionDetector(net, (h, w), options.config(), options.detections, MASS_LABEL[kind])
    if options.weights is not None:
        load_weights(detector, options.weights, kind)
    return detector


def _torchvision_net(kind: Kind, body: FPNBackbone, levels: list[int], options: DetectorOptions) -> nn.Module:
    from torchvision.models.detection import FCOS, FasterRCNN, RetinaNet
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.retinanet import RetinaNetHead

    h, w = options.input_size
    # no resize (the scale min_size/min(h, w) and max_size/max(h, w) is 1) and no renormalisation
    frame = {"min_size": min(h, w), "max_size": max(h, w), "image_mean": [0.0], "image_std": [1.0]}
    channels, detections = options.fpn_channels, options.detections
    score_threshold, nms_threshold = options.score_threshold, options.nms_threshold
    if kind == "fcos":
        # FCOS's anchors are points; their size is the level's stride, which sets the box sizes each level learns
        anchors = AnchorGenerator(tuple((s,) for s in levels), ((1.0,),) * len(levels))
        return FCOS(body, num_classes=1, anchor_generator=anchors, score_thresh=score_threshold,
                    nms_thresh=nms_threshold, detections_per_img=detections, **frame)
    scale = float(options.anchor_scale or 4.0)
    if kind == "retinanet":
        # three scales an octave apart per level, as in the RetinaNet paper, from anchor_scale x stride
        sizes = tuple(tuple(scale * s * 2 ** (k / 3) for k in range(3)) for s in levels)
        anchors = AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(levels))
        # group norm in the head (torchvision's RetinaNet v2 head): without it, a head trained from random
        # weights barely learned the easy squares of tests/test_detectors.py in 120 steps
        head = RetinaNetHead(channels, anchors.num_anchors_per_location()[0], 1,
                             norm_layer=partial(nn.GroupNorm, 32))
        return RetinaNet(body, num_classes=1, anchor_generator=anchors, head=head, score_thresh=score_threshold,
                         nms_thresh=nms_threshold, detections_per_img=detections, **frame)
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.ops import MultiScaleRoIAlign

    anchors = AnchorGenerator(tuple((scale * s,) for s in levels), ((0.5, 1.0, 2.0),) * len(levels))
    pool = MultiScaleRoIAlign([str(k) for k in range(len(levels) - 1)], output_size=7, sampling_ratio=2)
    hidden = 256  # torchvision's 1024 is sized for COCO's 91 classes; one class needs far less
    # fewer proposals than torchvision's COCO settings (2000): a mammogram frame holds a few masses
    return FasterRCNN(body, num_classes=None, rpn_anchor_generator=anchors, box_roi_pool=pool,
                      box_head=TwoMLPHead(channels * 7 * 7, hidden), box_predictor=FastRCNNPredictor(hidden, 2),
                      rpn_pre_nms_top_n_train=1000, rpn_post_nms_top_n_train=500, rpn_pre_nms_top_n_test=500,
                      rpn_post_nms_top_n_test=300, box_batch_size_per_image=128, box_score_thresh=score_threshold,
                      box_nms_thresh=nms_threshold, box_detections_per_img=detections, **frame)


def load_weights(detector: nn.Module, weights: str | os.PathLike, kind: str) -> None:
    """Load a local state-dict file into ``detector``: weights-only (no code unpickled), strict, mismatches
    named; a missing file is one OptionError (camkit never downloads weights)."""
    from pathlib import Path

    from camkit.storage.state_dict import load_state, read_state_dict

    if not Path(weights).is_file():
        raise OptionError(f"--detector-opt weights={os.fspath(weights)}: no such file; give a local state dict "
                          f"saved with torch.save(detector.state_dict(), path) (detector {kind!r} downloads "
                          "nothing)")
    load_state(detector, read_state_dict(weights), source=f"weights {os.fspath(weights)!r}",
               model_name=f"detector {kind!r}")
