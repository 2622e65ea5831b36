"""An example model plugin, written from docs/plugins.md alone: conv features, global average pooling, a linear
classifier, and a top-k multiple-instance head driven by a train-cam.

Its test-time CAM is the classic one (Zhou et al. 2016): the classifier's weights on the last features. Inside
its own forward it also computes a **train-cam**, any registered CAM method (``train_cam=``, default ``cam``;
its constructor options in ``train_cam_options``, which ``--cam-opt METHOD.KEY=VALUE`` fills), with
``camkit.cams.engine.train_time_map``: the ``top_k`` feature cells where that map is highest are pooled into
``mil_logits``, and the training loss adds a BCE on it. So the train-cam decides which cells the MIL term
trains, as GMIC's decides its crops (docs/plugins.md, "A model that uses a CAM while training").
``camkit.testing.check_model`` checks it (``tests/test_tinycnn.py``).
"""
from __future__ import annotations

from typing import Annotated, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import camkit
from camkit import hookimpl
from camkit.cams.base import train_time_problem
from camkit.cams.engine import train_time_map
from camkit.cams.rerun import ScoreRerun, eval_mode
from camkit.errors import OptionError
from camkit.nn.traincam import global_features
from camkit.protocols import ModelDefaults
from camkit.registry.options import Range


class TinyCNN(ModelDefaults, nn.Module):
    """``width``-channel conv features at 1/4 resolution; ``logits`` = GAP and a linear "mass" logit;
    ``mil_logits`` = the same linear head on the mean of the ``top_k`` cells the train-cam's map ranks highest;
    ``roi_map`` (B, h, w) that map, detached."""

    def __init__(self, input_size=(64, 48), width: int = 16, lr: float = 3e-3, train_cam: str = "cam",
                 train_cam_options: dict[str, Any] | None = None, top_k: int = 4, mil_weight: float = 0.5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(width, 1)
        # created once, here: an unknown method or option fails when the model is built, not mid-training
        self.train_method = camkit.get_cam(train_cam, **dict(train_cam_options or {}))
        problem = train_time_problem(self.train_method)  # a test-time-only method (gradient-reruns)
        if problem:
            raise OptionError(f"tinycnn: train_cam={train_cam!r}: {problem}")
        self.top_k, self.mil_weight = top_k, mil_weight
        # the model contract; the train-cam and its options are in config, so the model store never reuses a
        # model trained with another one
        self.input_size = tuple(int(v) for v in input_size)
        self.cam_layers = ["features"]
        self.score_outputs = ("logits", "mil_logits")
        self.cam_output = "logits"
        self.config = {"input_size": list(self.input_size), "width": width, "lr": lr, "train_cam": train_cam,
                       "train_cam_options": dict(train_cam_options or {}), "top_k": top_k,
                       "mil_weight": mil_weight}

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        # a full-backward train-cam (FullGrad) reads the graph from the input: the features are then computed
        # with x and their biased layers' outputs recorded in one graph (camkit.nn.traincam.global_features)
        h, full_inputs = global_features(self.features, x, self.train_method)
        roi = self.roi_map(x, h, full_inputs)
        if full_inputs is not None and not torch.is_grad_enabled():
            h = h.detach()  # that graph was built under enable_grad for the map; an eval forward returns none
        cells = roi.flatten(1).topk(min(self.top_k, roi[0].numel()), dim=1).indices  # (B, k), not differentiable
        picked = h.flatten(2).gather(2, cells[:, None, :].expand(-1, h.shape[1], -1))  # (B, K, k)
        return {"logits": self.fc(h.mean((2, 3))), "mil_logits": self.fc(picked.mean(2)), "roi_map": roi}

    def roi_map(self, x: Tensor, h: Tensor, full_inputs: dict | None = None) -> Tensor:
        """The train-cam's raw map (B, h, w) of the mass score (:meth:`_score`), float32, detached: it only picks
        cells and is never part of the loss."""
        cost = self.train_method.cost
        with torch.enable_grad(), torch.autocast(x.device.type, enabled=False):
            # enable_grad: the map needs a gradient also in an eval forward under no_grad; float32 without
            # autocast: top-k picks are comparisons, where bfloat16 ties would move them
            kwargs: dict[str, Any] = {"classifier_weight": self.fc.weight.detach().float()}  # for "cam"
            if cost == "full-backward":
                a, kwargs["full_inputs"] = h, full_inputs
            else:
                # a detached float32 copy: the gradient is taken through the head alone (not the network), and
                # no parameter gradient can be built from it
                a = h.detach().float().requires_grad_(True)
            if cost == "perturbation":
                kwargs["rerun"] = ScoreRerun(x.detach(), self._score_images, self._score)
            maps = train_time_map(self.train_method, a, self._score(a.float()), classes=self.target_class, **kwargs)
        if maps.shape[-2:] != h.shape[-2:]:  # FullGrad's map is at the input's resolution: pooled to the cells
            maps = F.adaptive_avg_pool2d(maps, h.shape[-2:])
        return maps[:, 0].detach().float()

    def _score(self, a: Tensor) -> Tensor:
        """The score the train-cam explains, (N, 1): the mass probability ``predict`` gives (as GMIC's train-cam
        explains ``y_global``, a probability), from features ``a`` and a detached copy of the classifier."""
        return torch.sigmoid(F.linear(a.mean((2, 3)), self.fc.weight.detach().float(), self.fc.bias.detach().float()))

    def _score_images(self, images: Tensor) -> Tensor:
        """The score of new (masked) images, for a perturbation train-cam; BatchNorm in eval mode, so the masked
        copies neither use their own batch statistics nor update the running ones."""
        with eval_mode(self.features):
            return self._score(self.features(images).float())

    def get_classifier(self) -> nn.Linear:  # how the engine finds CAM's weights (timm's convention)
        return self.fc

    def predict(self, outputs: dict[str, Tensor]) -> Tensor:
        return torch.sigmoid(outputs["logits"][:, 0])

    def training_loss(self, images: Tensor, labels: Tensor, progress: float) -> tuple[Tensor, dict[str, float]]:
        out = self(images)
        bce = F.binary_cross_entropy_with_logits(out["logits"][:, 0], labels.float())
        mil = F.binary_cross_entropy_with_logits(out["mil_logits"][:, 0], labels.float())
        loss = bce + self.mil_weight * mil
        return loss, {"bce": float(bce.detach()), "mil": float(mil.detach())}


def create_tinycnn(train_cam: str = "cam", input_size=(64, 48), width: int = 16, lr: float = 3e-3,
                   train_cam_options: dict[str, Any] | None = None, top_k: Annotated[int, Range(min=1)] = 4,
                   mil_weight: Annotated[float, Range(min=0)] = 0.5) -> TinyCNN:
    """A small CNN classifier with global average pooling (CAM = its classifier weights) and a top-k MIL head
    on the cells its train-cam picks."""
    return TinyCNN(input_size, width, lr, train_cam, train_cam_options, top_k, mil_weight)


@hookimpl
def register_models(register):
    register("tinycnn", create_tinycnn, examples=({}, {"train_cam": "shapleycam", "top_k": 2}))
