"""The option objects of issue 28 (CamOptions, FROCOptions) give what the keywords they replace gave; the keyword
spelling still works and a misspelt keyword is an error naming the fields."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from camkit.cams.engine import CamOptions, cam_maps, run_cams
from camkit.metrics import FROCOptions, bootstrap_froc


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(4, 6, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(6, 2)

    def forward(self, x):
        h = self.b(self.a(x))
        return {"y": self.fc(h.mean((2, 3))), "z": self.fc(h.amax((2, 3)))}


def test_cam_options_equal_the_keywords():
    model, x = _Net().eval(), torch.randn(2, 1, 12, 10)
    opts = CamOptions(output="z", fuse="max", size=(6, 5))
    by_object = cam_maps(model, x, ["gradcam", "layercam"], ["a", "b"], 1, opts)
    by_keyword = cam_maps(model, x, ["gradcam", "layercam"], ["a", "b"], 1, output="z", fuse="max", size=(6, 5))
    for name in by_object:
        assert by_object[name].shape == (2, 6, 5)
        assert torch.equal(by_object[name], by_keyword[name])
    # a keyword overrides the same field of options
    mean = cam_maps(model, x, ["layercam"], ["a", "b"], 1, opts, fuse="mean")["layercam"]
    assert torch.equal(mean, cam_maps(model, x, ["layercam"], ["a", "b"], 1, output="z", fuse="mean",
                                      size=(6, 5))["layercam"])
    maps, out = run_cams(model, x, ["gradcam"], ["b"], 0, CamOptions(output="y"), return_output=True)
    assert set(out) == {"y", "z"} and maps["gradcam"].shape == (2, 12, 10)


def test_cam_options_misspelt_or_misplaced():
    model, x = _Net().eval(), torch.randn(1, 1, 8, 8)
    with pytest.raises(TypeError, match="'outptu'.*output, fuse, size, not_applicable"):
        cam_maps(model, x, ["gradcam"], ["b"], 0, outptu="y")
    with pytest.raises(TypeError, match="options must be a camkit.cams.engine.CamOptions"):
        cam_maps(model, x, ["gradcam"], ["b"], 0, "y")  # the old sixth positional argument, output


def test_froc_options_equal_the_keywords():
    rng = np.random.default_rng(0)
    gt = {i: (np.array([[10.0, 10, 30, 30]]) if i % 2 else np.zeros((0, 4))) for i in range(20)}
    preds = {i: (np.array([[12.0, 11, 31, 29], [50, 50, 60, 60]]), rng.random(2)) for i in range(20)}
    groups = {i: i // 2 for i in range(20)}
    rules = FROCOptions(iou_threshold=0.5, images="positive", duplicates="ignore")
    a = bootstrap_froc(preds, gt, groups, metrics=("tpr@1", "cpm"), n=50, options=rules)
    b = bootstrap_froc(preds, gt, groups, metrics=("tpr@1", "cpm"), n=50, iou_threshold=0.5, images="positive",
                       duplicates="ignore")
    for m in a:
        assert a[m].to_dict() == b[m].to_dict() and np.array_equal(a[m].samples, b[m].samples, equal_nan=True)
    with pytest.raises(TypeError, match="'iou'.*iou_threshold"):
        bootstrap_froc(preds, gt, groups, n=5, iou=0.5)
