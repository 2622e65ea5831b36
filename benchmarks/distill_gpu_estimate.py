"""An estimate, not a measurement: the GPU time of the distill presets' detector trainings at 2944x1920.

    python benchmarks/distill_gpu_estimate.py [--detector fcos] [--backbone timm:resnet18]

No GPU has run the detectors at full resolution yet. This scales the one measured anchor (../shared/SPEC.md: the
released GMIC's training step, batch 6 at 2944x1920 under bf16 on one H200, 49.1 ms, so 8.2 ms an image) by the
ratio of the forward FLOPs of a detector training image to a GMIC one, both counted here by
``torch.utils.flop_counter.FlopCounterMode`` at 2944x1920 on the CPU (one image each), then multiplies by each
preset's training images x epochs. It assumes the detector runs as efficiently per FLOP as GMIC does, which a
GPU run must confirm (benchmarks/device_distill.py is the script to run when one is lent).
"""
from __future__ import annotations

import argparse
import json

ANCHOR_MS_PER_IMAGE = 49.1 / 6  # GMIC train step, bf16, one H200 (../shared/SPEC.md anchor timings)
SIZE = (2944, 1920)


def forward_flops(fn) -> int:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        fn()
    return int(counter.get_total_flops())


def main(argv: list[str] | None = None) -> int:
    import torch

    from camkit.registry.api import create_detector, create_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--detector", default="fcos")
    p.add_argument("--backbone", default="timm:resnet18")
    a = p.parse_args(argv)
    torch.manual_seed(0)
    image = torch.randn(1, 1, *SIZE)
    gmic = create_model("gmic", preset="official", num_classes=1).eval()
    gmic_flops = forward_flops(lambda: gmic(image))
    det = create_detector(a.detector, input_size=SIZE, backbone=a.backbone).train()
    target = [{"boxes": torch.tensor([[1000.0, 1200.0, 1300.0, 1500.0]])}]
    det_flops = forward_flops(lambda: det.detection_loss(image, target))
    ms = ANCHOR_MS_PER_IMAGE * det_flops / gmic_flops
    out = {"size": list(SIZE), "gmic_forward_gflops": gmic_flops / 1e9,
           f"{a.detector}_{a.backbone}_training_forward_gflops": det_flops / 1e9, "ratio": det_flops / gmic_flops,
           "estimated_ms_per_training_image_h200_bf16": ms}
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
