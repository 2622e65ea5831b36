"""camkit plugin: registers GLAM (``camkit.create_model("glam", preset=..., ...)``)."""
from __future__ import annotations

import os
from typing import Any

from camkit import hookimpl


def create_glam(preset: str = "official", checkpoint: str | os.PathLike | None = None, **options: Any):
    """GLAM (Liu et al., MIDL 2021) with any train-cam; presets: official (the released model), cpu (small).

    ``options`` override single config fields (``num_classes``, ``train_cam``, ``train_cam_options``,
    ``top_k``, ``patch_size``, ``input_size``, widths ...; see ``camkit_glam.presets.GLAMConfig``).
    ``checkpoint`` loads a state dict weights-only and strictly (the released checkpoints' keys, or camkit's
    own); with another class count the class-specific heads are re-initialised and listed in
    ``model.reinitialised``.
    """
    from camkit.storage.state_dict import load_state, read_state_dict

    from .model import CLASS_SPECIFIC_KEYS, GLAM
    from .presets import resolve_config

    model = GLAM(resolve_config(preset, **options), preset=preset)
    if checkpoint is not None:
        model.reinitialised = load_state(model, read_state_dict(checkpoint), CLASS_SPECIFIC_KEYS,
                                         source=f"checkpoint {os.fspath(checkpoint)!r}", model_name="GLAM")
        model.config["checkpoint"] = os.fspath(checkpoint)
    return model


@hookimpl
def register_models(register):
    from camkit.registry.options import config_options

    from .presets import PRESETS, GLAMConfig

    examples = ({"preset": "cpu"}, {"preset": "official", "input_size": [512, 512], "num_classes": 1})
    # what `camkit list models` shows, and each option's type and range (GLAMConfig's annotations), which camkit
    # checks before the factory runs: the factory's own keywords and every config field
    options = {"preset": str, "checkpoint": str | os.PathLike | None,
               **config_options(GLAMConfig, exclude=("train_cam",))}
    register("glam", create_glam, presets=tuple(PRESETS), options=options, examples=examples,
             description="GLAM (Liu et al. 2021): global ResNet-22 maps at 3 scales, one patch, stride-1 "
                         "ResNet-34 segmenter, full-resolution map; presets official|cpu; any CAM as train-cam")
