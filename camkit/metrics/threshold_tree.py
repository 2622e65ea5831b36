"""Connected components of a map thresholded at every level, in one pass: what MaxBoxAcc needs.

``map >= t`` only grows as ``t`` falls, so the components at a lower threshold are unions of those at a
higher one plus the pixels that enter. :func:`best_iou_per_threshold` walks the thresholds downwards once and,
at each, joins only the pixels that enter with their neighbours (a union-find over components, vectorised with
numpy and ``scipy.sparse.csgraph``), keeping each component's box. The work is proportional to the pixels,
not to pixels x thresholds as relabelling every thresholded mask is (``scipy.ndimage.label`` 100 times):
~6x faster on the default bench's CAM maps, mostly background that enters at the lowest thresholds, 1.3-1.6x
on the smooth maps of benchmarks/test_wsol_metrics_speed.py (docs/performance.md), with the same components,
boxes and IoUs bit for bit (tests/test_metrics_localization.py compares it with relabelling and a flood fill).
"""
from __future__ import annotations

import numpy as np

def best_iou_per_threshold(maps: np.ndarray, thresholds: np.ndarray, gt: np.ndarray,
                           connectivity: int = 8, chunk: int = 1 << 18) -> np.ndarray:
    """(N, T): at each threshold ``t``, the best IoU between the tight box of a connected component of
    ``maps[n] >= t`` and a ground-truth box of image ``n`` (0 when nothing overlaps).

    ``maps`` (N, H, W) float; ``thresholds`` (T,) in any order; ``gt`` (N, K, 4) ``x1 y1 x2 y2`` boxes,
    NaN-padded rows ignored. A component over columns j0..j1 and rows i0..i1 has the box
    ``(j0, i0, j1 + 1, i1 + 1)``; ``connectivity`` 8 (default) or 4. At most ``chunk`` pixels join at once
    (a threshold's pixels in several chunks give the same components): the scratch of a chunk is ~250 bytes
    a pixel (~65 MB by default), beside ~30 bytes a pixel of the batch for the whole walk.

    Example:
        >>> m = np.zeros((1, 4, 4)); m[0, :2, :2] = 0.9; m[0, 2, 2] = 0.5
        >>> best_iou_per_threshold(m, np.array([0.5, 0.8]), np.array([[[0.0, 0.0, 2.0, 2.0]]])).round(4)
        array([[0.4444, 1.    ]])
    """
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity!r}")
    n, h, w = maps.shape
    ts = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    levels, inverse = np.unique(ts, return_inverse=True)
    if len(levels) > np.iinfo(np.int16).max:
        raise ValueError(f"at most {np.iinfo(np.int16).max} distinct thresholds, got {len(levels)}")
    # a pixel of value v is foreground at levels[k] for every k < (number of levels <= v), compared in float64
    # exactly as ``maps >= t`` with a float64 threshold; int16 so that the stable sort is a radix sort
    values = maps.reshape(-1).astype(np.float64)
    entry = np.searchsorted(levels, values, side="right").astype(np.int16)
    entry[np.isnan(values)] = 0                         # NaN >= t is False: never foreground
    order = np.argsort(entry, kind="stable")          # pixels grouped by the level they enter at, raster order
    starts = np.searchsorted(entry[order], np.arange(len(levels) + 2))
    gt = np.asarray(gt, dtype=np.float64)
    walk = _Walk(n, h, w, gt, connectivity)
    # an image whose every pixel is foreground is one component, the whole image: at the lowest levels (a
    # threshold of 0 takes every pixel) that is most of the pixels, and needs no neighbour at all
    filled = np.zeros(n, dtype=np.int64)
    whole = np.full(n, np.nan)
    whole_box = np.array([[0.0, 0.0, w, h]])
    best = np.zeros((n, len(levels)))
    for k in range(len(levels) - 1, -1, -1):
        entering = order[starts[k + 1]:starts[k + 2]]  # foreground from levels[k] down
        if len(entering):
            image = entering // (h * w)
            filled += np.bincount(image, minlength=n)
            full_now = (filled == h * w) & np.isnan(whole)
            if full_now.any():
                whole[full_now] = best_box_iou(np.repeat(whole_box, int(full_now.sum()), axis=0), gt[full_now])
                entering = entering[~full_now[image]]
            for start in range(0, len(entering), chunk):
                walk.add(entering[start:start + chunk])
        best[:, k] = np.where(np.isnan(whole), walk.best(), whole)
    return best[:, inverse]


class _Walk:
    """The components so far: pixel -> component id, a parent forest over ids, each root's box and IoU.

    Pixels live in a grid padded by one background pixel around every image, so that a neighbour index is
    never out of bounds nor in another image."""

    def __init__(self, n: int, h: int, w: int, gt: np.ndarray, connectivity: int) -> None:
        self.n, self.h, self.w, self.gt = n, h, w, gt
        self.pw = w + 2
        size_padded = n * (h + 2) * self.pw
        steps = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                 if (dy, dx) != (0, 0) and (connectivity == 8 or dy == 0 or dx == 0)]
        self.offsets = np.array([dy * self.pw + dx for dy, dx in steps], dtype=np.int64)
        idx = np.int32 if size_padded < np.iinfo(np.int32).max // 2 else np.int64   # halves the gathers' traffic
        self.forward = self.offsets > 0                       # each pair of entering pixels once
        self.comp = np.full(size_padded, -1, dtype=idx)       # the id a foreground pixel got when it entered
        self.local = np.full(size_padded, -1, dtype=idx)      # scratch: index among the pixels entering now
        size = 1024
        self.parent = np.arange(size, dtype=np.int64)
        self.slot = np.full(size, -1, dtype=np.int64)        # scratch: graph node of a root
        self.box = np.zeros((size, 4), dtype=np.int64)       # x1 y1 x2 y2 (exclusive ends)
        self.image = np.zeros(size, dtype=np.int64)
        self.iou = np.zeros(size)
        self.count = 0
        self.candidates = np.zeros(0, dtype=np.int64)        # live roots that overlap a ground-truth box

    def add(self, pixels: np.ndarray) -> None:
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        m = len(pixels)
        img, rem = np.divmod(pixels, self.h * self.w)
        y, x = np.divmod(rem, self.w)
        padded = (img * (self.h + 2) + y + 1) * self.pw + x + 1
        self.local[padded] = np.arange(m)
        near = padded[:, None] + self.offsets[None, :]        # (m, 8)
        fresh = self.local[near[:, self.forward]]
        self.local[padded] = -1
        pi, pj = np.nonzero(fresh >= 0)
        old = self.comp[near]
        oi, oj = np.nonzero(old >= 0)
        # old neighbours: their components' current roots, numbered as graph nodes after the entering pixels
        roots = self._find(old[oi, oj])
        uniq, node = self._number(roots)
        a = np.concatenate([np.arange(m), pi, oi])
        b = np.concatenate([np.arange(m), fresh[pi, pj], m + node])
        size = m + len(uniq)
        graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(size, size)).tocsr()
        n_groups, group = connected_components(graph, directed=False)
        gp, go = group[:m], group[m:]
        # each group keeps its smallest old root's id; a group of entering pixels only gets a new id
        big = np.iinfo(np.int64).max
        rep = np.full(n_groups, big)
        np.minimum.at(rep, go, uniq)
        fresh_groups = np.flatnonzero(rep == big)
        rep[fresh_groups] = self._new_ids(len(fresh_groups))
        gbox = np.empty((n_groups, 4), dtype=np.int64)
        gbox[:, :2], gbox[:, 2:] = big, -1
        ob = self.box[uniq]
        for c, (mine, theirs, ufunc) in enumerate(((x, ob[:, 0], np.minimum), (y, ob[:, 1], np.minimum),
                                                   (x + 1, ob[:, 2], np.maximum), (y + 1, ob[:, 3], np.maximum))):
            col = gbox[:, c].copy()
            ufunc.at(col, gp, mine)
            ufunc.at(col, go, theirs)
            gbox[:, c] = col
        gimg = np.empty(n_groups, dtype=np.int64)
        gimg[gp] = img
        self.parent[uniq] = rep[go]
        self.comp[padded] = rep[gp]
        self.box[rep] = gbox
        self.image[rep] = gimg
        self.iou[rep] = best_box_iou(gbox.astype(np.float64), self.gt[gimg])
        self.iou[uniq[self.parent[uniq] != uniq]] = 0.0        # merged into another: no longer a root
        keep = self.candidates[self.iou[self.candidates] > 0]
        self.candidates = np.union1d(keep, rep[self.iou[rep] > 0])

    def best(self) -> np.ndarray:
        out = np.zeros(self.n)
        c = self.candidates
        np.maximum.at(out, self.image[c], self.iou[c])
        return out

    def _find(self, ids: np.ndarray) -> np.ndarray:
        r = ids
        while True:
            up = self.parent[r]
            if np.array_equal(up, r):
                break
            r = up
        self.parent[ids] = r                                  # compress the paths just walked
        return r

    def _number(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The distinct ids and each one's index among them, without sorting: whichever write of a repeated
        id lands in ``slot``, exactly one position reads itself back."""
        pos = np.arange(len(ids))
        self.slot[ids] = pos
        uniq = ids[self.slot[ids] == pos]
        self.slot[uniq] = np.arange(len(uniq))
        node = self.slot[ids]
        self.slot[uniq] = -1
        return uniq, node

    def _new_ids(self, k: int) -> np.ndarray:
        start, self.count = self.count, self.count + k
        if self.count > len(self.parent):
            old, grow = len(self.parent), max(self.count, 2 * len(self.parent))
            self.parent = np.concatenate([self.parent, np.arange(old, grow, dtype=np.int64)])
            self.slot = np.concatenate([self.slot, np.full(grow - old, -1, dtype=np.int64)])
            self.box = np.concatenate([self.box, np.zeros((grow - old, 4), dtype=np.int64)])
            self.image = np.concatenate([self.image, np.zeros(grow - old, dtype=np.int64)])
            self.iou = np.concatenate([self.iou, np.zeros(grow - old)])
        return np.arange(start, self.count, dtype=np.int64)


def best_box_iou(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(L,) the best IoU of each box (L, 4) with its image's ground truth (L, K, 4), NaN rows counting 0."""
    iw = np.clip(np.minimum(pred[:, None, 2], gt[..., 2]) - np.maximum(pred[:, None, 0], gt[..., 0]), 0, None)
    ih = np.clip(np.minimum(pred[:, None, 3], gt[..., 3]) - np.maximum(pred[:, None, 1], gt[..., 1]), 0, None)
    inter = iw * ih
    union = ((pred[:, 2] - pred[:, 0]) * (pred[:, 3] - pred[:, 1]))[:, None] \
        + (gt[..., 2] - gt[..., 0]) * (gt[..., 3] - gt[..., 1]) - inter
    iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    return np.nan_to_num(iou, nan=0.0).max(axis=1)
