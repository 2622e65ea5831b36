"""Recipes: which model to train on which data, and how. The one resolver behind ``camkit bench`` and
``camkit train``, so ``camkit train --preset cpu`` trains exactly what ``camkit bench`` trains (and the bench
then reuses that checkpoint from the shared model store).

Plugins register the recipes (``register_recipes``, a :class:`camkit.registry.meta.RecipeSpec` each); the core
names none. The one that registers itself ``default=True`` is what runs without ``--preset``, and its model is
every command's default model.

A preset fills in options; explicit options override it. The preset's model options belong to its own model:
another ``--model`` gets the model preset of the same name when it registers one (``camkit bench --model
classifier`` trains the classifier's ``cpu`` preset), else its defaults. The preset's data options belong to
its own dataset: with another ``--dataset`` they are dropped (``camkit train --preset paper --dataset synthetic``
trains the paper's GMIC recipe on synthetic data). Datasets are always created at the model's ``input_size``
and with the run's seed (``--dataset-opt seed=N`` sets the data's seed alone), as the dataset contract says.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from camkit.errors import OptionError
from camkit.protocols import DATASET_CALL_KEYS, SPLITS


def registered_recipes() -> list[str]:
    """The recipe names ``--preset`` accepts: every registered recipe (``camkit list recipes``)."""
    from camkit.registry.api import list_recipes

    return list_recipes()


def default_preset(dataset: str | None) -> str:
    """The recipe ``camkit bench`` uses without ``--preset``: the dataset's own recipe when one is registered
    under the dataset's name (``--dataset cbis-ddsm`` -> ``cbis-ddsm``), else the default recipe (the one
    registered with ``default=True``)."""
    from camkit.registry.api import default_recipe

    return dataset if dataset is not None and dataset in registered_recipes() else default_recipe()


@dataclass
class Recipe:
    """A resolved recipe: every option filled in, nothing left to the preset."""

    model: str
    dataset: str
    model_options: dict[str, Any] = field(default_factory=dict)
    dataset_options: dict[str, Any] = field(default_factory=dict)  # for every split
    split_options: dict[str, dict[str, Any]] = field(default_factory=dict)  # per split, over dataset_options
    train: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields
    eval_batch_size: int = 8
    seed: int = 0

    def options_for(self, split: str) -> dict[str, Any]:
        """The options the dataset factory gets for ``split`` (without split, size and seed)."""
        return {**self.dataset_options, **self.split_options.get(split, {})}

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(asdict(self))


def preset_model(preset: str | None) -> str:
    """The model a recipe preset trains when no ``--model`` is given (no preset: the default recipe's)."""
    from camkit.registry.api import default_model, get_recipe

    return get_recipe(preset).model if preset else default_model()


def _model_preset(model: str, preset: str | None) -> dict[str, Any]:
    """Options for a model the recipe preset was not written for: its own preset of that name, if it has one."""
    from camkit.registry.host import get_host

    if preset is None:
        return {}
    entry, _ = get_host().registry.get("model", model)
    return {"preset": preset} if preset in entry.meta.presets else {}


@dataclass(frozen=True)
class RecipeOverrides:
    """What is given explicitly over a preset (each field None / empty: the preset's)."""

    model: str | None = None
    dataset: str | None = None
    model_options: dict[str, Any] | None = None
    dataset_options: dict[str, Any] | None = None
    split_options: dict[str, dict[str, Any]] | None = None
    train: dict[str, Any] | None = None
    eval_batch_size: int | None = None
    seed: int = 0


def resolve_recipe(preset: str | None = None, overrides: RecipeOverrides | None = None, **fields: Any) -> Recipe:
    """The preset's options with the explicit ones over them (see the module docstring for the rules).

    ``overrides``: a :class:`RecipeOverrides`; any of its fields may also be given as a keyword
    (``resolve_recipe("cpu", model="classifier")``), over ``overrides``.
    """
    from dataclasses import replace

    from camkit.registry.api import get_recipe

    o = replace(overrides or RecipeOverrides(), **fields)
    # the registered RecipeSpec as a plain dict (a deep copy: the registered one is shared)
    p = copy.deepcopy(asdict(get_recipe(preset))) if preset else {}
    model_options, dataset_options = dict(o.model_options or {}), dict(o.dataset_options or {})
    split_options = {k: dict(v) for k, v in (o.split_options or {}).items()}
    model, dataset, train, eval_batch_size, seed = o.model, o.dataset, o.train, o.eval_batch_size, o.seed
    for key in DATASET_CALL_KEYS:
        if key in dataset_options or any(key in v for v in split_options.values()):
            raise OptionError(_reserved(key))
    bad_splits = sorted(set(split_options) - set(SPLITS))
    if bad_splits:
        raise OptionError(f"split options for {bad_splits}: the splits are {', '.join(SPLITS)}")
    dataset = dataset or p.get("dataset")
    if not dataset:
        raise OptionError("no dataset: pass --dataset NAME (camkit list datasets), or a --preset that names one")
    model = model or preset_model(preset)
    same_data = dataset == p.get("dataset")
    same_model = model == p.get("model")
    out_splits = {}
    for split in SPLITS:
        preset_split = p.get("split_options", {}).get(split, {}) if same_data else {}
        # an option set explicitly for all splits beats the preset's per-split value of the same key
        out_splits[split] = {**{k: v for k, v in preset_split.items() if k not in dataset_options},
                             **split_options.get(split, {})}
    return Recipe(
        model=model, dataset=dataset,
        model_options={**(p.get("model_options", {}) if same_model else _model_preset(model, preset)),
                       **model_options},
        dataset_options={**(p.get("dataset_options", {}) if same_data else {}), **dataset_options},
        split_options=out_splits,
        train={**p.get("train", {}), **(train or {})},
        eval_batch_size=int(eval_batch_size or p.get("eval_batch_size") or 8), seed=int(seed))


def _reserved(key: str) -> str:
    if key == "split":
        return ("--dataset-opt split=...: camkit creates the train, val and test splits itself; to change what a "
                "split holds, pass that dataset's own options (e.g. n=, val_fraction=)")
    return ("--dataset-opt size=...: datasets are created at the model's input size; set it with "
            "--model-opt input_size=[H,W]")


def build_model(recipe: Recipe, train_cam: str | None = None,
                train_cam_options: dict[str, Any] | None = None) -> Any:
    """The recipe's model with ``train_cam``, its initialisation seeded by the recipe's seed; checked against
    the model contract. ``train_cam_options`` (the method's constructor options) go to the model factory as
    its ``train_cam_options`` option, only when given."""
    import torch

    from camkit.protocols import require_model
    from camkit.registry.api import create_model

    torch.manual_seed(recipe.seed)  # model initialisation is part of the seeded configuration
    options = dict(recipe.model_options)
    if train_cam_options:
        if "train_cam_options" in options:
            raise OptionError("train-cam options given twice (--cam-opt and --model-opt train_cam_options=); "
                              "keep one")
        options["train_cam_options"] = dict(train_cam_options)
    model = create_model(recipe.model, train_cam=train_cam, **options)
    require_model(model, f"model {recipe.model!r}")
    return model


def build_datasets(recipe: Recipe, input_size: tuple[int, int], splits: tuple[str, ...] = SPLITS) -> dict[str, Any]:
    """The recipe's datasets, each at ``input_size`` (the model's) with the recipe's seed; each checked against
    the dataset contract."""
    from camkit.protocols import require_dataset
    from camkit.registry.api import create_dataset

    out = {}
    for split in splits:
        options = {"size": tuple(int(v) for v in input_size), "seed": recipe.seed, **recipe.options_for(split)}
        dataset = create_dataset(recipe.dataset, split=split, **options)
        require_dataset(dataset, f"dataset {recipe.dataset!r} ({split} split)")
        out[split] = dataset
    return out


def train_config(recipe: Recipe, out_dir: str | Path, **overrides: Any) -> Any:
    """The TrainConfig of this recipe (its ``train`` options, the seed, ``out_dir``), with ``overrides``."""
    from camkit.training import TrainConfig

    fields = {**recipe.train, "seed": recipe.seed, "out_dir": str(out_dir), **overrides}
    unknown = sorted(set(fields) - set(TrainConfig.__dataclass_fields__))
    if unknown:
        raise OptionError(f"training option(s) {unknown} do not exist; valid: "
                          f"{', '.join(TrainConfig.__dataclass_fields__)}")
    return TrainConfig(**fields).check()


def takes_train_cam(model: str) -> bool:
    """Whether the registered ``model`` has a train-cam axis (its registration's ``train_cam`` field, default
    True; the classifier registers ``train_cam=False``)."""
    from camkit.registry.host import get_host

    entry, _ = get_host().registry.get("model", model)
    return entry.meta.train_cam
