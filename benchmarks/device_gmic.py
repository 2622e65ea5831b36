"""GMIC on an accelerator: forward and train step of the official preset at the released size.

    python benchmarks/device_gmic.py              # CUDA if present: batch 6 at 2944x1920
    python benchmarks/device_gmic.py --smoke      # CPU, tiny size: checks the code path only
    python benchmarks/device_gmic.py --compile    # also time with the two trunks torch.compile'd

Prints one JSON line per measurement. The target (issue) is a train step at 6x1x2944x1920 within 36 ms
(reference anchors, official code on one H200: eval forward 25.2 ms fp32 / 19.9 ms bf16; train step 71.7 ms fp32,
49.1 ms bf16). ``gmic_section()`` is the entry point benchmarks/device.py calls.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import torch

TARGET_TRAIN_MS = 36.0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, device: torch.device, warmup: int, iters: int) -> float:
    """Median milliseconds of ``fn()`` (synchronised; host-side timer)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def gmic_section(device: str | torch.device | None = None, batch: int = 6, hw: tuple[int, int] = (2944, 1920),
                 warmup: int = 3, iters: int = 10, compile_trunks: bool = False,
                 train_cams: tuple[str, ...] = ("cam", "gradcampp")) -> list[dict[str, Any]]:
    """Time GMIC (official preset, random weights) forward and train steps; returns one record per figure."""
    import camkit

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    records: list[dict[str, Any]] = []
    x = torch.randn(batch, 1, *hw, device=device)
    y = (torch.arange(batch, device=device) % 2).long()
    for train_cam in train_cams:
        model = camkit.create_model("gmic", preset="official", train_cam=train_cam).to(device)
        model.loss_parts_as_floats = False  # no host sync per step
        if compile_trunks:
            model.ds_net.compile()
            model.dn_resnet.compile()
        opt = torch.optim.Adam(model.parameters(), lr=model.default_lr)
        for precision in ("fp32", "bf16"):
            amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")

            def forward():
                with torch.no_grad(), amp:
                    model(x)

            def train_step():
                with amp:
                    loss, _ = model.training_loss(x, y, 0.5)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

            model.eval()
            fwd_ms = _time(forward, device, warmup, iters)
            model.train()
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            step_ms = _time(train_step, device, warmup, iters)
            peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
            rec = {"section": "gmic", "device": torch.cuda.get_device_name(device) if device.type == "cuda"
                   else "cpu", "batch": batch, "hw": list(hw), "train_cam": train_cam, "precision": precision,
                   "compiled": compile_trunks, "forward_ms": round(fwd_ms, 2), "train_step_ms": round(step_ms, 2),
                   "peak_gib": None if peak is None else round(peak, 2),
                   "target_train_ms": TARGET_TRAIN_MS, "meets_target": step_ms <= TARGET_TRAIN_MS}
            records.append(rec)
            print(json.dumps(rec), flush=True)
        del model, opt
    return records


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="CPU, batch 1 at 256x192, one iteration")
    p.add_argument("--compile", action="store_true", help="also time with ds_net and dn_resnet compiled")
    a = p.parse_args()
    if a.smoke:
        gmic_section("cpu", batch=1, hw=(256, 192), warmup=1, iters=1)
        return
    gmic_section()
    if a.compile:
        gmic_section(compile_trunks=True, train_cams=("cam",))


if __name__ == "__main__":
    main()
