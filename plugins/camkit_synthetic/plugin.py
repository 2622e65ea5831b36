"""Registers the ``synthetic`` dataset (imports stay lazy: the generator loads on first use)."""
from __future__ import annotations

from typing import Annotated, Any, Literal

from camkit import hookimpl
from camkit.registry.options import ImageSize, Range


def create_synthetic(split: Literal["train", "val", "test"] = "train", size: ImageSize = (256, 160),
                     n: Annotated[int, Range(min=1)] | None = None, seed: int = 0,
                     difficulty: Literal["easy", "default", "hard"] = "default", **overrides: Any):
    """Synthetic mammograms with planted masses and exact boxes (seeded; easy/default/hard).

    The annotations are the options' declarations: camkit checks every value against them before this runs
    (``n`` a whole number of images, at least one; ``split`` one of camkit's three).
    """
    from .dataset import SyntheticDataset

    return SyntheticDataset(split=split, size=size, n=n, seed=seed, difficulty=difficulty, **overrides)


@hookimpl
def register_datasets(register):
    register("synthetic", create_synthetic, example=lambda folder: {"n": 8},
             description="Synthetic mammograms with planted masses and exact boxes (seeded; easy/default/hard)")


@hookimpl
def register_commands(cli):
    from .commands import synth_cmd

    cli.add_command(synth_cmd)
