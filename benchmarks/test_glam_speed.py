"""GLAM speed on the CPU (pytest-benchmark): forward and train step of the cpu preset, the official preset at a
reduced size, and the batched paste-back against the released approach (a Python loop per image).

    python -m pytest benchmarks/test_glam_speed.py --benchmark-enable -q -s

The official preset runs at 1024x832, batch 1 (the golden size; set CAMKIT_BENCH_GLAM_HW=HxW to change it):
its stride-1 local ResNet-34 is ~95% of the work. Ratios printed at the end compare figures of the same run.
"""
from __future__ import annotations

import os
import time

import pytest
import torch
import torch.nn.functional as F

import camkit
from camkit.nn import regions

HW = tuple(int(v) for v in os.environ.get("CAMKIT_BENCH_GLAM_HW", "1024x832").split("x"))
RESULTS: dict[str, float] = {}


def _run(benchmark, key, fn, rounds=3):
    benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=1)
    if benchmark.stats is not None:  # None under --benchmark-disable (the test suite's default)
        RESULTS[key] = benchmark.stats.stats.median


def test_official_forward(benchmark):
    model = camkit.create_model("glam", preset="official", input_size=list(HW)).eval()
    x = torch.randn(1, 1, *HW)
    with torch.no_grad():
        _run(benchmark, "official_forward", lambda: model(x), rounds=2)


@pytest.mark.parametrize("train_cam", ["cam", "xgradcam"])
def test_cpu_preset_train_step(benchmark, train_cam):
    torch.manual_seed(0)
    model = camkit.create_model("glam", preset="cpu", train_cam=train_cam).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.randn(32, 1, 256, 160), torch.arange(32) % 2

    def step():
        loss, _ = model.training_loss(x, y, 0.5)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _run(benchmark, f"cpu_train_step_b32_{train_cam}", step)


def _paste_loop(maps, corners, patch, hw):
    """The released approach: per image and patch, upsample on its own and assign a slice."""
    b, k, c = maps.shape[:3]
    out = torch.zeros(b, c, *hw)
    for i in range(b):
        for j in range(k):
            r, q = (int(v) for v in corners[i, j])
            out[i, :, r:r + patch[0], q:q + patch[1]] = F.interpolate(maps[i, j][None], size=patch)[0]
    return out


def test_paste_batched_vs_loop(benchmark):
    g = torch.Generator().manual_seed(0)
    maps = torch.rand(6, 1, 2, 128, 128, generator=g)
    corners = torch.stack([torch.randint(0, HW[0] - 512, (6, 1), generator=g),
                           torch.randint(0, HW[1] - 512, (6, 1), generator=g)], -1)
    expected = _paste_loop(maps, corners, (512, 512), HW)
    assert torch.equal(regions.paste_patch_maps(maps, corners, (512, 512), HW), expected)
    _run(benchmark, "paste_batched", lambda: regions.paste_patch_maps(maps, corners, (512, 512), HW), rounds=5)
    t = time.perf_counter()
    _paste_loop(maps, corners, (512, 512), HW)
    RESULTS["paste_loop"] = time.perf_counter() - t


def test_zz_report_ratios():
    """Print the same-run ratios (no assertion on speed: timings are not tests)."""
    r = RESULTS
    pairs = [("xgradcam train-cam / native cam, cpu train step b32", "cpu_train_step_b32_xgradcam",
              "cpu_train_step_b32_cam"),
             ("per-image loop / batched paste (6 images)", "paste_loop", "paste_batched")]
    lines = [f"{name}: {r[a] / r[b]:.2f}x" for name, a, b in pairs if a in r and b in r]
    lines += [f"{k}: {v * 1000:.1f} ms" for k, v in sorted(r.items())]
    print("\nGLAM speed (%dx%d official input)\n  " % HW + "\n  ".join(lines))
