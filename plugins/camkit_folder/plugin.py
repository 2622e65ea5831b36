"""Registers the ``folder`` dataset: your own PNG/DICOM mammograms listed in a CSV."""
from __future__ import annotations

from camkit import hookimpl


def create_folder(csv: str | None = None, split: str | None = None, size: tuple[int, int] = (256, 160),
                  seed: int = 0, crop: bool = True, flip: str = "auto", keep_aspect: bool = True,
                  skip_bad: bool = False):
    """Your own mammograms (PNG/TIFF/DICOM, 8/16-bit) listed in a CSV with labels and optional boxes.

    ``seed`` is accepted (``camkit bench`` passes one to every dataset) and unused: nothing here is random.
    """
    from .dataset import FolderDataError, FolderDataset

    if csv is None:
        raise FolderDataError("the folder dataset needs csv=PATH (a CSV with image,label columns, or a folder "
                              "holding labels.csv); see docs/datasets.md")
    return FolderDataset(csv, split=split, size=size, crop=crop, flip=flip, keep_aspect=keep_aspect,
                         skip_bad=skip_bad)


@hookimpl
def register_datasets(register):
    register("folder", create_folder,
             description="Your own mammograms (PNG/TIFF/DICOM, 8/16-bit) listed in a CSV with labels and boxes")
