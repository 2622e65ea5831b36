"""GLAM: the released architecture reproduced (state-dict keys, golden outputs), and its camkit behaviour."""
from __future__ import annotations

import ast
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import camkit
from camkit.errors import CamkitError, OptionError

GLAM_DIR = Path(__file__).resolve().parents[2] / "shared" / "glam"
needs_shared = pytest.mark.skipif(not (GLAM_DIR / "golden_seed0_1024x832_b2.json").is_file(),
                                  reason="../shared/glam (the released GLAM's goldens) is not in this checkout")


def _keys() -> list[tuple[str, tuple[int, ...]]]:
    rows = (line.rstrip("\n").split("\t") for line in (GLAM_DIR / "state_dict_keys.tsv").open())
    return [(k, tuple(ast.literal_eval(s))) for k, s in rows]


def _reference():
    spec = importlib.util.spec_from_file_location("glam_reference_inputs", GLAM_DIR / "reference_inputs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@needs_shared
def test_official_preset_has_the_released_keys_in_order():
    model = camkit.create_model("glam", preset="official")
    assert [(k, tuple(v.shape)) for k, v in model.state_dict().items()] == _keys()
    params = sum(p.numel() for p in model.parameters())
    assert params == 24_086_140  # GLAM.md section 10


@pytest.fixture(scope="module")
def golden_run():
    if not (GLAM_DIR / "golden_seed0_1024x832_b2.json").is_file():
        pytest.skip("../shared/glam is not in this checkout")
    ref = _reference()
    golden = json.loads((GLAM_DIR / "golden_seed0_1024x832_b2.json").read_text())
    h, w = golden["input_hw"]
    model = camkit.create_model("glam", preset="official", input_size=[h, w]).eval()
    model.load_state_dict(ref.make_state(_keys(), golden["seed"]), strict=True)
    x = ref.make_input(golden["batch"], h, w, golden["seed"])
    assert float(x.double().sum()) == pytest.approx(golden["input_checksum"]["sum"], abs=1e-9)
    logits = {}
    pp = model.global_network.postprocess_module
    hooks = [mod.register_forward_hook(lambda m, i, o, name=name: logits.__setitem__(name, o.detach()))
             for name, mod in [("logits_layer1", pp.gn_conv_1), ("logits_layer2", pp.gn_conv_2),
                               ("logits_layer3", pp.gn_conv_last),
                               ("logits_local", model.detection_network.gn_conv_last)]]
    with torch.no_grad():
        out = model(x)
    for hk in hooks:
        hk.remove()
    return model, out, logits, golden


def test_golden_scores_and_patch_locations(golden_run):
    model, out, _, golden = golden_run
    np.testing.assert_allclose(out["y_global"].numpy(), golden["y_global"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(out["y_local"].numpy(), golden["y_local"], atol=1e-4, rtol=0)
    levels = [camkit_glam_top_k(out["scale_maps"][:, i], 0.03) for i in range(3)]
    levels.append(camkit_glam_top_k(out["scale_maps"].mean(1), 0.03))
    np.testing.assert_allclose(torch.stack(levels).numpy(), golden["y_global_levels"], atol=1e-4, rtol=0)
    assert out["patch_locations"].tolist() == [[[int(v) for v in p] for p in img] for img in
                                               golden["patch_locations"]]
    assert out["patch_locations"].shape == (2, 1, 2)


def camkit_glam_top_k(maps, fraction):
    from camkit_glam.global_net import top_k_mean

    return top_k_mean(maps, fraction)


@pytest.mark.parametrize("name", ["x_layer1", "x_layer2", "x_layer3", "downsampled_map", "saliency_map_global",
                                  "raw_local_cam", "saliency_map_local", "saliency_map", "logits_layer1",
                                  "logits_layer2", "logits_layer3", "logits_local"])
def test_golden_maps(golden_run, name):
    _, out, logits, golden = golden_run
    sm = out["scale_maps"]
    maps = {"x_layer1": sm[:, 0], "x_layer2": sm[:, 1], "x_layer3": sm[:, 2], "downsampled_map": sm.mean(1),
            "saliency_map_global": out["saliency_global"], "raw_local_cam": out["patch_maps"][:, 0],
            "saliency_map_local": out["saliency_local"], "saliency_map": out["saliency"], **logits}
    ref = golden[name]
    v = maps[name].double()
    assert list(v.shape) == ref["shape"]
    flat = v.flatten(2)
    np.testing.assert_allclose(flat.sum(-1).numpy(), ref["sum"], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(flat.amin(-1).numpy(), ref["min"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(flat.amax(-1).numpy(), ref["max"], atol=1e-4, rtol=0)
    for b in range(v.shape[0]):
        for c in range(v.shape[1]):
            if ref["n_at_max"][b][c] == 1:  # ties (saturated sigmoids) depend on the convolutions' last bit
                assert int(flat[b, c].argmax()) == ref["argmax"][b][c]
    if ref.get("centroid") is not None:  # recorded for the non-negative maps only
        h, w = v.shape[-2:]
        rows = torch.arange(h, dtype=torch.float64)[:, None]
        cols = torch.arange(w, dtype=torch.float64)[None, :]
        mass = v.sum((-2, -1))
        centroid = torch.stack([(v * rows).sum((-2, -1)) / mass, (v * cols).sum((-2, -1)) / mass], -1)
        np.testing.assert_allclose(centroid.numpy(), ref["centroid"], atol=1e-3, rtol=0)


def test_released_checkpoint_files_load_weights_only_and_strictly(tmp_path):
    model = camkit.create_model("glam", preset="cpu")
    path = tmp_path / "glam.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, path)  # a DDP wrap
    loaded = camkit.create_model("glam", preset="cpu", checkpoint=str(path))
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)
    state = model.state_dict()
    state.pop("detection_network.gn_conv_last.weight")
    torch.save(state, path)
    with pytest.raises(CamkitError, match="missing detection_network.gn_conv_last.weight"):
        camkit.create_model("glam", preset="cpu", checkpoint=str(path))
    torch.save({"weights": model.state_dict(), "hook": (print, "x")}, path)  # would need unpickling code
    with pytest.raises(CamkitError):
        camkit.create_model("glam", preset="cpu", checkpoint=str(path))


@pytest.mark.parametrize("hw", [(256, 160), (320, 224)])
def test_any_multiple_of_16_gives_every_output(hw):
    model = camkit.create_model("glam", preset="cpu", input_size=list(hw)).eval()
    with torch.no_grad():
        out = model(torch.randn(3, 1, *hw))
    h, w = hw[0] // 8, hw[1] // 8  # the cpu preset's maps are at 1/8 (stride 1 after its first stage)
    assert out["y_global"].shape == (3, 1) and out["y_local"].shape == (3, 1)
    assert out["saliency"].shape == (3, 1, *hw) and out["saliency_global"].shape == (3, 1, h, w)
    corners = out["patch_locations"]
    assert corners.shape == (3, 1, 2) and corners.dtype == torch.long
    assert bool((corners >= 0).all()) and bool((corners[..., 0] <= hw[0] - 64).all())
    # the local map is pasted at the patch: zero outside it, the fused map is half the global map there
    r, c = corners[0, 0].tolist()
    local = out["saliency_local"][0, 0]
    assert float(local[r:r + 64, c:c + 64].min()) > 0 and float(local.sum()) == pytest.approx(
        float(local[r:r + 64, c:c + 64].sum()))


def test_inputs_that_are_not_multiples_of_16_are_refused():
    with pytest.raises(CamkitError, match="multiples of 16"):
        camkit.create_model("glam", preset="cpu", input_size=[250, 160])
    with pytest.raises(OptionError, match="no option 'topk'"):
        camkit.create_model("glam", preset="cpu", topk=0.1)


@pytest.mark.parametrize("train_cam", ["cam", "xgradcam", "gradcampp", "ablationcam"])
def test_any_cam_picks_the_patch_inside_the_forward(train_cam):
    torch.manual_seed(0)
    model = camkit.create_model("glam", preset="cpu", train_cam=train_cam)
    x = torch.randn(2, 1, 256, 160)
    model.train()
    loss, parts = model.training_loss(x, torch.tensor([0, 1]), 0.5)
    loss.backward()
    assert set(parts) == {"loss", "bce_global", "bce_local", "sparsity", "evidence"} and np.isfinite(parts["loss"])
    assert model.global_network.downsampling_branch.first_conv.weight.grad is not None
    model.eval()
    with torch.no_grad():
        out = model(x)
    assert out["roi_map"].shape == out["saliency_global"].shape
    if train_cam == "cam":
        assert torch.equal(out["roi_map"], out["saliency_global"])


def test_fullgrad_as_train_cam_is_refused_with_the_reason():
    with pytest.raises(OptionError, match="full-backward"):
        camkit.create_model("glam", preset="cpu", train_cam="fullgrad")


def test_glam_passes_the_model_contract():
    from camkit.testing import check_model

    check_model(camkit.create_model("glam", preset="cpu"))


def test_evidence_alignment_pulls_the_patch_map_and_is_zero_when_off():
    torch.manual_seed(0)
    x, y = torch.randn(2, 1, 256, 160), torch.tensor([0, 1])
    off = camkit.create_model("glam", preset="cpu", evidence_weight=0.0).train()
    assert off.training_loss(x, y, 0.5)[1]["evidence"] == 0.0
    on = camkit.create_model("glam", preset="cpu", evidence_weight=1.0).train()
    on.load_state_dict(off.state_dict())
    loss, parts = on.training_loss(x, y, 0.5)
    assert parts["evidence"] > 0 and parts["loss"] == pytest.approx(
        parts["bce_global"] + parts["bce_local"] + on.cfg.beta * parts["sparsity"] + parts["evidence"], rel=1e-5)
    loss.backward()


def test_paste_patch_maps_equals_a_loop_including_overlaps_and_edges():
    """Nearest-upsampled patches assigned in order (a later one overwrites), clipped at the image edge."""
    from camkit.nn.regions import paste_patch_maps

    g = torch.Generator().manual_seed(3)
    b, k, c, mh, mw, ph, pw, h, w = 3, 2, 2, 4, 3, 8, 6, 20, 14
    maps = torch.rand(b, k, c, mh, mw, generator=g)
    corners = torch.tensor([[[0, 0], [4, 3]], [[15, 10], [-3, -2]], [[6, 6], [6, 6]]])
    want = torch.zeros(b, c, h, w)
    for i in range(b):
        for j in range(k):
            for y in range(ph):
                for x in range(pw):
                    r, q = int(corners[i, j, 0]) + y, int(corners[i, j, 1]) + x
                    if 0 <= r < h and 0 <= q < w:
                        want[i, :, r, q] = maps[i, j, :, y * mh // ph, x * mw // pw]
    torch.testing.assert_close(paste_patch_maps(maps, corners, (ph, pw), (h, w)), want, rtol=0, atol=0)
