"""The four gradient methods against grad-cam 1.5.7 (the reference), and CAM against its definition."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import camkit

timm = pytest.importorskip("timm")
gradcam_lib = pytest.importorskip("pytorch_grad_cam")
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

REFERENCE = {"gradcam": gradcam_lib.GradCAM, "gradcampp": gradcam_lib.GradCAMPlusPlus,
             "xgradcam": gradcam_lib.XGradCAM, "layercam": gradcam_lib.LayerCAM}
CASES = [("resnet18", ["layer4"]), ("resnet18", ["layer3", "layer4"]),
         ("convnext_atto", ["stages.3"]), ("convnext_atto", ["stages.2", "stages.3"])]
TARGETS = [1, 4, 2]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def models():
    out = {}
    for arch in {a for a, _ in CASES}:
        torch.manual_seed(0)
        out[arch] = timm.create_model(arch, pretrained=False, num_classes=5).eval()
    return out


@pytest.fixture(scope="module")
def images():
    return torch.randn(3, 3, 96, 96, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("arch,layers", CASES, ids=[f"{a}-{'+'.join(l)}" for a, l in CASES])
def test_gradient_methods_match_grad_cam(models, images, arch, layers):
    model = models[arch]
    ours = camkit.cam_maps(model, images, list(REFERENCE), layers, TARGETS)
    modules = [model.get_submodule(name) for name in layers]
    for name, cls in REFERENCE.items():
        with cls(model=model, target_layers=modules) as ref_cam:
            ref = ref_cam(input_tensor=images, targets=[ClassifierOutputTarget(t) for t in TARGETS])
        ref = torch.from_numpy(ref)
        assert ours[name].shape == ref.shape == (3, 96, 96)
        assert torch.allclose(ours[name], ref, atol=1e-5, rtol=0), \
            f"{name}: max abs diff {(ours[name] - ref).abs().max():.2e}"
        # random weights may make one image's map all-negative (zeros after ReLU), but not every image's
        assert ours[name].amax(dim=(1, 2)).gt(0.99).sum() >= 2, f"{name}: degenerate maps, nothing compared"


def _minmax(x):
    x = x - x.amin(dim=(-2, -1), keepdim=True)
    return x / (1e-7 + x.amax(dim=(-2, -1), keepdim=True))


def test_cam_is_the_classifier_weighted_sum(models, images):
    model = models["resnet18"]
    with torch.no_grad():
        feats = model.forward_features(images)                       # (B, 512, 2, 2)
        w = model.get_classifier().weight[torch.tensor(TARGETS)]      # (B, 512)
        raw = torch.einsum("bk,bkhw->bhw", w, feats).clamp(min=0)
    up = F.interpolate(_minmax(raw)[:, None], size=(96, 96), mode="bilinear", align_corners=False)[:, 0]
    expected = _minmax(up.clamp(min=0))
    maps = camkit.cam_maps(model, images, ["cam"], ["layer4"], TARGETS)
    assert torch.allclose(maps["cam"], expected, atol=1e-6)
    # the map depends on the target class
    other = camkit.cam_maps(model, images, ["cam"], ["layer4"], [0, 0, 0])["cam"]
    assert (other - maps["cam"]).abs().max() > 1e-2


# -- the one-pass zoo: the same cases, one more reference each ----------------------------------------------------
# In float64 (model, images, grad-cam's numpy and camkit's engine all follow the model's dtype): HiResCAM's channel
# sum can cancel to 1e-5 of its terms (an untrained ConvNeXt's stages.2), where float32 round-off moves the
# normalised map by 1e-2 in grad-cam and camkit alike; float64 compares the formulas, not the round-off. The
# float32 parity of the whole zoo is checked on ResNet-18, where no sum cancels.

ZOO = {"hirescam": gradcam_lib.HiResCAM, "gradcam-elementwise": gradcam_lib.GradCAMElementWise,
       "fem": gradcam_lib.FEM, "kpcacam": gradcam_lib.KPCA_CAM, "eigencam": gradcam_lib.EigenCAM,
       "eigengradcam": gradcam_lib.EigenGradCAM}


@pytest.fixture(scope="module")
def models64(models):
    import copy

    return {arch: copy.deepcopy(m).double() for arch, m in models.items()}


@pytest.fixture
def sign_corrected(monkeypatch):
    """grad-cam's EigenCAM and EigenGradCAM keep LAPACK's arbitrary sign; give them grad-cam's own sign-corrected
    projection, the rule camkit applies (docs/cams.md)."""
    import pytorch_grad_cam.eigen_cam as eigen_cam
    import pytorch_grad_cam.eigen_grad_cam as eigen_grad_cam
    from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection_with_sign_correction

    monkeypatch.setattr(eigen_cam, "get_2d_projection", get_2d_projection_with_sign_correction)
    monkeypatch.setattr(eigen_grad_cam, "get_2d_projection", get_2d_projection_with_sign_correction)


def _reference(cls, model, modules, images, targets=TARGETS):
    with cls(model=model, target_layers=modules) as ref_cam:
        out = ref_cam(input_tensor=images, targets=[ClassifierOutputTarget(t) for t in targets])
    return torch.from_numpy(out).double()


def _assert_parity(name, ours, ref, atol=1e-5):
    ours = ours.double()
    assert ours.shape == ref.shape == (3, 96, 96)
    assert torch.allclose(ours, ref, atol=atol, rtol=0), f"{name}: max abs diff {(ours - ref).abs().max():.2e}"
    assert ours.amax(dim=(1, 2)).gt(0.99).sum() >= 2, f"{name}: degenerate maps, nothing compared"


@pytest.mark.usefixtures("sign_corrected")
@pytest.mark.parametrize("arch,layers", CASES, ids=[f"{a}-{'+'.join(l)}" for a, l in CASES])
def test_one_pass_zoo_matches_grad_cam_in_float64(models64, images, arch, layers):
    model, x = models64[arch], images.double()
    ours = camkit.cam_maps(model, x, list(ZOO), layers, TARGETS)
    assert all(m.dtype == torch.float64 for m in ours.values())
    modules = [model.get_submodule(name) for name in layers]
    for name, cls in ZOO.items():
        _assert_parity(name, ours[name], _reference(cls, model, modules, x))


@pytest.mark.usefixtures("sign_corrected")
@pytest.mark.parametrize("layers", [["layer4"], ["layer3", "layer4"]], ids=["layer4", "layer3+layer4"])
def test_one_pass_zoo_matches_grad_cam_in_float32(models, images, layers):
    """float32 throughout, as a user runs it; KPCA-CAM to 1e-3 only: grad-cam hands scikit-learn float32
    activations, and the sigmoid kernel's arguments sit within ~1e-3 of coef0 = 1, so float32 keeps ~4 digits
    of the centred Gram matrix; camkit's projection computes in float64 (camkit.cams.projection)."""
    model = models["resnet18"]
    ours = camkit.cam_maps(model, images, list(ZOO), layers, TARGETS)
    modules = [model.get_submodule(name) for name in layers]
    for name, cls in ZOO.items():
        _assert_parity(name, ours[name], _reference(cls, model, modules, images),
                       atol=1e-3 if name == "kpcacam" else 1e-5)


def test_first_component_is_the_svd_projection_up_to_its_sign():
    """Without sign correction the projection is grad-cam's get_2d_projection times +-1 per image."""
    from camkit.cams.projection import first_component
    from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection

    a = torch.randn(4, 16, 5, 7, generator=torch.Generator().manual_seed(3))
    a[:, :3] += 4 * torch.rand(4, 1, 5, 7, generator=torch.Generator().manual_seed(4))  # a dominant direction
    ref = torch.from_numpy(get_2d_projection(a.numpy()))
    ours = first_component(a, sign=None)
    for i in range(4):
        sign = 1.0 if torch.allclose(ours[i], ref[i], atol=1e-4) else -1.0
        torch.testing.assert_close(sign * ours[i], ref[i], atol=1e-4, rtol=0)
    corrected = first_component(a)
    assert bool((corrected.amax(dim=(1, 2)) >= corrected.amin(dim=(1, 2)).abs()).all())


@pytest.mark.parametrize("channels", [16, 512])
def test_first_component_on_many_channels_is_grad_cams_projection(channels):
    """512 channels (a ResNet's last stage) take the Lanczos path for the top eigenvector of the scatter
    matrix, 16 the dense one: both equal grad-cam's SVD projection up to its sign."""
    from camkit.cams.projection import DENSE_BELOW, first_component
    from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection

    assert (channels > DENSE_BELOW) == (channels == 512)
    g = torch.Generator().manual_seed(channels)
    a = torch.relu(torch.randn(3, channels, 23, 15, generator=g))
    a[:, : channels // 8] += 3 * torch.rand(3, 1, 23, 15, generator=g)
    ref = torch.from_numpy(get_2d_projection(a.numpy()))
    ours = first_component(a, sign=None)
    for i in range(3):
        sign = 1.0 if torch.allclose(ours[i], ref[i], atol=1e-3) else -1.0
        torch.testing.assert_close(sign * ours[i], ref[i], atol=1e-4 * float(ref[i].abs().max()), rtol=0)


def test_top_eigenpair_lanczos_equals_the_dense_solver(monkeypatch):
    """KPCA-CAM's top eigenpair: the Lanczos path (large maps) equals eigh, and an image whose Ritz pair has not
    converged falls back to eigh."""
    from camkit.cams import projection

    gen = torch.Generator().manual_seed(7)
    s = torch.randn(3, 700, 48, generator=gen, dtype=torch.float64)
    s[0, :, :4] *= 6  # a clear top eigenvalue; images 1 and 2 have crowded spectra
    s = s - s.mean(dim=1, keepdim=True)
    gram = torch.tanh(s @ s.transpose(1, 2) / 48 + 1)
    col = gram.mean(dim=1, keepdim=True)
    gram = gram - col - col.transpose(1, 2) + gram.mean(dim=(1, 2), keepdim=True)
    values, vectors = torch.linalg.eigh(gram)
    for steps in (96, 3):  # 3 steps converge for no image: every one takes the dense path
        monkeypatch.setattr(projection, "LANCZOS_STEPS", steps)
        lam, v = projection.top_eigenpair(gram)
        torch.testing.assert_close(lam, values[:, -1], atol=1e-10, rtol=0)
        torch.testing.assert_close(v.abs(), vectors[:, :, -1].abs(), atol=1e-8, rtol=0)


def test_kpcacam_through_lanczos_matches_grad_cam(models64, monkeypatch):
    """A 256-location layer (layer2 at 128x128) with the Lanczos path forced: the maps are grad-cam's."""
    from camkit.cams import projection

    monkeypatch.setattr(projection, "DENSE_BELOW", 16)
    model = models64["resnet18"]
    x = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    ours = camkit.cam_maps(model, x, ["kpcacam"], ["layer2"], [1, 4])["kpcacam"]
    ref = _reference(gradcam_lib.KPCA_CAM, model, [model.layer2], x, targets=[1, 4])
    assert ours.shape == ref.shape == (2, 128, 128) and ours.amax(dim=(1, 2)).gt(0.99).all()
    torch.testing.assert_close(ours.double(), ref, atol=1e-5, rtol=0)


def test_random_map_matches_grad_cam_given_the_same_draws(models, images, monkeypatch):
    import pytorch_grad_cam.random_cam as random_cam
    from camkit.cams.methods.random_map import RandomCAM

    model = models["resnet18"]
    ours = camkit.cam_maps(model, images, [RandomCAM(seed=7)], ["layer4"], TARGETS)["random"]
    draws = RandomCAM(seed=7).draw(3, 512)
    assert bool((draws.abs() <= 1).all())
    monkeypatch.setattr(random_cam.np.random, "uniform", lambda low, high, size: draws.numpy())
    _assert_parity("random", ours, _reference(gradcam_lib.RandomCAM, model, [model.layer4], images))
    again = camkit.cam_maps(model, images, [RandomCAM(seed=7)], ["layer4"], TARGETS)["random"]
    other = camkit.cam_maps(model, images, [RandomCAM(seed=8)], ["layer4"], TARGETS)["random"]
    assert torch.equal(ours, again) and (ours - other).abs().max() > 1e-2


def test_class_agnostic_methods_ignore_the_target(models, images):
    model = models["resnet18"]
    a = camkit.cam_maps(model, images, ["eigencam", "kpcacam", "fem"], ["layer3"], [0, 0, 0])
    b = camkit.cam_maps(model, images, ["eigencam", "kpcacam", "fem"], ["layer3"], [1, 2, 3])
    for name in a:
        assert torch.equal(a[name], b[name]), name


# -- second order and class-contrastive: one extra double-backward / one extra gradient, no extra forward --------

@pytest.mark.parametrize("arch,layers", CASES, ids=[f"{a}-{'+'.join(l)}" for a, l in CASES])
def test_shapleycam_and_finercam_match_grad_cam_in_float64(models64, images, arch, layers):
    model, x = models64[arch], images.double()
    modules = [model.get_submodule(name) for name in layers]
    if len(layers) == 1:  # grad-cam's ShapleyCAM frees the graph after the first layer's H A: one layer only
        ours = camkit.cam_maps(model, x, ["shapleycam"], layers, TARGETS)["shapleycam"]
        _assert_parity("shapleycam", ours, _reference(gradcam_lib.ShapleyCAM, model, modules, x))
    # FinerCAM with grad-cam's defaults: each image's top class against the 3 classes scored closest to it
    finer = camkit.cam_maps(model, x, ["finercam"], layers, None)["finercam"]
    with gradcam_lib.FinerCAM(model=model, target_layers=modules) as ref_cam:
        ref = torch.from_numpy(ref_cam(input_tensor=x, targets=None)).double()
    _assert_parity("finercam", finer, ref)


def test_shapleycam_second_order_term_through_gmic_saliency():
    """GMIC's score is the top-t mean of sigmoid(conv1x1(h_g)): curved in h_g, so H A is not 0. The engine's H A
    is checked against torch.autograd.functional.hvp of that function of h_g."""
    from camkit.cams.engine import _derivatives

    torch.manual_seed(0)
    gmic = camkit.create_model("gmic", preset="cpu", num_classes=1).eval()
    with torch.no_grad():  # move the saliency logits off 0, where sigmoid'' vanishes (an untrained head sits there)
        gmic.left_postprocess_net.gn_conv_last.weight.mul_(40)
    x = torch.randn(2, 1, 256, 160)
    # (the maps equal Grad-CAM's: through a 1x1 head, G and H A are both multiples of the head's weight at every
    # cell, so both weight vectors are proportional to it; the H A itself is what is checked)
    from camkit_gmic.global_net import top_t_pool

    with torch.no_grad():
        h = gmic.ds_net(x)

    def head(t):  # h_g -> y_global, as GMIC's forward computes it
        return top_t_pool(gmic.left_postprocess_net(t), gmic.cfg.top_t)

    a = h.clone().requires_grad_()
    d = _derivatives({"shapleycam": camkit.get_cam("shapleycam")}, ["shapleycam"], head(a),
                     torch.zeros(2, dtype=torch.long), {"h": a})
    _, expected = torch.autograd.functional.hvp(lambda t: head(t)[:, 0].sum(), h, h)
    assert expected.abs().max() > 0
    torch.testing.assert_close(d["hessian_vector"]["h"], expected, atol=1e-6 * float(expected.abs().max()),
                               rtol=1e-4)


def test_shapleycam_is_gradcam_through_a_piecewise_linear_head(models, images):
    """ResNet-18 after layer4 is global average pooling and a linear layer: the Hessian term vanishes."""
    maps = camkit.cam_maps(models["resnet18"], images, ["shapleycam", "gradcam"], ["layer4"], TARGETS)
    torch.testing.assert_close(maps["shapleycam"], maps["gradcam"], atol=1e-6, rtol=0)


@pytest.mark.slow  # every registered method through the engine (6 s)
def test_finercam_does_not_apply_to_one_class_and_all_skips_it():
    from camkit.errors import CamkitError

    one = timm.create_model("resnet18", num_classes=1).eval()
    x = torch.randn(2, 3, 32, 32)
    with pytest.raises(CamkitError, match="single class"):
        camkit.cam_maps(one, x, ["finercam"], ["layer1"], 0)
    maps = camkit.cam_maps(one, x, "all", ["layer1"], 0)  # a 64-channel layer keeps "all"'s perturbations cheap
    assert "finercam" not in maps and {"gradcam", "shapleycam", "eigencam"} <= set(maps)


@pytest.mark.parametrize("arch", ["resnet18", "convnext_atto"])
def test_fullgrad_matches_grad_cam_in_float64(models64, images, arch):
    """FullGrad ignores the target layers in both libraries: input x gradient plus every bias's gradient map
    (ResNet: the BatchNorms' effective biases; ConvNeXt: the convolutions' own)."""
    import copy

    model = copy.deepcopy(models64[arch])
    gen = torch.Generator().manual_seed(5)
    for m in model.modules():  # BatchNorm statistics away from (0, 1), so the effective bias is not just beta
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=gen, dtype=torch.float64) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen, dtype=torch.float64) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=gen, dtype=torch.float64) * 0.6 - 0.3)
    layer = "layer4" if arch == "resnet18" else "stages.3"
    x = images.double()
    ours = camkit.cam_maps(model, x, ["fullgrad"], [layer], TARGETS)["fullgrad"]
    ref = _reference(gradcam_lib.FullGrad, model, [], x)
    _assert_parity("fullgrad", ours, ref)
    # together with the one-pass methods, one shared backward gives the same maps
    both = camkit.cam_maps(model, x, ["gradcam", "fullgrad"], [layer], TARGETS)
    torch.testing.assert_close(both["fullgrad"], ours, atol=1e-12, rtol=0)
    alone = camkit.cam_maps(model, x, ["gradcam"], [layer], TARGETS)["gradcam"]
    torch.testing.assert_close(both["gradcam"], alone, atol=1e-12, rtol=0)


def test_fullgrad_does_not_apply_without_biases():
    from camkit.errors import CamkitError

    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, bias=False), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2)).eval()
    x = torch.randn(2, 1, 12, 12)
    with pytest.raises(CamkitError, match="FullGrad needs"):
        camkit.cam_maps(model, x, ["fullgrad"], ["1"], 0)
    assert "fullgrad" not in camkit.cam_maps(model, x, "full-backward", ["1"], 0)


# -- perturbation: extra forwards, batched; kept small (a 64-channel layer, 64x64 images) so CI stays fast ---------

PERTURBATION_CASES = [("resnet18", ["layer1"]), ("convnext_atto", ["stages.0"])]


@pytest.mark.parametrize("arch,layers", PERTURBATION_CASES, ids=[a for a, _ in PERTURBATION_CASES])
def test_scorecam_and_ablationcam_match_grad_cam_in_float64(models64, arch, layers):
    from camkit.cams.methods.ablationcam import AblationCAM
    from camkit.cams.methods.scorecam import ScoreCAM

    model = models64[arch]
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    targets = [3, 1]
    modules = [model.get_submodule(name) for name in layers]
    # chunks that do not divide the channel count: the last chunk is a short one
    ours = camkit.cam_maps(model, x, [ScoreCAM(chunk=24), AblationCAM(chunk=40)], layers, targets)
    for name, cls in (("scorecam", gradcam_lib.ScoreCAM), ("ablationcam", gradcam_lib.AblationCAM)):
        with cls(model=model, target_layers=modules) as ref_cam:
            ref = ref_cam(input_tensor=x, targets=[ClassifierOutputTarget(t) for t in targets])
        ref = torch.from_numpy(ref).double()
        assert torch.allclose(ours[name].double(), ref, atol=1e-5, rtol=0), \
            f"{name}: max abs diff {(ours[name] - ref).abs().max():.2e}"
        assert ours[name].amax(dim=(1, 2)).gt(0.99).all(), f"{name}: degenerate maps"


def test_gmic_ablation_reruns_only_the_saliency_head(monkeypatch):
    """GMIC's score_from (head and pooling after ds_net) gives the same Ablation-CAM as re-running the model."""
    from camkit.cams.methods.ablationcam import AblationCAM
    from camkit_gmic.model import GMIC

    torch.manual_seed(0)
    gmic = camkit.create_model("gmic", preset="cpu", num_classes=1).eval()
    x = torch.randn(2, 1, 256, 160, generator=torch.Generator().manual_seed(2))
    calls = []
    gmic.ds_net.register_forward_hook(lambda *a: calls.append(1))
    fast = camkit.cam_maps(gmic, x, [AblationCAM(chunk=64)], None, 0)["ablationcam"]
    assert len(calls) == 1  # the first forward only: every ablated copy went through the head alone
    monkeypatch.setattr(GMIC, "score_from", lambda self, *a: NotImplemented)
    slow = camkit.cam_maps(gmic, x, [AblationCAM(chunk=64)], None, 0)["ablationcam"]
    assert len(calls) > 2
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=0)


def test_gmic_scorecam_reruns_only_the_global_network(monkeypatch):
    """GMIC's score_images (y_global from the global network alone) gives the same Score-CAM as the whole model,
    whose crops and local network y_global does not read."""
    from camkit.cams.methods.scorecam import ScoreCAM
    from camkit_gmic.model import GMIC

    torch.manual_seed(0)
    gmic = camkit.create_model("gmic", preset="cpu", num_classes=1).eval()
    x = torch.randn(2, 1, 256, 160, generator=torch.Generator().manual_seed(2))
    calls = []
    gmic.mil_attn_V.register_forward_hook(lambda *a: calls.append(1))  # runs once per local-network pass
    fast = camkit.cam_maps(gmic, x, [ScoreCAM(chunk=64)], None, 0)["scorecam"]
    assert len(calls) == 1  # the local network ran for the first forward only
    monkeypatch.setattr(GMIC, "score_images", lambda self, *a: NotImplemented)
    slow = camkit.cam_maps(gmic, x, [ScoreCAM(chunk=64)], None, 0)["scorecam"]
    assert len(calls) > 2
    assert fast.amax(dim=(1, 2)).gt(0.99).all()
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=0)


@pytest.mark.slow  # 35 + 10 masked forwards per image against torchcam (9 s)
@pytest.mark.parametrize("arch,layers", PERTURBATION_CASES, ids=[a for a, _ in PERTURBATION_CASES])
def test_sscam_and_iscam_match_torchcam_given_the_same_noise(models64, arch, layers):
    """torchcam 0.5 is the reference for SS-CAM and IS-CAM. It returns maps at feature resolution, so camkit's are
    taken at that size; SS-CAM's noise: torchcam's sampler is handed camkit's stream, in the order camkit draws it
    (per sample, image and chunk), assembled into the (B, K, H, W) fields torchcam draws per sample."""
    torchcam = pytest.importorskip("torchcam.methods")
    from camkit.cams.methods.iscam import ISCAM
    from camkit.cams.methods.sscam import SSCAM

    model = models64[arch]
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    targets = [3, 1]
    ss, iscam = SSCAM(num_samples=2, std=0.5, chunk=24, seed=4), ISCAM(num_samples=2, chunk=24)
    seen = []
    handle = model.get_submodule(layers[0]).register_forward_hook(lambda m, i, o: seen.append(o.shape[1:]))
    with torch.no_grad():
        model(x)
    handle.remove()
    k, h, w = seen[0]
    ours = camkit.cam_maps(model, x, [ss, iscam], layers, targets, size=(h, w))

    from camkit.cams.rerun import chunks

    gen = torch.Generator().manual_seed(4)
    fields = [torch.stack([torch.cat([ss.noise(gen, p.stop - p.start, (32, 32)) for p in chunks(k, 24)])
                           for _ in range(2)]).double() for _ in range(2)]
    for name, cls, kwargs in (("sscam", torchcam.SSCAM, {"num_samples": 2, "std": 0.5}),
                              ("iscam", torchcam.ISCAM, {"num_samples": 2})):
        with cls(model, target_layer=layers[0], batch_size=24, input_shape=(3, 32, 32), **kwargs) as extractor:
            if name == "sscam":
                stream = iter(fields)
                extractor._distrib = type("Replay", (), {"sample": lambda self, size: next(stream)})()
            with torch.no_grad():
                scores = model(x)
            ref = extractor(class_idx=targets, scores=scores)[0].double()
        assert ref.shape == ours[name].shape == (2, h, w)
        assert torch.allclose(ours[name].double(), ref, atol=1e-5, rtol=0), \
            f"{name}: max abs diff {(ours[name] - ref).abs().max():.2e}"
        assert ours[name].amax(dim=(1, 2)).gt(0.99).all(), f"{name}: degenerate maps"


class _LongSkip(torch.nn.Module):
    """A feature map from before the hooked layer joins after it, by addition or by concatenation."""

    def __init__(self, join):
        super().__init__()
        self.join = join
        self.stem = torch.nn.Conv2d(1, 6, 3, padding=1)
        self.layer = torch.nn.Sequential(torch.nn.Conv2d(6, 6, 3, padding=1), torch.nn.ReLU())
        self.head = torch.nn.Linear(12 if join == "cat" else 6, 3)

    def forward(self, x):
        f = torch.relu(self.stem(x))
        g = self.layer(f)
        h = torch.cat([f, g], 1) if self.join == "cat" else f + g
        return self.head(h.mean(dim=(2, 3)))


@pytest.mark.parametrize("join", ["add", "cat"])
def test_ablation_rerun_with_a_long_skip_equals_ablating_by_hand(join):
    """The pre-layer network runs once per image (broadcast) or, when the model cannot broadcast (a
    concatenation across the layer), on N copies: either way the scores are those of ablating by hand."""
    from camkit.cams.methods.ablationcam import AblationCAM

    torch.manual_seed(0)
    model = _LongSkip(join).double().eval()
    x = torch.randn(2, 1, 10, 8, dtype=torch.float64)
    ours = camkit.cam_maps(model, x, [AblationCAM(chunk=4)], ["layer"], [0, 2])["ablationcam"]
    with torch.no_grad():
        a = model.layer(torch.relu(model.stem(x)))
        y = model(x)
        weights = torch.zeros(2, 6, dtype=torch.float64)
        for i, t in enumerate([0, 2]):
            for k in range(6):
                ablated = a[i:i + 1].clone()
                ablated[:, k] = 0.0 if a[i].min() == 0 else a[i].min() - 1e7
                handle = model.layer.register_forward_hook(lambda m, args, out: ablated)
                y_k = model(x[i:i + 1])[0, t]
                handle.remove()
                weights[i, k] = (y[i, t] - y_k) / y[i, t]
    from camkit.cams.pipeline import fuse_layers, layer_maps

    ref = fuse_layers([layer_maps(torch.einsum("bk,bkhw->bhw", weights, a), (10, 8))])
    assert ref.amax(dim=(1, 2)).gt(0.99).all()
    torch.testing.assert_close(ours.double(), ref, atol=1e-6, rtol=0)  # the reruns score in float32


class _Signed(torch.nn.Module):
    """A layer without a ReLU (negative activations: ablation sets a channel to min(A) - 1e7, not 0), followed
    by a channel mix and a ReLU, so the score depends on the ablation value's size (no normalisation after the
    layer that would wash it out, as ConvNeXt's LayerNorm does for ``stages.0``)."""

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(1, 8, 3, padding=1)
        self.layer = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.mix = torch.nn.Conv2d(8, 6, 1)
        self.head = torch.nn.Linear(6, 3)

    def forward(self, x):
        return self.head(torch.relu(self.mix(self.layer(torch.relu(self.stem(x))))).mean(dim=(2, 3)))


def test_ablation_on_negative_activations_equals_a_plain_loop():
    """On a layer with negative activations camkit's Ablation-CAM is the definition: for each channel k, the
    channel set to min(A_i) - 1e7 (that image's minimum before any ablation), one forward, the score. grad-cam
    1.5.7 is no reference there (docs/cams.md): the minimum it re-reads after every write has already been
    lowered by the copies before it in its batch, so channel k is ablated to about min - (k + 1) 1e7."""
    from camkit.cams.methods.ablationcam import AblationCAM
    from camkit.cams.pipeline import fuse_layers, layer_maps

    torch.manual_seed(0)
    model = _Signed().double().eval()
    x = torch.randn(2, 1, 12, 10, dtype=torch.float64)
    targets = [0, 2]
    ours = camkit.cam_maps(model, x, [AblationCAM(chunk=3)], ["layer"], targets)["ablationcam"]
    with torch.no_grad():
        a = model.layer(torch.relu(model.stem(x)))
        assert (a.amin(dim=(1, 2, 3)) < -0.5).all()
        y = model(x)
        weights = torch.zeros(2, 8, dtype=torch.float64)
        for i, t in enumerate(targets):
            for k in range(8):
                ablated = a[i:i + 1].clone()
                ablated[:, k] = a[i].min() - 1e7
                handle = model.layer.register_forward_hook(lambda m, args, out: ablated)
                weights[i, k] = (y[i, t] - model(x[i:i + 1])[0, t]) / y[i, t]
                handle.remove()
    ref = fuse_layers([layer_maps(torch.einsum("bk,bkhw->bhw", weights, a), (12, 10))])
    assert ref.amax(dim=(1, 2)).gt(0.99).all() and weights.abs().min() > 1e4   # the ablation value matters
    # float64 throughout; the weights are ~1e7 (the ablation value's size), so 1e-6 is float64 round-off
    torch.testing.assert_close(ours.double(), ref, atol=1e-6, rtol=0)
    gt = [ClassifierOutputTarget(t) for t in targets]
    with gradcam_lib.AblationCAM(model=model, target_layers=[model.layer]) as ref_cam:
        theirs = torch.from_numpy(ref_cam(input_tensor=x, targets=gt)).double()
    assert (theirs - ref).abs().max() > 0.3           # grad-cam's compounded ablation values: another map
    with gradcam_lib.AblationCAM(model=model, target_layers=[model.layer], batch_size=1) as ref_cam:
        one = torch.from_numpy(ref_cam(input_tensor=x, targets=gt)).double()
    # one copy per batch: nothing compounds and grad-cam agrees up to its float32 scores; the batch is the cause
    torch.testing.assert_close(one, ref, atol=1e-6, rtol=0)
