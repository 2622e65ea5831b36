"""A detector (camkit.protocols.Detector) as a camkit model, so it trains through camkit's one training loop:
checkpoints written atomically into the model store, resume, reuse, torchrun, trackers, progress.

The loop hands the model each image's boxes (``training_inputs``); validation ranks images by their best
detection's score (the image-level AUC the loop selects checkpoints by: it needs labels only, so pseudo-box
training selects without true boxes).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from camkit.protocols import ModelDefaults


class DetectorModel(ModelDefaults, nn.Module):
    """``detector`` (registered as ``name``) behind the model contract. ``forward`` returns ``detections``
    (per image: boxes in the model frame, scores) and ``image_score`` (B, 2): the best detection's score as the
    image's mass probability, and its complement."""

    training_inputs = ("boxes",)
    score_outputs = ("image_score",)
    cam_output = "image_score"
    target_class = 1
    cam_layers: tuple[str, ...] = ()  # a detector's output is its boxes; no CAM is drawn on it

    def __init__(self, name: str, detector: nn.Module) -> None:
        super().__init__()
        self.name = name
        self.detector = detector
        self.input_size = tuple(int(v) for v in detector.input_size)

    @property
    def config(self) -> dict[str, Any]:
        return {"detector": self.name, **dict(self.detector.config)}

    def forward(self, images: torch.Tensor) -> dict[str, Any]:
        found = self.detector.detect(images)
        best = torch.stack([s.max() if len(s) else s.new_zeros(()) for _, s in found]).float() if found else \
            images.new_zeros(0)
        return {"detections": found, "image_score": torch.stack([1.0 - best, best], dim=1)}

    def predict(self, outputs: Mapping[str, Any]) -> torch.Tensor:
        return outputs["image_score"][:, 1]

    def training_loss(self, images: torch.Tensor, labels: torch.Tensor, progress: float,
                      boxes: list[torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        return self.detector.detection_loss(images, [{"boxes": b.float().reshape(-1, 4)} for b in boxes])
