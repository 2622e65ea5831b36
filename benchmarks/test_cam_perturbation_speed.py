"""Perturbation CAMs on the CPU (pytest-benchmark): their extra forwards against one no-grad forward.

    python -m pytest benchmarks/test_cam_perturbation_speed.py --benchmark-enable -q -s

GMIC (``official`` preset, random weights, hooked at ``ds_net``, 256 channels) at 1x1x736x480: Ablation-CAM
re-running only the saliency head (``GMIC.score_from``) and the same method forced through the whole model,
against a forward. ResNet-18 (timm, 1 channel, ``layer2``: 128 channels) at 1x1x128x96: camkit's Score-CAM and
Ablation-CAM against grad-cam 1.5.7's, SS-CAM and IS-CAM against torchcam 0.5's; GMIC's Score-CAM through
``GMIC.score_images`` (the global network only) and through the whole model. Ratios from the same run are
printed at the end; nothing is asserted.
"""
from __future__ import annotations

import pytest
import torch

RESULTS: dict[str, float] = {}


def _run(benchmark, key, fn, rounds=2):
    benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=1)
    if benchmark.stats is not None:  # None under --benchmark-disable (the test suite's default)
        RESULTS[key] = benchmark.stats.stats.median


@pytest.fixture(scope="module")
def gmic():
    import camkit

    torch.manual_seed(0)
    return camkit.create_model("gmic", preset="official").eval(), torch.randn(1, 1, 736, 480)


@pytest.fixture(scope="module")
def resnet():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    return timm.create_model("resnet18", num_classes=2, in_chans=1).eval(), torch.randn(1, 1, 128, 96)


def test_gmic_forward(benchmark, gmic):
    model, x = gmic

    def fwd():
        with torch.no_grad():
            return model(x)
    _run(benchmark, "gmic_forward", fwd, rounds=3)


@pytest.mark.parametrize("path", ["head-only", "whole-model"])
def test_gmic_ablationcam(benchmark, gmic, path, monkeypatch):
    import camkit
    from camkit.cams.methods.ablationcam import AblationCAM
    from camkit_gmic.model import GMIC

    model, x = gmic
    if path == "whole-model":
        monkeypatch.setattr(GMIC, "score_from", lambda self, *a: NotImplemented)
    _run(benchmark, f"gmic_ablationcam_{path}",
         lambda: camkit.cam_maps(model, x, [AblationCAM(chunk=64)], None, 1), rounds=1 if path == "whole-model" else 3)


@pytest.mark.parametrize("impl", ["camkit", "grad-cam"])
@pytest.mark.parametrize("method", ["scorecam", "ablationcam"])
def test_resnet_perturbation(benchmark, resnet, method, impl):
    import camkit

    model, x = resnet
    if impl == "camkit":
        fn = lambda: camkit.cam_maps(model, x, [method], ["layer2"], 1)  # noqa: E731
    else:
        gc = pytest.importorskip("pytorch_grad_cam")
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        cls = {"scorecam": gc.ScoreCAM, "ablationcam": gc.AblationCAM}[method]

        def fn():
            with cls(model=model, target_layers=[model.layer2]) as cam:
                return cam(input_tensor=x, targets=[ClassifierOutputTarget(1)])
    _run(benchmark, f"resnet_{method}_{impl}", fn)

    def fwd():
        with torch.no_grad():
            return model(x)
    if "resnet_forward" not in RESULTS:
        import time

        fwd()
        t = time.perf_counter()
        for _ in range(10):
            fwd()
        RESULTS["resnet_forward"] = (time.perf_counter() - t) / 10


@pytest.mark.parametrize("path", ["global-only", "whole-model"])
def test_gmic_scorecam(benchmark, gmic, path, monkeypatch):
    """Score-CAM's masked images through GMIC.score_images (global network only) or the whole model."""
    import camkit
    from camkit.cams.methods.scorecam import ScoreCAM
    from camkit_gmic.model import GMIC

    model, x = gmic
    if path == "whole-model":
        monkeypatch.setattr(GMIC, "score_images", lambda self, *a: NotImplemented)
    _run(benchmark, f"gmic_scorecam_{path}", lambda: camkit.cam_maps(model, x, [ScoreCAM(chunk=16)], None, 1),
         rounds=1)


@pytest.mark.parametrize("impl", ["camkit", "torchcam"])
@pytest.mark.parametrize("method", ["sscam", "iscam"])
def test_resnet_smoothed_scorecam(benchmark, resnet, method, impl):
    """SS-CAM and IS-CAM at their defaults (35 and 10 samples) against torchcam 0.5, their reference."""
    import camkit

    model, x = resnet
    if impl == "camkit":
        fn = lambda: camkit.cam_maps(model, x, [method], ["layer2"], 1)  # noqa: E731
    else:
        methods = pytest.importorskip("torchcam.methods")
        cls = {"sscam": methods.SSCAM, "iscam": methods.ISCAM}[method]

        def fn():
            with cls(model, target_layer="layer2", input_shape=tuple(x.shape[1:])) as extractor:
                with torch.no_grad():
                    scores = model(x)
                return extractor([1], scores)
    _run(benchmark, f"resnet_{method}_{impl}", fn, rounds=1)


def test_zz_report_ratios():
    r = RESULTS
    pairs = [("GMIC Ablation-CAM, head only / forward (256 channels)", "gmic_ablationcam_head-only", "gmic_forward"),
             ("GMIC Ablation-CAM, whole model / forward", "gmic_ablationcam_whole-model", "gmic_forward"),
             ("ResNet-18 Score-CAM, grad-cam / camkit", "resnet_scorecam_grad-cam", "resnet_scorecam_camkit"),
             ("ResNet-18 Ablation-CAM, grad-cam / camkit", "resnet_ablationcam_grad-cam", "resnet_ablationcam_camkit"),
             ("ResNet-18 Score-CAM, camkit / forward (128 channels)", "resnet_scorecam_camkit", "resnet_forward"),
             ("GMIC Score-CAM, whole model / global network only", "gmic_scorecam_whole-model",
              "gmic_scorecam_global-only"),
             ("GMIC Score-CAM, global network only / forward (256 channels)", "gmic_scorecam_global-only",
              "gmic_forward"),
             ("ResNet-18 SS-CAM, torchcam / camkit", "resnet_sscam_torchcam", "resnet_sscam_camkit"),
             ("ResNet-18 IS-CAM, torchcam / camkit", "resnet_iscam_torchcam", "resnet_iscam_camkit")]
    lines = [f"{name}: {r[a] / r[b]:.2f}x" for name, a, b in pairs if a in r and b in r]
    lines += [f"{k}: {v * 1000:.1f} ms" for k, v in sorted(r.items())]
    print("\nPerturbation CAM speed\n  " + "\n  ".join(lines))
