"""One VinDr image -> the model's input, in two halves so the cache can store the expensive one.

``prepare_image``: decode (camkit.data.dicom), then :func:`camkit.data.imaging.prepare` (mirror right
views, crop to the breast, resize): a [0, 1] float image of the model's size plus its BoxTransform (what
``camkit prepare`` stores as uint16). ``finish``: the per-image z-score that turns it into the tensor, the
other half of :func:`camkit.data.imaging.preprocess`.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from camkit.data.sample import BoxTransform

from camkit.data.dicom import DicomReadError, load_unit_image

PIPELINE_VERSION = 1
DEFAULT_SIZE = (2944, 1920)
UINT16_MAX = 65535


@dataclass(frozen=True)
class Settings:
    """The preprocessing options; their hash keys the cache (change one and the cache is rebuilt)."""

    size: tuple[int, int] = DEFAULT_SIZE
    crop: bool = True          # crop to the breast (grown to the model's aspect ratio)
    flip: bool = True          # mirror right views so every breast faces right
    voi: bool = True           # apply the DICOM VOI LUT / first window
    threshold: float = 0.1     # breast mask threshold on the [0, 1] image
    margin: float = 0.02       # crop margin, fraction of the longer side

    def __post_init__(self) -> None:
        size = tuple(int(v) for v in self.size)
        if len(size) != 2 or min(size) < 8:
            raise ValueError(f"size must be (height, width) with both >= 8, got {self.size!r}")
        object.__setattr__(self, "size", size)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "size": list(self.size), "version": PIPELINE_VERSION}

    def key(self) -> str:
        """A short stable hash of the settings and the pipeline version."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


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


def to_uint16(image: torch.Tensor) -> np.ndarray:
    """A [0, 1] image as uint16 (H, W), the cache's storage format (quantisation step 1/65535)."""
    return np.rint(image.squeeze(0).numpy() * UINT16_MAX).astype(np.uint16)


def from_uint16(array: np.ndarray) -> torch.Tensor:
    """A cached uint16 (H, W) array (memory-mapped or not) back to a (1, H, W) float32 [0, 1] tensor."""
    out = torch.from_numpy(np.asarray(array, dtype=np.float32))
    return out.mul_(1.0 / UINT16_MAX).unsqueeze(0)


def image_stats(image: torch.Tensor) -> tuple[float, float]:
    """(mean, std) of a [0, 1] image, as :func:`finish` computes them (stored in the cache, so that reading
    an entry needs no pass over the pixels to find them; torch's std alone costs ~30 ms at 2944x1920)."""
    return float(image.mean()), float(image.std())


def finish(image: torch.Tensor) -> torch.Tensor:
    """The per-image z-score the model is fed (GMIC normalises each image by its own mean and std)."""
    from camkit.data.imaging import zscore

    return zscore(image)


def finish_uint16(array: np.ndarray, mean: float, std: float, eps: float = 1e-6) -> torch.Tensor:
    """``finish(from_uint16(array))`` with the stored statistics, in one fused pass (the cached loader)."""
    out = np.empty(array.shape, np.float32)
    scale = 1.0 / (UINT16_MAX * max(float(std), eps))
    np.multiply(array, np.float32(scale), out=out, casting="unsafe")
    out -= np.float32(mean / max(float(std), eps))
    return torch.from_numpy(out).unsqueeze(0)
