"""camkit plugin: registers the pooled classifier (``camkit.create_model("classifier", backbone=..., ...)``)."""
from __future__ import annotations

import os
from typing import Any

from camkit import hookimpl


def create_classifier(preset: str = "default", checkpoint: str | os.PathLike | None = None,
                      train_cam: str | None = None, **options: Any):
    """A CNN classifier with a pooling head on any registered backbone; presets: default (ResNet-18), cpu.

    ``options`` override single config fields (``backbone``, ``backbone_options``, ``pooling`` = avg | max |
    topt | lse | attention, ``top_t``, ``lse_r``, ``attn_dim``, ``cam_layers``, ``input_size``, ...; see
    ``camkit_classifier.presets.ClassifierConfig``). ``checkpoint`` loads a state dict weights-only and strict.
    It retrieves no regions inside training, so it takes no ``train_cam``.
    """
    from camkit.errors import OptionError

    from .model import PooledClassifier
    from .presets import resolve_config

    if train_cam is not None:
        raise OptionError(f"model 'classifier' has no train-cam (it picks no regions inside training; its CAMs "
                          f"are test-time only), got train_cam={train_cam!r}")
    model = PooledClassifier(resolve_config(preset, **options), preset=preset)
    if checkpoint is not None:
        from camkit.storage.checkpoint import load_checkpoint

        load_checkpoint(checkpoint, model)
        model.config["checkpoint"] = os.fspath(checkpoint)
    return model


@hookimpl
def register_models(register):
    from camkit.registry.options import config_options

    from .presets import PRESETS, ClassifierConfig

    examples = ({"preset": "cpu"}, {"preset": "cpu", "pooling": "attention"}, {"preset": "cpu", "pooling": "lse"})
    # what `camkit list models` shows, and each option's type and range (ClassifierConfig's annotations), which camkit
    # checks before the factory runs: the factory's own keywords and every config field
    options = {"preset": str, "checkpoint": str | os.PathLike | None,
               **config_options(ClassifierConfig, exclude=("train_cam",))}
    register("classifier", create_classifier, presets=tuple(PRESETS), options=options, examples=examples,
             train_cam=False,
             description="CNN classifier on any backbone (timm:<name>) with a pooling head: avg, max, top-t, "
                         "log-sum-exp or gated-attention MIL; CAM exact; no train-cam")
