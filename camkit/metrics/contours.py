"""The boxes ``cv2.findContours(mode=RETR_TREE)`` would give for a batch of binary masks, from labelling alone.

MaxBoxAcc as clovaai/wsolevaluation computes it (the code that defines MaxBoxAccV2, Choe et al. CVPR 2020)
takes one box per *contour* of the thresholded map, and OpenCV's contours (Suzuki & Abe's border following on
8-connected foreground) are of two kinds:

- the outer border of each 8-connected foreground component: its box is the component's tight box;
- the border of each hole, a 4-connected background component that does not reach the image edge (pixels off
  the image are background): traced through the foreground pixels around it, so its box is the hole's tight
  box grown by one pixel on every side.

MaxBoxAcc v1 keeps only the contour of the largest ``cv2.contourArea``: the area of the polygon through the
centres of the contour's pixels. Counted over the 2x2 blocks of pixels (the unit squares between four pixel
centres): an outer border encloses a block whole when all four of its pixels are inside the border (the
component with its holes filled) and half of it when three are; a hole's border encloses a block whole when
two or more of its pixels are in the filled hole and half of it when one is. Filled regions nest (a hole can
hold components that have holes), so the areas add up the tree of contours from its leaves.

OpenCV lists the contours as a depth-first walk of that tree (each contour followed by what it encloses) with
siblings in the reverse of the order the raster scan finds them; v1 takes the first of equally large ones.

Everything here is numpy and scipy.ndimage; tests/test_metrics_localization.py compares the boxes, areas and
order with OpenCV itself on random masks, and the MaxBoxAcc built on them with figures recorded from
wsolevaluation's own code.
"""
from __future__ import annotations

import numpy as np

from camkit.metrics.boxes import components


def contour_boxes(fg: np.ndarray, largest_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The contours' boxes of a batch of masks (B, H, W) bool, as ``cv2.boundingRect`` extents.

    Returns ``(image (L,) int64, boxes (L, 4) int64)``, boxes ``x1 y1 x2 y2`` with exclusive ends (``x, y,
    x + w, y + h`` of ``cv2.boundingRect``): every contour (outer borders and hole borders), or with
    ``largest_only`` one per image that has foreground, the first contour of the largest area in OpenCV's
    order. Images without foreground have no row.

    Example:
        >>> fg = np.zeros((1, 5, 5), dtype=bool); fg[0, 1:4, 1:4] = True; fg[0, 2, 2] = False
        >>> contour_boxes(fg)[1].tolist()
        [[1, 1, 4, 4], [1, 1, 4, 4]]
    """
    fg = np.asarray(fg, dtype=bool)
    outer_labels, outer, bg_labels, bg, is_hole, hole_box = _labelled(fg)
    if not largest_only:
        image = np.concatenate([outer[:, 0], bg[is_hole, 0]])
        boxes = np.concatenate([outer[:, 1:], hole_box[is_hole]]).reshape(-1, 4)
        return image, boxes
    return _largest(fg, outer_labels, outer, bg_labels, bg, is_hole, hole_box)


def contour_areas(fg: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``cv2.contourArea`` of every contour of a batch of masks (B, H, W) bool, and where each sits in OpenCV's
    list.

    Returns ``(image, boxes, areas, rank)`` over the contours (outer borders first, then holes, each in
    raster order of their first pixel): ``rank`` orders the contours of one image as
    ``cv2.findContours(RETR_TREE)`` lists them (0 first).
    """
    fg = np.asarray(fg, dtype=bool)
    outer_labels, outer, bg_labels, bg, is_hole, hole_box = _labelled(fg)
    tree = _Tree(fg, outer_labels, outer, bg_labels, bg, is_hole)
    keep = np.concatenate([np.ones(len(outer), dtype=bool), is_hole])
    image = np.concatenate([outer[:, 0], bg[:, 0]])[keep]
    boxes = np.concatenate([outer[:, 1:], hole_box]).reshape(-1, 4)[keep]
    return image, boxes, tree.area[keep], tree.rank()[keep]


def _labelled(fg: np.ndarray) -> tuple[np.ndarray, ...]:
    """8-connected foreground components and 4-connected background ones (``components``' labels and
    extents), which background components are holes, and each one's hole-border box."""
    _, h, w = fg.shape
    outer_labels, outer = components(fg, 8)
    bg_labels, bg = components(~fg, 4)
    # a background component reaching the image edge is outside every contour; the others are holes
    is_hole = (bg[:, 1] > 0) & (bg[:, 2] > 0) & (bg[:, 3] < w) & (bg[:, 4] < h)
    hole_box = bg[:, 1:].copy()
    hole_box[:, :2] -= 1                    # the hole's border runs through the foreground pixels around it
    hole_box[:, 2:] += 1
    return outer_labels, outer, bg_labels, bg, is_hole, hole_box


def _largest(fg: np.ndarray, outer_labels: np.ndarray, outer: np.ndarray, bg_labels: np.ndarray,
             bg: np.ndarray, is_hole: np.ndarray, hole_box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(outer) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 4), dtype=np.int64)
    tree = _Tree(fg, outer_labels, outer, bg_labels, bg, is_hole)
    image = np.concatenate([outer[:, 0], bg[:, 0]])
    boxes = np.concatenate([outer[:, 1:], hole_box]).reshape(-1, 4)
    valid = np.concatenate([np.ones(len(outer), dtype=bool), is_hole])
    area = np.where(valid, tree.area, -1.0)
    best = np.full(fg.shape[0], -1.0)
    np.maximum.at(best, image, area)
    tied = np.flatnonzero(valid & (area == best[image]))
    # the first of the largest in OpenCV's order; the walk's order is only needed where sizes tie
    rank = tree.rank(tied) if len(tied) > np.unique(image[tied]).size else np.zeros(len(tied))
    order = np.lexsort((rank, image[tied]))
    first = np.ones(len(order), dtype=bool)
    first[1:] = image[tied][order][1:] != image[tied][order][:-1]
    chosen = tied[order[first]]
    return image[chosen], boxes[chosen]


class _Tree:
    """The nesting of a batch's contours. Nodes are the foreground components (0..n_fg-1, an outer border
    each) then the background components (n_fg.., a hole border each where ``is_hole``); every node's
    parent is the node that encloses it, -1 at the top of an image."""

    def __init__(self, fg: np.ndarray, outer_labels: np.ndarray, outer: np.ndarray, bg_labels: np.ndarray,
                 bg: np.ndarray, is_hole: np.ndarray) -> None:
        _, h, w = fg.shape
        n_fg, n_bg = len(outer), len(bg)
        self.n_fg = n_fg
        first_fg = _first_pixels(outer_labels, n_fg)
        first_bg = _first_pixels(bg_labels, n_bg)
        # the raster scan finds a component's border at its first pixel (a hole's one pixel to its left):
        # the order of first pixels is the order of discovery among siblings
        self.start = np.concatenate([first_fg, first_bg])
        parent = np.full(n_fg + n_bg, -1, dtype=np.int64)
        # a hole's first pixel has foreground on its left, and that is the component around the hole
        holes = np.flatnonzero(is_hole)
        parent[n_fg + holes] = outer_labels.reshape(-1)[first_bg[holes] - 1] - 1
        # a component's first pixel has background above it (or is on the top row: outside everything)
        row = (first_fg // w) % h
        inner = np.flatnonzero(row > 0)
        above = bg_labels.reshape(-1)[first_fg[inner] - w] - 1
        inside = is_hole[above]
        parent[inner[inside]] = n_fg + above[inside]
        self.parent = parent
        self.area = self._areas(fg, outer_labels, bg_labels, is_hole)

    def _areas(self, fg: np.ndarray, outer_labels: np.ndarray, bg_labels: np.ndarray,
               is_hole: np.ndarray) -> np.ndarray:
        n_fg, size = self.n_fg, len(self.parent)
        _, h, w = fg.shape
        own = np.zeros(size)
        # foreground in a 2x2 block is one component (its pixels all touch): 4 -> 1, 3 -> 1/2
        count = sum(c.view(np.uint8) for c in _corners(fg))
        blocks = _block_origins(np.flatnonzero(count >= 3), h, w)
        if len(blocks):
            corners = np.stack([outer_labels.reshape(-1)[blocks + o] for o in (0, 1, w, w + 1)])
            label = corners.max(axis=0)                   # the component (0 at the block's empty corner)
            weight = np.where((corners > 0).sum(axis=0) == 4, 1.0, 0.5)
            own[:n_fg] = np.bincount(label - 1, weights=weight, minlength=n_fg)
        # background in a block may belong to two components (a diagonal pair): count each one's own pixels;
        # a hole's border encloses a block whole with 2+ of its pixels and half of it with one. Only blocks
        # with a hole pixel matter, usually few
        if is_hole.any():
            hole_pixel = np.concatenate([[False], is_hole])[bg_labels]
            near = sum(c.view(np.uint8) for c in _corners(hole_pixel))
            blocks = _block_origins(np.flatnonzero(near), h, w)
            corners = np.stack([bg_labels.reshape(-1)[blocks + o] for o in (0, 1, w, w + 1)])   # (4, K)
            for k in range(4):
                lab = corners[k]
                same = (corners == lab).sum(axis=0)
                # each (block, component) pair once: at the first corner holding it (halves add up exactly)
                sel = (lab > 0) & ~(corners[:k] == lab).any(axis=0)
                value = np.where(same == 1, 0.5, 1.0)
                own[n_fg:] += np.bincount(lab[sel] - 1, weights=value[sel], minlength=size - n_fg)
            own[n_fg:][~is_hole] = 0.0
        # a border's polygon holds everything nested inside it: add the subtrees, deepest nodes first
        area = own.copy()
        depth = self._depth()
        for d in range(int(depth.max(initial=0)), 0, -1):
            at = np.flatnonzero(depth == d)
            np.add.at(area, self.parent[at], area[at])
        return area

    def _depth(self) -> np.ndarray:
        depth = np.zeros(len(self.parent), dtype=np.int64)
        up = self.parent.copy()
        while (up >= 0).any():
            live = up >= 0
            depth[live] += 1
            up[live] = self.parent[up[live]]
        return depth

    def rank(self, nodes: np.ndarray | None = None) -> np.ndarray:
        """Each node's position in OpenCV's list (a total order; only comparable within one image): a
        depth-first walk, a node before the nodes it encloses, later-found siblings first."""
        nodes = np.arange(len(self.parent)) if nodes is None else np.asarray(nodes)
        depth = self._depth()
        top = int(depth[nodes].max(initial=0))
        # path from the top of the image down to the node, each step keyed by minus its discovery position;
        # a path that is a prefix of another (an ancestor) sorts first through the -inf padding
        keys = np.full((len(nodes), top + 1), -np.inf)
        cur = nodes.copy()
        level = depth[nodes].copy()
        live = np.ones(len(nodes), dtype=bool)
        while live.any():
            idx = np.flatnonzero(live)
            keys[idx, level[idx]] = -self.start[cur[idx]].astype(np.float64)
            cur[idx] = self.parent[cur[idx]]
            level[idx] -= 1
            live = cur >= 0
        order = np.lexsort(keys.T[::-1])
        out = np.empty(len(nodes), dtype=np.int64)
        out[order] = np.arange(len(nodes))
        return out


def _first_pixels(labels: np.ndarray, n: int) -> np.ndarray:
    """(n,) flat index of each label's first pixel; labels 1..n are numbered in raster order, so label l
    first appears where the running maximum of the labels seen so far first reaches l."""
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    flat = labels.reshape(-1)
    idx = np.flatnonzero(flat)
    lab = flat[idx]
    new = np.ones(len(lab), dtype=bool)
    new[1:] = lab[1:] > np.maximum.accumulate(lab)[:-1]
    return idx[new]


def _block_origins(flat_blocks: np.ndarray, h: int, w: int) -> np.ndarray:
    """Flat pixel index of the top-left pixel of each 2x2 block, from the blocks' flat index in (B, H-1, W-1)."""
    b, rest = np.divmod(flat_blocks, (h - 1) * (w - 1))
    i, j = np.divmod(rest, w - 1)
    return (b * h + i) * w + j


def _corners(a: np.ndarray) -> list[np.ndarray]:
    """The four pixels of every 2x2 block of each image: (B, H-1, W-1) each."""
    return [a[:, :-1, :-1], a[:, :-1, 1:], a[:, 1:, :-1], a[:, 1:, 1:]]
