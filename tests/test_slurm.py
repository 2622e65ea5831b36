"""``--executor slurm`` against a real one-node Slurm cluster (benchmarks/slurm/one-node-cluster.sh; CI starts
one): the same numbers as ``inline``, and a cancelled cell that a re-run resumes to the same numbers."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from camkit.cli import main

REPO = Path(__file__).resolve().parents[1]
ARGS = ["--train-cam", "cam", "--train-cam", "xgradcam", "--test-cam", "cam", "--test-cam", "gradcampp",
        "--batch-size", "8", "--dataset-opt", "n=24", "--bootstrap", "40", "--quiet", "--model-opt",
        "num_crops=1"]


def _slurm_up() -> bool:
    if shutil.which("sinfo") is None:
        return False
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and any(s in out.stdout for s in ("idle", "mixed", "alloc"))


pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not _slurm_up(), reason="no Slurm cluster answers sinfo: apt-get install slurm-wlm munge, then "
                            "benchmarks/slurm/one-node-cluster.sh (as root) starts a one-node one")]


def _numbers(path: Path) -> dict:
    from tests.test_results_document import _numbers as numbers

    return numbers(json.loads((path / "results.json").read_text()))


def test_slurm_gives_the_inline_numbers(tmp_path):
    inline, slurm = tmp_path / "a" / "run", tmp_path / "b" / "run"
    assert CliRunner().invoke(main, ["bench", *ARGS, "--epochs", "1", "--out", str(inline)]).exit_code == 0
    res = CliRunner().invoke(main, ["bench", *ARGS, "--epochs", "1", "--out", str(slurm), "--executor", "slurm"])
    assert res.exit_code == 0, res.output
    assert _numbers(inline) == _numbers(slurm)
    status = json.loads(CliRunner().invoke(main, ["status", str(slurm), "--format", "json"]).stdout)
    assert [(s["state"], s["executor"]) for s in status] == [("complete", "slurm")] * 2
    assert all("_" in s["job"] and Path(s["log"]).is_file() for s in status)  # array tasks, their logs


def test_a_cancelled_cell_is_resumed_by_the_next_bench_to_the_same_numbers(tmp_path):
    """scancel one running cell: the bench reports it (the other finishes); re-running the same command runs it
    again (its training resumes from the store) and the leaderboard equals an uncancelled run's."""
    reference = tmp_path / "ref" / "run"
    assert CliRunner().invoke(main, ["bench", *ARGS, "--epochs", "12", "--out", str(reference)]).exit_code == 0
    out = tmp_path / "slurm" / "run"
    command = [sys.executable, "-m", "camkit", "bench", *ARGS, "--epochs", "12", "--out", str(out), "--executor",
               "slurm", "--executor-opt", "parallel=1"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "plugins"),
                                                         os.environ.get("PYTHONPATH", "")])}
    bench = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    job = None
    deadline = time.time() + 240
    while job is None and time.time() < deadline:  # the first array task, once it runs
        record = out / "cells" / "xgradcam.job.json"
        if record.is_file():
            job = json.loads(record.read_text())["job_id"]
        time.sleep(0.5)
    assert job, "the bench submitted nothing"
    first = job.split("_")[0] + "_0"  # row cam
    while time.time() < deadline and not list((out.parent / "models").glob("gmic-cam-*/last.pt")):
        time.sleep(0.1)  # cancelled once its first epoch is checkpointed: the re-run resumes from there
    subprocess.run(["scancel", first], check=True)
    # submitit's job lets scancel's SIGTERM pass, and the SIGKILL that follows needs a proctrack plugin that can
    # find the task (cgroup on real clusters); the one-node test cluster's linuxproc cannot here, so do its part
    subprocess.run(["pkill", "-KILL", "-f", f"submitit.core._submit {out / 'jobs'}"], check=False)
    _, err = bench.communicate(timeout=600)
    assert bench.returncode == 1, err
    assert "1 cell(s) failed: cam" in err and "re-run the same camkit bench" in err
    status = json.loads(CliRunner().invoke(main, ["status", str(out), "--format", "json"]).stdout)
    assert [(s["row"], s["state"]) for s in status] == [("cam", "failed"), ("xgradcam", "complete")]
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert _numbers(out) == _numbers(reference)


def test_a_detached_bench_is_collected_by_the_next_one_without_resubmitting(tmp_path):
    out = tmp_path / "run"
    res = CliRunner().invoke(main, ["bench", *ARGS, "--epochs", "2", "--out", str(out), "--executor", "slurm",
                                    "--detach"])
    assert res.exit_code == 0, res.output
    assert "submitted: the cells run on" in res.stderr and not res.stdout.strip()  # no leaderboard yet
    assert json.loads((out / "results.json").read_text())["status"] == "submitted"
    jobs = {row: json.loads((out / "cells" / f"{row}.job.json").read_text())["job_id"] for row in ("cam", "xgradcam")}
    res = CliRunner().invoke(main, ["bench", *ARGS, "--epochs", "2", "--out", str(out), "--executor", "slurm"])
    assert res.exit_code == 0, res.output
    again = {row: json.loads((out / "cells" / f"{row}.job.json").read_text())["job_id"] for row in jobs}
    assert again == jobs, "the detached cells were submitted again"
    doc = json.loads((out / "results.json").read_text())
    assert doc["status"] == "complete" and list(doc["detection"]) == ["cam", "xgradcam"]



def test_a_cell_of_two_tasks_trains_with_ddp_as_torchrun_does(tmp_path, free_port):
    """``--executor-opt tasks=2``: one cell, two Slurm tasks joined in one gloo DDP group (submitit's distributed
    environment, the torchrun code path): the numbers of ``torchrun --nproc_per_node 2 camkit bench``, which are
    not the single-process ones (the global batch doubles)."""
    from camkit.storage.checkpoint import load_checkpoint

    args = ["--train-cam", "cam", "--test-cam", "cam", "--test-cam", "gradcampp", "--epochs", "2", "--batch-size",
            "4", "--dataset-opt", "n=32", "--bootstrap", "40", "--model-opt", "num_crops=1", "--quiet",
            "--executor-opt", "threads=1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "plugins"), os.environ.get("PYTHONPATH", "")])}
    ref = tmp_path / "torchrun" / "run"
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
                           "127.0.0.1", "--master_port", str(free_port), "-m", "camkit", "bench", *args, "--out",
                           str(ref)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "slurm" / "run"
    res = CliRunner().invoke(main, ["bench", *args, "--out", str(out), "--executor", "slurm", "--executor-opt",
                                    "tasks=2", "--executor-opt", "cpus=1"])
    assert res.exit_code == 0, res.output
    assert _numbers(out) == _numbers(ref)
    last = next((out.parent / "models").glob("gmic-cam-*/last.pt"))
    assert load_checkpoint(last)["world_size"] == 2
    logs = sorted((out / "jobs").glob("*_log.out"))
    assert len(logs) == 2 and all("global_rank=" in p.read_text() for p in logs)  # two tasks of one job
    single = tmp_path / "single" / "run"
    assert CliRunner().invoke(main, ["bench", *args, "--out", str(single)]).exit_code == 0
    assert _numbers(single) != _numbers(ref)


def test_a_distill_seed_as_a_slurm_cell_gives_the_inline_numbers(tmp_path):
    """camkit distill --executor slurm: the seed runs as a job array task (camkit.distill.cell) and gives the
    numbers the same seed gives in this process."""
    args = ["distill", "--dataset-opt", "n=24", "--model-opt", "num_crops=1", "--bootstrap", "20", "--epochs", "1",
            "--teacher-train", "epochs=1", "--teacher-train", "batch_size=8", "--quiet", "--train-teacher",
            "--seeds", "0", "--format", "json", "--detector-opt", "backbone=timm:resnet10t"]
    inline = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "a")])
    assert inline.exit_code == 0, inline.output
    slurm = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "b"), "--executor", "slurm"])
    assert slurm.exit_code == 0, slurm.output
    assert json.loads(slurm.stdout)["records"] == json.loads(inline.stdout)["records"]
    job = json.loads((tmp_path / "b" / "cells" / "seed-0.job.json").read_text())
    assert job["executor"] == "slurm" and Path(job["log"]).is_file(), job  # one task: its job id has no _0
