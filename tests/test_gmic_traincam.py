"""GMIC train-cam: the map that drives ROI retrieval is any registered CAM method, chosen by name."""
from __future__ import annotations

import pytest
import torch

import camkit
from camkit.nn import regions as roi, traincam
from camkit_gmic.global_net import top_t_pool

GRADIENT_METHODS = ["gradcam", "gradcampp", "xgradcam", "layercam"]
# one planted 3x3 hot window per method on the cpu preset's 16x10 map (window = 3x3 cells)
SPOTS = {"gradcam": (1, 0), "gradcampp": (5, 6), "xgradcam": (9, 2), "layercam": (13, 7)}


def _x(b=2, seed=0):
    return torch.randn(b, 1, 256, 160, generator=torch.Generator().manual_seed(seed))


def test_cpu_preset_with_gradient_train_cam_is_selectable():
    model = camkit.create_model("gmic", preset="cpu", train_cam="gradcampp", num_classes=1)
    assert model.config["preset"] == "cpu" and model.config["train_cam"] == "gradcampp"
    assert model.input_size == (256, 160) and model.cam_layers == ["ds_net"] and model.cam_output == "y_global"
    assert model.cfg.class_names == ("mass",) and model.default_lr == model.config["lr"] > 0
    from camkit.registry.host import get_host

    entry, _ = get_host().registry.get("model", "gmic")
    assert set(entry.meta.presets) >= {"official", "cpu"}


@pytest.mark.parametrize("method", GRADIENT_METHODS)
def test_patches_follow_the_planted_train_cam_map(method, monkeypatch):
    calls = []

    def planted(method, activations, score, classes=None, **kw):
        name = getattr(method, "name", method)  # the model hands over its method instance
        # the model must hand over a live graph from h_g to the global score, even under no_grad
        (g,) = torch.autograd.grad(score.sum(), activations, retain_graph=True)
        assert torch.is_grad_enabled() and g.shape == activations.shape and g.abs().sum() > 0
        calls.append(name)
        m = torch.zeros(score.shape[0], score.shape[1], *activations.shape[-2:])
        r, c = SPOTS[name]
        m[:, :, r:r + 3, c:c + 3] = 1.0
        return m

    monkeypatch.setattr(traincam, "engine_train_time_map", lambda: planted)
    model = camkit.create_model("gmic", preset="cpu", train_cam=method)
    r, c = SPOTS[method]
    for mode in ("train", "eval"):
        model.train(mode == "train")
        with torch.set_grad_enabled(mode == "train"):
            out = model(_x())
        assert calls[-1] == method
        assert out["patch_locations"][:, 0].tolist() == [[r * 16, c * 16]] * 2, mode
        assert out["roi_map"][0, 0, r, c] == 1 and out["roi_map"].sum() == 2 * 9
        assert not out["roi_map"].requires_grad
    # the train-time map built no parameter gradients
    assert all(p.grad is None for p in model.parameters())


def test_native_cam_uses_the_saliency_head_and_not_the_engine(monkeypatch):
    monkeypatch.setattr(traincam, "engine_train_time_map", lambda: pytest.fail("engine called for 'cam'"))
    model = camkit.create_model("gmic", preset="cpu", train_cam="cam").eval()
    with torch.no_grad():
        out = model(_x())
    torch.testing.assert_close(out["roi_map"], out["saliency"])
    assert torch.equal(out["patch_locations"], roi.retrieve_rois(out["saliency"], 2, (48, 48), (256, 160)))


@pytest.mark.parametrize("train", [False, True])
def test_gradcam_train_cam_is_dy_global_dh_g_through_the_engine(train):
    """End to end with the real engine: the ROI map is GradCAM of y_global w.r.t. h_g, per class."""
    torch.manual_seed(0)
    model = camkit.create_model("gmic", preset="cpu", train_cam="gradcam", num_classes=2).train(train)
    with torch.set_grad_enabled(train):
        out = model(_x(3, seed=1))
    h = out["h_g"].detach().float().requires_grad_()
    y = top_t_pool(model.left_postprocess_net(h), model.cfg.top_t)
    ref = []
    for c in range(2):
        (g,) = torch.autograd.grad(y[:, c].sum(), h, retain_graph=True)
        ref.append(torch.relu(torch.einsum("bk,bkhw->bhw", g.mean((2, 3)), h.detach())))
    ref = torch.stack(ref, 1)
    assert ref.abs().sum() > 0
    torch.testing.assert_close(out["roi_map"], ref, rtol=1e-4, atol=1e-7)
    assert torch.equal(out["patch_locations"], roi.retrieve_rois(ref, 2, (48, 48), (256, 160)))
    if train:  # the ROI map's gradient never reaches the loss, and the loss still backpropagates
        out["y_fusion"].sum().backward()
        assert model.ds_net.first_conv.weight.grad is not None


def test_every_gradient_train_cam_trains_one_step():
    torch.manual_seed(0)
    x = torch.randn(2, 1, 128, 96)  # any input size works; smaller keeps this fast
    for method in GRADIENT_METHODS:
        model = camkit.create_model("gmic", preset="cpu", train_cam=method).train()
        loss, parts = model.training_loss(x, torch.tensor([0, 1]), progress=0.5)
        loss.backward()
        assert torch.isfinite(loss), method
        assert all(p.grad is not None for p in model.parameters()), method


def test_test_time_engine_runs_on_gmic():
    """The CAM engine hooks ds_net (h_g) and explains y_global; cam is the normalised saliency map."""
    model = camkit.create_model("gmic", preset="cpu", train_cam="xgradcam").eval()
    x = _x(2)
    maps = camkit.cam_maps(model, x, ["cam", "gradcam", "gradcampp"], targets=0)
    assert set(maps) == {"cam", "gradcam", "gradcampp"} and maps["cam"].shape == (2, 256, 160)
    with torch.no_grad():
        sal = model(x)["saliency"][:, 0:1]
    up = torch.nn.functional.interpolate(sal, size=(256, 160), mode="bilinear", align_corners=False)[:, 0]
    lo = up.flatten(1).amin(1)[:, None, None]
    norm = (up - lo) / (1e-7 + (up - lo).flatten(1).amax(1)[:, None, None])
    torch.testing.assert_close(maps["cam"], norm, atol=1e-4, rtol=0)


@pytest.mark.parametrize("method", ["hirescam", "gradcam-elementwise", "eigencam", "eigengradcam", "kpcacam",
                                    "fem", "random"])
def test_every_one_pass_method_can_drive_roi_retrieval(method):
    torch.manual_seed(0)
    model = camkit.create_model("gmic", preset="cpu", train_cam=method, num_classes=1).train()
    loss, parts = model.training_loss(_x(4), torch.tensor([0, 1, 0, 1]), 0.5)
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(torch.as_tensor(v)) for v in parts.values())
    assert model.config["train_cam"] == method


def test_train_cam_options_configure_the_method_that_picks_the_patches(monkeypatch):
    from camkit.errors import OptionError

    seen = []
    real = traincam.engine_train_time_map()

    def spy(method, *a, **kw):
        seen.append(method)
        return real(method, *a, **kw)

    monkeypatch.setattr(traincam, "engine_train_time_map", lambda: spy)
    model = camkit.create_model("gmic", preset="cpu", train_cam="fem", train_cam_options={"k": 1}).eval()
    assert model.train_method.k == 1.0 and model.config["train_cam_options"] == {"k": 1}
    with torch.no_grad():
        out = model(_x())
    assert seen and seen[-1] is model.train_method
    strict = camkit.create_model("gmic", preset="cpu", train_cam="fem").eval()
    strict.load_state_dict(model.state_dict())
    assert strict.train_method.k == 2.0 and "train_cam_options" not in strict.config  # unset: hashes stay
    with torch.no_grad():
        assert not torch.equal(strict(_x())["roi_map"], out["roi_map"])  # k decides the thresholded map
    with pytest.raises(OptionError, match="has no option 'kk'"):
        camkit.create_model("gmic", preset="cpu", train_cam="fem", train_cam_options={"kk": 1})
    with pytest.raises(OptionError, match="takes no options"):
        camkit.create_model("gmic", preset="cpu", train_cam="cam", train_cam_options={"k": 1})


@pytest.mark.parametrize("method", ["shapleycam", "finercam"])
def test_second_order_and_own_score_methods_drive_roi_retrieval(method):
    model = camkit.create_model("gmic", preset="cpu", train_cam=method, num_classes=2).train()
    loss, _ = model.training_loss(_x(4), torch.tensor([0, 1, 0, 1]), 0.5)
    loss.backward()
    assert torch.isfinite(loss)


class _GlobalScore(torch.nn.Module):
    """GMIC's global network and y_global alone, as a model the test-time engine can explain."""

    def __init__(self, gmic):
        super().__init__()
        self.ds_net, self.head, self.top_t = gmic.ds_net, gmic.left_postprocess_net, gmic.cfg.top_t

    def forward(self, x):
        return top_t_pool(self.head(self.ds_net(x)), self.top_t)


def _train_time_map(model, x):
    with torch.no_grad():
        return model(x)["roi_map"]


@pytest.mark.parametrize("method", ["scorecam", "ablationcam", "iscam"])
def test_a_perturbation_train_cam_is_the_engine_map_of_the_global_network(method):
    """Inside the forward, Score-CAM re-runs the global network on masked inputs, Ablation-CAM only the
    saliency head: the maps equal the test-time engine's on the global network alone."""
    from camkit.cams.pipeline import fuse_layers, layer_maps

    torch.manual_seed(0)
    model = camkit.create_model("gmic", preset="cpu", train_cam=method, num_classes=1).eval()
    with torch.no_grad():  # live channels and a head of mixed signs: ablating one both lowers and raises y_global
        for bn in model.ds_net.modules():
            if isinstance(bn, torch.nn.BatchNorm2d):
                bn.bias.uniform_(0.0, 0.5)
        model.left_postprocess_net.gn_conv_last.weight.normal_(0, 0.3)
    x = _x(2, seed=3)
    roi_map = _train_time_map(model, x)
    assert roi_map.shape == (2, 1, 16, 10)
    ref = camkit.cam_maps(_GlobalScore(model).eval(), x, [method], ["ds_net"], targets=0)[method]
    assert bool((ref.amax(dim=(1, 2)) > 0.99).all())
    ours = fuse_layers([layer_maps(roi_map[:, 0].clone(), (256, 160))])  # the engine's pipeline
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)


def test_fullgrad_train_cam_is_the_engine_map_pooled_to_the_saliency_grid():
    from camkit.cams.pipeline import minmax

    torch.manual_seed(0)
    model = camkit.create_model("gmic", preset="cpu", train_cam="fullgrad", num_classes=1).eval()
    x = _x(2, seed=4)
    out_grad = torch.is_grad_enabled()
    roi_map = _train_time_map(model, x)
    assert torch.is_grad_enabled() == out_grad and roi_map.shape == (2, 1, 16, 10)
    ref = camkit.cam_maps(_GlobalScore(model).eval(), x, ["fullgrad"], ["ds_net"], targets=0)["fullgrad"]
    pooled = torch.nn.functional.adaptive_avg_pool2d(ref[:, None], (16, 10))[:, 0]
    torch.testing.assert_close(minmax(roi_map[:, 0]), minmax(pooled), atol=1e-5, rtol=0)
    with torch.no_grad():  # under no_grad nothing the forward returns carries a graph
        assert not any(v.requires_grad for v in model(x).values())


@pytest.mark.parametrize("method", ["scorecam", "fullgrad"])
def test_perturbation_and_full_backward_train_cams_train_one_step(method):
    torch.manual_seed(0)
    model = camkit.create_model("gmic", preset="cpu", train_cam=method, num_classes=1).train()
    loss, _ = model.training_loss(_x(4), torch.tensor([0, 1, 0, 1]), 0.5)
    loss.backward()
    assert torch.isfinite(loss) and model.ds_net.training  # the masked reruns' eval mode was undone
    assert all(p.grad is not None for p in model.ds_net.parameters())
    # one training forward counts once in BatchNorm's statistics: the masked reruns ran in eval mode
    assert {b.num_batches_tracked.item() for b in model.ds_net.modules() if isinstance(b, torch.nn.BatchNorm2d)} == {1}
