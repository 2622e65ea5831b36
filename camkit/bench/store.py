"""The model store, and training into it: the one function behind ``camkit train`` and every cell of
``camkit bench``.

The store keeps each training run in ``<store>/<model>[-<train-cam>]-<fingerprint hash>`` (:func:`store_folder`),
so the two commands find, resume and reuse each other's checkpoints.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from camkit.bench.recipe import Recipe, takes_train_cam, train_config


@dataclass
class TrainJob:
    """One training of ``model`` (built from ``recipe`` with ``train_cam``) on ``sets["train"]``, validated on
    ``sets["val"]`` when that split is present and not empty (the paper's recipe has none).

    ``store``: the model store; ``out``: an explicit checkpoint folder instead of the store's (``camkit train
    --out``); ``overrides``: TrainConfig fields over the recipe's (resuming and no progress of its own unless
    they say otherwise).
    """

    recipe: Recipe
    train_cam: str | None
    model: Any
    sets: dict[str, Any]
    store: Path
    out: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def val_set(self) -> Any:
        val = self.sets.get("val")
        return val if val is not None and len(val) else None

    def config(self) -> Any:
        """The job's :class:`camkit.training.TrainConfig` (its ``out_dir`` is set by :func:`train_into_store`)."""
        return train_config(self.recipe, out_dir=".", **{"resume": True, "progress": False, **self.overrides})


def store_folder(job: TrainJob, info: Any) -> Path:
    """Where the job's checkpoints go: ``job.out``, else ``<store>/<model>[-<train-cam>]-<hash>``.

    The hash is the training fingerprint's (camkit.training.config), so any command that would train the same
    weights finds the same folder, and resumes or reuses what is there. ``info``: the process's
    :class:`camkit.training.distributed.DistInfo` (the world size and device type are part of the fingerprint).
    """
    if job.out is not None:
        return Path(job.out)
    from camkit.training import config_fingerprint, config_hash

    digest = config_hash(config_fingerprint(job.model, job.sets["train"], job.val_set, job.config(),
                                            info.world_size, info.device.type))
    recipe = job.recipe
    # a model without a train-cam axis (the classifier) is named by its model alone
    cam = [job.train_cam or str(recipe.model_options.get("train_cam", "default"))] \
        if takes_train_cam(recipe.model) else []
    return Path(job.store) / "-".join([recipe.model, *cam, digest])


def train_into_store(job: TrainJob, info: Any, progress: Any = None) -> tuple[Any, Path]:
    """Train (or resume, or reuse a complete checkpoint of the same fingerprint) and return the
    :class:`camkit.training.TrainResult` and its folder (:func:`store_folder`). ``progress``: a training
    progress sink (or a Tee of it and trackers)."""
    from camkit.training import train

    folder = store_folder(job, info)
    # the loop itself says that an empty validation split is skipped (and fingerprints it as none, as above)
    result = train(job.model, job.sets["train"], job.sets.get("val"), replace(job.config(), out_dir=str(folder)),
                   progress=progress)
    return result, folder


def load_best(result: Any, model: Any) -> str:
    """Load the training's best checkpoint (the last one when it kept no best) into ``model`` for evaluation;
    returns its path."""
    from camkit.storage.checkpoint import load_checkpoint

    best = result.best_checkpoint or result.last_checkpoint
    load_checkpoint(best, model)
    model.eval()
    return str(best)
