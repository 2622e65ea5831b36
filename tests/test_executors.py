"""Executors: where a bench's cells run. ``inline`` (in this process) and ``local`` (each cell a subprocess,
through submitit) give the same numbers; a failed cell is reported with its log and the others finish;
``camkit status`` shows every cell's state. (The Slurm executor and its tests against a real one-node cluster
are issue 34's next step.)"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from camkit.cli import main

TINY = ["--train-cam", "cam", "--train-cam", "xgradcam", "--test-cam", "cam", "--test-cam", "gradcampp",
        "--epochs", "1", "--batch-size", "8", "--dataset-opt", "n=24", "--bootstrap", "40", "--quiet",
        "--model-opt", "num_crops=1"]


def _numbers(results: dict) -> dict:
    from tests.test_results_document import _numbers as numbers

    return numbers(results)


def test_an_unknown_executor_or_option_is_one_line_before_anything_runs(tmp_path):
    res = CliRunner().invoke(main, ["bench", *TINY, "--out", str(tmp_path / "r"), "--executor", "slurmm"])
    assert res.exit_code != 0 and "slurmm" in res.output and "inline" in res.output and "local" in res.output
    res = CliRunner().invoke(main, ["bench", *TINY, "--out", str(tmp_path / "r"), "--executor", "local",
                                    "--executor-opt", "wrokers=2"])
    assert res.exit_code == 1 and "wrokers" in res.output and "workers" in res.output
    assert "Traceback" not in res.output and not (tmp_path / "r" / "cells").exists()


def test_a_ddp_cell_asks_for_one_task_per_gpu():
    from camkit.bench.executors import SlurmExecutor
    from camkit.errors import OptionError

    assert SlurmExecutor(tasks=2, cpus=1).parameters["tasks_per_node"] == 2  # CPU DDP: two gloo processes
    assert SlurmExecutor(gpus=4).parameters["tasks_per_node"] == 4
    with pytest.raises(OptionError, match="one task per GPU"):
        SlurmExecutor(gpus=4, tasks=2)
    with pytest.raises(OptionError, match="tasks=0"):
        SlurmExecutor(tasks=0)


def test_the_executors_are_registered_like_any_plugin():
    from camkit.registry.api import list_executors

    assert {"inline", "local"} <= set(list_executors())
    res = CliRunner().invoke(main, ["list", "executors", "--format", "json"])
    assert res.exit_code == 0 and {r["name"] for r in json.loads(res.stdout)} >= {"inline", "local"}


@pytest.mark.slow  # two tiny benches, the second as two subprocesses
def test_local_workers_give_the_inline_numbers_and_status_shows_the_jobs(tmp_path):
    inline, local = tmp_path / "a" / "run", tmp_path / "b" / "run"
    assert CliRunner().invoke(main, ["bench", *TINY, "--out", str(inline)]).exit_code == 0
    res = CliRunner().invoke(main, ["bench", *TINY, "--out", str(local), "--executor", "local", "--executor-opt",
                                    "workers=2"])
    assert res.exit_code == 0, res.output
    a, b = (json.loads((p / "results.json").read_text()) for p in (inline, local))
    assert _numbers(a) == _numbers(b) and a["significance"] == b["significance"]
    status = json.loads(CliRunner().invoke(main, ["status", str(local), "--format", "json"]).stdout)
    assert [(s["row"], s["state"], s["executor"]) for s in status] == [("cam", "complete", "local"),
                                                                         ("xgradcam", "complete", "local")]
    assert all(s["job"] and Path(s["log"]).is_file() and s["wall_s"] > 0 for s in status)


@pytest.mark.slow  # a bench, then a local run with one broken cell
def test_a_failed_cell_is_reported_with_its_log_and_the_others_finish(tmp_path):
    out = tmp_path / "run"
    assert CliRunner().invoke(main, ["bench", *TINY, "--out", str(out)]).exit_code == 0
    doc = json.loads((out / "results.json").read_text())
    # break row xgradcam: a file where its model-store folder was; row cam runs again from its stored model
    import shutil

    folder = (out / doc["training"]["xgradcam"]["checkpoint"]).parent
    shutil.rmtree(folder)
    folder.write_text("not a folder")
    for row in ("cam", "xgradcam"):
        (out / "cells" / f"{row}.json").unlink()
    res = CliRunner().invoke(main, ["bench", *TINY, "--out", str(out), "--executor", "local"])
    assert res.exit_code == 1
    import re

    # the cell's own error (what the job raised), not submitit's wrapper
    assert re.search(r"1 cell\(s\) failed: xgradcam: \w+Error: ", res.stderr) and "log" in res.stderr
    assert "Traceback" not in res.stderr
    after = json.loads((out / "results.json").read_text())
    assert after["status"] == "failed" and list(after["detection"]) == ["cam"]
    assert after["cells"]["xgradcam"]["status"] == "failed" and Path(after["cells"]["xgradcam"]["log"]).is_file()
    plain = CliRunner().invoke(main, ["status", str(out), "--format", "plain"]).stdout
    assert "failed" in plain and "complete" in plain


def test_two_processes_cannot_run_one_cell(tmp_path):
    """A cell is claimed by the process that runs it: another (a second submitter, a manual bench-cell) refuses
    in one line instead of training the same model beside it."""
    import socket
    import subprocess
    import sys

    from camkit.bench.cell import plan_cells, write_spec
    from camkit.bench.config import BenchConfig

    cfg = BenchConfig(train_cams=["cam"], test_cams=["cam"], train={"epochs": 1, "batch_size": 8},
                      dataset_options={"n": 24}, bootstrap=40).resolved()
    (spec,) = plan_cells(cfg, tmp_path / "run", tmp_path / "models")
    path = write_spec(spec)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        claim = tmp_path / "run" / "cells" / "cam.claim"
        claim.mkdir(parents=True)
        (claim / ".camkit.lock").write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname(),
                                                        "since": "now"}))
        res = CliRunner().invoke(main, ["bench-cell", str(path)])
    finally:
        holder.kill()
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert (f"cell 'cam' of {tmp_path / 'run'} is being run by another camkit process (pid {holder.pid}"
            in res.output and "camkit status" in res.output)
    assert not (tmp_path / "models").exists(), "it trained beside the claim's holder"


def test_a_lab_writes_its_executor_settings_once(tmp_path, monkeypatch):
    from camkit.bench.executors import executor_settings
    from camkit.errors import OptionError

    conf = tmp_path / "executors.toml"
    conf.write_text('[slurm]\npartition = "gpu"\ngpus = 1\nsbatch = {qos = "high"}\n\n[local]\nworkers = 2\n')
    assert executor_settings("slurm", conf) == {"partition": "gpu", "gpus": 1, "sbatch": {"qos": "high"}}
    monkeypatch.setenv("CAMKIT_EXECUTORS", str(conf))
    assert executor_settings("local") == {"workers": 2} and executor_settings("inline") == {}
    conf.write_text("[slurm\npartition = gpu")
    with pytest.raises(OptionError, match="cannot read executor settings"):
        executor_settings("slurm", conf)
    # a bad option from the file is refused like one from the command line, before anything runs
    conf.write_text("[local]\nwrokers = 2\n")
    res = CliRunner().invoke(main, ["bench", *TINY, "--out", str(tmp_path / "r"), "--executor", "local",
                                    "--executor-config", str(conf)])
    assert res.exit_code == 1 and "wrokers" in res.output and not (tmp_path / "r" / "cells").exists()


def test_detaching_from_an_executor_whose_cells_end_with_the_process_is_refused(tmp_path):
    res = CliRunner().invoke(main, ["bench", *TINY, "--out", str(tmp_path / "r"), "--executor",
                                    "local", "--detach"])
    assert res.exit_code == 1 and "--detach" in res.output and "slurm" in res.output


def test_cpu_cells_that_would_oversubscribe_the_cores_are_warned_about(tmp_path, monkeypatch):
    import os

    import camkit.bench.executors as executors
    from camkit.bench.config import BenchConfig
    from camkit.bench.runner import RunSettings, plan_bench

    class Display:
        lines: list[str] = []

        def log(self, text: str) -> None:
            self.lines.append(text)

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(executors.LocalExecutor, "__init__", lambda self, workers=None: (
        setattr(self, "workers", workers), setattr(self, "gpus", 0), None)[-1])
    cfg = BenchConfig(train_cams=["cam"], test_cams=["cam"], train={"epochs": 1, "batch_size": 8},
                      dataset_options={"n": 24}, bootstrap=40)
    display = Display()
    plan_bench(cfg, tmp_path / "run", RunSettings(executor="local", executor_options={"workers": 2, "threads": 2}),
               display)
    assert any("2 cells at once x 2 threads each exceed this machine's 2 cores" in line and "threads=1" in line
               for line in display.lines), display.lines
    display.lines.clear()
    plan_bench(cfg, tmp_path / "run", RunSettings(executor="local", executor_options={"workers": 2, "threads": 1}),
               display)
    assert not any("exceed" in line for line in display.lines)
