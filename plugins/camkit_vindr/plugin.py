"""The VinDr-Mammo dataset plugin: registers ``vindr`` (heavy imports wait for the first use)."""
from __future__ import annotations

from typing import Any

from camkit import hookimpl


def create_vindr(root: str, split: str = "train", size: tuple[int, int] = (2944, 1920), seed: int = 0,
                 balanced: bool = True, val_fraction: float = 0.1, cache: Any = None, skip_bad: bool = False,
                 balance_by: str = "image", crop: bool = True, flip: bool = True, voi: bool = True):
    """VinDr-Mammo (PhysioNet layout): mass vs normal, official split + seeded val, balanced subsets.

    The options are :class:`camkit_vindr.dataset.VinDrDataset`'s (``seed`` draws the validation studies and
    the balanced normals).
    """
    from .dataset import VinDrDataset

    return VinDrDataset(root, split=split, size=size, balanced=balanced, val_fraction=val_fraction, seed=seed,
                        cache=cache, skip_bad=skip_bad, balance_by=balance_by, crop=crop, flip=flip, voi=voi)


@hookimpl
def register_datasets(register):
    from .example import example_options

    register("vindr", create_vindr, example=example_options,
             description="VinDr-Mammo (PhysioNet 1.0.0 DICOMs + CSVs): mass vs normal, balanced, cached")


@hookimpl
def register_commands(prepare):
    """``camkit prepare vindr``: fill the preprocessing cache."""
    from .commands import prepare_cmd

    prepare.add_command(prepare_cmd)
