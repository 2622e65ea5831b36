"""Intensity helpers every image reader shares (:mod:`camkit.data.imaging` for pictures,
:mod:`camkit.data.dicom` for DICOM); kept apart so that neither reader imports the other for them."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from camkit.errors import ImageReadError


def to_unit_range(arr: Any) -> np.ndarray:
    """Rescale an array to float32 [0, 1] by its own min and max (a constant image becomes all zeros)."""
    a = np.asarray(arr, dtype=np.float32)
    lo, hi = float(a.min()), float(a.max())
    if not math.isfinite(lo) or not math.isfinite(hi):
        raise ImageReadError("image contains NaN or infinite values")
    if hi <= lo:
        return np.zeros_like(a)
    return (a - lo) * np.float32(1.0 / (hi - lo))
