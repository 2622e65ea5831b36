"""What the complexity records (camkit.bench.complexity: sparseness and complexity of every test-cam's map) add
to a bench's evaluation, on the default synthetic test split (400 images at 256x160) through the CAM engine with
the paper's five test-cams, GMIC's ``cpu`` preset (random weights, or a bench's trained model with
``--checkpoint``), in the bench's evaluation batches (8); then on ``--full-res`` maps of 2944x1920 (VinDr-Mammo's
model input: a coarse random grid upsampled bilinearly, as the engine's maps are).

    python benchmarks/complexity_cost.py [--checkpoint models/.../model.pt] [--n 400] [--threads 1]

Prints the engine's time (``camkit.inference.localize``: one pass, five maps per image, their boxes) and the
complexity records' time over the same maps, both summed over the batches, and the records' time per map. Times
are CPU seconds of this process (``time.process_time``, every thread's), so a machine shared with other jobs
gives about its idle figures; with one thread they are about the idle wall time.
"""
from __future__ import annotations

import argparse
import time


def main() -> None:
    """Time the engine and the complexity records over the test split, batch by batch."""
    import torch

    import camkit
    from camkit.bench.complexity import per_image_complexity
    from camkit.bench.config import PAPER_TEST_CAMS
    from camkit.data.sample import collate
    from camkit.inference import LocalizeOptions, localize

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", default=None, help="a trained GMIC cpu-preset checkpoint (default: random)")
    ap.add_argument("--n", type=int, default=400, help="test images (default: the split's 400)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--full-res", type=int, default=4, help="maps of 2944x1920 to time too (0: none)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = camkit.create_model("gmic", preset="cpu", checkpoint=args.checkpoint)
    test = camkit.create_dataset("synthetic", split="test", n=args.n)
    loader = torch.utils.data.DataLoader(test, batch_size=args.batch_size, shuffle=False, collate_fn=collate)
    options = LocalizeOptions(tuple(PAPER_TEST_CAMS))
    engine = records = 0.0
    maps = 0
    for batch in loader:
        t0 = time.process_time()
        found = localize(model, batch["image"], options)
        t1 = time.process_time()
        for cam_maps in found.maps.values():
            per_image_complexity(cam_maps)
            maps += len(cam_maps)
        engine, records = engine + t1 - t0, records + time.process_time() - t1
    size = "x".join(map(str, found.map_size))
    print(f"{len(test)} test images, {maps} maps of {size} ({len(PAPER_TEST_CAMS)} test-cams), "
          f"{args.threads} threads")
    print(f"engine (localize): {engine:.1f} s; sparseness + complexity: {records:.2f} s "
          f"({1000 * records / maps:.2f} ms a map, {100 * records / engine:.1f}% of the engine's time)")
    if args.full_res:
        _full_resolution(args.full_res)


def _full_resolution(k: int) -> None:
    """The records of ``k`` maps of 2944x1920, one at a time (the full-resolution recipes evaluate in small
    batches)."""
    import torch

    from camkit.bench.complexity import per_image_complexity

    coarse = torch.rand(k, 1, 92, 60, generator=torch.Generator().manual_seed(0))
    maps = torch.nn.functional.interpolate(coarse, size=(2944, 1920), mode="bilinear", align_corners=False)[:, 0]
    t0 = time.process_time()
    for i in range(k):
        per_image_complexity(maps[i:i + 1])
    spent = time.process_time() - t0
    print(f"{k} maps of 2944x1920: sparseness + complexity {spent:.2f} s ({spent / k:.2f} s a map)")


if __name__ == "__main__":
    main()
