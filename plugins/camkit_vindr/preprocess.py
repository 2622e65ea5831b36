"""One VinDr image -> the model's input, in two halves so the cache can store the expensive one.

``prepare_image``: decode (camkit.data.dicom), then :func:`camkit.data.imaging.prepare` (mirror right
views, crop to the breast, resize): a [0, 1] float image of the model's size plus its BoxTransform (what
``camkit prepare`` stores as uint16). ``finish``: the per-image z-score that turns it into the tensor, the
other half of :func:`camkit.data.imaging.preprocess`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from camkit.data.cache import (Settings, finish, finish_uint16, from_uint16, image_stats,  # noqa: F401 - re-exported
                               to_uint16)
from camkit.data.dicom import DicomReadError, load_unit_image
from camkit.data.sample import BoxTransform

DEFAULT_SIZE = (2944, 1920)


def prepare_image(path: str | Path, laterality: str, settings: Settings, expected_size: tuple[int, int] | None = None,
                  where: str | None = None) -> tuple[torch.Tensor, BoxTransform]:
    """``(image (1, H, W) float32 in [0, 1], transform)`` for the DICOM at ``path``.

    ``expected_size``: (H0, W0) the CSV lists; a file of another size would misplace every box, so it is a
    :class:`DicomReadError` naming the file and the row (``where``).
    """
    from camkit.data import imaging

    pixels = load_unit_image(path, where, voi=settings.voi)
    if expected_size is not None and tuple(pixels.shape) != tuple(expected_size):
        raise DicomReadError(f"{path} is {pixels.shape[0]}x{pixels.shape[1]} (HxW) but "
                             f"{where or 'the CSV'} says {expected_size[0]}x{expected_size[1]}: boxes would not "
                             "line up; fix the CSV or the file, or pass skip_bad=True (--skip-bad).")
    # camkit's one pipeline, with VinDr's orientation rule: right views (by the CSV's laterality) are mirrored
    return imaging.prepare(pixels, settings.size, laterality=laterality,
                           flip="laterality" if settings.flip else "none", crop_breast=settings.crop,
                           keep_aspect=True, threshold=settings.threshold, margin=settings.margin)


def prepare_record(root: Path, record: Any, settings: Settings) -> tuple[torch.Tensor, BoxTransform, None]:
    """The cache's ``prepare_fn`` for one VinDr :class:`~camkit_vindr.annotations.ImageRecord` (no masks)."""
    image, transform = prepare_image(Path(root) / record.relpath(), record.laterality, settings,
                                     (record.height, record.width), record.where())
    return image, transform, None
