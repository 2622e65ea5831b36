"""A distill seed as a cell: ``camkit distill --seeds 0-2 --executor local|slurm`` runs each seed as one job of
the bench's executors (camkit.bench.executors), with the same resume and job records (``cells/seed-N.job.json``).

A job runs :func:`run_distill_cell` on the spec's JSON (the executors' jobs dispatch on its ``runner``). The
CPU thread count is part of the spec, as a bench cell's is, so where a seed runs does not change its numbers.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = "camkit.distill-cell/1"
RUNNER = "camkit.distill.cell:run_distill_cell"


@dataclass(frozen=True)
class DistillCell:
    """One seed's distill: ``config`` (DistillConfig.to_dict()), its ``row`` (``seed-N``), ``out`` (the
    ``--seeds`` folder, where jobs and cells are recorded), ``run_out`` (the seed's own folder), the model
    ``store``, the trackers and the CPU ``threads``."""

    config: dict[str, Any]
    row: str
    out: str
    run_out: str
    store: str
    log: tuple[str, ...] = ()
    log_uri: str | None = None
    threads: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "runner": RUNNER, **asdict(self), "log": list(self.log)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DistillCell:
        keys = {k: v for k, v in data.items() if k not in ("schema", "runner")}
        return cls(**{**keys, "log": tuple(keys.get("log") or ())})


def plan_distill_cells(configs: list[tuple[Any, Path]], out: Path, store: Path, log: tuple[str, ...] = (),
                       log_uri: str | None = None, threads: int | None = None) -> list[DistillCell]:
    """The cells of the seeds ``configs`` (``(DistillConfig, run folder)``) not finished yet (no
    ``distill.json``); ``threads``: this process's torch thread count unless given."""
    import torch

    threads = int(threads) if threads is not None else torch.get_num_threads()
    return [DistillCell(c.to_dict(), run_out.name, str(out), str(run_out), str(store), tuple(log), log_uri, threads)
            for c, run_out in configs if not (run_out / "distill.json").is_file()]


def run_distill_cell(spec: dict[str, Any]) -> str:
    """What a job runs: one seed's distill, written into its own folder; returns the row."""
    import torch

    from camkit.distill.run import DistillConfig, run_distill

    cell = DistillCell.from_dict(spec)
    if cell.threads:
        torch.set_num_threads(int(cell.threads))
    run_distill(DistillConfig(**cell.config), cell.run_out, cell.store, display=None, log=cell.log,
                log_uri=cell.log_uri)
    return cell.row
