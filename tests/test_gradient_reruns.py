"""CAM methods with gradients on extra forwards (cost class "gradient-reruns"): the engine path
``ctx.rerun.activation_gradients``, Smooth Grad-CAM++ against torchcam, ``check_cam``'s coverage, ``camkit list
cams``, and test-time only: refused as a train-cam before training, run as a test-cam."""
from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from torch import nn

import camkit
from camkit.cams.base import train_time_problem
from camkit.cams.engine import run_cams, train_time_map
from camkit.cams.methods.gradcampp import GradCAMPlusPlus
from camkit.cams.methods.smoothgradcampp import SmoothGradCAMpp
from camkit.cams.rerun import Rerun
from camkit.cli import main
from camkit.errors import CamkitError
from camkit.testing import check_cam

pytestmark = pytest.mark.usefixtures("one_thread")


class Net(nn.Module):
    """conv -> BatchNorm -> ReLU -> conv features, global average pool, linear head; the camkit model members a
    test-cam needs (``cam_layers``, ``cam_output``, ``target_class``, ``predict``)."""

    cam_layers = ["features"]
    cam_output = "logits"
    target_class = 1

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                                      nn.Conv2d(6, 5, 3, stride=2, padding=1))
        self.fc = nn.Linear(5, 3)
        gen = torch.Generator().manual_seed(3)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
            self.features[1].running_mean.uniform_(-0.2, 0.2, generator=gen)
            self.features[1].running_var.uniform_(0.5, 1.5, generator=gen)

    def forward(self, x):
        return {"logits": self.fc(torch.relu(self.features(x)).mean((2, 3)))}

    def predict(self, outputs):
        return outputs["logits"].softmax(1)[:, self.target_class]


class SmoothGradCAM(camkit.CAMMethod):
    """What a plugin author writes against the documented API: Grad-CAM on SmoothGrad's gradients,
    ``w_k = mean_m mean_ij G_m,kij`` over ``num_samples`` copies ``x + N(0, std^2)``."""

    name = "smoothgradcam"
    cost = "gradient-reruns"

    def __init__(self, num_samples: int = 3, std: float = 0.2):
        self.num_samples, self.std = num_samples, std

    def forwards(self, batch: int, channels: int) -> int:
        return self.num_samples * batch

    def copies(self, x):
        gen = torch.Generator().manual_seed(0)
        return torch.cat([x + self.std * torch.randn(x.shape, generator=gen).to(x) for _ in range(self.num_samples)])

    def weights(self, ctx):
        x = ctx.rerun.inputs
        found = ctx.rerun.activation_gradients(self.copies(x), ctx.targets.repeat(self.num_samples), chunk=4)
        return found.gradients.unflatten(0, (self.num_samples, x.shape[0])).mean(dim=(0, 3, 4))


@pytest.fixture
def net():
    return Net().eval()


@pytest.fixture
def x():
    return torch.randn(3, 1, 12, 10, generator=torch.Generator().manual_seed(1))


# -- the engine path ----------------------------------------------------------------------------------------
def test_activation_gradients_are_each_copys_own_in_eval_mode_chunked_and_counted(net, x):
    net.train()  # the copies must run in eval mode all the same, and leave the mode and statistics alone
    stats = net.features[1].running_mean.clone()
    counted = []
    rerun = Rerun(net, "features", net.features, x, "logits", counted.append)
    targets = torch.tensor([0, 2, 1])
    found = rerun.activation_gradients(x, targets, chunk=2)
    assert counted == [2, 1]  # two chunks, every image counted
    assert net.training and net.features[1].training and torch.equal(net.features[1].running_mean, stats)
    assert all(p.requires_grad and p.grad is None for p in net.parameters())
    net.eval()
    for i in range(3):  # the reference: one image, one forward, one gradient
        a = net.features(x[i:i + 1]).detach().requires_grad_(True)
        score = net.fc(torch.relu(a).mean((2, 3)))
        (g,) = torch.autograd.grad(score[0, targets[i]], a)
        torch.testing.assert_close(found.activations[i], a[0].detach(), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(found.gradients[i], g[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(found.scores[i], score[0].detach(), atol=1e-5, rtol=1e-5)
    assert found.gradients.dtype == torch.float32
    one = rerun.activation_gradients(x, 2)  # one int targets every image
    torch.testing.assert_close(one.gradients[1], found.gradients[1])
    with pytest.raises(CamkitError, match="2 targets for 3 images"):
        rerun.activation_gradients(x, [0, 1])


def test_the_engine_hands_gradient_reruns_a_rerun_and_counts_their_copies(net, x):
    ticks = []
    maps = run_cams(net, x, [SmoothGradCAM(num_samples=3)], None, 1, progress=lambda d, t: ticks.append((d, t)))
    assert tuple(maps["smoothgradcam"].shape) == (3, 12, 10)
    assert ticks[-1] == (9, 9)  # 3 copies x 3 images, as forwards() declares


def test_a_gradient_reruns_method_cannot_be_computed_inside_a_models_forward(net, x):
    h = net.features(x).detach().requires_grad_(True)
    with pytest.raises(CamkitError, match="'smoothgradcampp'.*test-time only.*gradient-reruns"):
        train_time_map("smoothgradcampp", h, net.fc(h.mean((2, 3))))


# -- Smooth Grad-CAM++ against its references -----------------------------------------------------------------
@pytest.mark.parametrize("arch,layer,dtype", [("resnet18", "layer3", torch.float64),
                                              ("convnext_atto", "stages.2", torch.float64),
                                              ("resnet18", "layer4", torch.float32)])
def test_smoothgradcampp_matches_torchcam_given_the_same_noise(arch, layer, dtype):
    """torchcam 0.5's SmoothGradCAMpp draws its noise from ``_distrib.sample(input.size())`` once per sample; it is
    handed camkit's stream (a generator seeded with ``seed``, one (B, C, H, W) draw per sample). torchcam returns
    maps at feature resolution, so camkit's are taken at that size."""
    timm = pytest.importorskip("timm")
    torchcam = pytest.importorskip("torchcam.methods")
    torch.manual_seed(0)
    model = timm.create_model(arch, num_classes=3, in_chans=1).eval().to(dtype)
    x = torch.randn(3, 1, 64, 64, generator=torch.Generator().manual_seed(5)).to(dtype)
    targets = [2, 0, 1]
    method = SmoothGradCAMpp(num_samples=5, std=0.4, chunk=4, seed=7)  # chunk 4: samples split across calls
    seen = []
    handle = model.get_submodule(layer).register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape[-2:])))
    with torch.no_grad():
        model(x)
    handle.remove()
    hw = seen[0]
    ours = camkit.cam_maps(model, x, [method], [layer], targets, size=hw)["smoothgradcampp"]

    gen = torch.Generator().manual_seed(7)
    extractor = torchcam.SmoothGradCAMpp(model, layer, num_samples=5, std=0.4, input_shape=(1, 64, 64))
    extractor._distrib = type("Replay", (), {"sample": lambda self, size: method.noise(gen, tuple(size))})()
    try:
        ref = extractor(targets, model(x))[0]
    finally:
        extractor.remove_hooks()
    assert ref.shape == ours.shape == (3, *hw)
    diff = float((ours.double() - ref.double()).abs().max())
    assert diff < 1e-5, f"max abs diff {diff:.2e}"
    assert ours.amax(dim=(1, 2)).gt(0.99).all()


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_smoothgradcampp_without_noise_is_gradcampp_in_the_papers_convention(dtype, tol):
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model("resnet18", num_classes=3, in_chans=1).eval().to(dtype)
    x = torch.randn(2, 1, 64, 64, generator=torch.Generator().manual_seed(2)).to(dtype)
    maps = camkit.cam_maps(model, x, [SmoothGradCAMpp(num_samples=3, std=0.0, convention="original"),
                                      GradCAMPlusPlus()], ["layer3", "layer4"], [2, 0])
    assert float((maps["smoothgradcampp"] - maps["gradcampp"]).abs().max()) < tol


def test_smoothgradcampp_is_seeded_and_its_options_are_checked(net, x):
    a = camkit.cam_maps(net, x, [SmoothGradCAMpp(seed=1)], None, 1)["smoothgradcampp"]
    b = camkit.cam_maps(net, x, [SmoothGradCAMpp(seed=1)], None, 1)["smoothgradcampp"]
    c = camkit.cam_maps(net, x, [SmoothGradCAMpp(seed=2, std=1.0)], None, 1)["smoothgradcampp"]
    assert torch.equal(a, b) and not torch.equal(a, c)
    from camkit.errors import OptionError

    with pytest.raises(OptionError, match="convention"):
        camkit.get_cam("smoothgradcampp", convention="grad-cam")


# -- check_cam -------------------------------------------------------------------------------------------------
def test_a_smoothgrad_cam_written_against_the_documented_api_passes_check_cam():
    check_cam(SmoothGradCAM())
    check_cam(SmoothGradCAMpp(num_samples=2))
    check_cam(SmoothGradCAMpp(num_samples=2, convention="original"))


class _Undeclared(SmoothGradCAM):
    name = "undeclared"

    def forwards(self, batch, channels):
        return 0


class _Overrun(SmoothGradCAM):
    name = "overrun"

    def forwards(self, batch, channels):
        return batch  # one copy per image declared, three run


class _BehindTheEngine(SmoothGradCAM):
    """The trial's workaround: the model run by hand through the undocumented ``ctx.rerun.model``."""

    name = "behind"

    def weights(self, ctx):
        with torch.enable_grad():
            x = ctx.rerun.inputs.clone().requires_grad_(True)
            ctx.rerun.model(x).sum().backward()
        return ctx.activations.mean((2, 3))


class _NoGradients(SmoothGradCAM):
    name = "nogradients"
    needs_gradients = False


class _SaysTrainTime(camkit.CAMMethod):
    """A one-pass method that cannot be computed inside a model's forward yet claims it can."""

    name = "saystraintime"

    def weights(self, ctx):
        if ctx.targets.unique().numel() == 1:  # train_time_map asks one class of the whole batch
            raise RuntimeError("needs different classes per image")
        return ctx.gradients.mean((2, 3))


@pytest.mark.parametrize("method, rule", [
    (_Undeclared(), r"forwards\(2, 6\) returns 0: declare how many images"),
    (_Overrun(), "declares 2 extra forwards but it ran more"),
    (_BehindTheEngine(), "declares 6 extra forwards but it ran 0 .*not ctx.rerun.model"),
    (_NoGradients(), "needs_gradients must be True"),
    (_SaysTrainTime(), "as a train-cam .* raised RuntimeError: needs different classes per image; .*train_time = False"),
])
def test_check_cam_names_what_a_broken_method_gets_wrong(method, rule):
    with pytest.raises(AssertionError, match=rule):
        check_cam(method)


def test_test_time_only_is_declared_or_implied_by_the_cost_class():
    class TestOnly(_SaysTrainTime):
        name = "testonly"
        train_time = False

    check_cam(TestOnly())  # declared test-time only: its train-cam path is not asked of it
    assert train_time_problem(TestOnly) == "CAM method 'testonly' is test-time only (it declares train_time = False)"
    assert "cost class 'gradient-reruns'" in train_time_problem(SmoothGradCAM())
    assert train_time_problem(GradCAMPlusPlus()) is None


# -- camkit list cams, the bench, a test-cam ------------------------------------------------------------------
def test_list_cams_says_what_smoothgradcampp_costs():
    res = CliRunner().invoke(main, ["list", "cams", "--format", "json"])
    assert res.exit_code == 0, res.output
    rows = {r["name"]: r for r in json.loads(res.output)}
    assert rows["smoothgradcampp"]["cost"] == "gradient-reruns"
    assert rows["smoothgradcampp"]["gradients"] == "yes" and rows["smoothgradcampp"]["train_cam"] == "no"
    assert rows["gradcampp"]["train_cam"] == "yes" and rows["sscam"]["gradients"] == "no"


def test_the_bench_refuses_a_test_time_only_train_cam_in_one_line_before_training(tmp_path):
    base = ["bench", "--out", str(tmp_path / "run"), "--models", str(tmp_path / "models"), "--quiet"]
    for args, line in (
            (["--train-cam", "smoothgradcampp"], "Error: --train-cam smoothgradcampp: CAM method 'smoothgradcampp' is "
             "test-time only: its cost class 'gradient-reruns' runs the whole model again"),
            (["--train-cam", "gradient-reruns"], "Error: --train-cam gradient-reruns: its methods (smoothgradcampp) are "
             "test-time only")):
        res = CliRunner().invoke(main, [*base, *args])
        assert res.exit_code == 1, (res.output, res.exception)
        lines = [s for s in res.output.splitlines() if s.strip()]
        assert len(lines) == 1 and lines[0].startswith(line), res.output
    assert not list(tmp_path.rglob("*.pt")) and not (tmp_path / "run").exists()


def test_train_cam_all_leaves_test_time_only_methods_out_and_test_cam_all_keeps_them():
    from camkit.bench.config import PAPER_TEST_CAMS, PAPER_TRAIN_CAMS, BenchConfig, expand_cams

    train = expand_cams(["all"], PAPER_TRAIN_CAMS)
    assert "smoothgradcampp" not in train and {"sscam", "fullgrad", "shapleycam"} <= set(train)
    assert "smoothgradcampp" in expand_cams(["all"], PAPER_TEST_CAMS)
    assert expand_cams(["gradient-reruns"], PAPER_TEST_CAMS) == ["smoothgradcampp"]
    from camkit.errors import OptionError

    config = BenchConfig(train_cams=["cam", "smoothgradcampp"], test_cams=["smoothgradcampp"])
    with pytest.raises(OptionError, match="--train-cam smoothgradcampp: .*test-time only"):
        config.resolved()


def test_smoothgradcampp_runs_as_a_test_cam_through_localize(net, x):
    from camkit.inference import LocalizeOptions, localize

    options = LocalizeOptions(("smoothgradcampp", "gradcampp"), cam_options={"smoothgradcampp": {"num_samples": 2}})
    found = localize(net, x, options.check(net))
    assert set(found.maps) == {"smoothgradcampp", "gradcampp"} and not found.not_applicable
    assert tuple(found.maps["smoothgradcampp"].shape) == (3, 12, 10)
    assert all(len(boxes) >= 1 for boxes, _ in found.boxes["smoothgradcampp"])


def test_smoothgradcampp_on_a_bfloat16_model(net, x):
    """The copies keep the input's dtype (float32 noise would meet bf16 weights), the map is float32."""
    half = net.to(torch.bfloat16)
    maps = camkit.cam_maps(half, x.to(torch.bfloat16), [SmoothGradCAMpp(num_samples=2)], None, 1)
    assert maps["smoothgradcampp"].dtype == torch.float32 and bool(torch.isfinite(maps["smoothgradcampp"]).all())


def test_a_model_built_with_a_test_time_only_train_cam_is_refused_when_built():
    from camkit.errors import OptionError
    from camkit.nn.traincam import train_method

    with pytest.raises(OptionError, match="train-cam 'smoothgradcampp'.*test-time only"):
        train_method("smoothgradcampp")
    assert train_method("gradcam") is not None
