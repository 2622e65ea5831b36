"""camkit plugin: registers the GMIC model (``camkit.create_model("gmic", preset=..., ...)``)."""
from __future__ import annotations

import os
from typing import Any

from camkit import hookimpl


def create_gmic(preset: str = "official", checkpoint: str | os.PathLike | None = None, **options: Any):
    """GMIC (Shen et al. 2021) with any train-cam; presets: official (released model 1), cpu (small).

    ``options`` override single config fields (``num_classes``, ``train_cam``, ``train_cam_options``,
    ``num_crops``, ``crop_size``, ``top_t``, ``input_size``, widths ...; see ``camkit_gmic.presets.GMICConfig``). ``checkpoint`` loads a
    state dict safely (the released ``sample_model_N.p`` files included); with another class count the
    class-specific heads are re-initialised and listed in ``model.reinitialised``.
    """
    from .checkpoint import load_into
    from .model import GMIC
    from .presets import resolve_config

    cfg = resolve_config(preset, **options)
    model = GMIC(cfg, preset=preset)  # creates the train-cam's method: an unknown name or option fails here
    if checkpoint is not None:
        load_into(model, checkpoint)
        model.config["checkpoint"] = os.fspath(checkpoint)
    return model


@hookimpl
def register_models(register):
    from camkit.registry.options import config_options

    from .presets import PRESETS, GMICConfig

    # small configurations for camkit's contract tests (camkit.testing.check_model)
    examples = ({"preset": "cpu"}, {"preset": "official", "input_size": [512, 320], "num_classes": 1})
    # what `camkit list models` shows, and each option's type and range (GMICConfig's annotations), which camkit
    # checks before create_gmic runs: the factory's own keywords and every config field
    options = {"preset": str, "checkpoint": str | os.PathLike | None,
               **config_options(GMICConfig, exclude=("train_cam",))}
    register("gmic", create_gmic, presets=tuple(PRESETS), options=options, examples=examples,
             description="GMIC (Shen et al. 2021): global ResNet-22 + saliency, ROI crops, local ResNet-18, "
                         "MIL, fusion; presets official|cpu; any CAM as train-cam")


@hookimpl
def register_recipes(register):
    import copy

    from .recipes import RECIPES

    for name, fields in RECIPES.items():
        register(name, **copy.deepcopy(fields))  # a copy: nothing outside may change this module's dicts
