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
