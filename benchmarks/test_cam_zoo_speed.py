"""Every gradient-based CAM alone, camkit against grad-cam 1.5.7, on the CPU (pytest-benchmark or a script).

    python benchmarks/test_cam_zoo_speed.py                                     # interleaved rounds, a table
    python -m pytest benchmarks/test_cam_zoo_speed.py --benchmark-enable -q -s  # the same through pytest

At 1x1x1472x960 on a timm resnet18 (in_chans=1, random weights, layer4) and GMIC (official preset, random
weights, ds_net, explaining y_global; grad-cam sees y_global through a wrapper), each method is timed as a user
would call it: ``camkit.cam_maps(model, x, [method])`` and one grad-cam object per call. A no-grad forward is
timed in the same rounds; the table gives camkit / forward and grad-cam / camkit (ratios of the same run, so
the machine's load largely cancels). Perturbation methods are in test_cam_perturbation_speed.py. Nothing is
asserted. Environment: CAMKIT_BENCH_ROUNDS (default 2), CAMKIT_BENCH_MODELS (default "resnet18,gmic"),
CAMKIT_BENCH_METHODS (default: every method above, comma-separated),
CAMKIT_BENCH_THREADS (default min(2, cores)), CAMKIT_BENCH_JSON (write the results as JSON).
"""
from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable

import pytest
import torch

# benchmarks/ is on sys.path in both modes; ``models`` is the shared fixture that builds each model once
from test_cam_speed import _Scores, build, models  # noqa: E402,F401

#: camkit name -> grad-cam 1.5.7 class name (CAM has no grad-cam counterpart: it needs a classifier head)
GRAD_CAM = {"gradcam": "GradCAM", "gradcampp": "GradCAMPlusPlus", "xgradcam": "XGradCAM", "layercam": "LayerCAM",
            "hirescam": "HiResCAM", "gradcam-elementwise": "GradCAMElementWise", "eigencam": "EigenCAM",
            "eigengradcam": "EigenGradCAM", "kpcacam": "KPCA_CAM", "fem": "FEM", "random": "RandomCAM",
            "shapleycam": "ShapleyCAM", "finercam": "FinerCAM", "fullgrad": "FullGrad"}
SIZE = (1, 1, 1472, 960)
ROUNDS = int(os.environ.get("CAMKIT_BENCH_ROUNDS", "2"))
THREADS = int(os.environ.get("CAMKIT_BENCH_THREADS", "0")) or max(1, min(2, os.cpu_count() or 1))
MODELS = [m for m in os.environ.get("CAMKIT_BENCH_MODELS", "resnet18,gmic").split(",") if m]
METHODS = [m for m in os.environ.get("CAMKIT_BENCH_METHODS", ",".join(GRAD_CAM)).split(",") if m]
RESULTS: dict[str, float] = {}


def task(impl: str, method: str, model, layers, output, x) -> Callable[[], object]:
    """A no-argument callable computing ``method``'s maps once with ``impl`` ("camkit", "grad-cam", or
    method "forward": a no-grad forward)."""
    targets = [1] * x.shape[0]
    if method == "forward":
        def fwd():
            with torch.no_grad():
                return model(x)
        return fwd
    if impl == "camkit":
        import camkit

        return lambda: camkit.cam_maps(model, x, [method], layers, targets, output=output)
    import pytorch_grad_cam as pgc
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cls = getattr(pgc, GRAD_CAM[method])
    wrapped = _Scores(model, output)
    modules = [] if method == "fullgrad" else [model.get_submodule(n) for n in layers]

    def run():
        with cls(model=wrapped, target_layers=modules) as cam:
            return cam(input_tensor=x, targets=[ClassifierOutputTarget(t) for t in targets])
    return run


def table(results: dict[str, float]) -> list[str]:
    lines = []
    for kind in MODELS:
        fwd = results.get(f"{kind}/forward")
        if not fwd:
            continue
        lines.append(f"{kind} 1x1x1472x960, forward {fwd * 1e3:.0f} ms ({THREADS} threads)")
        lines.append(f"  {'method':<20} {'camkit ms':>10} {'/forward':>9} {'grad-cam ms':>12} {'grad-cam/camkit':>16}")
        for method in GRAD_CAM:
            ours, ref = results.get(f"{kind}/{method}/camkit"), results.get(f"{kind}/{method}/grad-cam")
            if ours is None:
                continue
            ref_s = f"{ref * 1e3:>12.0f} {ref / ours:>15.2f}x" if ref else f"{'failed':>12} {'':>16}"
            lines.append(f"  {method:<20} {ours * 1e3:>10.0f} {ours / fwd:>8.2f}x {ref_s}")
    return lines


# -- pytest-benchmark -----------------------------------------------------------------------------------
@pytest.fixture(scope="module", autouse=True)
def _report(request):
    before = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(before)
    lines = table(RESULTS)
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if lines and reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line("")
            for line in lines:
                reporter.write_line(line)


@pytest.mark.parametrize("impl,method", [("camkit", "forward"),
                                         *[(i, m) for m in METHODS for i in ("camkit", "grad-cam")]])
@pytest.mark.parametrize("kind", MODELS)
def test_zoo_speed(benchmark, models, kind, impl, method):
    if impl == "grad-cam":
        pytest.importorskip("pytorch_grad_cam")
    model, layers, output = models(kind)
    x = torch.randn(*SIZE, generator=torch.Generator().manual_seed(0))
    benchmark.group = f"{kind} {method}"
    benchmark.pedantic(task(impl, method, model, layers, output, x), rounds=ROUNDS, iterations=1,
                       warmup_rounds=1)
    if benchmark.stats is not None:  # None under --benchmark-disable (the test suite's default)
        key = f"{kind}/forward" if method == "forward" else f"{kind}/{method}/{impl}"
        RESULTS[key] = benchmark.stats.stats.median


# -- the same without pytest: rounds interleave forward, camkit and grad-cam, method by method ----------------
def main() -> None:
    torch.set_num_threads(THREADS)
    x = torch.randn(*SIZE, generator=torch.Generator().manual_seed(0))
    for kind in MODELS:
        built = build(kind)
        if built is None:
            print(f"{kind}: not available, skipped")
            continue
        model, layers, output = built
        forward = task("camkit", "forward", model, layers, output, x)
        forward()
        fwd_times: list[float] = []
        for method in METHODS:
            runs = {impl: task(impl, method, model, layers, output, x) for impl in ("camkit", "grad-cam")}
            times: dict[str, list[float]] = {impl: [] for impl in runs}
            for impl, run in runs.items():
                try:
                    run()  # warm-up
                except Exception as exc:  # noqa: BLE001 - a reference that fails on a model is reported
                    print(f"{kind} {method} {impl}: {type(exc).__name__}: {exc}"[:300], flush=True)
                    times.pop(impl)
            for _ in range(ROUNDS):
                t0 = time.perf_counter()
                forward()
                fwd_times.append(time.perf_counter() - t0)
                for impl in times:
                    t0 = time.perf_counter()
                    runs[impl]()
                    times[impl].append(time.perf_counter() - t0)
            for impl, ts in times.items():
                RESULTS[f"{kind}/{method}/{impl}"] = sorted(ts)[len(ts) // 2]
            print(f"{kind} {method}: " + ", ".join(f"{i} {min(t) * 1e3:.0f} ms" for i, t in times.items()),
                  flush=True)
        RESULTS[f"{kind}/forward"] = sorted(fwd_times)[len(fwd_times) // 2]
    print("\n".join(table(RESULTS)))
    if os.environ.get("CAMKIT_BENCH_JSON"):
        with open(os.environ["CAMKIT_BENCH_JSON"], "w") as f:
            json.dump({"times_s": RESULTS, "threads": THREADS}, f, indent=1)


if __name__ == "__main__":
    main()
