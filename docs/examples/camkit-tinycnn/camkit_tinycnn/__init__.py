"""An example model plugin, written from docs/plugins.md alone: conv features, global average pooling, a linear
classifier. Its CAM is the classic one (Zhou et al. 2016): the classifier's weights on the last features.

It has no training-time map, so ``train_cam`` is recorded in its config (the bench trains one model per
train-cam) and otherwise unused. ``camkit.testing.check_model`` checks it (``tests/test_tinycnn.py``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from camkit import hookimpl
from camkit.protocols import ModelDefaults


class TinyCNN(ModelDefaults, nn.Module):
    """``width``-channel conv features at 1/4 resolution, GAP, and a linear "mass" logit."""

    def __init__(self, input_size=(64, 48), width: int = 16, lr: float = 3e-3, train_cam: str = "cam"):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(width, 1)
        # the model contract
        self.input_size = tuple(int(v) for v in input_size)
        self.cam_layers = ["features"]
        self.score_outputs = ("logits",)
        self.cam_output = "logits"
        self.config = {"input_size": list(self.input_size), "width": width, "lr": lr, "train_cam": train_cam}

    def forward(self, x):
        return {"logits": self.fc(self.features(x).mean((2, 3)))}

    def get_classifier(self):  # how the engine finds CAM's weights (timm's convention)
        return self.fc

    def predict(self, outputs):
        return torch.sigmoid(outputs["logits"][:, 0])

    def training_loss(self, images, labels, progress):
        loss = F.binary_cross_entropy_with_logits(self(images)["logits"][:, 0], labels.float())
        return loss, {"bce": float(loss.detach())}


def create_tinycnn(train_cam: str = "cam", input_size=(64, 48), width: int = 16, lr: float = 3e-3) -> TinyCNN:
    """A small CNN classifier with global average pooling (CAM = its classifier weights)."""
    return TinyCNN(input_size, width, lr, train_cam)


@hookimpl
def register_models(register):
    register("tinycnn", create_tinycnn, examples=({},))
