"""GMIC through the core training loop: an interrupted, resumed run equals an uninterrupted one."""
from __future__ import annotations

import pytest
import torch

import camkit
from camkit.training import TrainConfig, train

SMALL = dict(preset="cpu", input_size=(128, 80), crop_size=(32, 32), num_crops=2)


def _data():
    opts = dict(size=(128, 80), n=16, seed=0)
    return camkit.create_dataset("synthetic", split="train", **opts), camkit.create_dataset(
        "synthetic", split="val", size=(128, 80), n=8, seed=0)


def _run(tmp, train_cam, **over):
    torch.manual_seed(0)
    model = camkit.create_model("gmic", train_cam=train_cam, **SMALL)
    tr, va = _data()
    cfg = TrainConfig(epochs=2, batch_size=4, seed=1, out_dir=str(tmp), progress=False, **over)
    return model, train(model, tr, va, cfg)


@pytest.mark.slow  # trains GMIC twice
def test_resumed_gmic_run_equals_uninterrupted(tmp_path):
    full, _ = _run(tmp_path / "full", "gradcampp")
    _run(tmp_path / "cut", "gradcampp", max_steps=3)  # stops mid-epoch 1 (4 steps per epoch)
    resumed, res = _run(tmp_path / "cut", "gradcampp")
    assert res.complete
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
