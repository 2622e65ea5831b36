"""The example model meets camkit's contract with a train-cam of each cost class, checked the way any plugin
author would, and its train-cam drives training: another map picks other cells, so the MIL term differs."""
import pytest
import torch

import camkit
from camkit.cams.engine import train_time_map
from camkit.errors import CamkitError, OptionError
from camkit.testing import check_model


# one of each cost class: one-pass without and with gradients, second-order, perturbation, full-backward
@pytest.mark.parametrize("train_cam", ["cam", "gradcam", "shapleycam", "ablationcam", "fullgrad"])
def test_tinycnn_meets_the_model_contract(train_cam):
    check_model(camkit.create_model("tinycnn", train_cam=train_cam))


def _train_step(train_cam):
    torch.manual_seed(0)  # the same initial weights whatever the train-cam
    model = camkit.create_model("tinycnn", train_cam=train_cam).train()
    images = torch.randn(4, 1, 64, 48, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([1, 0, 1, 0])
    cells = model(images)["roi_map"].flatten(1).topk(model.top_k, dim=1).indices
    _, parts = model.training_loss(images, labels, 0.0)
    return set(map(tuple, cells.sort(1).values.tolist())), parts


def test_the_train_cam_changes_what_training_sees():
    cam_cells, cam_parts = _train_step("cam")
    random_cells, random_parts = _train_step("random")
    assert cam_cells != random_cells                      # the maps pick other cells ...
    assert cam_parts["mil"] != random_parts["mil"]        # ... so the MIL term of the loss differs
    assert cam_parts["bce"] == random_parts["bce"]        # while the global term, which reads no map, does not


def test_train_cam_options_reach_the_method_and_the_config():
    model = camkit.create_model("tinycnn", train_cam="fem", train_cam_options={"k": 3})
    assert model.train_method.k == 3 and model.config["train_cam_options"] == {"k": 3}
    with pytest.raises(OptionError, match="has no option 'kk'"):
        camkit.create_model("tinycnn", train_cam="fem", train_cam_options={"kk": 3})  # at creation, not mid-training
    with pytest.raises(OptionError, match="'smoothgradcampp' is test-time only"):
        camkit.create_model("tinycnn", train_cam="smoothgradcampp")  # cost class gradient-reruns


def test_a_perturbation_train_cam_without_a_rerun_is_refused():
    # what a model that forgets ScoreRerun gets from camkit (docs/plugins.md)
    a = torch.randn(2, 4, 5, 5, requires_grad=True)
    with pytest.raises(CamkitError, match="a perturbation method needs extra forwards"):
        train_time_map("scorecam", a, a.mean((2, 3)))
