"""The glibc allocator settings the camkit command makes (camkit.training.allocator), measured.

    python benchmarks/allocator.py [--rounds 3] [--steps 20]

Runs the cpu preset's GMIC train step (batch 32 of the default synthetic images, evidence term on, Adam) in
fresh processes, alternating the C library's defaults (``CAMKIT_DEFAULT_MALLOC=1``) and camkit's settings, and
prints each process's median step and the ratio of the medians: the setting is process-wide, so the two
cannot share one process. The numbers are the same either way; only the time differs.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import json, sys, time, torch, camkit
from camkit.training.allocator import keep_freed_memory
from camkit.bench.recipe import resolve_recipe, build_datasets
kept = keep_freed_memory()
torch.manual_seed(0)
model = camkit.create_model("gmic", preset="cpu", evidence_weight=1.0, evidence_ramp=0).train()
data = build_datasets(resolve_recipe("cpu"), model.input_size, ("train",))["train"]
x = torch.stack([data[i]["image"] for i in range(32)])
y = torch.tensor([int(data[i]["label"]) for i in range(32)])
opt = torch.optim.Adam(model.parameters(), lr=model.default_lr, foreach=True)
weights = [p for p in model.parameters() if p.requires_grad]
times = []
for _ in range(int(sys.argv[1]) + 4):
    t0 = time.perf_counter()
    loss, _ = model.training_loss(x, y, 0.5)
    opt.zero_grad(set_to_none=True)
    loss.backward(inputs=weights)
    opt.step()
    times.append(time.perf_counter() - t0)
print(json.dumps({"kept": kept, "median_s": sorted(times[4:])[len(times[4:]) // 2]}))
"""


def _run(default_malloc: bool, steps: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "CAMKIT_DEFAULT_MALLOC"}
    if default_malloc:
        env["CAMKIT_DEFAULT_MALLOC"] = "1"
    out = subprocess.run([sys.executable, "-c", CHILD, str(steps)], env=env, check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=20)
    a = p.parse_args(argv)
    default, kept = [], []
    for r in range(a.rounds):
        d, k = _run(True, a.steps), _run(False, a.steps)
        if d["kept"] or not k["kept"]:
            print("the allocator settings could not be applied here (not glibc?)")
            return 1
        default.append(d["median_s"])
        kept.append(k["median_s"])
        print(f"round {r + 1}: C library defaults {d['median_s'] * 1e3:.0f} ms, camkit's {k['median_s'] * 1e3:.0f} ms")
    ratio = statistics.median(default) / statistics.median(kept)
    print(f"median step: {statistics.median(default) * 1e3:.0f} ms -> {statistics.median(kept) * 1e3:.0f} ms "
          f"({ratio:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
