"""Lesion masks: from a dataset's own form (ROI mask image, polygon contour) to boxes and to the model frame.

Masks are (N, H, W) boolean arrays, one per lesion, in the stored image's pixels; pixel (row i, column j)
covers [j, j+1) x [i, i+1) as everywhere in :mod:`camkit.data`. :func:`to_model` moves them through the same
flip, crop and resize as the image (:func:`camkit.data.imaging.prepare`), so a sample's ``masks`` and ``boxes``
share its :class:`~camkit.data.sample.BoxTransform`, whose ``to_original`` maps both back.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from camkit.data.sample import BoxTransform

# A mask this much larger or smaller than its image (per side, relative; or ALIGN_PIXELS) is stretched to it;
# beyond, it is bad input. 1.5% covers CBIS-DDSM's ~1% cases (Calc-Test_P_00353: 4688x3088 for 4624x3056).
ALIGN_TOLERANCE = 0.015
ALIGN_PIXELS = 2


@dataclass
class Lesions:
    """A sample's lesions: ``boxes`` (N, 4) x1 y1 x2 y2 in the stored image's pixels and ``masks`` (N, H, W)
    bool in the model frame, mask k being box k's lesion pixels."""

    boxes: np.ndarray
    masks: torch.Tensor


class MaskSizeError(ValueError):
    """A mask whose size differs from its image by more than :data:`ALIGN_TOLERANCE` on a side."""


def boxes_from_mask(mask: np.ndarray) -> np.ndarray:
    """One box per 8-connected component of a 2-D mask: (k, 4) x1 y1 x2 y2 with x1 = first column and
    x2 = last column + 1 (continuous pixel coordinates), ordered by first row then column.

    Example:
        >>> m = np.zeros((4, 6), bool); m[1:3, 1:3] = True; m[0, 5] = True
        >>> boxes_from_mask(m).tolist()
        [[5.0, 0.0, 6.0, 1.0], [1.0, 1.0, 3.0, 3.0]]
    """
    from scipy import ndimage

    labels, count = ndimage.label(np.asarray(mask, bool), structure=np.ones((3, 3), int))
    boxes = [(sl[1].start, sl[0].start, sl[1].stop, sl[0].stop) for sl in ndimage.find_objects(labels) if sl]
    boxes.sort(key=lambda b: (b[1], b[0]))
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


def tight_box(mask: np.ndarray) -> np.ndarray | None:
    """The (4,) x1 y1 x2 y2 box around every pixel of a 2-D mask (continuous coordinates); None when empty."""
    mask = np.asarray(mask, bool)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not len(rows):
        return None
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=np.float64)


def rasterize_polygon(points: Any, shape: tuple[int, int]) -> np.ndarray:
    """The (H, W) mask of a closed polygon (vertices (K, 2) as x = column, y = row): a pixel is inside when its
    centre (j + 0.5, i + 0.5) is, by the even-odd rule. Vertices outside the image are allowed (the mask is
    clipped to it).

    Example:
        >>> rasterize_polygon([(1, 1), (4, 1), (4, 3), (1, 3)], (4, 5)).astype(int).tolist()
        [[0, 0, 0, 0, 0], [0, 1, 1, 1, 0], [0, 1, 1, 1, 0], [0, 0, 0, 0, 0]]
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    h, w = int(shape[0]), int(shape[1])
    out = np.zeros((h, w), dtype=bool)
    if len(pts) < 3:
        return out
    x0, y0 = pts[:, 0], pts[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    lo = max(0, int(np.floor(pts[:, 1].min() - 0.5)))
    hi = min(h, int(np.ceil(pts[:, 1].max() + 0.5)) + 1)
    centres_x = np.arange(w) + 0.5
    for i in range(lo, hi):
        yc = i + 0.5
        # edges crossing the scanline, half-open in y so a vertex on it is counted once
        crosses = (y0 <= yc) != (y1 <= yc)
        if not crosses.any():
            continue
        t = (yc - y0[crosses]) / (y1[crosses] - y0[crosses])
        xs = np.sort(x0[crosses] + t * (x1[crosses] - x0[crosses]))
        # a centre is inside when an odd number of crossings lie to its left
        out[i] = np.searchsorted(xs, centres_x, side="right") % 2 == 1
    return out


def align_mask(mask: np.ndarray, shape: tuple[int, int], tolerance: float = ALIGN_TOLERANCE) -> tuple[np.ndarray, bool]:
    """``(mask at shape, rescaled?)``: a mask of its image's size as is; one within ``tolerance`` (or
    :data:`ALIGN_PIXELS`) of it on each side stretched to it (nearest pixel centre: the mask is taken to cover the same field of view, which the
    ~1% mismatches of CBIS-DDSM suggest); a larger mismatch raises :class:`MaskSizeError` (what it means is
    unknown, and placing it anywhere could put the lesion in the wrong place)."""
    from camkit.data.imaging import resize_masks

    mh, mw = mask.shape
    h, w = int(shape[0]), int(shape[1])
    if (mh, mw) == (h, w):
        return np.asarray(mask, bool), False
    if abs(mh - h) > max(tolerance * h, ALIGN_PIXELS) or abs(mw - w) > max(tolerance * w, ALIGN_PIXELS):
        raise MaskSizeError(f"mask is {mh}x{mw} (HxW) but its image is {h}x{w}: more than "
                            f"{tolerance:.1%} (or {ALIGN_PIXELS} px) apart on a side")
    return resize_masks(np.asarray(mask, bool)[None], (h, w))[0].numpy(), True


def to_model(masks: np.ndarray, transform: BoxTransform) -> torch.Tensor:
    """(N, H0, W0) masks in the stored image's pixels -> (N, H, W) bool in the model frame: the transform's
    flip, crop (outside the image: background) and resize (nearest pixel centre)."""
    from camkit.data.imaging import crop, resize_masks

    masks = np.asarray(masks, bool)
    if masks.ndim != 3 or tuple(masks.shape[1:]) != tuple(transform.original_size):
        raise ValueError(f"masks of shape {masks.shape} do not match the image size {transform.original_size}")
    size = tuple(transform.model_size)
    if not len(masks):
        return torch.zeros((0, *size), dtype=torch.bool)
    out = []
    for m in masks:
        m = m[:, ::-1] if transform.flipped else m
        if transform.crop is not None:
            m = crop(m, tuple(int(round(v)) for v in transform.crop), fill=False)
        out.append(resize_masks(np.ascontiguousarray(m)[None], size)[0])
    return torch.stack(out)


def components(mask: np.ndarray) -> list[np.ndarray]:
    """The 8-connected components of a 2-D mask, each a full-size mask, in :func:`boxes_from_mask`'s order."""
    from scipy import ndimage

    labels, count = ndimage.label(np.asarray(mask, bool), structure=np.ones((3, 3), int))
    slices = ndimage.find_objects(labels)
    order = sorted(range(count), key=lambda k: (slices[k][0].start, slices[k][1].start))
    return [labels == k + 1 for k in order]


def lesions_from_masks(masks: list[np.ndarray], transform: BoxTransform, split_components: bool = True) -> Lesions:
    """A sample's :class:`Lesions` from its lesion masks in the stored image's pixels: one box per connected
    component of each mask (``split_components``; else one box per mask, around all of it), each with its
    own mask moved to the model frame."""
    parts: list[np.ndarray] = []
    for m in masks:
        parts.extend(components(m) if split_components else ([np.asarray(m, bool)] if np.any(m) else []))
    boxes = [tight_box(p) for p in parts]
    h0, w0 = transform.original_size
    stacked = np.stack(parts) if parts else np.zeros((0, h0, w0), bool)
    return Lesions(np.asarray(boxes, dtype=np.float64).reshape(-1, 4), to_model(stacked, transform))
