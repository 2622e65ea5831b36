"""The distill presets' detectors on an accelerator: train step and detection at full resolution.

    python benchmarks/device_distill.py            # CUDA if present: batch 4 at 2944x1920, fcos and retinanet
    python benchmarks/device_distill.py --smoke    # CPU, tiny size: checks the code path only

Prints one JSON line per (detector, precision): the median train-step and detect milliseconds, images per second
and peak memory, and GMIC's bf16 train step at batch 6 in the same run (the anchor the CPU estimate of
benchmarks/distill_gpu_estimate.py scales from), so the estimate in docs/distill.md can be replaced by these
figures. Random weights; nothing is downloaded.
"""
from __future__ import annotations

import argparse
import json
from typing import Any

import torch

from device_gmic import _time, gmic_section


def detector_section(device: str | torch.device | None = None, batch: int = 4, hw: tuple[int, int] = (2944, 1920),
                     warmup: int = 2, iters: int = 6,
                     detectors: tuple[str, ...] = ("fcos", "retinanet")) -> list[dict[str, Any]]:
    """Time each detector's training step (Adam) and detection on ``batch`` images of ``hw``; one record each."""
    from camkit.registry.api import create_detector

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    x = torch.randn(batch, 1, *hw, device=device)
    h, w = hw
    boxes = torch.tensor([[0.3 * w, 0.4 * h, 0.4 * w, 0.5 * h]], device=device)
    targets = [{"boxes": boxes if k % 2 else boxes[:0]} for k in range(batch)]
    records = []
    for name in detectors:
        det = create_detector(name, input_size=hw, backbone="timm:resnet18").to(device)
        opt = torch.optim.Adam(det.parameters(), lr=1e-4)
        for precision in ("fp32", "bf16"):
            amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")

            def step():
                with amp:
                    loss, _ = det.detection_loss(x, targets)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

            def detect():
                with torch.no_grad(), amp:
                    det.detect(x)

            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            step_ms = _time(step, device, warmup, iters)
            detect_ms = _time(detect, device, warmup, iters)
            peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
            rec = {"section": "distill-detector", "detector": name, "backbone": "timm:resnet18",
                   "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu", "batch": batch,
                   "hw": list(hw), "precision": precision, "train_step_ms": round(step_ms, 2),
                   "train_images_per_s": round(1000 * batch / step_ms, 1), "detect_ms": round(detect_ms, 2),
                   "peak_gib": None if peak is None else round(peak, 2)}
            records.append(rec)
            print(json.dumps(rec), flush=True)
    return records


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="CPU, batch 2 at 256x192, one iteration")
    a = p.parse_args()
    if a.smoke:
        detector_section("cpu", batch=2, hw=(256, 192), warmup=1, iters=1)
        return
    detector_section()
    gmic_section(train_cams=("cam",))


if __name__ == "__main__":
    main()
