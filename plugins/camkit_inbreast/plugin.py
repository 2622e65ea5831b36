"""The INbreast dataset plugin: registers ``inbreast`` (heavy imports wait for the first use)."""
from __future__ import annotations

from typing import Any

from camkit import hookimpl


def create_inbreast(root: str, split: str = "train", size: tuple[int, int] = (2944, 1920), seed: int = 0,
                    negatives: str = "birads1", spiculated: bool = False, test_fraction: float = 0.2,
                    val_fraction: float = 0.1, cache: Any = None, skip_bad: bool = False, crop: bool = True,
                    flip: bool = True, voi: bool = True):
    """INbreast: mass vs BI-RADS 1 normals, train/val/test by patient, lesion masks from the XML contours.

    The options are :class:`camkit_inbreast.dataset.InbreastDataset`'s.
    """
    from .dataset import InbreastDataset

    return InbreastDataset(root, split=split, size=size, negatives=negatives, spiculated=spiculated,
                           test_fraction=test_fraction, val_fraction=val_fraction, seed=seed, cache=cache,
                           skip_bad=skip_bad, crop=crop, flip=flip, voi=voi)


def example_options(folder: str) -> dict[str, Any]:
    """A tiny INbreast release in ``folder`` (for the dataset contract test)."""
    from .example import write_example

    return write_example(folder)


@hookimpl
def register_datasets(register):
    register("inbreast", create_inbreast, example=example_options,
             description="INbreast (DICOMs + OsiriX XML contours): mass vs BI-RADS 1 normals, lesion masks, cached")


@hookimpl
def register_commands(prepare):
    """``camkit prepare inbreast``: fill the preprocessing cache."""
    from .commands import prepare_cmd

    prepare.add_command(prepare_cmd)
