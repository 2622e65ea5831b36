"""One INbreast image and its mass contours -> the model's input and :class:`~camkit.data.masks.Lesions`.

A mass's box is its vertices' extent clipped to the image, its mask the polygon filled at pixel centres
(even-odd rule); the two differ by under a pixel. A contour partly outside the image is clipped (the release
has some); one with less than half its extent inside is bad input, named with its XML file. The pixels are
normalised from the data (the files are 14-bit in 16-bit storage). Right views are mirrored by laterality:
INbreast stores left breasts facing right and right ones facing left, consistently.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from camkit.data.cache import Settings
from camkit.data.dicom import load_unit_image
from camkit.data.masks import Lesions, rasterize_polygon, to_model
from camkit.data.sample import BoxTransform

from .annotations import InbreastError

MIN_INSIDE_FRACTION = 0.5


def contour_lesion(points: list[tuple[float, float]], shape: tuple[int, int], where: str) -> tuple[np.ndarray, np.ndarray]:
    """``(box (4,), mask (H, W))`` of one contour in an image of ``shape`` (see the module docstring)."""
    pts = np.asarray(points, dtype=np.float64)
    h, w = shape
    x1, y1 = pts.min(axis=0)
    x2, y2 = pts.max(axis=0)
    box = np.array([max(x1, 0.0), max(y1, 0.0), min(x2, float(w)), min(y2, float(h))])
    full = max((x2 - x1) * (y2 - y1), 1e-9)
    inside = max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0)
    if inside < MIN_INSIDE_FRACTION * full:
        raise InbreastError(f"{where}: a Mass contour spans x {x1:.0f}..{x2:.0f}, y {y1:.0f}..{y2:.0f}, mostly outside "
                            f"the {w}x{h} (WxH) image; fix the XML or pass skip_bad=True (--skip-bad)")
    return box, rasterize_polygon(pts, shape)


def prepare_record(root: Path, record: Any, settings: Settings) -> tuple[torch.Tensor, BoxTransform, Lesions]:
    """The cache's ``prepare_fn``: ``(image (1, H, W) in [0, 1], transform, lesions)`` of one record."""
    from camkit.data import imaging

    root = Path(root)
    pixels = load_unit_image(root / record.files[0], record.where(), voi=settings.voi)
    where = str(root / record.extra["xml"]) if record.extra.get("xml") else record.where()
    lesions = [contour_lesion(c, pixels.shape, where) for c in record.extra.get("contours", [])]
    image, transform = imaging.prepare(pixels, settings.size, laterality=record.laterality,
                                       flip="laterality" if settings.flip else "none", crop_breast=settings.crop,
                                       keep_aspect=True, threshold=settings.threshold, margin=settings.margin)
    boxes = np.asarray([b for b, _ in lesions], dtype=np.float64).reshape(-1, 4)
    masks = np.stack([m for _, m in lesions]) if lesions else np.zeros((0, *pixels.shape), bool)
    return image, transform, Lesions(boxes, to_model(masks, transform))
