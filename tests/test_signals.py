"""SIGTERM (what Slurm and other schedulers send before they kill a job) stops a bench like Ctrl-C: the run says
it was interrupted, leaves no temporary file, exits 143, and the same command resumes it."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ARGS = ["--epochs", "40", "--batch-size", "8", "--dataset-opt", "n=24", "--bootstrap", "20", "--model-opt",
        "num_crops=1", "--train-cam", "cam", "--test-cam", "cam", "--format", "json"]


def _bench(out: Path, log: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "camkit", "bench", "--out", str(out), *ARGS],
                            stdout=subprocess.PIPE, stderr=log.open("w"), env=env, text=True)


@pytest.mark.slow  # two short trainings in subprocesses
@pytest.mark.timeout(900)
def test_sigterm_stops_a_bench_like_ctrl_c_and_the_same_command_resumes(tmp_path):
    out, log = tmp_path / "run", tmp_path / "stderr.txt"
    proc = _bench(out, log)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:  # wait until it trains
        if "epoch" in log.read_text().lower() or list((tmp_path / "models").glob("*/last.pt")):
            break
        time.sleep(0.5)
    assert proc.poll() is None, "the bench ended before it could be stopped: " + log.read_text()[-2000:]
    time.sleep(2)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=300)
    err = log.read_text()
    assert proc.returncode == 143, err[-2000:]
    assert "interrupted: re-run the same command" in err and "Traceback" not in err
    results = json.loads((out / "results.json").read_text())
    assert results["status"] == "interrupted"
    assert not [p for p in tmp_path.rglob("*.tmp")], "temporary files left behind"
    again = _bench(out, tmp_path / "again.txt")
    again.communicate(timeout=600)
    assert again.returncode == 0, (tmp_path / "again.txt").read_text()[-2000:]
    assert json.loads((out / "results.json").read_text())["status"] == "complete"
