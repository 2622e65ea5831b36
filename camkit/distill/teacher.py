"""The distill's teacher: the bench's (model, train-cam) training, taken from the model store."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from camkit.errors import CamkitError


def load_teacher(cfg: Any, row: Any, model: Any, sets: dict[str, Any], context: Any, store: Path, display: Any,
                 train: bool = False) -> dict[str, Any]:
    """Load the teacher of ``row`` into ``model`` from the model store for inference (resumed if its training was
    cut short; trained from scratch only with ``train``, as the bench would, else a one-line error saying how to
    get it). Returns its facts: model, train-cam, checkpoint, config hash, reused, seconds."""
    from camkit.bench.store import TrainJob, load_best, store_folder, train_into_store

    job = TrainJob(cfg.recipe(row.model), row.train_cam, model, sets, store)
    folder = store_folder(job, context.info)
    if not train and not (folder / "best.pt").is_file() and not (folder / "last.pt").is_file():
        raise CamkitError(f"no trained teacher {row.model} with train-cam {row.train_cam!r} of this recipe and seed "
                          f"in the model store {store} (looked for {folder.name}): run camkit bench with the same "
                          f"options and --train-cam {row.train_cam} first (its training is the teacher), point "
                          "--models at the store that holds it, or pass --train-teacher to train it now")
    result, folder = train_into_store(job, context.info, display.train_sink("teacher") if display else None)
    if display is not None:
        display.log(f"teacher: {'reused' if result.reused else 'trained'} {row.model} with train-cam "
                    f"{row.train_cam} ({folder})")
    return {"model": row.model, "train_cam": row.train_cam, "checkpoint": load_best(result, model),
            "config_hash": result.config_hash, "reused": result.reused, "seconds": result.seconds}
