"""One writer per folder (issue 29: two benches on one --out both exited 0 and one's results were lost): a second
bench on a run folder refuses in one line, a second training of a model-store entry waits for the first, and a
lock whose process died is taken over."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from camkit.cli import main
from camkit.storage.lock import LOCK_FILE, FolderBusy, FolderLock

HOLD = ("import sys, time\nfrom camkit.storage.lock import FolderLock\nlock = FolderLock(sys.argv[1], 'x')\n"
        "lock.acquire()\nprint('held', flush=True)\ntime.sleep(float(sys.argv[2]))\nlock.release()\n")


def _holder(folder: Path, seconds: float) -> subprocess.Popen:
    """Another process holding ``folder``'s lock for ``seconds``."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_live_holder_is_refused_and_a_dead_ones_lock_taken_over(tmp_path):
    proc = _holder(tmp_path, 60)
    try:
        with pytest.raises(FolderBusy, match=rf"in use by another camkit process \(pid {proc.pid} on "):
            FolderLock(tmp_path, "--out").acquire()
    finally:
        proc.send_signal(signal.SIGKILL)   # dies without releasing: its lock file stays ...
        proc.wait()
    assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == proc.pid
    with FolderLock(tmp_path, "--out") as lock:   # ... and is taken over
        assert lock.held and json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert not (tmp_path / LOCK_FILE).exists()


def test_a_model_folder_in_use_is_waited_for(tmp_path):
    proc = _holder(tmp_path, 1.5)
    said = []
    started = time.monotonic()
    lock = FolderLock(tmp_path, "the model folder")
    lock.acquire(wait=True, poll=0.2, on_wait=said.append)
    assert lock.held and time.monotonic() - started > 0.5
    assert len(said) == 1 and "waiting for it" in said[0] and f"pid {proc.pid}" in said[0]
    lock.release()
    proc.wait()


def test_a_second_bench_on_the_same_out_refuses_in_one_line(tmp_path):
    out = tmp_path / "run"
    proc = _holder(out, 60)  # stands for a bench running there
    try:
        res = CliRunner().invoke(main, ["bench", "--out", str(out), "--epochs", "1", "--dataset-opt", "n=16",
                                        "--train-cam", "cam", "--test-cam", "cam", "--quiet"])
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert res.exit_code == 1 and len(lines) == 1, res.output
    assert f"--out {out} is in use by another camkit process (pid {proc.pid}" in lines[0]
    assert not list((tmp_path / "models").glob("*/last.pt"))   # nothing trained
    assert not (out / "results.json").exists()


def test_the_holder_removes_a_killed_writers_temporary_files(tmp_path):
    (tmp_path / "predictions").mkdir()
    left = [tmp_path / ".last.pt.0a1b2c3d4e5f.tmp", tmp_path / "predictions" / ".cam.json.0a1b2c3d4e5f.tmp"]
    for p in left:
        p.write_bytes(b"half a file")
    keep = [tmp_path / "last.pt", tmp_path / "notes.tmp"]
    for p in keep:
        p.write_bytes(b"kept")
    lock = FolderLock(tmp_path, "--out")
    with pytest.raises(RuntimeError):
        lock.remove_leftovers()                      # only the holder may
    lock.acquire()
    assert lock.remove_leftovers() == [left[0]]      # this folder only ...
    assert sorted(lock.remove_leftovers(recursive=True)) == [left[1]]   # ... or below it too
    assert all(p.exists() for p in keep) and not any(p.exists() for p in left)
    lock.release()
