"""Device checks on a CUDA GPU; one JSON file with every check's figures.

    python benchmarks/device.py OUT.json [--batch 6] [--hw 2944x1920] [--only cam_engine]

Each check is a function ``check_<name>(args) -> dict`` listed in ``CHECKS``; add a section by writing one
more function and appending it. A check that fails records its error and the others still run. Without CUDA
the script writes ``{"skipped": ...}`` and exits 0. Times are medians of CUDA-synchronised wall clock;
memory is ``torch.cuda.max_memory_allocated`` growth over what was allocated before the call.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable

import torch

FIVE = ["cam", "gradcam", "gradcampp", "xgradcam", "layercam"]
DEVICE = torch.device("cuda")  # --device cpu only for a dry run of the script itself


# -- helpers ----------------------------------------------------------------------------------------------
def timed(fn: Callable[[], object], repeat: int, warmup: int = 2) -> dict:
    """Median / min seconds of ``fn`` over ``repeat`` synchronised calls, and its peak memory growth."""
    cuda = torch.cuda.is_available() and DEVICE.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    times.sort()
    result = {"median_ms": times[len(times) // 2] * 1e3, "min_ms": times[0] * 1e3, "repeat": repeat}
    if cuda:
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        sync()
        result["peak_mib"] = (torch.cuda.max_memory_allocated() - base) / 2**20
    return result


class _GlobalOnly(torch.nn.Module):
    """GMIC's global network + saliency head + top-t pooling only (the reference anchor for the engine, docs/performance.md)."""

    def __init__(self, gmic: torch.nn.Module):
        super().__init__()
        self.ds_net, self.head = gmic.ds_net, gmic.left_postprocess_net
        self.top_t = float(getattr(getattr(gmic, "cfg", None), "top_t", 0.02))
        self.cam_layers, self.cam_output = ["ds_net"], "y_global"

    def forward(self, x):
        sal = self.head(self.ds_net(x))
        flat = sal.flatten(2)
        k = max(1, round(flat.shape[-1] * self.top_t))
        return {"y_global": flat.topk(k, dim=-1).values.mean(-1), "saliency": sal}

    def native_cam(self, outputs):
        return outputs["saliency"]


class _Scores(torch.nn.Module):
    """grad-cam wants a model returning one score tensor."""

    def __init__(self, model, key):
        super().__init__()
        self.model, self.key = model, key

    def forward(self, x):
        out = self.model(x)
        return out if self.key is None else out[self.key]


def _cam_models() -> dict[str, tuple]:
    import timm

    torch.manual_seed(0)
    models = {"resnet18": (timm.create_model("resnet18", pretrained=False, num_classes=2, in_chans=1),
                           ["layer4"], None)}
    try:
        import camkit

        gmic = camkit.create_model("gmic", preset="official")
        models["gmic_global"] = (_GlobalOnly(gmic), ["ds_net"], "y_global")
        models["gmic"] = (gmic, list(gmic.cam_layers), gmic.cam_output)
    except Exception as exc:  # noqa: BLE001 - GMIC is optional for this check
        print(f"device.py: GMIC not available ({type(exc).__name__}: {exc}); timm model only", file=sys.stderr)
    return models


# -- checks -----------------------------------------------------------------------------------------------
def check_cam_engine(args) -> dict:
    """All five maps from one pass vs a no-grad forward vs grad-cam's four methods, fp32 and bf16 autocast."""
    dev = DEVICE
    h, w = args.hw
    x = torch.randn(args.batch, 1, h, w, device=dev, generator=torch.Generator(dev).manual_seed(0))
    out: dict[str, dict] = {}
    for name, (model, layers, output) in _cam_models().items():
        try:
            out[name] = _compare_cams(model.to(dev).eval(), layers, output, x, args.repeat)
        except Exception as exc:  # noqa: BLE001 - keep the other models' figures
            traceback.print_exc()
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
        print(f"cam_engine {name}: {json.dumps(out[name].get('ratios', out[name]))}", flush=True)
        model.cpu()
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    return out


def _compare_cams(model, layers, output, x, repeat) -> dict:
    from camkit.cams.engine import run_cams

    targets = [1] * x.shape[0]

    def forward():
        with torch.no_grad():
            return model(x)

    def engine():
        return run_cams(model, x, FIVE, layers, targets, output=output, return_output=True)[0]

    r: dict = {"forward": timed(forward, repeat), "engine": timed(engine, repeat)}
    with torch.autocast(x.device.type, dtype=torch.bfloat16):
        r["forward_bf16"] = timed(forward, repeat)
        r["engine_bf16"] = timed(engine, repeat)
    try:
        import pytorch_grad_cam as pgc
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    except ImportError:
        r["gradcam_four"] = {"skipped": "pytorch_grad_cam is not installed"}
    else:
        wrapped, modules = _Scores(model, output), [model.get_submodule(n) for n in layers]
        classes = {"gradcam": pgc.GradCAM, "gradcampp": pgc.GradCAMPlusPlus, "xgradcam": pgc.XGradCAM,
                   "layercam": pgc.LayerCAM}
        ref_maps = {}

        def gradcam_four():
            for key, cls in classes.items():
                with cls(model=wrapped, target_layers=modules) as cam:
                    ref_maps[key] = cam(input_tensor=x, targets=[ClassifierOutputTarget(t) for t in targets])

        r["gradcam_four"] = timed(gradcam_four, max(1, repeat // 5), warmup=1)
        ours = engine()
        r["max_abs_diff_vs_gradcam"] = {k: float((ours[k].cpu() - torch.from_numpy(v)).abs().max())
                                        for k, v in ref_maps.items()}
        model.zero_grad(set_to_none=True)  # grad-cam's full backward filled .grad
    fwd = r["forward"]["median_ms"]
    r["ratios"] = {f"{k}_vs_forward": r[k]["median_ms"] / fwd for k in ("engine", "gradcam_four")
                   if "median_ms" in r[k]}
    r["ratios"]["engine_bf16_vs_forward_bf16"] = r["engine_bf16"]["median_ms"] / r["forward_bf16"]["median_ms"]
    return r


def check_gmic(args) -> dict:
    """GMIC official preset: eval forward and train step, fp32 / bf16, native and gradcampp train-cam."""
    from device_gmic import gmic_section  # benchmarks/device_gmic.py (the GMIC helper owns it)

    return {"records": gmic_section(DEVICE, batch=args.batch, hw=args.hw, iters=args.repeat)}


CHECKS: list[Callable[[argparse.Namespace], dict]] = [check_cam_engine, check_gmic]


# -- driver -----------------------------------------------------------------------------------------------
def _write_json(path: str, data: dict) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="where to write the JSON results")
    parser.add_argument("--batch", type=int, default=6)
    parser.add_argument("--hw", type=lambda s: tuple(int(v) for v in s.lower().split("x")), default=(2944, 1920))
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--only", action="append", help="run only these checks (name without check_)")
    parser.add_argument("--device", default="cuda", help=argparse.SUPPRESS)  # "cpu": dry-run the script
    args = parser.parse_args(argv)
    global DEVICE
    DEVICE = torch.device(args.device)
    info = {"torch": torch.__version__, "python": platform.python_version(), "batch": args.batch,
            "resolution": list(args.hw)}
    if DEVICE.type == "cuda" and not torch.cuda.is_available():
        print("device.py: no CUDA device; nothing measured (run this on a GPU machine)")
        _write_json(args.out, {**info, "skipped": "no CUDA device"})
        return 0
    info["device"] = torch.cuda.get_device_name(0) if DEVICE.type == "cuda" else platform.processor() or "cpu"
    info["checks"] = {}
    for check in CHECKS:
        name = check.__name__.removeprefix("check_")
        if args.only and name not in args.only:
            continue
        t0 = time.perf_counter()
        try:
            info["checks"][name] = check(args)
        except Exception as exc:  # noqa: BLE001 - one failing check must not lose the others' figures
            traceback.print_exc()
            info["checks"][name] = {"error": f"{type(exc).__name__}: {exc}"}
        info["checks"][name]["wall_s"] = time.perf_counter() - t0
        _write_json(args.out, info)  # after every check, so a timeout keeps what finished
    print(f"device.py: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
