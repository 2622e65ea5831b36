"""The CAM engine's contract: one pass, hooks always removed, no parameter gradients, clear errors."""
from __future__ import annotations

import doctest
import importlib

import pytest
import torch
from torch import nn

import camkit
from camkit.cams.engine import run_cams, train_time_map
from camkit.cams.pipeline import fuse_layers, layer_maps
from camkit.errors import CamkitError

FIVE = ["cam", "gradcam", "gradcampp", "xgradcam", "layercam"]


pytestmark = pytest.mark.usefixtures("one_thread")


class TinyGlobal(nn.Module):
    """A GMIC-like global net: conv trunk -> h, saliency = sigmoid(conv1x1(h)), y_global = top-t pooling."""

    cam_layers = ["trunk"]
    cam_output = "y_global"

    def __init__(self, classes: int = 2, inplace_after: bool = False):
        super().__init__()
        self.trunk = nn.Sequential(nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                   nn.Conv2d(8, 16, 3, stride=2, padding=1))
        self.after = nn.ReLU(inplace=True) if inplace_after else nn.Identity()
        self.head = nn.Conv2d(16, classes, 1, bias=False)

    def forward(self, x):
        h = self.after(self.trunk(x))
        sal = torch.sigmoid(self.head(h))
        flat = sal.flatten(2)
        k = max(1, round(flat.shape[-1] * 0.1))
        y_global = flat.topk(k, dim=-1).values.mean(-1)
        return {"y_global": y_global, "saliency": sal, "y_max": h.amax(dim=(2, 3))[:, :2]}

    def native_cam(self, outputs):
        return outputs["saliency"]


def _seeded(module: nn.Module, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    for p in module.parameters():
        nn.init.normal_(p, std=0.3)
    return module.eval()


@pytest.fixture
def tiny():
    return _seeded(TinyGlobal())


@pytest.fixture
def x():
    return torch.randn(3, 1, 32, 24, generator=torch.Generator().manual_seed(3))


def _hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


# -- the basic contract --------------------------------------------------------------------------------
def test_all_five_maps_from_one_forward(tiny, x):
    calls = []
    tiny.register_forward_pre_hook(lambda *a: calls.append(1))
    maps = camkit.cam_maps(tiny, x, FIVE, None, [0, 1, 1])
    assert len(calls) == 1
    assert sorted(maps) == sorted(FIVE)
    for name, m in maps.items():
        assert m.shape == (3, 32, 24) and m.dtype == torch.float32, name
        assert torch.isfinite(m).all() and m.min() >= 0 and m.max() <= 1, name
    assert _hooks(tiny) == 1  # only the counting pre-hook above is left


def test_defaults_come_from_the_model_protocol(tiny, x):
    explicit = camkit.cam_maps(tiny, x, ["gradcam"], ["trunk"], [0, 1, 0], output="y_global")
    implicit = camkit.cam_maps(tiny, x, ["gradcam"], None, [0, 1, 0])
    assert torch.equal(explicit["gradcam"], implicit["gradcam"])
    by_module = camkit.cam_maps(tiny, x, ["gradcam"], [tiny.trunk], [0, 1, 0])
    assert torch.equal(explicit["gradcam"], by_module["gradcam"])


def test_cam_uses_the_native_head(tiny, x):
    maps, out = run_cams(tiny, x, ["cam"], None, [1, 0, 1], return_output=True)
    sal = out["saliency"][torch.arange(3), torch.tensor([1, 0, 1])]
    expected = fuse_layers([layer_maps(sal, (32, 24))])
    assert torch.allclose(maps["cam"], expected, atol=1e-6)
    assert not out["y_global"].requires_grad


def test_return_output_gives_the_same_forward(tiny, x):
    maps, out = run_cams(tiny, x, "all", None, None, return_output=True)
    with torch.no_grad():
        ref = tiny(x)
    assert torch.allclose(out["y_global"], ref["y_global"], atol=1e-6)
    # targets=None means each image's top class
    top = ref["y_global"].argmax(1).tolist()
    assert torch.allclose(maps["gradcam"], camkit.cam_maps(tiny, x, ["gradcam"], None, top)["gradcam"])


def test_callable_targets_see_the_whole_output(tiny, x):
    seen = {}

    def pick(out):
        seen["keys"] = sorted(out)
        return out["y_max"].argmax(1)

    maps = camkit.cam_maps(tiny, x, ["xgradcam"], None, pick)
    assert seen["keys"] == ["saliency", "y_global", "y_max"]
    with torch.no_grad():
        idx = tiny(x)["y_max"].argmax(1).tolist()
    assert torch.equal(maps["xgradcam"], camkit.cam_maps(tiny, x, ["xgradcam"], None, idx)["xgradcam"])


def test_gradients_are_the_true_gradients_even_with_an_inplace_relu_after_the_layer(x):
    model = _seeded(TinyGlobal(inplace_after=True))
    with torch.no_grad():
        a = model.trunk(x)
    leaf = a.clone().requires_grad_()
    sal = torch.sigmoid(model.head(torch.relu(leaf)))
    k = max(1, round(sal[0, 0].numel() * 0.1))
    score = sal.flatten(2).topk(k, -1).values.mean(-1)
    (g,) = torch.autograd.grad(score[:, 1].sum(), leaf)
    # LayerCAM = sum_k relu(G) * A with A the layer's output *before* the in-place ReLU
    expected = fuse_layers([layer_maps((g.clamp(min=0) * a).sum(1), (32, 24))])
    maps = camkit.cam_maps(model, x, ["layercam"], ["trunk"], 1)
    assert torch.allclose(maps["layercam"], expected, atol=1e-6)


def test_fuse_max_and_mean_follow_the_pipeline(x):
    model = _seeded(TinyGlobal())
    layers = ["trunk.0", "trunk"]
    mean = camkit.cam_maps(model, x, ["layercam"], layers, 0, fuse="mean")["layercam"]
    mx = camkit.cam_maps(model, x, ["layercam"], layers, 0, fuse="max")["layercam"]
    # by hand: A and G from plain hooks + a full backward, LayerCAM per layer, then each fusion
    saved = []

    def keep(module, args, out):
        out.retain_grad()
        saved.append(out)

    handles = [model.get_submodule(n).register_forward_hook(keep) for n in layers]
    model(x)["y_global"][:, 0].sum().backward()
    for h in handles:
        h.remove()
    model.zero_grad(set_to_none=True)
    per_layer = [layer_maps((a.grad.clamp(min=0) * a.detach()).sum(1), (32, 24)) for a in saved]
    assert torch.allclose(mean, fuse_layers(per_layer, "mean"), atol=1e-5)
    assert torch.allclose(mx, fuse_layers(per_layer, "max"), atol=1e-5)
    assert (mean - mx).abs().max() > 1e-3
    with pytest.raises(CamkitError, match="fuse"):
        camkit.cam_maps(model, x, ["layercam"], layers, 0, fuse="median")


def test_size_option(tiny, x):
    maps = camkit.cam_maps(tiny, x, ["gradcam", "cam"], None, 0, size=(16, 12))
    assert maps["gradcam"].shape == maps["cam"].shape == (3, 16, 12)


def test_timm_cam_with_several_layers_uses_the_layer_that_feeds_the_classifier():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model("resnet18", num_classes=3, in_chans=1).eval()
    img = torch.randn(2, 1, 64, 64)
    both = camkit.cam_maps(model, img, ["cam"], ["layer3", "layer4"], [0, 2])["cam"]
    last = camkit.cam_maps(model, img, ["cam"], ["layer4"], [0, 2])["cam"]
    assert torch.allclose(both, last, atol=1e-6)
    with pytest.raises(CamkitError, match="feeds the global pooling"):
        camkit.cam_maps(model, img, ["cam"], ["layer3"], [0, 2])


# -- modes, precision, frozen weights -------------------------------------------------------------------
def test_no_parameter_gradients_are_built(tiny, x):
    camkit.cam_maps(tiny, x, FIVE, None, [0, 1, 0])
    assert all(p.grad is None for p in tiny.parameters())
    assert torch.is_grad_enabled()  # the caller's grad mode is restored


def test_grad_mode_of_the_caller_is_restored(tiny, x):
    with torch.no_grad():
        maps = camkit.cam_maps(tiny, x, ["gradcampp"], None, 1)
        assert not torch.is_grad_enabled()
    assert maps["gradcampp"].max() > 0.99


def test_frozen_parameters_and_train_mode(tiny, x):
    ref = camkit.cam_maps(tiny, x, FIVE, None, [0, 1, 0])
    for p in tiny.parameters():
        p.requires_grad_(False)
    frozen = camkit.cam_maps(tiny, x, FIVE, None, [0, 1, 0])
    for name in FIVE:
        assert torch.equal(ref[name], frozen[name]), name
    tiny.train()
    trained = camkit.cam_maps(tiny, x, FIVE, None, [0, 1, 0])
    assert tiny.training
    for name in FIVE:
        assert torch.isfinite(trained[name]).all() and trained[name].max() > 0.99, name


def test_bf16_autocast_gives_close_maps():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model("resnet18", num_classes=3, in_chans=1).eval()
    img = torch.randn(2, 1, 96, 96, generator=torch.Generator().manual_seed(0))
    ref = camkit.cam_maps(model, img, FIVE, ["layer4"], [0, 2])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = camkit.cam_maps(model, img, FIVE, ["layer4"], [0, 2])
    for name in FIVE:
        assert low[name].dtype == torch.float32
        assert (low[name] - ref[name]).abs().mean() < 0.05, name
        assert not torch.equal(low[name], ref[name]), name  # autocast really ran in bf16


# -- hooks are always removed ---------------------------------------------------------------------------
def test_hooks_removed_after_an_exception(tiny, x):
    with pytest.raises(CamkitError, match="2 targets for a batch of 3"):
        camkit.cam_maps(tiny, x, FIVE, None, [0, 1])
    assert _hooks(tiny) == 0

    class Boom(TinyGlobal):
        def forward(self, x):
            self.trunk(x)
            raise ValueError("boom")

    boom = _seeded(Boom())
    with pytest.raises(ValueError, match="boom"):
        camkit.cam_maps(boom, x, FIVE, None, 0)
    assert _hooks(boom) == 0 and torch.is_grad_enabled()


# -- clear errors ---------------------------------------------------------------------------------------
def test_short_target_list_raises(tiny, x):
    with pytest.raises(CamkitError, match="one class index per image"):
        camkit.cam_maps(tiny, x, ["gradcam"], None, [1])
    with pytest.raises(CamkitError, match="out of range"):
        camkit.cam_maps(tiny, x, ["gradcam"], None, [0, 1, 2])


def test_layer_that_never_fires_raises(x):
    model = _seeded(TinyGlobal())
    model.unused = nn.Conv2d(16, 16, 1)
    with pytest.raises(CamkitError, match="never ran"):
        camkit.cam_maps(model, x, ["gradcam"], ["trunk", "unused"], 0)
    with pytest.raises(CamkitError, match="Did you mean 'trunk'"):
        camkit.cam_maps(model, x, ["gradcam"], ["trunc"], 0)
    assert _hooks(model) == 0


def test_module_called_twice_raises(x):
    class Twice(TinyGlobal):
        def forward(self, x):
            self.trunk(x)
            return super().forward(x)

    with pytest.raises(CamkitError, match="ran twice"):
        camkit.cam_maps(_seeded(Twice()), x, ["gradcam"], None, 0)


def test_non_differentiable_output_raises_for_gradient_methods(x):
    class Detached(TinyGlobal):
        def forward(self, x):
            out = super().forward(x)
            out["y_global"] = out["y_global"].detach()
            return out

    model = _seeded(Detached())
    with pytest.raises(CamkitError, match="not differentiable"):
        camkit.cam_maps(model, x, ["gradcam"], None, 0)
    assert camkit.cam_maps(model, x, ["cam"], None, 0)["cam"].max() > 0.99  # CAM needs no gradient


def test_models_that_switch_grad_mode_themselves(x):
    class OwnGrad(TinyGlobal):
        def forward(self, x):
            with torch.enable_grad():
                h = self.trunk(x)
            sal = torch.sigmoid(self.head(h))
            return {"y_global": sal.flatten(2).amax(-1), "saliency": sal}

    class NoGradHead(OwnGrad):
        def forward(self, x):
            with torch.no_grad():
                return super().forward(x)

    maps = camkit.cam_maps(_seeded(OwnGrad()), x, ["gradcam"], None, 1)
    assert maps["gradcam"].max() > 0.99
    with pytest.raises(CamkitError, match="torch.no_grad"):
        camkit.cam_maps(_seeded(NoGradHead()), x, ["gradcam"], None, 1)


def test_requires_grad_flags_are_restored(tiny, x):
    tiny.trunk[0].weight.requires_grad_(False)
    flags = [p.requires_grad for p in tiny.parameters()]
    camkit.cam_maps(tiny, x, FIVE, None, 0)
    assert [p.requires_grad for p in tiny.parameters()] == flags
    with pytest.raises(CamkitError):
        camkit.cam_maps(tiny, x, FIVE, None, [0])
    assert [p.requires_grad for p in tiny.parameters()] == flags
    assert flags.count(False) == 1


def test_unknown_output_and_method_names(tiny, x):
    with pytest.raises(CamkitError, match="y_fusion"):
        camkit.cam_maps(tiny, x, ["gradcam"], None, 0, output="y_fusion")
    with pytest.raises(KeyError, match="Did you mean 'gradcam'"):
        camkit.cam_maps(tiny, x, ["gradcan"], None, 0)


def test_constant_map_gives_zeros_not_nan():
    class Flat(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Conv2d(1, 4, 3, padding=1)
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(self.body(x * 0).mean((2, 3)))

    model = _seeded(Flat())
    maps = camkit.cam_maps(model, torch.randn(2, 1, 8, 8), FIVE[1:], ["body"], 0)
    for name, m in maps.items():
        assert not torch.isnan(m).any() and torch.count_nonzero(m) == 0, name


@pytest.mark.parametrize("rows", [3, 100])  # both reduction paths (few rows: per-map loop; many: along dim)
def test_minmax_matches_the_reference_formula(rows):
    from camkit.cams.pipeline import minmax

    x = torch.randn(rows, 9, 7, generator=torch.Generator().manual_seed(rows)) * 50
    x[0] = 3.0  # a constant map
    shifted = x - x.amin(dim=(-2, -1), keepdim=True)
    expected = shifted / (1e-7 + shifted.amax(dim=(-2, -1), keepdim=True))
    out = minmax(x)
    assert torch.equal(out, expected) and torch.count_nonzero(out[0]) == 0
    assert not torch.equal(x, out)  # not in place unless asked
    assert torch.equal(fuse_layers([x]), minmax(x.clamp(min=0)))


# -- the training-time entry ----------------------------------------------------------------------------
def test_train_time_map_matches_the_engine_and_keeps_the_graph(tiny, x):
    tiny.train()
    h = tiny.trunk(x)
    sal = torch.sigmoid(tiny.head(h))
    flat = sal.flatten(2)
    score = flat.topk(max(1, round(flat.shape[-1] * 0.1)), dim=-1).values.mean(-1)
    for method in FIVE[1:]:
        raw = train_time_map(method, h, score)
        assert raw.shape == (3, 2, 8, 6) and not raw.requires_grad and raw.min() >= 0
        # train mode on the same batch: the same BatchNorm statistics as the engine's own forward
        engine = camkit.cam_maps(tiny, x, [method], None, 1)[method]
        assert torch.allclose(fuse_layers([layer_maps(raw[:, 1], (32, 24))]), engine, atol=1e-5), method
    assert all(p.grad is None for p in tiny.parameters())
    with torch.no_grad():  # a caller's outer no_grad does not matter once the graph exists
        again = train_time_map("gradcam", h, score, classes=1)
    assert torch.equal(again[:, 0], train_time_map("gradcam", h, score)[:, 1])
    score.sum().backward()  # the caller's graph is intact for its own loss
    assert tiny.head.weight.grad is not None
    cam = train_time_map("cam", h, score, classes=[1], native_cam=sal)
    assert torch.allclose(cam[:, 0], sal[:, 1].detach())


def test_train_time_map_requires_a_graph(tiny, x):
    with torch.no_grad():
        h = tiny.trunk(x)
        score = tiny(x)["y_global"]
    with pytest.raises(CamkitError, match="enable_grad"):
        train_time_map("gradcampp", h.requires_grad_(), score)


def test_train_time_cam_with_classifier_weight():
    a = torch.randn(2, 4, 3, 3, requires_grad=True)
    w = torch.randn(3, 4)
    score = a.mean((2, 3)) @ w.t()
    raw = train_time_map("cam", a, score, classes=[2, 0], classifier_weight=w)
    expected = torch.einsum("k,bkhw->bhw", w[2], a.detach()).clamp(min=0)
    assert torch.allclose(raw[:, 0], expected, atol=1e-6)


# -- third-party methods and documentation --------------------------------------------------------------
class RandomMap(camkit.CAMMethod):
    """A random-map baseline (a third party's method)."""

    name = "randommap"
    needs_gradients = False

    def raw_map(self, ctx):
        b, _, h, w = ctx.activations.shape
        gen = torch.Generator(device=ctx.activations.device).manual_seed(0)
        return torch.rand(b, h, w, generator=gen, device=ctx.activations.device)


class _RandomPlugin:
    @camkit.hookimpl
    def register_cams(self, register):
        register("randommap", RandomMap)


def test_third_party_method_is_usable_everywhere(fresh_plugins, tiny, x):
    info = fresh_plugins.get_host().register(_RandomPlugin(), name="random-baseline")
    assert info.ok and "randommap" in camkit.list_cams()
    maps = camkit.cam_maps(tiny, x, "all", None, 0)
    assert set(FIVE) | {"randommap"} <= set(maps)
    alone = camkit.cam_maps(tiny, x, ["randommap"], None, 0)["randommap"]
    assert torch.equal(alone, maps["randommap"]) and alone.max() > 0.99
    assert train_time_map("randommap", tiny.trunk(x), tiny(x)["y_global"]).shape == (3, 2, 8, 6)
    fresh_plugins.get_host().unregister("random-baseline")
    assert "randommap" not in camkit.list_cams()


@pytest.mark.parametrize("module", ["cam", "gradcam", "gradcampp", "xgradcam", "layercam", "hirescam",
                                    "gradcam_elementwise", "eigencam", "eigengradcam", "kpcacam", "fem",
                                    "random_map", "shapleycam", "finercam", "scorecam", "ablationcam",
                                    "sscam", "iscam", "smoothgradcampp", "engine"])
def test_docstring_examples_run(module):
    pytest.importorskip("timm")
    mod = importlib.import_module(f"camkit.cams.{module}" if module == "engine" else f"camkit.cams.methods.{module}")
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_list_cams_shows_cost_class_and_gradients():
    import json

    from click.testing import CliRunner

    from camkit.cli import main

    res = CliRunner().invoke(main, ["list", "cams", "--format", "json"])
    assert res.exit_code == 0, res.output
    rows = {r["name"]: r for r in json.loads(res.output)}
    assert rows["eigencam"]["cost"] == "one-pass" and rows["eigencam"]["gradients"] == "no"
    assert rows["hirescam"]["gradients"] == "yes"
    assert {"cam", "gradcam", "gradcampp", "xgradcam", "layercam", "hirescam", "gradcam-elementwise", "eigencam",
            "eigengradcam", "kpcacam", "fem", "random"} <= set(rows)


def test_cam_options_build_the_methods_the_localizer_runs():
    from camkit.errors import OptionError
    from camkit.inference import LocalizeOptions

    opts = LocalizeOptions(("fem", "scorecam"), cam_options={"fem": {"k": 1.5}, "scorecam": {"chunk": 7}}).check()
    methods = opts.methods()
    assert methods["fem"].k == 1.5 and methods["scorecam"].chunk == 7
    with pytest.raises(OptionError, match="has no option 'kk'"):
        LocalizeOptions(("fem",), cam_options={"fem": {"kk": 1}}).check()


def test_perturbation_progress_counts_every_extra_forward():
    """run_cams(progress=) reports the perturbation methods' extra forwards against their declared total."""
    from camkit.cams.methods.sscam import SSCAM

    timm = pytest.importorskip("timm")
    model = timm.create_model("resnet18", num_classes=2, in_chans=1).eval()
    seen = []
    run_cams(model, torch.randn(2, 1, 32, 32), ["scorecam", "ablationcam", SSCAM(num_samples=2, chunk=48),
                                                "gradcam"], ["layer1"], 0,
             progress=lambda done, total: seen.append((done, total)))
    total = 2 * 64 * (1 + 1 + 2)  # batch x channels x (Score-CAM, Ablation-CAM, two SS-CAM samples)
    assert {t for _, t in seen} == {total} and seen[-1][0] == total
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert run_cams(model, torch.randn(1, 1, 32, 32), ["gradcam"], ["layer1"], 0,
                    progress=lambda *a: pytest.fail("no perturbation method, no progress"))


def test_a_second_order_train_cam_on_a_score_linear_in_the_activations_has_a_zero_hessian_term():
    """ShapleyCAM as a train-cam under a linear head on pooled activations: G is constant (no graph to
    differentiate), so H A is zero and the map is the first-order one, not a raw autograd error."""
    import torch.nn.functional as F

    from camkit.cams.engine import train_time_map

    a = torch.randn(2, 4, 5, 5, requires_grad=True)
    w = torch.randn(2, 4)
    maps = train_time_map("shapleycam", a, F.linear(a.mean((2, 3)), w))
    assert maps.shape == (2, 2, 5, 5) and bool(torch.isfinite(maps).all())
