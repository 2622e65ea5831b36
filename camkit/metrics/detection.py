"""Detection scoring: greedy one-to-one matching (IoU > 0.3 by default), FROC, TPR@FPPI, CPM.

The rules (docs/metrics.md has the long version with worked examples):

- Within an image, predictions are taken by descending score (equal scores: in the order given). A prediction
  is a *hit* on a ground-truth box when ``IoU > iou_threshold`` (strictly greater: IoU exactly 0.3 is not a
  hit), or with ``criterion="center"`` when its centre lies inside the box (edges included). It matches the
  not-yet-matched box it hits with the highest IoU (equal IoU: the lower ground-truth index). A prediction
  whose every hit box is already matched is a *duplicate*: a false positive (``duplicates="fp"``, default) or
  ignored altogether (``"ignore"``, as LUNA16). Anything else is a false positive. Each box counts once.
- The FROC curve: all counted predictions of the evaluated images sorted by descending score; a curve point
  after each distinct score (equal scores enter together, as one step); TPR = matched boxes / all boxes of the
  evaluated images; FPPI = false positives / number of evaluated images. The curve starts at (0, 0) with
  threshold +inf.
- The evaluated images (``images=``): ``"all"`` (every image in ``ground_truth``, default) or ``"positive"``
  (only images with at least one box: the paper's choice), or an explicit list of ids. Predictions on images
  outside the set are not scored at all; the set's size is the FPPI denominator.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NamedTuple

import numpy as np

CPM_FPPIS = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
CRITERIA = ("iou", "center")
DUPLICATES = ("fp", "ignore")

TP, FP, IGNORED = 1, 0, -1


class OperatingPoint(NamedTuple):
    """A point of the FROC curve: all predictions with score >= threshold accepted."""

    tpr: float
    fppi: float
    threshold: float


@dataclass(frozen=True)
class FROCOptions:
    """How detections are scored (:func:`froc`'s rules, as one object for the functions that take more):
    ``iou_threshold``, ``criterion``, ``duplicates``, the evaluated ``images`` and the ``lesions`` stratum."""

    iou_threshold: float = 0.3
    criterion: str = "iou"
    duplicates: str = "fp"
    images: str | Iterable[Any] | None = "all"
    lesions: Mapping[Any, Any] | None = None

    def with_overrides(self, overrides: Mapping[str, Any]) -> FROCOptions:
        """These options with some fields given by name (an unknown name is a TypeError naming the fields)."""
        from camkit.registry.options import with_fields

        return with_fields(self, overrides, "the FROC options")


@dataclass(frozen=True)
class MatchTable:
    """Each counted prediction's outcome, sorted by descending score (computed once, reused by the bootstrap).

    ``image`` indexes ``image_ids``; ``ends`` are the indices of the last prediction of each tie group.
    Ignored duplicates are not in the table (they change no count).
    """

    image_ids: tuple[Any, ...]
    n_gt: np.ndarray        # (I,) boxes per evaluated image
    scores: np.ndarray      # (N,) descending
    image: np.ndarray       # (N,) int
    tp: np.ndarray          # (N,) bool
    ends: np.ndarray        # (P,) int
    n_ignored: int
    settings: dict[str, Any] = field(default_factory=dict)

    def counts(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Cumulative (TP, FP) at every curve point, with the initial (0, 0), for image weights (R, I).

        Returns ``tp (R, P+1), fp (R, P+1), n_lesions (R,), n_images (R,)``; weight k on an image counts it
        k times (a bootstrap resample that drew its study k times). All integers: exact.
        """
        w = np.asarray(weights, dtype=np.int64)
        r, p = w.shape[0], self.ends.size
        tp = np.zeros((r, p + 1), dtype=np.int64)
        fp = np.zeros_like(tp)
        if p:
            # All counted predictions, then the (few) hits alone; rows are resamples, so every running sum
            # goes along a C-ordered row, and np.take gathers columns faster than fancy indexing.
            total = np.cumsum(np.take(w, self.image, axis=1), axis=1)
            if p < self.scores.size:
                total = np.take(total, self.ends, axis=1)
            hits = np.zeros((r, int(self.tp.sum()) + 1), dtype=np.int64)
            hits[:, 1:] = np.cumsum(np.take(w, self.image[self.tp], axis=1), axis=1)
            tp[:, 1:] = np.take(hits, self._hits_before, axis=1)
            fp[:, 1:] = total - tp[:, 1:]
        return tp, fp, w @ self.n_gt, w.sum(axis=1)

    @cached_property
    def _hits_before(self) -> np.ndarray:
        """Number of hits among the predictions up to each tie group's end."""
        return np.cumsum(self.tp)[self.ends]

    def hit_points(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Like :meth:`counts`, but only at (0, 0) and at the ends of the tie groups that contain a hit.

        Enough for every number :func:`froc_metrics` reads: TP only grows at those points, so the last point
        with FP <= c and the first point reaching the final TP are among them. There are at most as many as
        lesions, so a bootstrap's work per resample is one sparse product, not a pass over all predictions.
        """
        w = np.ascontiguousarray(np.asarray(weights, dtype=np.int64).T)  # (I, R)
        seg_all, seg_hit = self._segments
        t = seg_all.shape[0]
        tp = np.zeros((w.shape[1], t + 1), dtype=np.int64)
        fp = np.zeros_like(tp)
        if t:
            hits = np.cumsum(seg_hit @ w, axis=0)
            tp[:, 1:] = hits.T
            fp[:, 1:] = (np.cumsum(seg_all @ w, axis=0) - hits).T
        return tp, fp, w.T @ self.n_gt, w.sum(axis=0)

    @cached_property
    def _segments(self) -> tuple[Any, Any]:
        """(segment x image) counts of all predictions and of hits; segment k ends at the k-th hit group."""
        from scipy import sparse

        group = np.searchsorted(self.ends, np.arange(self.scores.size))
        hit_groups = np.unique(group[self.tp])
        seg = np.searchsorted(hit_groups, group)  # predictions after the last hit group fall off the end
        keep = seg < hit_groups.size
        shape = (hit_groups.size, len(self.image_ids))
        ones = np.ones(self.scores.size, dtype=np.int64)
        return (sparse.csr_matrix((ones[keep], (seg[keep], self.image[keep])), shape=shape),
                sparse.csr_matrix((ones[self.tp], (seg[self.tp], self.image[self.tp])), shape=shape))


@dataclass(frozen=True)
class FROCResult:
    """A FROC curve and the numbers read off it.

    ``thresholds[k]``: accept predictions with score >= thresholds[k] to get ``(tpr[k], fppi[k])``; index 0
    is the empty set (threshold +inf). ``tpr`` is NaN everywhere when the evaluated images hold no box.
    """

    thresholds: np.ndarray
    tpr: np.ndarray
    fppi: np.ndarray
    tp: np.ndarray          # cumulative hits at each point (integers)
    fp: np.ndarray          # cumulative false positives at each point
    n_lesions: int
    n_images: int
    n_predictions: int      # predictions on the evaluated images, ignored duplicates included
    n_ignored: int
    iou_threshold: float
    criterion: str
    duplicates: str
    images: str             # "all", "positive" or "explicit"

    def tpr_at(self, fppi: float) -> float:
        """The highest TPR whose FPPI does not exceed ``fppi`` (no interpolation)."""
        return self.metric(f"tpr@{float(fppi)!r}")

    @property
    def best_operating_point(self) -> OperatingPoint:
        """The paper's Table II number: the highest TPR reached, at the lowest FPPI that reaches it."""
        k = int(np.argmax(self.tp == self.tp[-1]))
        return OperatingPoint(float(self.tpr[k]), float(self.fppi[k]), float(self.thresholds[k]))

    def cpm(self, fppis: Iterable[float] = CPM_FPPIS) -> float:
        """Mean of tpr_at over ``fppis`` (default 1/8 ... 8: the competition performance metric)."""
        return float(np.mean([self.tpr_at(f) for f in fppis]))

    def metric(self, name: str) -> float:
        """A named number: ``"tpr@<fppi>"``, ``"cpm"``, ``"best_tpr"`` or ``"best_fppi"``."""
        m = froc_metrics(self.tp[None], self.fp[None], np.array([self.n_lesions]), np.array([self.n_images]),
                         [name])
        return float(m[name][0])

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (threshold +inf of the initial point as None)."""
        best = self.best_operating_point
        return {
            "thresholds": [None, *self.thresholds[1:].tolist()], "tpr": self.tpr.tolist(),
            "fppi": self.fppi.tolist(), "tp": self.tp.tolist(), "fp": self.fp.tolist(),
            "n_lesions": self.n_lesions, "n_images": self.n_images,
            "n_predictions": self.n_predictions, "n_ignored": self.n_ignored,
            "iou_threshold": self.iou_threshold, "criterion": self.criterion, "duplicates": self.duplicates,
            "images": self.images, "best_tpr": best.tpr, "best_fppi": best.fppi,
            "tpr@1": self.tpr_at(1.0), "cpm": self.cpm(),
        }


def froc(predictions: Mapping[Any, Any], ground_truth: Mapping[Any, Any], iou_threshold: float = 0.3,
         criterion: str = "iou", duplicates: str = "fp", images: str | Iterable[Any] | None = "all",
         lesions: Mapping[Any, Any] | None = None) -> FROCResult:
    """Score detections: match, then build the FROC curve.

    Args:
        predictions: image id -> ``(boxes (N, 4) x1 y1 x2 y2, scores (N,))`` (or a dict with those keys);
            an evaluated image without an entry has no predictions.
        ground_truth: image id -> boxes (M, 4), for every image that may be evaluated (empty for normals).
        iou_threshold: a hit needs IoU strictly greater than this.
        criterion: ``"iou"`` or ``"center"`` (the prediction's centre inside the box).
        duplicates: ``"fp"`` or ``"ignore"`` (second and later hits on a matched box).
        images: ``"all"`` (None means the same), ``"positive"`` or an explicit iterable of ids.
        lesions: image id -> (M,) bool, which of the image's boxes count (a stratum of lesions, e.g. the
            small ones); None: all. A prediction matched to a box that does not count is neither a hit nor a
            false positive (it found a real lesion, only not one of this stratum); such boxes are not in TPR.

    Example:
        >>> r = froc({"a": ([[0, 0, 10, 10]], [0.9])}, {"a": [[1, 1, 10, 10]], "b": []})
        >>> r.tpr_at(1.0), r.n_images
        (1.0, 2)
    """
    table = match_table(predictions, ground_truth, iou_threshold, criterion, duplicates, images, lesions)
    tp, fp, n_les, n_img = table.counts(np.ones((1, len(table.image_ids)), dtype=np.int64))
    tpr = tp[0] / n_les[0] if n_les[0] > 0 else np.full(tp.shape[1], np.nan)
    s = table.settings
    return FROCResult(
        thresholds=np.concatenate([[np.inf], table.scores[table.ends]]), tpr=tpr, fppi=fp[0] / n_img[0],
        tp=tp[0], fp=fp[0],
        n_lesions=int(n_les[0]), n_images=int(n_img[0]), n_predictions=int(table.scores.size + table.n_ignored),
        n_ignored=table.n_ignored, iou_threshold=s["iou_threshold"], criterion=s["criterion"],
        duplicates=s["duplicates"], images=s["images"])


def match_table(predictions: Mapping[Any, Any], ground_truth: Mapping[Any, Any], iou_threshold: float = 0.3,
                criterion: str = "iou", duplicates: str = "fp",
                images: str | Iterable[Any] | None = "all", lesions: Mapping[Any, Any] | None = None) -> MatchTable:
    """Match once and keep each prediction's outcome, sorted by score (see :class:`MatchTable`; ``lesions``
    as in :func:`froc`)."""
    ids, rule = _select_images(ground_truth, images)
    _check_settings(iou_threshold, criterion, duplicates)
    unknown = [k for k in predictions if k not in ground_truth]
    if unknown:
        raise ValueError(f"predictions for image id(s) not in ground_truth: {unknown[:5]!r}"
                         f"{' ...' if len(unknown) > 5 else ''}; every scored image needs a ground-truth "
                         "entry (an empty box list for a normal image)")
    flat = _flatten(predictions, ground_truth, ids)
    status, matched = _match(flat, len(ids), float(iou_threshold), criterion, duplicates)
    ps, pimg, gimg = flat.ps, flat.pimg, flat.gimg
    if lesions is not None:
        counts = _lesion_mask(lesions, ground_truth, ids)
        status[(matched >= 0) & ~counts[np.maximum(matched, 0)]] = IGNORED  # a hit on another stratum's lesion
        gimg = gimg[counts]
    counted = status != IGNORED
    s, img, tp = ps[counted], pimg[counted], status[counted] == TP
    order = np.argsort(-s, kind="stable")
    s, img, tp = s[order], img[order], tp[order]
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True]) if s.size else np.zeros(0, dtype=np.int64)
    return MatchTable(tuple(ids), np.bincount(gimg, minlength=len(ids)).astype(np.int64), s, img, tp, ends,
                      int((~counted).sum()),
                      {"iou_threshold": float(iou_threshold), "criterion": criterion, "duplicates": duplicates,
                       "images": rule})


def match_image(boxes: Any, scores: Any, gt_boxes: Any, iou_threshold: float = 0.3, criterion: str = "iou",
                duplicates: str = "fp") -> np.ndarray:
    """Outcome of each prediction of one image, in the order given: 1 hit, 0 false positive, -1 ignored."""
    _check_settings(iou_threshold, criterion, duplicates)
    return _match(_flatten({0: (boxes, scores)}, {0: gt_boxes}, [0]), 1, float(iou_threshold), criterion,
                  duplicates)[0]


def _lesion_mask(lesions: Mapping[Any, Any], ground_truth: Mapping[Any, Any], ids: list[Any]) -> np.ndarray:
    """The evaluated images' ``lesions`` masks concatenated in box order (an image without an entry: none
    of its boxes count)."""
    parts = []
    for k in ids:
        n = _n_boxes(ground_truth[k])
        m = np.asarray(lesions.get(k, np.zeros(n, dtype=bool)), dtype=bool).reshape(-1)
        if m.size != n:
            raise ValueError(f"image {k!r}: lesions mask has {m.size} entries for {n} ground-truth boxes")
        parts.append(m)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=bool)


def iou_matrix(a: Any, b: Any) -> np.ndarray:
    """IoU of every box in ``a`` (N, 4) with every box in ``b`` (M, 4); zero-area unions give 0."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    return _iou(np.repeat(a, len(b), axis=0), np.tile(b, (len(a), 1))).reshape(len(a), len(b))


# --- numbers read off (batched) curves: rows are resamples; integer counts, so exact ------------------------

def froc_metrics(tp: np.ndarray, fp: np.ndarray, n_lesions: np.ndarray, n_images: np.ndarray,
                 names: Iterable[str]) -> dict[str, np.ndarray]:
    """Named numbers for each row of cumulative counts (R, P) (as from :meth:`MatchTable.counts`).

    ``tpr@<f>``: TPR at the last point with FP / n_images <= f (the highest TPR there: counts only grow);
    ``cpm``: the mean of tpr@ over 1/8 ... 8; ``best_tpr`` / ``best_fppi``: the final TPR and the FPPI of the
    first point that reaches it. NaN where a row has no lesions.
    """
    r, p = tp.shape
    rows = np.arange(r)
    n_lesions = np.asarray(n_lesions, dtype=np.int64)
    # a row without images has no lesions either (NaN below): a count of 1 keeps the arithmetic quiet
    n_images = np.maximum(np.asarray(n_images, dtype=np.int64), 1)
    defined = n_lesions > 0
    # Rows made one sorted array by adding row offsets (counts are integers: exact), so a single
    # searchsorted finds every row's cut.
    cache: dict[str, np.ndarray] = {}

    def flat(name: str, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if name not in cache:
            off = rows * (int(a[:, -1].max()) + 2)
            cache[name] = ((a + off[:, None]).ravel(), off)
        return cache[name][0], cache[name][1]

    def tpr_rows(k: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(defined, tp[rows, k] / np.maximum(n_lesions, 1), np.nan)

    def at(f: float) -> np.ndarray:
        keys, off = flat("fp", fp)
        c = _max_count(f, n_images, int(fp[:, -1].max()) + 1)
        k = np.searchsorted(keys, c + off, side="right") - rows * p - 1
        return tpr_rows(np.maximum(k, 0))

    out: dict[str, np.ndarray] = {}
    for name in names:
        if name.startswith("tpr@"):
            try:
                f = float(name[4:])
            except ValueError:
                raise ValueError(f"bad FROC metric {name!r}: write tpr@<fppi>, e.g. 'tpr@1' or 'tpr@0.5'") from None
            out[name] = at(f)
        elif name == "cpm":
            out[name] = np.mean([at(f) for f in CPM_FPPIS], axis=0)
        elif name == "best_tpr":
            out[name] = tpr_rows(np.full(r, p - 1))
        elif name == "best_fppi":
            keys, off = flat("tp", tp)
            k = np.searchsorted(keys, tp[:, -1] + off, side="left") - rows * p
            out[name] = np.where(defined, fp[rows, k] / n_images, np.nan)
        else:
            raise ValueError(f"unknown FROC metric {name!r}; use 'tpr@<fppi>', 'cpm', 'best_tpr' or 'best_fppi'")
    return out


def _max_count(f: float, n: np.ndarray, cap: int) -> np.ndarray:
    """Per row the largest integer c with c / n <= f in floating point (so fp <= c <=> fp / n <= f)."""
    if np.isnan(f):
        raise ValueError("FPPI target is NaN")
    c = np.floor(np.clip(f * n, -1, cap)).astype(np.int64)
    for _ in range(2):  # f * n may round across an integer: settle on the float rule itself
        c = np.where((c + 1) / n <= f, c + 1, c)
        c = np.where(c / n > f, c - 1, c)
    return np.minimum(c, cap)


# --- internals ---------------------------------------------------------------------------------------------

def _check_settings(iou_threshold: float, criterion: str, duplicates: str) -> None:
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    if duplicates not in DUPLICATES:
        raise ValueError(f"duplicates must be one of {DUPLICATES}, got {duplicates!r}")
    if not (0.0 <= float(iou_threshold) < 1.0):
        raise ValueError(f"iou_threshold must be in [0, 1), got {iou_threshold!r}")


def _select_images(ground_truth: Mapping[Any, Any], images: str | Iterable[Any] | None) -> tuple[list[Any], str]:
    if images is None or (isinstance(images, str) and images == "all"):
        ids, rule = list(ground_truth), "all"
    elif isinstance(images, str) and images == "positive":
        ids, rule = [k for k, v in ground_truth.items() if _n_boxes(v) > 0], "positive"
    elif isinstance(images, str):
        raise ValueError(f"images must be 'all', 'positive' or a list of image ids, got the string {images!r}")
    else:
        ids, rule = list(images), "explicit"
        missing = [k for k in ids if k not in ground_truth]
        if missing:
            raise ValueError(f"images lists id(s) missing from ground_truth: {missing[:5]!r}")
        if len(set(ids)) != len(ids):
            raise ValueError("images lists some image id more than once; pass each evaluated image once")
    if not ids:
        raise ValueError(f"no images to evaluate (images={rule!r} selected none of the "
                         f"{len(ground_truth)} ground-truth images)")
    return ids, rule


def _n_boxes(v: Any) -> int:
    return int(np.asarray(_to_numpy(v)).size // 4)


def _to_numpy(x: Any) -> Any:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else x


class _Flat(NamedTuple):
    """The evaluated images' predictions and ground-truth boxes, concatenated; ``pimg``/``gimg`` index the ids."""

    pb: np.ndarray    # (N, 4) predicted boxes
    ps: np.ndarray    # (N,) their scores
    pimg: np.ndarray  # (N,) their image
    gb: np.ndarray    # (M, 4) ground-truth boxes
    gimg: np.ndarray  # (M,) their image


def _flatten(predictions: Mapping[Any, Any], ground_truth: Mapping[Any, Any], ids: list[Any]) -> _Flat:
    """Concatenate the evaluated images' boxes; validate them, naming the image on error."""
    pbs, pss, gbs = [], [], []
    empty = np.zeros((0, 4))
    for k in ids:
        p = predictions.get(k)
        if p is None:
            pbs.append(empty)
            pss.append(np.zeros(0))
        else:
            b, s = (p["boxes"], p["scores"]) if isinstance(p, Mapping) else p
            b = np.asarray(_to_numpy(b), dtype=np.float64)
            s = np.asarray(_to_numpy(s), dtype=np.float64)
            if b.size == 0:
                b = empty
            if b.ndim != 2 or b.shape[1] != 4 or s.ndim != 1 or s.shape[0] != b.shape[0]:
                raise ValueError(f"image {k!r}: predictions must be boxes (N, 4) and scores (N,), got shapes "
                                 f"{b.shape} and {s.shape}")
            pbs.append(b)
            pss.append(s)
        g = np.asarray(_to_numpy(ground_truth[k]), dtype=np.float64)
        if g.size == 0:
            g = empty
        if g.ndim != 2 or g.shape[1] != 4:
            raise ValueError(f"image {k!r}: ground-truth boxes must be (M, 4), got shape {g.shape}")
        gbs.append(g)
    np_ = np.fromiter((len(s) for s in pss), dtype=np.int64, count=len(ids))
    ng = np.fromiter((len(g) for g in gbs), dtype=np.int64, count=len(ids))
    pb, ps, gb = np.concatenate(pbs), np.concatenate(pss), np.concatenate(gbs)
    pimg = np.repeat(np.arange(len(ids)), np_)
    gimg = np.repeat(np.arange(len(ids)), ng)
    _check_boxes(pb, pimg, ids, "predicted")
    _check_boxes(gb, gimg, ids, "ground-truth")
    bad = ~np.isfinite(ps)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"image {ids[pimg[i]]!r}: prediction score {ps[i]} is not finite; scores must be finite "
                         "numbers (drop or fix NaN/inf scores before scoring)")
    return _Flat(pb, ps, pimg, gb, gimg)


def _check_boxes(b: np.ndarray, img: np.ndarray, ids: list[Any], what: str) -> None:
    bad = ~np.isfinite(b).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"image {ids[img[i]]!r}: {what} box {b[i].tolist()} has non-finite coordinates")
    bad = (b[:, 2] < b[:, 0]) | (b[:, 3] < b[:, 1])
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"image {ids[img[i]]!r}: {what} box {b[i].tolist()} has x2 < x1 or y2 < y1; boxes are "
                         "x1 y1 x2 y2")


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise IoU of two (K, 4) arrays."""
    iw = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = iw * ih
    union = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    out = np.zeros_like(inter)
    np.divide(inter, union, out=out, where=union > 0)
    return out


def _match(flat: _Flat, n_images: int, thr: float, criterion: str, duplicates: str) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching for all images at once; returns each prediction's outcome (TP/FP/IGNORED) and the
    ground-truth box each hit matched (-1 for the others).

    Only (prediction, box) pairs that meet the criterion matter, so those are collected for the whole set
    first; the greedy pass then loops over the *rank* of a prediction within its image (one prediction per
    image per step, all images in parallel), not over images.
    """
    pb, ps, pimg, gb, gimg = flat
    n = ps.size
    status = np.full(n, FP, dtype=np.int8)
    matched_to = np.full(n, -1, dtype=np.int64)
    if n == 0 or gb.shape[0] == 0:
        return status, matched_to
    # Rank within image: descending score, equal scores in the order given.
    order = np.lexsort((np.arange(n), -ps, pimg))
    first = np.searchsorted(pimg[order], np.arange(n_images))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - first[pimg[order]]
    # Every (prediction, ground-truth box) pair of the same image.
    ng = np.bincount(gimg, minlength=n_images)
    gstart = np.concatenate([[0], np.cumsum(ng)[:-1]])
    per = ng[pimg]
    pair_p = np.repeat(np.arange(n), per)
    pair_g = np.repeat(gstart[pimg], per) + (np.arange(per.sum()) - np.repeat(np.cumsum(per) - per, per))
    iou = _iou(pb[pair_p], gb[pair_g])
    if criterion == "iou":
        hit = iou > thr
    else:
        c = pb[pair_p]
        g = gb[pair_g]
        cx, cy = (c[:, 0] + c[:, 2]) / 2, (c[:, 1] + c[:, 3]) / 2
        hit = (cx >= g[:, 0]) & (cx <= g[:, 2]) & (cy >= g[:, 1]) & (cy <= g[:, 3])
    pair_p, pair_g, iou = pair_p[hit], pair_g[hit], iou[hit]
    if pair_p.size == 0:
        return status, matched_to
    status[pair_p] = FP if duplicates == "fp" else IGNORED  # a hitting prediction that finds no free box
    srt = np.lexsort((pair_g, -iou, pair_p, rank[pair_p]))
    pair_p, pair_g, r = pair_p[srt], pair_g[srt], rank[pair_p[srt]]
    bounds = np.flatnonzero(np.r_[True, r[1:] != r[:-1], True])
    matched = np.zeros(gb.shape[0], dtype=bool)
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        p, g = pair_p[lo:hi], pair_g[lo:hi]
        free = np.flatnonzero(~matched[g])
        if free.size == 0:
            continue
        pf = p[free]
        take = free[np.r_[True, pf[1:] != pf[:-1]]]  # best free box of each prediction (pairs sorted by -IoU)
        matched[g[take]] = True
        status[p[take]] = TP
        matched_to[p[take]] = g[take]
    return status, matched_to
