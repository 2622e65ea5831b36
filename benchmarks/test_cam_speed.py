"""CAM engine speed on the CPU (pytest-benchmark): all maps from one pass vs one no-grad forward.

    python -m pytest benchmarks/test_cam_speed.py --benchmark-enable -q        # timings + ratios + memory
    python benchmarks/test_cam_speed.py                                         # the same without pytest

Cases: 1x1x1472x960 and 4x1x736x480, on a timm resnet18 (in_chans=1, random weights, hooked at layer4) and,
when the camkit_gmic plugin provides it, GMIC (official preset, random weights, hooked at ds_net, explaining
y_global). Each model is timed four ways in the same run: a no-grad forward, ``run_cams`` with the paper's
five methods, ``run_cams`` with every one-pass method (ONE_PASS), and grad-cam 1.5.7's four gradient methods (one object per method, as grad-cam is used). The
ratios printed at the end divide figures from the same run, so the machine's load largely cancels; nothing
is asserted. Peak memory is the growth of the peak resident set (VmHWM, reset through /proc/self/clear_refs
just before the call) over the resident set before it, one fresh subprocess per measurement, no warm-up
(torch's CPU allocator is invisible to tracemalloc; Linux only).
Environment: CAMKIT_BENCH_ROUNDS (default 3), CAMKIT_BENCH_MODELS (default "resnet18,gmic"),
CAMKIT_BENCH_THREADS (torch threads, default min(2, cores)), CAMKIT_BENCH_JSON (write the results as JSON).
On a machine whose cores are busy with other work, 1 thread gives steadier figures than 2 (OpenMP stragglers).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
import torch

FIVE = ["cam", "gradcam", "gradcampp", "xgradcam", "layercam"]
# every one-pass method: the paper's five and the zoo, all from the same forward and activation gradient
ONE_PASS = [*FIVE, "hirescam", "gradcam-elementwise", "eigencam", "eigengradcam", "kpcacam", "fem", "random"]
CASES = {"1x1472x960": (1, 1472, 960), "4x736x480": (4, 736, 480)}
MODES = ("forward", "engine", "one-pass", "gradcam")
ROUNDS = int(os.environ.get("CAMKIT_BENCH_ROUNDS", "3"))
THREADS = int(os.environ.get("CAMKIT_BENCH_THREADS", "0")) or max(1, min(2, os.cpu_count() or 1))
MODELS = [m for m in os.environ.get("CAMKIT_BENCH_MODELS", "resnet18,gmic").split(",") if m]
RESULTS: dict[str, float] = {}
MEMORY: dict[str, dict] = {}


# -- what is measured (shared by pytest, the script and the memory subprocess) ---------------------------
def build(kind: str):
    """(model in eval, target layer names, output key or None); None when the model is not available."""
    torch.manual_seed(0)
    if kind == "resnet18":
        import timm

        return timm.create_model("resnet18", pretrained=False, num_classes=2, in_chans=1).eval(), ["layer4"], None
    if kind == "gmic":
        try:
            import camkit

            model = camkit.create_model("gmic", preset="official").eval()
        except Exception:  # noqa: BLE001 - the plugin is optional here
            return None
        return model, list(model.cam_layers), model.cam_output
    raise ValueError(f"unknown benchmark model {kind!r}")


def image(case: str) -> torch.Tensor:
    b, h, w = CASES[case]
    return torch.randn(b, 1, h, w, generator=torch.Generator().manual_seed(0))


class _Scores(torch.nn.Module):
    """grad-cam wants a model returning a score tensor: pick ``key`` from a dict-returning model."""

    def __init__(self, model, key):
        super().__init__()
        self.model, self.key = model, key

    def forward(self, x):
        out = self.model(x)
        return out if self.key is None else out[self.key]


def task(mode: str, model, layers, output, x) -> Callable[[], object]:
    """A no-argument callable running ``mode`` once."""
    targets = [1] * x.shape[0]
    if mode == "forward":
        def run():
            with torch.no_grad():
                return model(x)
        return run
    if mode == "engine":
        from camkit.cams.engine import run_cams

        return lambda: run_cams(model, x, FIVE, layers, targets, output=output, return_output=True)
    if mode == "one-pass":
        from camkit.cams.engine import run_cams

        return lambda: run_cams(model, x, ONE_PASS, layers, targets, output=output, return_output=True)
    if mode == "gradcam":
        import pytorch_grad_cam as pgc
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        wrapped = _Scores(model, output)
        modules = [model.get_submodule(name) for name in layers]

        def run():
            maps = {}
            for name, cls in (("gradcam", pgc.GradCAM), ("gradcampp", pgc.GradCAMPlusPlus),
                              ("xgradcam", pgc.XGradCAM), ("layercam", pgc.LayerCAM)):
                with cls(model=wrapped, target_layers=modules) as cam:
                    maps[name] = cam(input_tensor=x, targets=[ClassifierOutputTarget(t) for t in targets])
            return maps
        return run
    raise ValueError(mode)


def ratios(results: dict[str, float]) -> list[str]:
    lines = []
    for kind in MODELS:
        for case in CASES:
            fwd = results.get(f"{kind}/{case}/forward")
            if not fwd:
                continue
            parts = [f"{kind} {case}: forward {fwd * 1e3:.0f} ms"]
            for mode, label in (("engine", "engine (5 maps)"), ("one-pass", f"engine ({len(ONE_PASS)} one-pass maps)"),
                                ("gradcam", "grad-cam (4 methods)")):
                t = results.get(f"{kind}/{case}/{mode}")
                if t:
                    parts.append(f"{label} {t * 1e3:.0f} ms = {t / fwd:.2f}x")
            lines.append("; ".join(parts))
    for key, mem in MEMORY.items():
        lines.append(f"peak memory {key}: +{mem['delta_mb']:.0f} MiB over {mem['rss_before_mb']:.0f} MiB")
    return lines


def measure_memory(kind: str, case: str, mode: str) -> dict:
    """Run ``mode`` once in a fresh interpreter; peak RSS growth over the RSS just before the call."""
    cmd = [sys.executable, os.path.abspath(__file__), "--memory", kind, case, mode]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _memory_child(kind: str, case: str, mode: str) -> None:
    torch.set_num_threads(THREADS)
    built = build(kind)
    if built is None:
        print(json.dumps({"skipped": f"{kind} is not available"}))
        return
    model, layers, output = built
    run = task(mode, model, layers, output, image(case))
    rss_before = _proc_status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:  # reset the peak (VmHWM) to the current RSS (Linux >= 4.0)
        f.write("5")
    run()  # no warm-up: a cached allocator would hide the call's own growth
    peak = _proc_status("VmHWM")
    print(json.dumps({"rss_before_mb": rss_before, "peak_mb": peak, "delta_mb": peak - rss_before}))


def _proc_status(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB -> MiB
    raise RuntimeError(f"{field} not in /proc/self/status (peak memory needs Linux)")


# -- pytest-benchmark -----------------------------------------------------------------------------------
@pytest.fixture(scope="module", autouse=True)
def _report(request):
    before = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(before)
    lines = ratios(RESULTS)
    if not lines:
        return
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():  # fixture teardown output is captured otherwise
            reporter.write_line("")
            for line in [f"CAM engine ratios (same run, {THREADS} threads):", *lines]:
                reporter.write_line(line)
    if os.environ.get("CAMKIT_BENCH_JSON"):
        with open(os.environ["CAMKIT_BENCH_JSON"], "w") as f:
            json.dump({"times_s": RESULTS, "memory": MEMORY, "threads": THREADS}, f, indent=1)


@pytest.fixture(scope="module")
def models():
    cache: dict[str, object] = {}

    def get(kind):
        if kind not in cache:
            cache[kind] = build(kind)
        if cache[kind] is None:
            pytest.skip(f"{kind} is not available (camkit_gmic plugin missing?)")
        return cache[kind]
    return get


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("kind", MODELS)
def test_cam_speed(benchmark, models, kind, case, mode):
    if mode == "gradcam":
        pytest.importorskip("pytorch_grad_cam")
    model, layers, output = models(kind)
    run = task(mode, model, layers, output, image(case))
    benchmark.group = f"{kind} {case}"
    benchmark.pedantic(run, rounds=ROUNDS if mode != "gradcam" else max(1, ROUNDS - 1), iterations=1,
                       warmup_rounds=1)
    if benchmark.stats is not None:  # None under --benchmark-disable (the test suite's default)
        RESULTS[f"{kind}/{case}/{mode}"] = benchmark.stats.stats.median


@pytest.mark.parametrize("kind", MODELS)
def test_peak_memory(request, kind):
    config = request.config
    if config.getoption("benchmark_disable", False) and not config.getoption("benchmark_enable", False):
        pytest.skip("memory is measured with --benchmark-enable")
    case = "1x1472x960"
    for mode in ("forward", "engine"):
        mem = measure_memory(kind, case, mode)
        if "skipped" in mem:
            pytest.skip(mem["skipped"])
        MEMORY[f"{kind}/{case}/{mode}"] = mem


# -- the same without pytest ------------------------------------------------------------------------------
def main(argv: list[str]) -> None:
    if argv[:1] == ["--memory"]:
        _memory_child(*argv[1:4])
        return
    torch.set_num_threads(THREADS)
    for kind in MODELS:
        built = build(kind)
        if built is None:
            print(f"{kind}: not available, skipped")
            continue
        model, layers, output = built
        for case in CASES:
            # rounds interleave the modes, so a change in the machine's load hits all of them alike
            runs = {mode: task(mode, model, layers, output, image(case)) for mode in MODES}
            times: dict[str, list[float]] = {mode: [] for mode in MODES}
            for mode, run in runs.items():
                run()  # warm-up
            for r in range(ROUNDS):
                for mode, run in runs.items():
                    if mode == "gradcam" and r >= 2:  # grad-cam is slow and steady enough
                        continue
                    t0 = time.perf_counter()
                    run()
                    times[mode].append(time.perf_counter() - t0)
            for mode, ts in times.items():
                RESULTS[f"{kind}/{case}/{mode}"] = sorted(ts)[len(ts) // 2]
            paired = sorted(e / f for e, f in zip(times["engine"], times["forward"]))
            print(f"{kind} {case}: " + ", ".join(f"{m} {RESULTS[f'{kind}/{case}/{m}'] * 1e3:.0f} ms" for m in MODES)
                  + f"; engine/forward per round {', '.join(f'{p:.2f}' for p in paired)}", flush=True)
        for mode in ("forward", "engine"):
            MEMORY[f"{kind}/1x1472x960/{mode}"] = measure_memory(kind, "1x1472x960", mode)
    print("\n".join(ratios(RESULTS)))
    if os.environ.get("CAMKIT_BENCH_JSON"):
        with open(os.environ["CAMKIT_BENCH_JSON"], "w") as f:
            json.dump({"times_s": RESULTS, "memory": MEMORY, "threads": THREADS}, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1:])
