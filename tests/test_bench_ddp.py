"""`camkit bench` under torchrun (2 gloo processes on the CPU): evaluation is sharded without padding,
gathered and scored once on rank 0."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch.distributed as dist

from camkit.bench.results import load_results


@pytest.mark.slow  # a bench under torchrun
@pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                    reason="this torch build has no torch.distributed gloo backend (needed for CPU DDP)")
def test_bench_under_torchrun_scores_every_test_image_once(tmp_path, free_port):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(free_port), "-m", "camkit", "bench", "--train-cam", "gradcampp",
           "--test-cam", "cam", "--test-cam", "xgradcam", "--epochs", "1", "--batch-size", "4",
           "--dataset-opt", "n=21", "--bootstrap", "20", "--model-opt", "num_crops=1", "--box-threshold", "auto",
           "--quiet",
           "--format", "json", "--out", str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    board = json.loads(proc.stdout)  # printed once, by rank 0
    assert {r["test_cam"] for r in board["detection"]} == {"cam", "xgradcam"}
    stored = json.loads((out / "predictions" / "gradcampp.json").read_text())
    ids = [r["image_id"] for r in stored["images"]]
    assert len(ids) == len(set(ids)) == 21  # an odd count: no padding, no image twice, none lost
    for per_image in stored["predictions"].values():
        assert set(per_image) == set(ids)
    results = load_results(out)
    assert results["status"] == "complete" and results["classification"]["gradcampp"]["n"] == 21
    # --box-threshold auto: each rank mapped its own half of the validation images, rank 0 chose for both
    n_val = results["dataset"]["counts"]["val"]
    for cam in ("cam", "xgradcam"):
        chosen = results["detection"]["gradcampp"][cam]["box_threshold"]
        assert chosen["n_images"] == n_val and sorted(chosen["shards"]) == [n_val // 2, n_val - n_val // 2]
