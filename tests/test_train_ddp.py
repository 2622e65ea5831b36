"""Data-parallel training: 2 gloo processes under torchrun match 1 process accumulating the same micro-batches.

With BatchNorm in train mode each forward normalises with its own micro-batch's statistics, so the fair
single-process reference is not one batch of 8 but 2 accumulated micro-batches of 4: rank r's micro-batch of
each step is exactly micro-batch r of the single process (camkit.batching), and DDP's gradient average equals
the accumulated mean. Parameters then agree to float rounding. BatchNorm *running* statistics do not: one
process updates them once per micro-batch in sequence, DDP ranks once each and are averaged at epoch end.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from train_toy import ToyMasses, ToyNet
from train_toy import main as toy_main

from camkit.storage.checkpoint import load_checkpoint, read_checkpoint
from camkit.metrics import roc_auc

HERE = Path(__file__).resolve().parent


@pytest.mark.slow  # trains under torchrun, and once in-process
@pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                    reason="this torch build has no torch.distributed gloo backend (needed for CPU DDP)")
def test_two_gloo_processes_match_one_process_with_accumulation(tmp_path, free_port):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        [str(HERE), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(free_port), str(HERE / "train_toy.py"), "--out", str(tmp_path / "ddp"),
           "--batch-size", "4", "--accumulate", "1"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    n = torch.get_num_threads()
    try:
        toy_main(["--out", str(tmp_path / "one"), "--batch-size", "4", "--accumulate", "2"])
    finally:
        torch.set_num_threads(n)

    two, one = read_checkpoint(tmp_path / "ddp" / "last.pt"), read_checkpoint(tmp_path / "one" / "last.pt")
    assert two["world_size"] == 2 and one["world_size"] == 1
    assert two["step"] == one["step"] == 2 * 32 // 8
    assert two["config_hash"] == one["config_hash"]  # same global batch: interchangeable for resume
    params = dict(ToyNet().named_parameters())
    for name in params:
        # bit-equal on this machine; the tolerance allows a gloo build that sums in another order
        torch.testing.assert_close(two["model"][name], one["model"][name], rtol=1e-5, atol=1e-6, msg=name)
    moved = (two["model"]["head.weight"] - ToyNet(seed=1).head.weight.detach()).abs().max()
    assert moved > 1e-3  # training really changed the weights being compared

    # rank 0 scored the gathered predictions of both shards: the recorded AUC is the full set's
    model = ToyNet()
    load_checkpoint(tmp_path / "ddp" / "last.pt", model)
    model.eval()
    val = ToyMasses(16, seed=6)
    with torch.no_grad():
        p = model.predict(model(torch.stack([val[i]["image"] for i in range(16)])))
    assert two["history"][-1]["val_auc"] == pytest.approx(roc_auc([val[i]["label"] for i in range(16)], p.numpy()))
