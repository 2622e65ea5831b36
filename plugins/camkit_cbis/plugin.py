"""The CBIS-DDSM dataset plugin: registers ``cbis-ddsm`` (heavy imports wait for the first use)."""
from __future__ import annotations

from typing import Any

from camkit import hookimpl


def create_cbis(root: str, split: str = "train", size: tuple[int, int] = (2944, 1920), seed: int = 0,
                negatives: str = "calc-only", val_fraction: float = 0.1, exclude_shapes: Any = (),
                cache: Any = None, skip_bad: bool = False, crop: bool = True, flip: bool = True, voi: bool = True):
    """CBIS-DDSM (TCIA): mass vs calcification-only views, official split + val by patient, lesion masks.

    The options are :class:`camkit_cbis.dataset.CbisDataset`'s.
    """
    from .dataset import CbisDataset

    if isinstance(exclude_shapes, str):
        exclude_shapes = tuple(s for s in exclude_shapes.split(",") if s)
    return CbisDataset(root, split=split, size=size, negatives=negatives, val_fraction=val_fraction, seed=seed,
                       exclude_shapes=tuple(exclude_shapes), cache=cache, skip_bad=skip_bad, crop=crop, flip=flip,
                       voi=voi)


def example_options(folder: str) -> dict[str, Any]:
    """A tiny CBIS-DDSM download in ``folder`` (for the dataset contract test)."""
    from .example import write_example

    return write_example(folder)


@hookimpl
def register_datasets(register):
    register("cbis-ddsm", create_cbis, example=example_options,
             description="CBIS-DDSM (TCIA DICOMs + description CSVs): mass vs calc-only views, lesion masks, cached")


@hookimpl
def register_commands(prepare):
    """``camkit prepare cbis-ddsm``: fill the preprocessing cache."""
    from .commands import prepare_cmd

    prepare.add_command(prepare_cmd)
