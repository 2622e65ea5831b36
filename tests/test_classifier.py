"""The pooled classifier plugin: CAM is exact for every pooling head, any timm CNN backbone, clear refusals."""
from __future__ import annotations

import math

import pytest
import torch

import camkit
from camkit.errors import CamkitError, OptionError, UnknownNameError
from camkit_classifier.pooling import log_sum_exp, top_t_mean


def _small(**options):
    torch.manual_seed(0)
    base = {"preset": "cpu", "input_size": [64, 48], "pooling": "avg"}
    return camkit.create_model("classifier", **{**base, **options}).eval()


def _x(b=2):
    return torch.randn(b, 1, 64, 48, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("pooling", ["avg", "max", "topt", "lse", "attention"])
def test_logits_are_the_pooled_class_maps(pooling):
    model = _small(pooling=pooling, top_t=0.1)
    with torch.no_grad():
        out = model(_x())
    s, bias = out["class_map"], model.classifier.bias
    flat = s.flatten(2)
    if pooling == "avg":
        expected = flat.mean(-1)
    elif pooling == "max":
        expected = flat.amax(-1)
    elif pooling == "topt":
        k = round(flat.shape[-1] * 0.1)
        expected = flat.sort(-1, descending=True).values[..., :k].mean(-1)
    elif pooling == "lse":
        expected = torch.log(torch.exp(5.0 * flat).mean(-1)) / 5.0
    else:
        feats = model.backbone(_x())[-1]
        a = model.attention.weights(feats)
        assert torch.allclose(a.flatten(1).sum(1), torch.ones(2))
        expected = (a * s).sum((2, 3))
    torch.testing.assert_close(out["logits"], expected + bias, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["prob"], torch.sigmoid(out["logits"]))
    assert s.shape == (2, 1, 4, 3)  # output stride 16 at 64x48


def test_average_pooling_is_a_linear_classifier_on_pooled_features_and_gradcam_is_cam():
    """With GAP the logit is W . mean(A) + b (Zhou et al.'s setting), so Grad-CAM's weights are W / (h w) and its
    normalised map equals CAM's."""
    model = _small()
    x = _x()
    with torch.no_grad():
        feats = model.backbone(x)[-1]
        logits = model(x)["logits"]
    w = model.classifier.weight.flatten(1)
    torch.testing.assert_close(logits, feats.mean((2, 3)) @ w.T + model.classifier.bias, rtol=1e-5, atol=1e-6)
    maps = camkit.cam_maps(model, x, ["cam", "gradcam"])
    torch.testing.assert_close(maps["gradcam"], maps["cam"], rtol=0, atol=1e-5)


def test_cam_reads_the_classifier_weights_when_asked_without_the_native_map():
    from camkit.cams.resolve import classifier_weight

    model = _small(pooling="max")
    assert torch.equal(classifier_weight(model), model.classifier.weight.flatten(1).detach())
    with torch.no_grad():
        out = model(_x())
        feats = model.backbone(_x())[-1]
    torch.testing.assert_close(model.native_cam(out), torch.einsum("ck,bkhw->bchw",
                                                                   model.classifier.weight.flatten(1), feats))


def test_score_from_reruns_only_the_head():
    model = _small(pooling="attention")
    x = _x()
    with torch.no_grad():
        out = model(x)
        feats = model.backbone(x)[-1]
        torch.testing.assert_close(model.score_from(model.pooled_layer, feats), out["logits"])
        torch.testing.assert_close(model.score_from(model.pooled_layer, feats, "prob"), out["prob"])
    assert model.score_from("backbone.layer1", feats) is NotImplemented


def test_pooling_functions_by_hand():
    s = torch.tensor([[[[0.0, 1.0], [2.0, 5.0]]]])
    assert top_t_mean(s, 0.5).item() == pytest.approx(3.5)
    assert top_t_mean(s, 0.01).item() == 5.0  # at least one cell
    assert log_sum_exp(s, 1e-4).item() == pytest.approx(2.0, abs=1e-3)  # the mean as r -> 0
    assert log_sum_exp(s, 200.0).item() == pytest.approx(5.0 - math.log(4) / 200, abs=1e-6)  # -> the max


def test_other_stages_and_other_backbones():
    model = _small(cam_layers=["backbone.layer2", "backbone.layer3"])  # the cpu trunk has three stages
    maps = camkit.cam_maps(model, _x(), ["layercam"], model.cam_layers)
    assert maps["layercam"].shape == (2, 64, 48) and torch.isfinite(maps["layercam"]).all()
    with pytest.raises(CamkitError, match="not a submodule.*backbone.layer1"):
        _small(cam_layers=["backbone.nope"])
    eff = camkit.create_model("classifier", backbone="timm:efficientnet_b0", input_size=[64, 64]).eval()
    assert eff.cam_layers == ["backbone.blocks.6"] and eff.classifier.in_channels == 320
    with torch.no_grad():
        assert eff(torch.randn(1, 1, 64, 64))["class_map"].shape == (1, 1, 2, 2)


def test_refusals_name_the_option():
    with pytest.raises(OptionError, match="no train-cam"):
        camkit.create_model("classifier", preset="cpu", train_cam="gradcam")
    with pytest.raises(OptionError, match="no option 'poling'.*pooling"):
        camkit.create_model("classifier", preset="cpu", poling="max")
    with pytest.raises(CamkitError, match="pooling must be one of"):
        camkit.create_model("classifier", preset="cpu", pooling="median")
    with pytest.raises(UnknownNameError):
        camkit.create_model("classifier", backbone="timm:no_such_net")


def test_trains_and_round_trips_a_checkpoint(tmp_path):
    model = _small(pooling="lse").train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = _x(4), torch.tensor([0, 1, 0, 1])
    first = None
    for _ in range(5):
        loss, parts = model.training_loss(x, y, 0.5)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else parts["loss"]
    assert parts["loss"] < first and set(parts) == {"loss", "bce"}
    path = tmp_path / "w.pt"
    torch.save(model.state_dict(), path)
    again = camkit.create_model("classifier", preset="cpu", input_size=[64, 48], pooling="lse",
                                checkpoint=str(path)).eval()
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(again(x)["logits"], model(x)["logits"])


def test_cpu_preset_is_the_localising_configuration_of_the_pooling_study():
    """docs/models.md: three one-block stages (a small receptive field) and log-sum-exp pooling; a 16x10 map at
    256x160, GMIC cpu's grid."""
    model = camkit.create_model("classifier", preset="cpu").eval()
    assert model.cfg.pooling == "lse" and model.cam_layers == ["backbone.layer3"]
    with torch.no_grad():
        assert model(torch.randn(1, 1, 256, 160))["class_map"].shape == (1, 1, 16, 10)
