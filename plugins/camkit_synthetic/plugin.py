"""Registers the ``synthetic`` dataset (imports stay lazy: the generator loads on first use)."""
from __future__ import annotations

from typing import Any

from camkit import hookimpl


def create_synthetic(split: str = "train", size: tuple[int, int] = (256, 160), n: int | None = None,
                     seed: int = 0, difficulty: str = "default", **overrides: Any):
    """Synthetic mammograms with planted masses and exact boxes (seeded; easy/default/hard)."""
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
