"""GMIC speed on the CPU (pytest-benchmark): forward and train step of the official and cpu presets.

    python -m pytest benchmarks/test_gmic_speed.py --benchmark-enable -q

The official preset runs at a reduced size (batch 1, 736x480 by default, a quarter of the released size;
set CAMKIT_BENCH_GMIC_HW=HxW to change it). Ratios printed at the end compare figures taken in the same
run (the machine's load cancels): a gradient train-cam against the native one, a train step against a
forward, batched crops against a per-crop loop. GPU figures at the released size: benchmarks/device_gmic.py.
"""
from __future__ import annotations

import os

import pytest
import torch

import camkit
from camkit.nn import regions as roi

HW = tuple(int(v) for v in os.environ.get("CAMKIT_BENCH_GMIC_HW", "736x480").split("x"))
RESULTS: dict[str, float] = {}


def _run(benchmark, key, fn, rounds=3):
    benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=1)
    if benchmark.stats is not None:  # None under --benchmark-disable (the test suite's default)
        RESULTS[key] = benchmark.stats.stats.median
        benchmark.extra_info["median_s"] = RESULTS[key]


def _train_step(model, x, y, opt, weights_only=False):
    inputs = list(model.parameters()) if weights_only else None

    def step():
        loss, _ = model.training_loss(x, y, progress=0.5)
        opt.zero_grad(set_to_none=True)
        loss.backward(inputs=inputs)
        opt.step()
    return step


@pytest.fixture(scope="module")
def official_input():
    return torch.randn(1, 1, *HW, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("train_cam", ["cam", "gradcampp"])
def test_official_forward(benchmark, official_input, train_cam):
    model = camkit.create_model("gmic", preset="official", train_cam=train_cam).eval()

    def fwd():
        with torch.no_grad():
            return model(official_input)
    _run(benchmark, f"official_forward_{train_cam}", fwd)


def test_official_train_step(benchmark, official_input):
    model = camkit.create_model("gmic", preset="official").train()
    opt = torch.optim.Adam(model.parameters(), lr=model.default_lr)
    _run(benchmark, "official_train_step", _train_step(model, official_input, torch.tensor([1]), opt))


def test_cpu_preset_forward(benchmark):
    model = camkit.create_model("gmic", preset="cpu").eval()
    x = torch.randn(16, 1, *model.input_size)

    def fwd():
        with torch.no_grad():
            return model(x)
    _run(benchmark, "cpu_forward_b16", fwd, rounds=5)


@pytest.mark.parametrize("train_cam", ["cam", "gradcampp"])
def test_cpu_preset_train_step(benchmark, train_cam):
    torch.manual_seed(0)
    model = camkit.create_model("gmic", preset="cpu", train_cam=train_cam).train()
    x, y = torch.randn(16, 1, *model.input_size), torch.arange(16) % 2
    opt = torch.optim.Adam(model.parameters(), lr=model.default_lr)
    _run(benchmark, f"cpu_train_step_b16_{train_cam}", _train_step(model, x, y, opt), rounds=5)


TRAIN_CAMS = ["cam", "gradcam", "shapleycam", "fullgrad", "ablationcam", "scorecam", "iscam", "sscam"]


@pytest.mark.parametrize("train_cam", TRAIN_CAMS)
def test_cpu_preset_train_step_per_train_cam(benchmark, train_cam):
    """What each cost class of train-cam adds to the default bench's step (cpu preset, batch 32, evidence term
    on as in the bench). The Score-CAM family re-runs the global network per channel (32) and sample."""
    torch.manual_seed(0)
    model = camkit.create_model("gmic", preset="cpu", train_cam=train_cam, evidence_weight=1.0,
                                evidence_ramp=0).train()
    x, y = torch.randn(32, 1, *model.input_size), torch.arange(32) % 2
    opt = torch.optim.Adam(model.parameters(), lr=model.default_lr)
    slow = train_cam in ("iscam", "sscam")
    benchmark.pedantic(_train_step(model, x, y, opt), rounds=1 if slow else 3, iterations=1,
                       warmup_rounds=0 if slow else 1)
    if benchmark.stats is not None:
        RESULTS[f"cpu_train_step_b32_{train_cam}"] = benchmark.stats.stats.median


@pytest.mark.parametrize("stem", ["plain", "rearranged"])
def test_cpu_stem_forward_backward(benchmark, stem):
    """The 7x7/2 one-channel stem, forward + both gradients: F.conv2d against camkit.nn.stem.s rearrangement."""
    import torch.nn.functional as F
    from camkit.nn.stem import stride2_conv

    x = torch.randn(32, 1, 256, 160, requires_grad=True)
    w = torch.randn(8, 1, 7, 7, requires_grad=True)
    conv = (lambda: F.conv2d(x, w, stride=2, padding=3)) if stem == "plain" else (lambda: stride2_conv(x, w, 3))

    def step():
        x.grad = w.grad = None
        conv().sum().backward()
    _run(benchmark, f"stem_{stem}", step, rounds=5)


@pytest.mark.parametrize("evidence", [0.0, 1.0])
def test_cpu_preset_train_step_evidence(benchmark, evidence):
    """The cpu preset's step at batch 32 with and without the evidence-alignment term (its extra backward)."""
    torch.manual_seed(0)
    model = camkit.create_model("gmic", preset="cpu", evidence_weight=evidence, evidence_ramp=0).train()
    x, y = torch.randn(32, 1, *model.input_size), torch.arange(32) % 2
    opt = torch.optim.Adam(model.parameters(), lr=model.default_lr)
    _run(benchmark, f"cpu_train_step_b32_evidence{evidence:g}", _train_step(model, x, y, opt), rounds=5)


@pytest.mark.parametrize("into", ["everything", "weights"])
def test_cpu_preset_train_step_backward_into(benchmark, into):
    """The evidence step's backward into every leaf (the input too, which the evidence term made one) or
    into the weights alone, as camkit.training's loop does."""
    torch.manual_seed(0)
    model = camkit.create_model("gmic", preset="cpu", evidence_weight=1.0, evidence_ramp=0).train()
    x, y = torch.randn(32, 1, *model.input_size), torch.arange(32) % 2
    opt = torch.optim.Adam(model.parameters(), lr=model.default_lr)
    _run(benchmark, f"cpu_train_step_b32_backward_{into}",
         _train_step(model, x, y, opt, weights_only=into == "weights"), rounds=5)


def test_crop_extraction_batched_vs_loop(benchmark):
    g = torch.Generator().manual_seed(0)
    images = torch.randn(6, 1, *HW, generator=g)
    corners = torch.stack([torch.randint(0, HW[0] - 200, (6, 6), generator=g),
                           torch.randint(0, HW[1] - 200, (6, 6), generator=g)], -1)

    def loop():  # the released approach: one Python slice per crop
        out = torch.empty(6, 6, 256, 256)
        for b in range(6):
            for k in range(6):
                out[b, k] = roi.extract_crops(images[b:b + 1], corners[b:b + 1, k:k + 1], (256, 256))[0, 0]
        return out

    assert torch.equal(loop(), roi.extract_crops(images, corners, (256, 256)))
    _run(benchmark, "crops_batched", lambda: roi.extract_crops(images, corners, (256, 256)), rounds=5)
    import time

    t = time.perf_counter()
    loop()
    RESULTS["crops_loop"] = time.perf_counter() - t


def test_zz_report_ratios():
    """Print the same-run ratios (no assertion on speed: timings are not tests)."""
    r = RESULTS
    pairs = [("gradcampp train-cam / native cam, official forward",
              "official_forward_gradcampp", "official_forward_cam"),
             ("official train step / forward", "official_train_step", "official_forward_cam"),
             ("gradcampp train-cam / native cam, cpu train step",
              "cpu_train_step_b16_gradcampp", "cpu_train_step_b16_cam"),
             ("per-crop loop / batched crops (36 crops)", "crops_loop", "crops_batched"),
             ("plain / rearranged 7x7/2 stem, forward + backward", "stem_plain", "stem_rearranged"),
             ("evidence term on / off, cpu train step b32", "cpu_train_step_b32_evidence1",
              "cpu_train_step_b32_evidence0"),
             ("backward into every leaf / into the weights, evidence step b32",
              "cpu_train_step_b32_backward_everything", "cpu_train_step_b32_backward_weights")]
    pairs += [(f"{tc} train-cam / native cam, cpu train step b32", f"cpu_train_step_b32_{tc}",
               "cpu_train_step_b32_cam") for tc in TRAIN_CAMS[1:]]
    lines = [f"{name}: {r[a] / r[b]:.2f}x" for name, a, b in pairs if a in r and b in r]
    lines += [f"{k}: {v * 1000:.1f} ms" for k, v in sorted(r.items())]
    print("\nGMIC speed (%dx%d official input)\n  " % HW + "\n  ".join(lines))
