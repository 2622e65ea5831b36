"""GMIC model: released-code parity (golden file), state-dict layout, presets, protocol, loss, real images."""
from __future__ import annotations

import ast
import importlib.util
import json
import math

import numpy as np
import pytest
import torch

import camkit
from camkit.errors import CamkitError, UnknownNameError


def _reference_module(shared_dir):
    spec = importlib.util.spec_from_file_location("gmic_reference_inputs", shared_dir / "gmic" / "reference_inputs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _tsv(shared_dir):
    lines = (shared_dir / "gmic" / "state_dict_keys.tsv").read_text().splitlines()
    return [(k, tuple(ast.literal_eval(s))) for k, s in (ln.split("\t") for ln in lines if ln.strip())]


@pytest.fixture(scope="module")
def official():
    return camkit.create_model("gmic", preset="official")


def test_official_state_dict_matches_released_keys_in_order(official, shared_dir):
    keys = _tsv(shared_dir)
    sd = official.state_dict()
    assert len(keys) == 258
    assert list(sd) == [k for k, _ in keys]
    assert [tuple(v.shape) for v in sd.values()] == [s for _, s in keys]


def test_official_reproduces_released_golden_outputs(shared_dir):
    ref = _reference_module(shared_dir)
    golden = json.loads((shared_dir / "gmic" / "golden_seed0_1024x832_b2.json").read_text())
    keys = _tsv(shared_dir)
    state = ref.make_state(keys, golden["seed"])
    x = ref.make_input(golden["batch"], *golden["input_hw"], golden["seed"])
    # our copy of the procedure must be the one the golden file was made from
    sums = golden["state_dict_checksum"]
    assert len(state) == sums["n_keys"]
    assert math.isclose(sum(float(v.double().sum()) for v in state.values() if v.is_floating_point()),
                        sums["sum_float"], rel_tol=1e-9)
    assert math.isclose(float(state["ds_net.first_conv.weight"].double().sum()), sums["first_conv_sum"],
                        rel_tol=1e-9)
    assert math.isclose(float(x.double().sum()), golden["input_checksum"]["sum"], abs_tol=1e-6)
    assert math.isclose(float(x.double().abs().sum()), golden["input_checksum"]["abs_sum"], rel_tol=1e-9)

    model = camkit.create_model("gmic", preset="official", train_cam="cam")
    model.load_state_dict(state, strict=True)
    model.eval()
    with torch.no_grad():
        out = model(x)
    for ours, theirs in [("y_fusion", "y_fusion"), ("y_global", "y_global"), ("y_local", "y_local"),
                         ("patch_attention", "patch_attns")]:
        torch.testing.assert_close(out[ours].double(), torch.tensor(golden[theirs], dtype=torch.float64),
                                   atol=1e-4, rtol=0, msg=ours)
    assert out["patch_locations"].tolist() == [[[int(v) for v in p] for p in img] for img in golden["patch_locations"]]
    sal = out["saliency"].double()
    assert tuple(sal.shape[-2:]) == tuple(golden["cam_size"])
    torch.testing.assert_close(sal.sum((2, 3)), torch.tensor(golden["saliency_sum"], dtype=torch.float64),
                               atol=1e-3, rtol=1e-6)  # a sum of 208 values, each within float32 rounding
    torch.testing.assert_close(sal.flatten(2).amax(-1), torch.tensor(golden["saliency_max"], dtype=torch.float64),
                               atol=1e-4, rtol=0)
    assert sal.flatten(2).argmax(-1).tolist() == golden["saliency_argmax"]


def test_bad_options_fail_clearly():
    with pytest.raises(UnknownNameError, match="did you mean|Did you mean"):
        camkit.create_model("gmic", preset="cpus")
    with pytest.raises(CamkitError, match="num_crop"):
        camkit.create_model("gmic", preset="cpu", num_crop=3)
    with pytest.raises(UnknownNameError, match="no-such-cam"):
        camkit.create_model("gmic", preset="cpu", train_cam="no-such-cam")
    with pytest.raises(CamkitError, match="crop_size"):
        camkit.create_model("gmic", preset="cpu", crop_size=(300, 48))
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        camkit.create_model("gmic", preset="cpu")(torch.zeros(1, 3, 256, 160))


def test_official_defaults_are_released_model_1(official):
    cfg = official.cfg
    assert (cfg.num_classes, cfg.input_size, cfg.num_crops) == (2, (2944, 1920), 6)
    assert (cfg.crop_size, cfg.top_t) == ((256, 256), 0.02)
    assert (cfg.beta, official.default_lr, cfg.flip_weight) == (3.259e-06, 4.134e-06, 0.0)
    out = {"y_fusion": torch.tensor([[0.1, 0.9], [0.7, 0.2]])}
    assert official.predict(out).tolist() == pytest.approx([0.9, 0.2])  # malignant channel


def test_cpu_forward_shapes_and_protocol():
    torch.manual_seed(0)
    model = camkit.create_model("gmic", preset="cpu", num_crops=3, crop_size=(40, 40)).eval()
    x = torch.randn(3, 1, 256, 160)
    with torch.no_grad():
        out = model(x)
    k, h, w = 3, 16, 10
    shapes = {"y_fusion": (3, 1), "y_global": (3, 1), "y_local": (3, 1), "saliency": (3, 1, h, w),
              "patch_locations": (3, k, 2), "patch_attention": (3, k), "h_g": (3, 32, h, w), "roi_map": (3, 1, h, w)}
    assert {n: tuple(out[n].shape) for n in shapes} == shapes
    assert all(torch.isfinite(v.float()).all() for v in out.values())
    torch.testing.assert_close(out["patch_attention"].sum(1), torch.ones(3))
    assert model.native_cam(out) is out["saliency"]
    assert model.predict(out).shape == (3,)
    assert out["patch_locations"].dtype == torch.long
    # the hooked layer's output is h_g
    seen = []
    handle = model.get_submodule(model.cam_layers[0]).register_forward_hook(lambda m, i, o: seen.append(o))
    with torch.no_grad():
        out2 = model(x)
    handle.remove()
    assert len(seen) == 1 and torch.equal(seen[0], out2["h_g"])


def test_bf16_autocast_forward_runs_and_keeps_rois_in_float32():
    model = camkit.create_model("gmic", preset="cpu").eval()
    x = torch.randn(2, 1, 256, 160)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    assert out["roi_map"].dtype == torch.float32
    assert torch.isfinite(out["y_fusion"].float()).all()


def test_training_loss_matches_eq2_and_backpropagates():
    torch.manual_seed(1)
    model = camkit.create_model("gmic", preset="cpu", flip_weight=0.0, beta=0.5).train()
    x, y = torch.randn(4, 1, 128, 96), torch.tensor([0, 1, 1, 0])
    loss, parts = model.training_loss(x, y, progress=0.0)
    assert loss.dim() == 0 and all(isinstance(v, float) for v in parts.values())
    expected = parts["bce_global"] + parts["bce_local"] + parts["bce_fusion"] + 0.5 * parts["saliency_l1"]
    assert parts["loss"] == pytest.approx(expected, rel=1e-5)
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-5)
    assert parts["flip_consistency"] == 0.0
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert grads["ds_net.first_conv.weight"].abs().sum() > 0 and grads["dn_resnet.conv1.weight"].abs().sum() > 0


def test_two_class_labels_target_the_mass_class():
    model = camkit.create_model("gmic", preset="cpu", num_classes=2)
    assert model.targets(torch.tensor([1, 0]), 2).tolist() == [[0.0, 1.0], [0.0, 0.0]]
    model0 = camkit.create_model("gmic", preset="cpu", num_classes=2, mass_class=0)
    assert model0.targets(torch.tensor([1, 0]), 2).tolist() == [[1.0, 0.0], [0.0, 0.0]]


def test_flip_consistency_ramps_in_and_alternates_axes(monkeypatch):
    model = camkit.create_model("gmic", preset="cpu", flip_weight=2.0, flip_ramp=0.5,
                                evidence_weight=0.0).train()
    flips = []
    orig = model.global_saliency
    monkeypatch.setattr(model, "global_saliency", lambda x: (flips.append(x), orig(x))[1])
    x, y = torch.randn(2, 1, 128, 96), torch.tensor([0, 1])  # any size works; small keeps it fast
    _, p0 = model.training_loss(x, y, progress=0.0)
    assert flips == [] and p0["flip_consistency"] == 0.0
    _, p1 = model.training_loss(x, y, progress=0.25)  # weight 1.0 of 2.0
    _, p2 = model.training_loss(x, y, progress=0.9)  # full weight
    assert len(flips) == 2 and p1["flip_consistency"] > 0
    assert torch.equal(flips[0], x.flip(2)) and torch.equal(flips[1], x.flip(3))  # vertical, then horizontal
    bce = p1["bce_global"] + p1["bce_local"] + p1["bce_fusion"] + model.cfg.beta * p1["saliency_l1"]
    assert p1["loss"] == pytest.approx(bce + 1.0 * p1["flip_consistency"], rel=1e-5)


def test_real_mammograms_smoke(shared_dir):
    folder = shared_dir / "data" / "nyu-gmic-sample"
    files = sorted(folder.glob("0_*.png")) if folder.is_dir() else []
    if not files:
        pytest.skip("nyu-gmic-sample images are not available")
    import numpy as np
    from PIL import Image

    h, w = 736, 480  # official preset at a quarter of the released size, to stay fast on CPU
    imgs = []
    for f in files:
        arr = np.asarray(Image.open(f)).astype(np.float32)
        t = torch.from_numpy(arr)[None, None]
        t = torch.nn.functional.interpolate(t, size=(h, w), mode="bilinear", align_corners=False)[0]
        imgs.append((t - t.mean()) / t.std().clamp_min(1e-5))
    x = torch.stack(imgs)
    assert x.shape == (len(files), 1, h, w)
    model = camkit.create_model("gmic", preset="official").eval()
    with torch.no_grad():
        out = model(x)
    b = len(files)
    assert out["y_fusion"].shape == (b, 2) and out["saliency"].shape == (b, 2, 12, 8)
    assert out["patch_locations"].shape == (b, 6, 2)
    assert all(torch.isfinite(v.float()).all() for v in out.values())
    assert ((out["patch_locations"] >= 0) & (out["patch_locations"] <= torch.tensor([h, w]))).all()


def test_folded_grey_stem_equals_the_trunk_on_repeated_crops():
    """local_features runs conv1 on one channel with summed weights: same features and conv1 gradient."""
    from camkit_gmic.local_net import build_local_resnet, local_features

    torch.manual_seed(0)
    net = build_local_resnet((8, 8, 16, 16), (1, 1, 1, 1), 8, in_chans=3).eval()
    crops = torch.randn(2, 3, 32, 32)
    ours = local_features(net, crops, 3)
    ours.square().sum().backward()
    g_ours = net.conv1.weight.grad.clone()
    net.zero_grad()
    ref = net.forward_features(crops.reshape(6, 1, 32, 32).expand(-1, 3, -1, -1)).mean((2, 3)).view(2, 3, -1)
    ref.square().sum().backward()
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g_ours, net.conv1.weight.grad, rtol=1e-3, atol=1e-5)



@pytest.mark.parametrize("stem", [8, 24, 64])
def test_local_stem_has_the_configured_width(stem):
    """local_stem_width sizes the local stem (timm's plain stem is 64 wide whatever its stem_width says); the
    stages after it are timm's blocks with timm's initialisation (the last BN of each block zeroed)."""
    from camkit_gmic.local_net import build_local_resnet

    net = build_local_resnet((8, 16, 32, 64), (1, 1, 1, 1), stem, in_chans=1)
    assert net.conv1.out_channels == stem and net.bn1.num_features == stem
    assert net.layer1[0].conv1.in_channels == stem
    assert (net.layer1[0].downsample is None) == (stem == 8)  # a projection only where the widths differ
    assert all(float(b.bn2.weight.detach().abs().sum()) == 0 for stage in (net.layer1, net.layer4) for b in stage)
    assert net.feature_info[0]["num_chs"] == stem and len(net.feature_info) == 5
    assert net.forward_features(torch.randn(2, 1, 48, 48)).shape == (2, 64, 2, 2)
    narrow = camkit.create_model("gmic", preset="cpu", local_stem_width=8)
    assert narrow.dn_resnet.conv1.out_channels == 8 and narrow.dn_resnet.layer1[0].downsample is None

@pytest.mark.parametrize("space", ["map", "logit"])
def test_evidence_alignment_by_hand(space):
    from camkit.nn.evidence import evidence_alignment

    # a 4x4 input gradient pooled onto a 2x2 map: block means |g| = 1, 0, 0, 3 -> power 2 -> target 0.1, 0, 0, 0.9
    g = torch.zeros(1, 1, 4, 4)
    g[0, 0, :2, :2] = -1.0
    g[0, 0, 2:, 2:] = 3.0
    sal = torch.tensor([[[0.5, 0.5], [0.5, 0.5]]], requires_grad=True)  # uniform map: q = 1/4 in both spaces
    kl = evidence_alignment(sal, g, power=2.0, space=space)
    t = np.array([0.1, 0.0, 0.0, 0.9])
    assert kl.item() == pytest.approx(float((t[[0, 3]] * np.log(t[[0, 3]] / 0.25)).sum()), rel=1e-6)
    kl.backward()
    if space == "logit":  # d KL / d logit = q - t, and d logit / d s = 1 / (s (1 - s)) = 4 at s = 0.5
        expected = (0.25 - t) * 4
    else:  # q = s / S: d KL / d s_i = -t_i / s_i + 1 / S, with s_i = 0.5 and S = 2
        expected = -t / 0.5 + 0.5
    np.testing.assert_allclose(sal.grad.flatten().numpy(), expected, rtol=1e-5, atol=1e-7)
    # a map already peaked where the evidence is costs less than the uniform one
    peaked = torch.tensor([[[0.3, 0.01], [0.01, 0.95]]])
    assert evidence_alignment(peaked, g, 2.0, space=space).item() < kl.item()


def test_evidence_alignment_in_map_space_penalises_a_plateau_that_logits_ignore():
    from camkit.nn.evidence import evidence_alignment

    g = torch.zeros(1, 1, 2, 2)
    g[0, 0, 0, 0] = 1.0  # all the evidence in one cell
    plateau = torch.tensor([[[0.999, 0.5], [0.5, 0.5]]])  # the peak in the right place, the rest at half
    assert evidence_alignment(plateau, g, 4.0, space="logit").item() < 0.01  # log(1 + 3 e^-6.9): nearly free
    assert evidence_alignment(plateau, g, 4.0, space="map").item() > 0.9  # log(2.499 / 0.999)


def test_evidence_term_ramps_in_skips_steps_and_needs_positives(monkeypatch):
    model = camkit.create_model("gmic", preset="cpu", flip_weight=0.0, evidence_weight=2.0, evidence_ramp=0.5,
                                evidence_every=2).train()
    calls = []
    orig = torch.autograd.grad
    monkeypatch.setattr(torch.autograd, "grad", lambda *a, **k: (calls.append(1), orig(*a, **k))[1])
    x, y = torch.randn(2, 1, 128, 96), torch.tensor([0, 1])
    _, p0 = model.training_loss(x, y, progress=0.0)  # step 0, ramp weight 0: nothing computed
    assert calls == [] and p0["evidence"] == 0.0
    _, p1 = model.training_loss(x, y, progress=0.25)  # step 1: not an evidence step
    assert calls == [] and p1["evidence"] == 0.0
    _, p2 = model.training_loss(x, y, progress=0.25)  # step 2: weight 2 * 0.5 ramp * 2 (every 2nd step)
    assert calls == [1] and p2["evidence"] > 0
    bce = p2["bce_global"] + p2["bce_local"] + p2["bce_fusion"] + model.cfg.beta * p2["saliency_l1"]
    assert p2["loss"] == pytest.approx(bce + 2.0 * p2["evidence"], rel=1e-5)
    model._step = 0
    _, p3 = model.training_loss(x, torch.tensor([0, 0]), progress=1.0)  # no positive image: no target
    assert calls == [1] and p3["evidence"] == 0.0


def test_evidence_term_backpropagates_into_the_global_network():
    torch.manual_seed(0)
    model = camkit.create_model("gmic", preset="cpu", flip_weight=0.0, evidence_weight=1.0, evidence_ramp=0).train()
    loss, parts = model.training_loss(torch.randn(3, 1, 128, 96), torch.tensor([1, 0, 1]), progress=1.0)
    assert parts["evidence"] > 0
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("shape, k, pad, chans", [((256, 160), 7, 3, 1), ((255, 161), 7, 3, 1), ((48, 48), 7, 3, 3),
                                                  ((31, 17), 3, 1, 2), ((20, 20), 5, 0, 1), ((9, 9), 4, 1, 1)])
def test_rearranged_stride2_conv_is_the_same_function_and_gradient(shape, k, pad, chans):
    import torch.nn.functional as F
    from camkit.nn.stem import stride2_conv

    x = torch.randn(2, chans, *shape, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, chans, k, k, dtype=torch.float64, requires_grad=True)
    ours, ref = stride2_conv(x, w, pad), F.conv2d(x, w, stride=2, padding=pad)
    assert ours.shape == ref.shape
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(ref)
    torch.testing.assert_close(torch.autograd.grad(ours, (x, w), g), torch.autograd.grad(ref, (x, w), g),
                               rtol=1e-12, atol=1e-12)


def test_training_forward_on_the_cpu_equals_the_plain_stems(monkeypatch):
    import camkit.nn.preact_resnet as gn
    import camkit_gmic.local_net as ln

    torch.manual_seed(0)
    model = camkit.create_model("gmic", preset="cpu").train()  # train-mode BatchNorm: batch statistics
    x = torch.randn(3, 1, 256, 160)
    with torch.no_grad():
        rearranged = model(x)
        monkeypatch.setattr(gn, "use_rearranged", lambda x, training: False)
        monkeypatch.setattr(ln, "use_rearranged", lambda x, training: False)
        plain = model(x)
    for key in ("h_g", "saliency", "y_global", "y_local", "y_fusion"):
        torch.testing.assert_close(rearranged[key], plain[key], rtol=1e-4, atol=1e-5, msg=key)
    assert torch.equal(rearranged["patch_locations"], plain["patch_locations"])
