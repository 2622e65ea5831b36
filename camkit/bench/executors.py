"""Where a bench's cells run: executors, registered through the ``register_executors`` hook like any plugin's.

An executor takes the cells a run still needs (:class:`camkit.bench.cell.CellSpec`, plain JSON) and runs each
with :func:`camkit.bench.cell.run_cell`, which writes the cell's document into the shared run folder; the bench
then assembles ``results.json`` from the documents, whoever wrote them. camkit's own:

- ``inline`` (the default): one after another in this process, sharing the models and datasets the planner
  built;
- ``local``: ``workers`` cells at once, each in its own process through submitit's local executor (one GPU each
  on a machine that has them, CPU cells side by side otherwise); a job's log and id are recorded per cell.

A cell's numbers do not depend on where it runs: the thread count it trains with is part of its spec (the
planner's, unless ``threads=`` says otherwise), and everything else is in the configuration.

Example::

    from camkit.registry.api import create_executor
    failures = create_executor("local", workers=2).run(cells, display=None, context=None)
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from camkit.errors import OptionError
from camkit.registry.hookspecs import hookimpl

JOBS_DIR = "jobs"


@dataclass
class CellFailure:
    """A cell that raised: its row, the error in one line, and where its log is (None when it ran inline)."""

    row: str
    error: str
    log: str | None = None


class InlineExecutor:
    """Every cell in this process, one after another (what ``camkit bench`` always did)."""

    name = "inline"

    def run(self, cells: list[Any], display: Any = None, context: Any = None) -> list[CellFailure]:
        """Run ``cells``; an error stops the bench at once (the cell it hit is re-run by the next bench)."""
        from camkit.bench.cell import run_cell

        for spec in cells:
            document = run_cell(spec, display, context)
            if document is not None and document.get("warning") and display is not None:
                display.log(f"warning: {document['warning']}")
        return []


def run_cell_job(spec: dict[str, Any]) -> str:
    """What a job runs (in another process): the cell of ``spec`` (``CellSpec.to_dict()``); returns its row.
    In a multi-task job (``gpus`` > 1 per cell) every task joins one DDP group, as under torchrun. A spec that
    names its ``runner`` (``"camkit.<module>:<function>"``, e.g. a ``camkit distill`` seed) is run by it: the
    executors run any cell-shaped job, and this layer imports none of the layers above it."""
    import os

    from camkit.bench.cell import CellSpec, run_cell

    if int(os.environ.get("SLURM_NTASKS", "1")) > 1 and "RANK" not in os.environ:
        import submitit

        submitit.helpers.TorchDistributedEnvironment().export()
    if isinstance(spec, dict) and spec.get("runner"):
        return _runner(str(spec["runner"]))(spec)
    cell = CellSpec.from_dict(spec)
    run_cell(cell)
    return cell.row


def _runner(name: str) -> Any:
    """The function a spec's ``runner`` names; camkit's own modules only (a spec file must not choose code)."""
    import importlib

    module, _, function = name.partition(":")
    if not module.startswith("camkit.") or not function:
        raise OptionError(f"cell spec runner {name!r}: not a camkit function ('camkit.<module>:<function>')")
    return getattr(importlib.import_module(module), function)


class CellJob:
    """:func:`run_cell_job` as submitit's checkpointable callable: on preemption or timeout the job is requeued
    with the same spec, and the cell resumes (training from its ``last.pt``; a finished cell is reused)."""

    def __call__(self, spec: dict[str, Any]) -> str:
        return run_cell_job(spec)

    def checkpoint(self, spec: dict[str, Any]) -> Any:
        import submitit

        return submitit.helpers.DelayedSubmission(CellJob(), spec)


class LocalExecutor:
    """``workers`` cells at once, each a subprocess (submitit's LocalExecutor); with CUDA, worker ``k`` gets GPU
    ``k`` (so ``workers`` defaults to the GPU count there, and to 1 on a CPU)."""

    name = "local"

    def __init__(self, workers: int | None = None, timeout_min: int = 60 * 24 * 7) -> None:
        import torch

        gpus = torch.cuda.device_count()
        self.gpus = gpus
        self.workers = int(workers) if workers is not None else max(1, gpus)
        if self.workers < 1:
            raise OptionError(f"--executor-opt workers={workers}: give a number of cells to run at once, >= 1")
        if gpus and self.workers > gpus:
            raise OptionError(f"--executor-opt workers={workers}: this machine has {gpus} GPU(s); one cell per GPU")
        self.timeout_min = int(timeout_min)

    def run(self, cells: list[Any], display: Any = None, context: Any = None) -> list[CellFailure]:
        """Submit the cells, at most ``workers`` running at a time; wait for all. A cell that fails is returned
        with its error and log; the others run on."""
        import submitit

        if not cells:
            return []
        folder = Path(cells[0].out) / JOBS_DIR
        pending, running, failures = list(cells), {}, []
        free = list(range(self.workers))
        while pending or running:
            while pending and free:
                slot, spec = free.pop(0), pending.pop(0)
                executor = submitit.LocalExecutor(folder=folder)
                executor.update_parameters(timeout_min=self.timeout_min,
                                           **({"gpus_per_node": 1, "visible_gpus": (slot,)} if self.gpus else {}))
                job = executor.submit(CellJob(), spec.to_dict())
                record_job(spec, self.name, job.job_id, str(job.paths.stderr))
                _say(display, f"{spec.row}: submitted (local job {job.job_id}, log {job.paths.stderr})")
                running[job] = (slot, spec)
            time.sleep(0.5)
            for job in [j for j in running if j.done()]:
                slot, spec = running.pop(job)
                free.append(slot)
                failure = _outcome(job, spec)
                if failure is not None:
                    failures.append(failure)
                _say(display, f"{spec.row}: " + (f"failed ({failure.error}; log {failure.log})" if failure
                                                  else "done"))
        return failures


@dataclass
class SlurmExecutor:
    """Every cell a task of one Slurm job array (submitit), at most ``parallel`` running at once; ``gpus`` per
    cell (more than one: DDP inside the cell, one task per GPU, through the torchrun code path), ``cpus`` (per
    task) and ``mem_gb`` per cell, ``time`` in minutes, ``partition``, ``account``, and any other sbatch option
    through ``sbatch`` (``sbatch={"qos": "high", "constraint": "a100"}``). ``tasks``: the DDP processes of a
    cell (default one per GPU, or one); on CPUs, ``tasks=2`` trains a cell as ``torchrun --nproc_per_node 2``
    would, with gloo. A preempted or timed-out cell is requeued and resumes from its last checkpoint."""

    name: ClassVar[str] = "slurm"
    # the options are the dataclass's fields: --executor-opt KEY=VALUE is checked against their annotations
    partition: str | None = None
    account: str | None = None
    time: int = 60 * 24
    gpus: int = 0
    cpus: int | None = None
    mem_gb: float | None = None
    parallel: int | None = None
    sbatch: dict[str, Any] | None = None
    tasks: int | None = None

    def __post_init__(self) -> None:
        tasks, gpus = self.tasks, int(self.gpus)
        if tasks is not None and int(tasks) < 1:
            raise OptionError(f"--executor-opt tasks={tasks}: give the DDP processes per cell, >= 1")
        if tasks is not None and gpus > 1 and int(tasks) != gpus:
            raise OptionError(f"--executor-opt tasks={tasks} with gpus={gpus}: a DDP cell runs one task per GPU; "
                              "leave tasks out")
        params: dict[str, Any] = {"slurm_partition": self.partition, "slurm_account": self.account,
                                  "timeout_min": int(self.time), "gpus_per_node": gpus or None,
                                  "tasks_per_node": int(tasks) if tasks is not None else max(1, gpus),
                                  "cpus_per_task": self.cpus, "mem_gb": self.mem_gb,
                                  "slurm_array_parallelism": self.parallel,
                                  "slurm_additional_parameters": dict(self.sbatch or {}) or None}
        self.parameters = {k: v for k, v in params.items() if v is not None}

    def run(self, cells: list[Any], display: Any = None, context: Any = None) -> list[CellFailure]:
        """Submit the cells as one job array and wait for every task."""
        return _wait(self.submit(cells, display), display)

    def submit(self, cells: list[Any], display: Any = None) -> list[tuple[Any, Any]]:
        """Submit the cells as one job array, record each task's job, and return ``(job, spec)`` pairs without
        waiting (``camkit bench --detach``)."""
        import logging

        import submitit

        if not cells:
            return []
        # without Slurm's accounting (a small cluster) submitit warns on every poll that sacct failed, then
        # reads squeue instead: the state it reports is right, the warning is noise
        logging.getLogger("submitit").setLevel(logging.ERROR)
        executor = submitit.AutoExecutor(folder=Path(cells[0].out) / JOBS_DIR, cluster="slurm")
        executor.update_parameters(name="camkit-cell", **self.parameters)
        jobs = executor.map_array(CellJob(), [spec.to_dict() for spec in cells])
        for job, spec in zip(jobs, cells):
            record_job(spec, self.name, job.job_id, str(job.paths.stderr))
        _say(display, f"submitted {len(jobs)} cell(s) to Slurm as job array {jobs[0].job_id.split('_')[0]} "
                      "(camkit status RUN shows them)")
        return list(zip(jobs, cells))

    def in_flight(self, cells: list[Any]) -> list[Any]:
        """The cells whose recorded Slurm job is still queued or running (a detached bench's): waited for, not
        submitted again."""
        records = {spec.row: read_job(spec.out, spec.row) for spec in cells}
        ids = [r["job_id"] for r in records.values() if r and r.get("executor") == self.name]
        queued = _in_queue(ids) if ids else set()
        return [spec for spec in cells if records[spec.row] and records[spec.row].get("job_id") in queued]

    def attach(self, cells: list[Any], display: Any = None) -> list[CellFailure]:
        """Wait for the recorded jobs of ``cells`` (submitted by an earlier, detached bench)."""
        import submitit

        pairs = [(submitit.SlurmJob(Path(spec.out) / JOBS_DIR, read_job(spec.out, spec.row)["job_id"]), spec)
                 for spec in cells]
        if pairs:
            _say(display, f"waiting for {len(pairs)} cell(s) submitted earlier: "
                          f"{', '.join(spec.row for spec in cells)}")
        return _wait(pairs, display)


def _wait(pairs: list[tuple[Any, Any]], display: Any) -> list[CellFailure]:
    """Wait for every Slurm job; one that left the queue without a result (cancelled, killed, its node lost)
    is a failure too: without Slurm's accounting database submitit cannot tell, and would wait for ever."""
    failures, running, gone = [], list(pairs), {}
    while running:
        time.sleep(1.0)
        queued = _in_queue([job.job_id for job, _ in running])
        for job, spec in list(running):
            if not job.done():
                gone[job.job_id] = gone.get(job.job_id, 0) + (job.job_id not in queued)
                if gone[job.job_id] < 5 or job.paths.result_pickle.exists():
                    continue
            running.remove((job, spec))
            failure = _outcome(job, spec) if job.paths.result_pickle.exists() or job.done() else CellFailure(
                spec.row, f"Slurm job {job.job_id} ended without a result (cancelled, killed, or its node "
                          "lost)", str(job.paths.stderr))
            if failure is not None:
                failures.append(failure)
            _say(display, f"{spec.row}: " + (f"failed ({failure.error}; log {failure.log})" if failure else "done"))
    return failures


def _in_queue(job_ids: list[str]) -> set[str]:
    """The ids among ``job_ids`` (``ARRAY_TASK`` form) that squeue still lists (all of them when squeue does not
    answer, so that nothing is given up on a hiccup)."""
    import subprocess

    try:
        out = subprocess.run(["squeue", "-h", "-r", "-o", "%i", "-j", ",".join(job_ids)], capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return set(job_ids)
    if out.returncode != 0 and "Invalid job id" not in out.stderr:
        return set(job_ids)
    return {line.strip() for line in out.stdout.splitlines()} & set(job_ids)


def _outcome(job: Any, spec: Any) -> CellFailure | None:
    exc = job.exception()
    if exc is None:
        return None
    last = str(exc).strip().splitlines()
    # submitit wraps the job's traceback; its last line is the error itself
    return CellFailure(spec.row, last[-1] if last else type(exc).__name__, str(job.paths.stderr))


def _say(display: Any, text: str) -> None:
    if display is not None and hasattr(display, "log"):
        display.log(text)


def record_job(spec: Any, executor: str, job_id: str, log: str) -> Path:
    """``cells/<row>.job.json``: which executor runs the cell, its job id and log (``camkit status`` shows
    them)."""
    from camkit.storage.atomic import atomic_write_json

    from camkit.bench.cell import CELLS_DIR

    return atomic_write_json(Path(spec.out) / CELLS_DIR / f"{spec.row}.job.json",
                             {"executor": executor, "job_id": str(job_id), "log": log,
                              "submitted": time.strftime("%Y-%m-%d %H:%M:%S")})


def read_job(out: str | Path, row: str) -> dict[str, Any] | None:
    """The cell's job record (:func:`record_job`), or None when it ran inline."""
    from camkit.bench.cell import CELLS_DIR

    try:
        return json.loads((Path(out) / CELLS_DIR / f"{row}.job.json").read_text())
    except (OSError, ValueError):
        return None


@hookimpl
def register_executors(register: Any) -> None:
    register("inline", InlineExecutor, description="every cell in this process, one after another (the default)")
    register("local", LocalExecutor, description="workers cells at once, each its own process (one GPU each where "
                                                 "there are GPUs), through submitit")
    register("slurm", SlurmExecutor, description="every cell a task of one Slurm job array (submitit); requeued "
                                                 "cells resume")


def cell_states(run_dir: str | Path) -> list[dict[str, Any]]:
    """One record per cell of a run, for ``camkit status``: row, state (complete, pending, running, failed), the
    executor and job id, wall time (train + evaluation) and log."""
    from camkit.bench.leaderboard import Run, unfinished
    from camkit.bench.results import load_results

    run_dir = Path(run_dir)
    results = load_results(run_dir)
    rows = []
    stopped = unfinished(Run(run_dir, results)) if results.get("status") == "running" else None
    for row, cell in (results.get("cells") or {}).items():
        job = read_job(run_dir, row) or {}
        state = cell.get("status", "pending")
        if state == "pending" and results.get("status") == "running" and stopped and "still running" in stopped:
            state = "running"
        timing = results.get("timings", {}).get(row) or {}
        wall = (timing.get("train_s") or 0.0) + (timing.get("eval_s") or 0.0) if timing else None
        rows.append({"row": row, "state": state, "executor": job.get("executor", "inline"),
                     "job": job.get("job_id"), "wall_s": None if wall is None else round(wall, 1),
                     "error": cell.get("error"), "log": job.get("log") or cell.get("log")})
    return rows


#: where a lab writes its cluster settings once (``--executor-config`` or ``$CAMKIT_EXECUTORS`` point elsewhere)
DEFAULT_CONFIG = Path("~/.config/camkit/executors.toml")


def executor_settings(executor: str, config: str | Path | None = None) -> dict[str, Any]:
    """The ``[executor]`` table of a TOML settings file: ``config``, else ``$CAMKIT_EXECUTORS``, else
    :data:`DEFAULT_CONFIG` when it exists (``--executor-opt`` options go over them). A file that cannot be read
    or parsed, or whose table is not a table, is one line naming it."""
    import os

    path = Path(config or os.environ.get("CAMKIT_EXECUTORS") or DEFAULT_CONFIG).expanduser()
    if config is None and not path.is_file():
        return {}
    try:
        import tomllib  # Python 3.11+
    except ModuleNotFoundError:  # Python 3.10: the same parser, as a package
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError:
            raise OptionError(f"{path}: reading executor settings on Python 3.10 needs tomli (pip install tomli)") \
                from None
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise OptionError(f"{path}: cannot read executor settings ({type(exc).__name__}: {exc}); it is a TOML file "
                          "with a table per executor, e.g. [slurm] partition = \"gpu\"") from None
    table = data.get(executor, {})
    if not isinstance(table, dict):
        raise OptionError(f"{path}: [{executor}] must be a table of options (e.g. [slurm] partition = \"gpu\")")
    return dict(table)
