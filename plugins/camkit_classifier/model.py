"""The pooled classifier: backbone feature maps -> a linear classifier at every location -> spatial pooling.

The class maps (the classifier applied at every location of the last stage) are pooled into the logits, so
the map CAM reads is exactly what the score is made of, for every pooling head (docs/models.md).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from camkit.errors import CamkitError
from camkit.data.sample import mass_targets
from camkit.protocols import ModelDefaults

from .pooling import GatedAttentionPool, pool
from .presets import ClassifierConfig


def build_backbone(name: str, options: dict[str, Any]) -> tuple[nn.Module, int, str]:
    """A registered backbone giving its last stage's feature map: (module, channels, stage's dotted name).

    Built with timm's ``features_only`` (only the last stage, one input channel); a backbone that cannot
    (a ViT without feature maps, a plugin's backbone without it) is refused with the reason.
    """
    from camkit.registry.api import create_backbone

    try:
        net = create_backbone(name, features_only=True, out_indices=(-1,), in_chans=1, **options)
    except (TypeError, RuntimeError) as exc:
        raise CamkitError(f"classifier: backbone {name!r} cannot give feature maps ({type(exc).__name__}: "
                          f"{exc}); use a convolutional backbone such as timm:resnet18 or timm:efficientnet_b0"
                          ) from None
    info = getattr(net, "feature_info", None)
    if info is None or not hasattr(info, "channels"):
        raise CamkitError(f"classifier: backbone {name!r} has no timm feature_info, so its last stage is "
                          "unknown; give it timm's features_only interface")
    stage = info.module_name()[-1]
    for candidate in (stage, stage.replace(".", "_")):  # timm flattens some stage names in its feature nets
        try:
            net.get_submodule(candidate)
            return net, int(info.channels()[-1]), candidate
        except AttributeError:
            continue
    raise CamkitError(f"classifier: backbone {name!r} names its last stage {stage!r}, which is not a submodule")


class PooledClassifier(ModelDefaults, nn.Module):
    """A classifier on any backbone with a pooling head; forward returns ``logits``, ``prob`` (B, C) and
    ``class_map`` (B, C, h, w), the classifier at every location of the last stage (no bias)."""

    def __init__(self, cfg: ClassifierConfig, preset: str = "default"):
        super().__init__()
        cfg.validate()
        self.backbone, channels, stage = build_backbone(cfg.backbone, dict(cfg.backbone_options))
        # the linear classifier, as a 1x1 convolution so that it reads every location (get_classifier)
        self.classifier = nn.Conv2d(channels, cfg.num_classes, 1)
        self.attention = GatedAttentionPool(channels, cfg.attn_dim) if cfg.pooling == "attention" else None
        self.cfg = cfg
        self.preset = preset
        self.pooled_layer = f"backbone.{stage}"  # the layer the class maps are computed from
        # the camkit model protocol
        self.input_size: tuple[int, int] = tuple(int(v) for v in cfg.input_size)  # type: ignore[assignment]
        self.cam_layers: list[str] = list(cfg.cam_layers) or [self.pooled_layer]
        for layer in self.cam_layers:
            try:
                self.get_submodule(layer)
            except AttributeError:
                names = [n for n, _ in self.named_modules() if n.startswith("backbone.") and n.count(".") == 1]
                raise CamkitError(f"classifier: cam_layers names {layer!r}, which is not a submodule; the "
                                  f"backbone's stages: {', '.join(names)}") from None
        self.score_outputs: tuple[str, ...] = ("logits", "prob")
        self.cam_output: str = "logits"
        self.config: dict = {"preset": preset, **cfg.to_dict()}
        self.default_lr: float = cfg.lr
        self.train_cam = None  # no region retrieval inside training: CAMs are test-time only

    @property
    def target_class(self) -> int:  # type: ignore[override]
        return self.cfg.mass_index

    def get_classifier(self) -> nn.Module:
        """The linear classifier (a 1x1 convolution over the last stage's channels), for CAM."""
        return self.classifier

    def head(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """(logits (B, C), class maps (B, C, h, w)) from last-stage features; float32 even under autocast."""
        with torch.autocast(features.device.type, enabled=False):
            f = features.float()
            maps = F.conv2d(f, self.classifier.weight.float())
            logits = pool(self.cfg.pooling, maps, f, top_t=self.cfg.top_t, lse_r=self.cfg.lse_r,
                          attention=self.attention) + self.classifier.bias.float()
        return logits, maps

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        if x.dim() != 4 or x.shape[1] != 1:
            raise ValueError(f"classifier expects images (B, 1, H, W), got shape {tuple(x.shape)}")
        logits, maps = self.head(self.backbone(x)[-1])
        return {"logits": logits, "prob": torch.sigmoid(logits), "class_map": maps}

    def score_from(self, layer: str, activations: Tensor, output: str | None = None) -> Tensor:
        """Scores (N, C) from a replaced last-stage output: only the head runs again (Ablation-CAM's reruns);
        NotImplemented for another layer."""
        if layer != self.pooled_layer:
            return NotImplemented
        logits, _ = self.head(activations)
        return torch.sigmoid(logits) if (output or self.cam_output) == "prob" else logits

    def native_cam(self, outputs: dict[str, Tensor]) -> Tensor:
        """CAM: the classifier's weights over the last stage at every location (B, C, h, w)."""
        return outputs["class_map"]

    def predict(self, outputs: dict[str, Tensor]) -> Tensor:
        """Probability of "mass" (B,)."""
        return outputs["prob"][:, self.cfg.mass_index]

    def targets(self, labels: Tensor, num: int) -> Tensor:
        """(B,) 0/1 labels -> (B, C) multi-label targets on the mass class; (B, C) targets pass through."""
        return mass_targets(labels, num, self.cfg.mass_index)

    def training_loss(self, images: Tensor, labels: Tensor, progress: float) -> tuple[Tensor, dict]:
        """Binary cross-entropy on the logits, averaged over the batch and summed over classes."""
        out = self(images)
        targets = self.targets(labels, out["logits"].shape[1])
        loss = F.binary_cross_entropy_with_logits(out["logits"].float(), targets, reduction="none").mean(0).sum()
        value = float(loss.detach())
        return loss, {"loss": value, "bce": value}
