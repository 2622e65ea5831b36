"""Registers the ``folder`` dataset: your own PNG/DICOM mammograms listed in a CSV."""
from __future__ import annotations

from typing import Literal

from camkit import hookimpl


def create_folder(csv: str | None = None, split: str | None = None, size: tuple[int, int] = (256, 160),
                  seed: int = 0, crop: bool = True, flip: Literal["auto", "laterality", "detect", "none"] = "auto",
                  keep_aspect: bool = True, skip_bad: bool = False):
    """Your own mammograms (PNG/TIFF/DICOM, 8/16-bit) listed in a CSV with labels and optional boxes.

    ``seed`` is accepted (``camkit bench`` passes one to every dataset) and unused: nothing here is random.
    """
    from .dataset import FolderDataError, FolderDataset

    if csv is None:
        raise FolderDataError("the folder dataset needs csv=PATH (a CSV with image,label columns, or a folder "
                              "holding labels.csv); see docs/datasets.md")
    return FolderDataset(csv, split=split, size=size, crop=crop, flip=flip, keep_aspect=keep_aspect,
                         skip_bad=skip_bad)


def example_options(folder):
    """Write four 16-bit PNGs (one with a mass box) and labels.csv to ``folder``, for contract checks."""
    from pathlib import Path

    import numpy as np
    from PIL import Image

    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = ["image,label,study_id,laterality,view,split,x1,y1,x2,y2"]
    for i in range(4):
        img = np.zeros((120, 80), np.uint16)
        img[10:110, :60] = rng.integers(8000, 30000, size=(100, 60))
        Image.fromarray(img).save(root / f"im{i}.png")
        box = "12,30,40,60" if i == 0 else ",,,"
        rows.append(f"im{i}.png,{int(i == 0)},s{i // 2},L,{'CC' if i % 2 == 0 else 'MLO'},test,{box}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return {"csv": str(root / "labels.csv")}


@hookimpl
def register_datasets(register):
    register("folder", create_folder, example=example_options,
             description="Your own mammograms (PNG/TIFF/DICOM, 8/16-bit) listed in a CSV with labels and boxes")
