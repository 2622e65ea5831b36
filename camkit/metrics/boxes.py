"""Activation maps -> scored boxes: per-image normalised threshold, connected components, one box each.

Rules (docs/metrics.md has the long version):

- A pixel is foreground when ``map >= threshold * max(map)`` (the threshold is relative to each image's own
  maximum, i.e. it is applied to the per-image normalised map). A map whose maximum is <= 0 has no boxes.
- Components are 8-connected by default (``connectivity=4`` for edge neighbours only); they never connect
  across images of the batch (the whole batch is labelled in one call with a 3-D structure whose
  neighbours along the batch axis are all off).
- One box per component, its tight bounding box in continuous map-pixel coordinates: a component spanning
  columns j0..j1 and rows i0..i1 gives x1=j0, y1=i0, x2=j1+1, y2=i1+1 (see camkit.data).
- The score of a box (``score=``): ``"peak"`` the component's maximum map value, ``"mean"`` its mean map value,
  ``"peak_x_prob"`` (default) / ``"mean_x_prob"`` that value times the image-level probability, so that boxes
  rank across images. Map values are used as given (the CAM engine's maps are already in [0, 1]).
- Boxes of each image come sorted by descending score (stable: raster order of the components on ties).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from camkit.data.sample import clip_boxes

SCORES = ("peak_x_prob", "peak", "mean", "mean_x_prob")
# up to this many components (or one per 256 pixels), scipy's find_objects gives the extents fastest
_FEW_COMPONENTS = 256

BoxList = list[tuple[np.ndarray, np.ndarray]]


def maps_to_boxes(maps: Any, threshold: float = 0.5, probs: Any = None, score: str = "peak_x_prob",
                  min_area: int = 1, connectivity: int = 8) -> BoxList:
    """Boxes and scores from a batch of activation maps.

    Args:
        maps: (B, H, W) (or (H, W), or (B, 1, H, W)) torch tensor or array, non-negative, ideally in [0, 1].
        threshold: in (0, 1]; foreground is ``map >= threshold * map.max()`` per image.
        probs: (B,) image-level probabilities; required by the ``*_x_prob`` scores.
        score: one of ``"peak_x_prob"``, ``"peak"``, ``"mean"``, ``"mean_x_prob"``.
        min_area: components with fewer pixels are dropped.
        connectivity: 8 (default) or 4.

    Returns:
        One ``(boxes (N, 4) float64 x1 y1 x2 y2 in map pixels, scores (N,) float64)`` per image, boxes sorted
        by descending score.

    Example:
        >>> m = np.zeros((1, 4, 6)); m[0, 1:3, 2:5] = 1.0
        >>> maps_to_boxes(m, score="peak")[0][0].tolist()
        [[2.0, 1.0, 5.0, 3.0]]
    """
    arr, p = _prepare(maps, probs, score, min_area, connectivity)
    _check_threshold(threshold)
    return _boxes(arr, _foreground(arr, threshold), p, score, min_area, connectivity)


def maps_to_boxes_sweep(maps: Any, thresholds: Iterable[float], probs: Any = None, score: str = "peak_x_prob",
                        min_area: int = 1, connectivity: int = 8) -> dict[float, BoxList]:
    """:func:`maps_to_boxes` at several thresholds, returned as ``{threshold: boxes per image}``.

    Components differ between thresholds, so each threshold is labelled on its own; inputs are checked and
    converted once. (Stacking all thresholds' masks into one labelling call was measured slower — memory
    traffic — see benchmarks/test_metrics_speed.py.)
    """
    ts = [float(t) for t in thresholds]
    if not ts:
        raise ValueError("maps_to_boxes_sweep: thresholds is empty; pass e.g. [0.2, 0.5, 0.8]")
    for t in ts:
        _check_threshold(t)
    arr, p = _prepare(maps, probs, score, min_area, connectivity)
    return {t: _boxes(arr, _foreground(arr, t), p, score, min_area, connectivity) for t in ts}


#: the grid of thresholds (fractions of each map's maximum) peak proposals are looked up on
PROPOSAL_THRESHOLDS = tuple(round(0.05 * k, 2) for k in range(1, 20))  # 0.05 .. 0.95


def maps_to_proposals(maps: Any, thresholds: Iterable[float] = PROPOSAL_THRESHOLDS, probs: Any = None,
                      score: str = "peak_x_prob", relative: float = 0.5, nms_iou: float = 0.5, min_area: int = 1,
                      connectivity: int = 8) -> BoxList:
    """Box proposals for FROC: one box per peak of the map, each cut relative to its own peak, then box NMS.

    :func:`maps_to_boxes` cuts every map at one fraction of its global maximum, so a second blob below that
    level never becomes a box and an FROC curve stops after one or two false positives per image. Here every
    blob gets the box the single rule would give it if it were the map's highest: over the components at all
    ``thresholds`` (fractions of the map's maximum), components whose maximum is the same pixel are one blob
    (a blob's component stops having its own maximum once it merges into a higher one); each blob keeps its
    component at the threshold nearest ``relative`` x its peak (equal distance: the higher threshold). For the
    map's highest blob that is the single rule's box at ``relative``. Boxes are scored as in
    :func:`maps_to_boxes`, sorted by descending score (equal scores: raster order of the peaks), and a box is
    dropped when its IoU with a kept box of the same image is > ``nms_iou``.

    Example:
        >>> m = np.zeros((1, 8, 12)); m[0, 2:6, 1:5] = 1.0; m[0, 2:6, 7:11] = 0.3
        >>> b, s = maps_to_proposals(m, score="peak")[0]
        >>> b.tolist(), s.tolist()
        ([[1.0, 2.0, 5.0, 6.0], [7.0, 2.0, 11.0, 6.0]], [1.0, 0.3])
    """
    if not 0.0 <= float(nms_iou) <= 1.0:
        raise ValueError(f"nms_iou must be in [0, 1], got {nms_iou!r}")
    if not 0.0 < float(relative) <= 1.0:
        raise ValueError(f"relative must be in (0, 1], got {relative!r}")
    ts = sorted({float(t) for t in thresholds}, reverse=True)
    if not ts:
        raise ValueError("maps_to_proposals: thresholds is empty")
    for t in ts:
        _check_threshold(t)
    arr, p = _prepare(maps, probs, score, min_area, connectivity)
    top = arr.reshape(arr.shape[0], -1).max(axis=1)
    rows = [_proposal_rows(arr, top, p, t, score, relative, min_area, connectivity) for t in ts]
    rows = [r for r in rows if r is not None]
    out: BoxList = [(np.zeros((0, 4)), np.zeros(0)) for _ in range(arr.shape[0])]
    if not rows:
        return out
    c = np.concatenate(rows)
    # per blob (image, peak pixel): the component nearest its relative level, the higher threshold on ties
    c = c[np.lexsort((c[:, 4], c[:, 3], c[:, 1], c[:, 0]))]
    c = c[np.r_[True, (c[1:, 0] != c[:-1, 0]) | (c[1:, 1] != c[:-1, 1])]]
    for i in range(arr.shape[0]):
        mine = c[c[:, 0] == i]
        mine = mine[np.lexsort((mine[:, 1], -mine[:, 9]))]  # descending score, ties by the peak's raster order
        out[i] = _nms(mine[:, 5:9], mine[:, 9], nms_iou)
    return out


def _proposal_rows(arr: np.ndarray, top: np.ndarray, p: np.ndarray | None, t: float, score: str, relative: float,
                   min_area: int, connectivity: int) -> np.ndarray | None:
    """One row per component of the maps at threshold ``t`` (None when there is none): image, peak pixel, peak
    value, ``|t - relative * peak / top|`` (``top``: each map's maximum), ``-t``, box (4 columns), score."""
    h, w = arr.shape[1:]
    labels, ext = components(_foreground(arr, t), connectivity)
    if not len(ext):
        return None
    flat = labels.ravel()
    idx = np.flatnonzero(flat)
    lab = flat[idx] - 1
    vals = arr.ravel()[idx].astype(np.float64)
    # each component's maximum and its first pixel in raster order (pixels sorted by label, -value, index)
    order = np.lexsort((idx, -vals, lab))
    first = order[np.r_[True, lab[order][1:] != lab[order][:-1]]]
    area = np.bincount(lab, minlength=len(ext))
    peak = vals[first]
    value = peak if score.startswith("peak") else np.bincount(lab, weights=vals, minlength=len(ext)) / area
    img = ext[:, 0]
    if p is not None:
        value = value * p[img]
    rel = peak / np.where(top[img] > 0, top[img], 1.0)
    keep = area >= min_area
    return np.column_stack([img, idx[first] % (h * w), peak, np.abs(t - relative * rel), np.full(len(ext), -t),
                            ext[:, 1:], value])[keep]


def _nms(boxes: np.ndarray, scores: np.ndarray, nms_iou: float) -> tuple[np.ndarray, np.ndarray]:
    """Greedy box NMS over boxes sorted by descending score: a box goes when its IoU with a kept one is
    > ``nms_iou``."""
    from camkit.metrics.detection import iou_matrix

    iou = iou_matrix(boxes, boxes)
    kept = np.zeros(len(boxes), dtype=bool)
    for k in range(len(boxes)):
        kept[k] = not (iou[k, kept] > nms_iou).any()
    return boxes[kept], scores[kept]


def boxes_to_original(boxes: Any, transform: Any, map_size: tuple[int, int]) -> np.ndarray:
    """Boxes in map pixels -> the original image's pixels.

    ``map_size`` (h, w) is the maps' size; boxes are first scaled to the model frame
    (``transform.model_size``), then sent through ``transform.to_original`` (camkit.data.BoxTransform: undo
    resize, crop and flip), then clipped to the original image.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
    h, w = map_size
    mh, mw = transform.model_size
    b[:, [0, 2]] *= mw / w
    b[:, [1, 3]] *= mh / h
    # a crop padded past the image edge (aspect-preserving crops) must not yield boxes outside the image
    return clip_boxes(transform.to_original(b), transform.original_size)


def batch_to_original(results: BoxList, transforms: Sequence[Any], map_size: tuple[int, int]) -> BoxList:
    """:func:`boxes_to_original` for every image of a :func:`maps_to_boxes` result; scores are kept."""
    if len(results) != len(transforms):
        raise ValueError(f"batch_to_original: {len(results)} results but {len(transforms)} transforms")
    return [(boxes_to_original(b, t, map_size), s) for (b, s), t in zip(results, transforms)]


def components(fg: np.ndarray, connectivity: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Connected components of a batch of foreground masks (B, H, W), never joined across images.

    Returns ``(labels (B, H, W) int, extents (L, 5) int64)``: label ``l + 1`` is the component whose row
    ``l`` of ``extents`` is ``(image, x1, y1, x2, y2)``, its box in continuous pixel coordinates (columns
    j0..j1, rows i0..i1 give ``j0, i0, j1 + 1, i1 + 1``). Components are numbered in raster order, so
    ``extents[:, 0]`` is sorted.
    """
    from scipy import ndimage

    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = ndimage.generate_binary_structure(2, 1 if connectivity == 4 else 2)
    labels, n = ndimage.label(fg, structure=structure)
    if n == 0:
        return labels, np.zeros((0, 5), dtype=np.int64)
    if n <= max(_FEW_COMPONENTS, fg.size // 256):
        ext = np.array([(s[0].start, s[2].start, s[1].start, s[2].stop, s[1].stop)
                        for s in ndimage.find_objects(labels)], dtype=np.int64)
        return labels, ext
    # many small components (noisy maps at low thresholds): per-label min/max of the pixel coordinates beats
    # one slice tuple per component (5x on 32 noise maps of 46x30; 2x slower on 400 smooth 256x160 maps)
    flat = labels.ravel()
    idx = np.flatnonzero(flat)
    lab = flat[idx] - 1
    _, h, w = labels.shape
    img, rem = np.divmod(idx, h * w)
    y, x = np.divmod(rem, w)
    ext = np.empty((n, 5), dtype=np.int64)
    ext[:, 0][lab] = img
    ext[:, 1:3] = np.iinfo(np.int64).max
    ext[:, 3:] = -1
    np.minimum.at(ext[:, 1], lab, x)
    np.minimum.at(ext[:, 2], lab, y)
    np.maximum.at(ext[:, 3], lab, x + 1)
    np.maximum.at(ext[:, 4], lab, y + 1)
    return labels, ext


# --- internals -------------------------------------------------------------------------------------------

def _prepare(maps: Any, probs: Any, score: str, min_area: int,
             connectivity: int) -> tuple[np.ndarray, np.ndarray | None]:
    if hasattr(maps, "detach"):  # torch tensor, without importing torch here
        maps = maps.detach().float().cpu().numpy()
    arr = np.asarray(maps)
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    if arr.ndim == 4 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"maps must be (B, H, W), (H, W) or (B, 1, H, W); got shape {tuple(arr.shape)}")
    bad = ~np.isfinite(arr).reshape(arr.shape[0], -1).all(axis=1)
    if bad.any():
        raise ValueError(f"maps: non-finite values (NaN/inf) in batch item(s) {np.flatnonzero(bad)[:10].tolist()}")
    if score not in SCORES:
        raise ValueError(f"unknown score {score!r}; choose one of {', '.join(SCORES)}")
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity!r}")
    if int(min_area) < 1:
        raise ValueError(f"min_area must be >= 1, got {min_area!r}")
    p = None
    if score.endswith("_x_prob"):
        if probs is None:
            raise ValueError(f"score={score!r} needs the image-level probabilities: pass probs=(B,) "
                             "or choose score='peak' / 'mean'")
        if hasattr(probs, "detach"):
            probs = probs.detach().float().cpu().numpy()
        p = np.asarray(probs, dtype=np.float64).reshape(-1)
        if p.shape[0] != arr.shape[0]:
            raise ValueError(f"probs has {p.shape[0]} values for {arr.shape[0]} maps")
        if not np.isfinite(p).all():
            bad = np.flatnonzero(~np.isfinite(p))[:10].tolist()
            raise ValueError(f"probs: non-finite value at batch item(s) {bad}")
    return arr, p


def _check_threshold(t: float) -> None:
    if not (0.0 < float(t) <= 1.0):
        raise ValueError(f"threshold must be in (0, 1] (relative to each map's maximum), got {t!r}")


def _foreground(arr: np.ndarray, threshold: float) -> np.ndarray:
    """Mask (B, H, W): pixel >= threshold * its image's max; maps whose max is <= 0 are empty."""
    peak = arr.reshape(arr.shape[0], -1).max(axis=1)[:, None, None]
    return (arr >= threshold * peak) & (peak > 0)


def _boxes(arr: np.ndarray, fg: np.ndarray, p: np.ndarray | None, score: str, min_area: int,
           connectivity: int) -> BoxList:
    b = fg.shape[0]
    labels, ext = components(fg, connectivity)
    n = len(ext)
    if n == 0:
        return [(np.zeros((0, 4)), np.zeros(0)) for _ in range(b)]
    flat = labels.ravel()
    idx = np.flatnonzero(flat)
    lab = flat[idx] - 1
    vals = arr.ravel()[idx]
    area = np.bincount(lab, minlength=n)
    if score.startswith("peak"):
        value = np.full(n, -np.inf)
        np.maximum.at(value, lab, vals.astype(np.float64))
    else:
        value = np.bincount(lab, weights=vals.astype(np.float64), minlength=n) / area
    img = ext[:, 0].copy()
    if p is not None:
        value = value * p[img]
    keep = area >= min_area
    img, ext, value = img[keep], ext[keep], value[keep]
    boxes = ext[:, 1:].astype(np.float64)
    bounds = np.searchsorted(img, np.arange(b + 1))
    out: BoxList = []
    for i in range(b):
        lo, hi = bounds[i], bounds[i + 1]
        order = np.argsort(-value[lo:hi], kind="stable")
        out.append((boxes[lo:hi][order], value[lo:hi][order]))
    return out
