"""Threshold-free localisation metrics of weakly supervised object localisation (WSOL): PxAP, MaxBoxAcc, the
pointing game and the energy-based pointing game.

Conventions (docs/metrics.md has the long version):

- ``maps`` are (N, H, W) in [0, 1] (torch tensor or array; (N, 1, H, W) is accepted), used as given: the
  CAM engine's maps are already normalised per image, and none of these metrics rescales them.
- ``boxes`` are per image, (k, 4) ``x1 y1 x2 y2`` in continuous pixel coordinates of the maps: pixel (i, j)
  covers [j, j+1) x [i, i+1). A pixel is "inside" a box when its centre (j + 0.5, i + 0.5) is.
- ``masks`` are (N, H, W) bool.
- MaxBoxAcc has a second set of rules, ``convention="wsolevaluation"``: clovaai/wsolevaluation's (quantised maps,
  OpenCV's contours holes included, inclusive IoU), to compare with tables published with that code.
- The box metrics (MaxBoxAcc, the pointing games) are over the images that have at least one box; images
  without boxes are left out of the denominator (``n_images`` says how many counted). PxAP counts every pixel of
  every image, negatives included.

The per-image functions (:func:`box_hits`, :func:`pointing_hits`, :func:`energy_inside`) return one value per
image (NaN where an image has no box), which is what the study bootstrap resamples.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from camkit.metrics.boxes import components
from camkit.metrics.threshold_tree import best_box_iou, best_iou_per_threshold

IOU_THRESHOLDS = (0.3, 0.5, 0.7)


def pxap(maps: Any, masks: Any) -> float:
    """Pixel average precision (Choe et al., CVPR 2020) over all pixels of all images.

    Every distinct map value is a threshold: with pixels sorted by descending value and each tie group
    entering together, ``AP = sum_n (R_n - R_{n-1}) P_n``, the definition of
    ``sklearn.metrics.average_precision_score(masks.ravel(), maps.ravel())``. Computed in torch on the maps'
    device (one sort of all pixels; about as fast as scikit-learn on a CPU, benchmarks/).

    Example:
        >>> m = np.array([[[0.9, 0.1], [0.8, 0.4]]]); k = np.array([[[True, False], [False, True]]])
        >>> round(pxap(m, k), 4)
        0.8333
    """
    import torch

    x = _as_maps(maps).reshape(-1)
    y = _as_tensor(masks, x.device).reshape(-1)
    if y.numel() != x.numel():
        raise ValueError(f"pxap: masks have {y.numel()} pixels but maps have {x.numel()}; pass (N, H, W) of both")
    y = y.bool()
    n_pos = int(y.sum())
    if n_pos == 0:
        raise ValueError("pxap: the masks have no foreground pixel, so precision-recall is undefined")
    # order within a tie group does not matter (each group is read at its end), so the faster unstable sort
    xs, order = torch.sort(x, descending=True)
    ys = y[order].to(torch.float64)
    tp = torch.cumsum(ys, 0)
    # the last pixel of each tie group is where the threshold at that value is read
    last = torch.ones_like(xs, dtype=torch.bool)
    last[:-1] = xs[1:] != xs[:-1]
    tp = tp[last]
    seen = torch.nonzero(last).reshape(-1).to(torch.float64) + 1
    precision = tp / seen
    recall = tp / n_pos
    d_recall = torch.diff(recall, prepend=recall.new_zeros(1))
    return float((d_recall * precision).sum())


def pixel_histograms(maps: Any, masks: Any, bins: int = 100) -> np.ndarray:
    """(N, 2, bins) counts of each image's lesion (row 0) and other (row 1) pixels by map value bin
    ``min(bins - 1, floor(bins * value))``: what :func:`pxap_from_histograms` needs, small enough to store
    per image (the bench's PxAP)."""
    import torch

    x = _as_maps(maps)
    y = _as_tensor(masks, x.device).bool()
    if y.shape != x.shape:
        raise ValueError(f"pixel_histograms: masks {tuple(y.shape)} and maps {tuple(x.shape)} differ in shape")
    n = x.shape[0]
    b = (x.reshape(n, -1).clamp(0, 1) * bins).floor().clamp_max(bins - 1).long()
    flat = b + bins * (1 - y.reshape(n, -1).long()) + 2 * bins * torch.arange(n, device=x.device)[:, None]
    counts = torch.bincount(flat.reshape(-1), minlength=2 * bins * n)
    return counts.reshape(n, 2, bins).cpu().numpy()


def pxap_from_histograms(lesion: Any, other: Any) -> np.ndarray:
    """PxAP from binned pixel counts (..., bins) of lesion and other pixels, vectorised over leading axes:
    the threshold at bin k takes every pixel of bins >= k; ``AP = sum_k (R_k - R_{k+1}) P_k``. Equals
    :func:`pxap` on maps quantised to their bin's lower edge (empty bins change no recall)."""
    pos = np.asarray(lesion, dtype=np.float64)
    neg = np.asarray(other, dtype=np.float64)
    tp = np.cumsum(pos[..., ::-1], axis=-1)[..., ::-1]        # lesion pixels at or above bin k
    fp = np.cumsum(neg[..., ::-1], axis=-1)[..., ::-1]
    total = tp[..., :1]
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = tp / total
    d_recall = recall - np.concatenate([recall[..., 1:], np.zeros_like(recall[..., :1])], axis=-1)
    return (d_recall * precision).sum(axis=-1)


MAXBOXACC_CONVENTIONS = ("camkit", "wsolevaluation")


def box_hits(maps: Any, boxes: Sequence[Any], thresholds: Any = None,
             iou_thresholds: Sequence[float] = IOU_THRESHOLDS, multi_box: bool = True,
             connectivity: int = 8, convention: str = "camkit") -> np.ndarray:
    """Per image, threshold and IoU threshold: is the image a hit? (N, T, D) float, NaN for images without boxes.

    ``convention="camkit"`` (default), geometric: at threshold ``t`` the foreground is ``map >= t``; each
    8-connected component gives its tight box (pixel (i, j) covers [j, j+1) x [i, i+1)); an image is a hit at
    IoU ``d`` when some component's box (``multi_box=False``: only the largest component by pixel count, the
    first in raster order on ties) has ``IoU >= d`` with some ground-truth box. On the host: with ``multi_box``
    the components of every threshold come from one walk down the thresholds
    (:func:`camkit.metrics.threshold_tree.best_iou_per_threshold`); the largest-component rule labels each
    threshold's foreground (scipy.ndimage, all images in one call, a threshold selecting the same pixels as the
    previous one reusing its result).

    ``convention="wsolevaluation"``: the rules of clovaai/wsolevaluation's ``BoxEvaluator`` (the code that
    defines MaxBoxAcc and MaxBoxAccV2), reproduced to the figure (tests/data/wsolevaluation_maxboxacc.json):

    - the map (in [0, 1], used as given: the reference's evaluator does not rescale it) is quantised to
      ``q = uint8(255 * map)`` (truncated) and the foreground at ``t`` is ``q > int(t * max(q))``: strict,
      relative to the quantised maximum, so a map below 1/255 everywhere has no foreground at any ``t``;
    - every contour of ``cv2.findContours(RETR_TREE)`` gives a box: each 8-connected component's outer border
      and also each hole's border (:mod:`camkit.metrics.contours`, without OpenCV); ``multi_box=False``: only
      the contour of the largest ``cv2.contourArea`` (v1's box rule);
    - a box is ``[x, y, x + w, y + h]`` of ``cv2.boundingRect`` with ``x + w`` and ``y + h`` clipped to
      ``W - 1`` and ``H - 1``, and IoU counts ends inclusively (``(x2 - x1 + 1) * (y2 - y1 + 1)``), the
      ground-truth boxes' numbers included (the reference's are integers); no foreground gives the box
      ``[0, 0, 0, 0]``;
    - ``connectivity`` must be 8. The reference's thresholds are ``numpy.arange(0, 1, interval)``; pass the
      same array (``i / 100`` is not always the same float as ``numpy.arange(0, 1, 0.01)[i]``, and the
      truncation can tell them apart).
    """
    ts, ds = _box_hits_grid(thresholds, iou_thresholds, connectivity, convention)
    arr = _as_maps(maps).detach().cpu().numpy()
    n = arr.shape[0]
    gt = _boxes_list(boxes, n)
    has_box = np.array([len(g) > 0 for g in gt])
    out = np.full((n, ts.size, ds.size), np.nan)
    if not has_box.any():
        return out
    pad = _padded(gt)
    if convention == "wsolevaluation" or multi_box:
        keep = np.flatnonzero(has_box)        # images without a box are not scored: leave their pixels out
        best = (_best_iou_wsolevaluation(arr[keep], ts, pad[keep], multi_box) if convention == "wsolevaluation"
                else best_iou_per_threshold(arr[keep], ts, pad[keep], connectivity))
        out[keep] = best[..., None] >= ds
        return out
    sorted_vals = np.sort(arr.reshape(-1))
    previous_count, previous = -1, None
    for ti, t in enumerate(ts):
        count = sorted_vals.size - np.searchsorted(sorted_vals, t, side="left")
        if count != previous_count:  # a threshold selecting the same pixels as the previous one reuses its result
            previous_count = count
            previous = _best_iou(arr >= t, pad, multi_box, connectivity)
        out[:, ti, :] = previous[:, None] >= ds[None, :]
    out[~has_box] = np.nan
    return out


def _box_hits_grid(thresholds: Any, iou_thresholds: Sequence[float], connectivity: int,
                   convention: str) -> tuple[np.ndarray, np.ndarray]:
    """:func:`box_hits`' map thresholds and IoU thresholds as float arrays, checked with its convention."""
    if convention not in MAXBOXACC_CONVENTIONS:
        raise ValueError(f"convention must be one of {', '.join(MAXBOXACC_CONVENTIONS)}, got {convention!r}")
    if convention == "wsolevaluation" and connectivity != 8:
        raise ValueError("convention='wsolevaluation' follows OpenCV's 8-connected contours; leave connectivity 8")
    ts = np.arange(0, 1, 0.01) if thresholds is None else np.asarray(thresholds, dtype=np.float64).reshape(-1)
    if ts.size == 0:
        raise ValueError("box_hits: thresholds is empty")
    ds = np.asarray(iou_thresholds, dtype=np.float64).reshape(-1)
    if ds.size == 0 or ((ds <= 0) | (ds > 1)).any():
        raise ValueError(f"iou_thresholds must be non-empty values in (0, 1], got {list(iou_thresholds)}")
    return ts, ds


def max_box_acc(maps: Any, boxes: Sequence[Any], iou_thresholds: Sequence[float] = IOU_THRESHOLDS,
                thresholds: Any = None, multi_box: bool = True, convention: str = "camkit") -> dict[Any, Any]:
    """MaxBoxAcc (Choe et al., CVPR 2020): the best box accuracy over map thresholds, per IoU threshold.

    ``BoxAcc(t, d)`` = hits / images (see :func:`box_hits`; thresholds default ``numpy.arange(0, 1, 0.01)``),
    ``MaxBoxAcc(d) = max_t BoxAcc(t, d)``; ``"mean"`` averages over the IoU thresholds.

    What the figures are, by their names in clovaai/wsolevaluation (``convention="wsolevaluation"`` gives that
    code's numbers, as fractions where it prints percentages; the default ``"camkit"`` convention computes
    the same quantities with exact pixel geometry, see :func:`box_hits`):

    - MaxBoxAccV2 = ``"mean"`` with the defaults (every box, IoU 0.3/0.5/0.7);
    - MaxBoxAcc (v1, the CVPR paper's) = ``[0.5]`` with ``multi_box=False`` (one box per image and threshold:
      the largest contour); v1 reports IoU 0.5 only;
    - ``"mean"`` with ``multi_box=False`` (the largest box, averaged over the IoU thresholds) is neither: a
      largest-box MaxBoxAcc averaged over IoUs, which camkit offers but wsolevaluation does not report.

    Returns:
        ``{d: MaxBoxAcc(d) for each d, "mean": ..., "best_threshold": {d: t}, "box_acc": (T, D) array,
        "thresholds": (T,) array, "n_images": int, "convention": str}``; the best threshold is the lowest one
        reaching the maximum.

    Example:
        >>> m = np.zeros((1, 8, 8)); m[0, 2:6, 2:6] = 0.8
        >>> max_box_acc(m, [np.array([[2, 2, 6, 6]])])[0.7]
        1.0
        >>> max_box_acc(m, [np.array([[2, 2, 6, 6]])], convention="wsolevaluation")[0.7]   # [2, 2, 5, 5] inclusive
        1.0
    """
    hits = box_hits(maps, boxes, thresholds, iou_thresholds, multi_box, convention=convention)
    ts = np.arange(0, 1, 0.01) if thresholds is None else np.asarray(thresholds, dtype=np.float64).reshape(-1)
    counted = ~np.isnan(hits[:, 0, 0])
    if not counted.any():
        raise ValueError("max_box_acc: no image has a ground-truth box")
    acc = hits[counted].mean(axis=0)                       # (T, D)
    best = acc.argmax(axis=0)
    out: dict[Any, Any] = {float(d): float(acc[best[j], j]) for j, d in enumerate(iou_thresholds)}
    out["mean"] = float(np.mean([out[float(d)] for d in iou_thresholds]))
    out["best_threshold"] = {float(d): float(ts[best[j]]) for j, d in enumerate(iou_thresholds)}
    out["box_acc"] = acc
    out["thresholds"] = ts
    out["n_images"] = int(counted.sum())
    out["convention"] = convention
    return out


#: how :func:`pointing_hits` scores an image whose maximum value sits on several pixels
POINTING_TIES = ("share", "any", "first")


def pointing_hits(maps: Any, boxes: Sequence[Any], tolerance: float = 0, ties: str = "share") -> np.ndarray:
    """Per image (N,): how far the map's maximum lands in a ground-truth box grown by ``tolerance`` pixels on
    every side (a pixel is in when its centre is); NaN for an image without boxes.

    The maxima are the pixels whose value equals the image's maximum exactly (no rounding: maps are compared as
    given, so 1 - 1e-7 does not tie with 1). ``ties`` says how several of them count:

    - ``"share"`` (default): the fraction of the tied maxima inside, a value in [0, 1]; with one maximum it is
      the usual 0/1 hit. Neutral: no position is preferred, and a flat map scores the share of its pixels
      inside the boxes, i.e. what a random pick among the maxima scores on average.
    - ``"any"``: 1.0 when any maximum is inside (Quantus 0.6's ``PointingGame``); favours flat maps.
    - ``"first"``: only the first maximum in row-major order counts (``argmax``; camkit's rule before issue
      27), which favours boxes near the top-left corner.

    ``tolerance`` grows the boxes for every maximum alike; it does not change which pixels tie.
    """
    import torch

    tol = float(tolerance)
    if tol < 0:
        raise ValueError(f"pointing_game: tolerance must be >= 0, got {tolerance!r}")
    if ties not in POINTING_TIES:
        raise ValueError(f"pointing_game: ties must be one of {', '.join(POINTING_TIES)}; got {ties!r}")
    x = _as_maps(maps)
    n, _, w = x.shape
    gt = _boxes_list(boxes, n)
    flat = x.reshape(n, -1)
    # (image, pixel) of every maximum, in row-major order within each image (nonzero's order)
    img, idx = (t.cpu().numpy() for t in torch.nonzero(flat == flat.amax(dim=1, keepdim=True), as_tuple=True))
    if ties == "first":
        _, first = np.unique(img, return_index=True)
        img, idx = img[first], idx[first]
    cy, cx = (idx // w + 0.5)[:, None], (idx % w + 0.5)[:, None]
    pad = _padded(gt)[img]                                         # (M, K, 4); NaN rows compare False
    inside = ((pad[..., 0] - tol <= cx) & (cx < pad[..., 2] + tol)
              & (pad[..., 1] - tol <= cy) & (cy < pad[..., 3] + tol)).any(axis=1)
    hits = np.bincount(img, weights=inside, minlength=n)          # maxima inside, per image
    if ties == "share":
        out = hits / np.bincount(img, minlength=n)                # every image has >= 1 maximum
    else:
        out = (hits > 0).astype(np.float64)
    out[[len(g) == 0 for g in gt]] = np.nan
    return out


def pointing_game(maps: Any, boxes: Sequence[Any], tolerance: float = 0, ties: str = "share") -> float:
    """The pointing game (Zhang et al., ECCV 2016): mean over images (with a box) of whether the map's maximum
    falls in a ground-truth box grown by ``tolerance`` pixels (Zhang et al. use 15 px at their image size).
    Tied maxima count by ``ties`` (:func:`pointing_hits`; default: the share of them inside).

    Example:
        >>> m = np.zeros((2, 4, 4)); m[0, 1, 1] = 1; m[1, 3, 3] = 1
        >>> pointing_game(m, [np.array([[0, 0, 2, 2]]), np.array([[0, 0, 2, 2]])])
        0.5
        >>> m[1, 0, 0] = 1   # two tied maxima, one inside: half a hit
        >>> pointing_game(m, [np.array([[0, 0, 2, 2]]), np.array([[0, 0, 2, 2]])])
        0.75
    """
    return _nanmean(pointing_hits(maps, boxes, tolerance, ties), "pointing_game")


def energy_inside(maps: Any, boxes: Sequence[Any]) -> np.ndarray:
    """Per image (N,): map mass on the pixels inside the union of its boxes / the map's mass (0 when the map
    is all zeros); NaN for an image without boxes. Computed on the maps' device."""
    import torch

    x = _as_maps(maps)
    n, h, w = x.shape
    gt = _boxes_list(boxes, n)
    pad = torch.as_tensor(_padded(gt), device=x.device)           # (N, K, 4), NaN rows compare False
    cols = torch.arange(w, device=x.device, dtype=torch.float64) + 0.5
    rows = torch.arange(h, device=x.device, dtype=torch.float64) + 0.5
    in_rows = (rows >= pad[..., 1:2]) & (rows < pad[..., 3:4])     # (N, K, H)
    in_cols = (cols >= pad[..., 0:1]) & (cols < pad[..., 2:3])     # (N, K, W)
    inside = (in_rows[..., :, None] & in_cols[..., None, :]).any(dim=1)   # the union of each image's boxes
    xd = x.to(torch.float64)
    total = xd.sum(dim=(1, 2))
    within = (xd * inside).sum(dim=(1, 2))
    ratio = torch.where(total > 0, within / total.clamp_min(torch.finfo(torch.float64).tiny), 0.0)
    out = ratio.cpu().numpy()
    out[[len(g) == 0 for g in gt]] = np.nan
    return out


def energy_pointing_game(maps: Any, boxes: Sequence[Any]) -> float:
    """The energy-based pointing game (Wang et al., Score-CAM, CVPRW 2020): mean over images (with a box) of
    the map's mass inside the union of the boxes over its whole mass.

    Example:
        >>> m = np.zeros((1, 4, 4)); m[0, 0, 0] = 3; m[0, 3, 3] = 1
        >>> energy_pointing_game(m, [np.array([[0, 0, 2, 2]])])
        0.75
    """
    return _nanmean(energy_inside(maps, boxes), "energy_pointing_game")


# --- internals -------------------------------------------------------------------------------------------

def _as_tensor(x: Any, device: Any = None) -> Any:
    import torch

    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(np.asarray(x))
    return x if device is None else x.to(device)


def _as_maps(maps: Any) -> Any:
    import torch

    x = _as_tensor(maps)
    if x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 3:
        raise ValueError(f"maps must be (N, H, W) or (N, 1, H, W); got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        x = x.to(torch.float32)
    if not bool(torch.isfinite(x).all()):
        bad = (~torch.isfinite(x)).flatten(1).any(dim=1).nonzero().reshape(-1)[:10].tolist()
        raise ValueError(f"maps: non-finite values (NaN/inf) in image(s) {bad}")
    return x


def _boxes_list(boxes: Sequence[Any], n: int) -> list[np.ndarray]:
    if len(boxes) != n:
        raise ValueError(f"{len(boxes)} box lists for {n} maps: pass one (k, 4) array per image (k may be 0)")
    out = []
    for i, b in enumerate(boxes):
        arr = np.asarray(b.detach().cpu() if hasattr(b, "detach") else b, dtype=np.float64).reshape(-1, 4)
        if not np.isfinite(arr).all() or ((arr[:, 2] < arr[:, 0]) | (arr[:, 3] < arr[:, 1])).any():
            raise ValueError(f"boxes of image {i}: each row must be finite x1 y1 x2 y2 with x2 >= x1, y2 >= y1")
        out.append(arr)
    return out


def _padded(gt: list[np.ndarray]) -> np.ndarray:
    """(N, K, 4) the boxes of every image, NaN-padded to the most boxes any image has (K >= 1)."""
    pad = np.full((len(gt), max([len(g) for g in gt] + [1]), 4), np.nan)
    for i, g in enumerate(gt):
        pad[i, :len(g)] = g
    return pad


def _best_iou(fg: np.ndarray, gt: np.ndarray, multi_box: bool, connectivity: int) -> np.ndarray:
    """(N,) the best IoU between a foreground component's box and a ground-truth box of the same image."""
    n = fg.shape[0]
    best = np.zeros(n)
    labels, ext = components(fg, connectivity)
    if len(ext) == 0:
        return best
    img, pred = ext[:, 0], ext[:, 1:].astype(np.float64)
    if not multi_box:
        area = np.bincount(labels.ravel(), minlength=len(ext) + 1)[1:]
        # the largest component of each image; equal sizes: the first in raster order (the lower label)
        order = np.lexsort((np.arange(len(ext)), -area, img))
        first = np.ones(len(order), dtype=bool)
        first[1:] = img[order][1:] != img[order][:-1]
        keep = order[first]
        img, pred = img[keep], pred[keep]
    iou = best_box_iou(pred, gt[img])
    np.maximum.at(best, img, iou)
    return best


def _best_iou_wsolevaluation(arr: np.ndarray, ts: np.ndarray, gt: np.ndarray, multi_box: bool) -> np.ndarray:
    """(N, T) the best inclusive IoU of a contour box with a ground-truth box, wsolevaluation's rules (see
    :func:`box_hits`)."""
    from camkit.metrics.contours import contour_boxes

    values = arr.astype(np.float64)               # the reference checks for float64 maps and scales those
    if (values < 0).any() or (values > 1).any():
        raise ValueError("convention='wsolevaluation' takes maps in [0, 1] (the reference refuses others; "
                         "normalise each map first)")
    n, h, w = values.shape
    q = (values * 255).astype(np.uint8)           # truncation, as the reference's astype(np.uint8)
    peak = q.reshape(n, -1).max(axis=1).astype(np.float64)
    # int(t * max): the product in float64, then truncated (t >= 0 here; a negative t keeps every pixel > it)
    levels = np.trunc(ts[None, :] * peak[:, None])
    best = np.zeros((n, ts.size))
    previous, previous_best = None, None
    for k in range(ts.size):
        if previous is not None and np.array_equal(levels[:, k], previous):
            best[:, k] = previous_best
            continue
        fg = q > levels[:, k][:, None, None]
        image, pred = contour_boxes(fg, largest_only=not multi_box)
        # no contour: the reference scores the box [0, 0, 0, 0]
        empty = np.setdiff1d(np.arange(n), image)
        image = np.concatenate([image, empty])
        pred = np.concatenate([pred, np.zeros((len(empty), 4), dtype=pred.dtype)]).astype(np.float64)
        pred[:, 2] = np.minimum(pred[:, 2], w - 1)
        pred[:, 3] = np.minimum(pred[:, 3], h - 1)
        found = np.zeros(n)
        np.maximum.at(found, image, _inclusive_iou(pred, gt[image]))
        best[:, k] = found
        previous, previous_best = levels[:, k], found
    return best


def _inclusive_iou(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(L,) the best IoU of each box (L, 4) with its image's boxes (L, K, 4, NaN rows count 0), both read as
    inclusive pixel ranges: ``x1..x2`` spans ``x2 - x1 + 1`` pixels (wsolevaluation's IoU)."""
    iw = np.maximum(np.minimum(pred[:, None, 2], gt[..., 2]) - np.maximum(pred[:, None, 0], gt[..., 0]) + 1, 0)
    ih = np.maximum(np.minimum(pred[:, None, 3], gt[..., 3]) - np.maximum(pred[:, None, 1], gt[..., 1]) + 1, 0)
    inter = iw * ih
    union = ((pred[:, 2] - pred[:, 0] + 1) * (pred[:, 3] - pred[:, 1] + 1))[:, None] \
        + (gt[..., 2] - gt[..., 0] + 1) * (gt[..., 3] - gt[..., 1] + 1) - inter
    # a union of no pixels (degenerate boxes) scores 0, as in the reference
    iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    return np.nan_to_num(iou, nan=0.0).max(axis=1)


def _nanmean(values: np.ndarray, name: str) -> float:
    if np.isnan(values).all():
        raise ValueError(f"{name}: no image has a ground-truth box")
    return float(np.nanmean(values))
