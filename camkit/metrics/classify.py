"""Image-level classification: accuracy, ROC AUC, TPR (sensitivity), TNR (specificity).

Rule: an image is called positive when ``score >= threshold`` (default 0.5). AUC is rank-based (the
Mann-Whitney statistic): the probability that a random positive scores above a random negative, ties counted
one half; it equals scikit-learn's ``roc_auc_score``. Undefined numbers are NaN, never an error: AUC with one
class only, TPR without positives, TNR without negatives.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

METRICS = ("accuracy", "auc", "tpr", "tnr")


@dataclass(frozen=True)
class ClassificationResult:
    """Classification numbers at a stated threshold (positive when score >= threshold)."""

    accuracy: float
    auc: float
    tpr: float
    tnr: float
    threshold: float
    n: int
    n_positive: int
    n_negative: int

    def metric(self, name: str) -> float:
        """One of ``accuracy``, ``auc``, ``tpr``, ``tnr`` by name."""
        if name not in METRICS:
            raise ValueError(f"unknown classification metric {name!r}; use one of {', '.join(METRICS)}")
        return float(getattr(self, name))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def classification(labels: Any, scores: Any, threshold: float = 0.5,
                   ids: Sequence[Any] | None = None) -> ClassificationResult:
    """Accuracy, AUC, TPR and TNR of image-level scores.

    Args:
        labels: (N,) 0/1 (or bool), 1 = mass.
        scores: (N,) finite numbers, higher = more likely mass.
        threshold: positive when ``score >= threshold``.
        ids: optional image ids, used only to name the culprit in error messages.

    Example:
        >>> r = classification([0, 0, 1, 1], [0.1, 0.6, 0.5, 0.9])
        >>> r.accuracy, r.auc, r.tpr, r.tnr
        (0.75, 0.75, 1.0, 0.5)
    """
    y, s = check_labels_scores(labels, scores, ids)
    m = weighted_classification(y, s, threshold, np.ones((1, y.size), dtype=np.int64))
    return ClassificationResult(accuracy=float(m["accuracy"][0]), auc=float(m["auc"][0]), tpr=float(m["tpr"][0]),
                                tnr=float(m["tnr"][0]), threshold=float(threshold), n=int(y.size),
                                n_positive=int(y.sum()), n_negative=int((~y).sum()))


def roc_auc(labels: Any, scores: Any) -> float:
    """Rank-based ROC AUC (ties count one half); NaN when only one class is present."""
    y, s = check_labels_scores(labels, scores)
    return float(weighted_classification(y, s, 0.5, np.ones((1, y.size), dtype=np.int64), ["auc"])["auc"][0])


def check_labels_scores(labels: Any, scores: Any, ids: Sequence[Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert: labels -> bool (N,), scores -> float64 (N,)."""
    lab = np.asarray(labels.detach().cpu().numpy() if hasattr(labels, "detach") else labels).reshape(-1)
    s = np.asarray(scores.detach().cpu().numpy() if hasattr(scores, "detach") else scores,
                   dtype=np.float64).reshape(-1)
    if lab.shape != s.shape:
        raise ValueError(f"labels ({lab.size}) and scores ({s.size}) differ in length")
    if lab.size == 0:
        raise ValueError("no images to score: labels and scores are empty")
    name = (lambda i: repr(ids[i])) if ids is not None else (lambda i: f"at index {i}")
    ok = (lab == 0) | (lab == 1)
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        raise ValueError(f"image {name(i)}: label {lab[i].item()!r} is not 0/1 (1 = mass)")
    bad = ~np.isfinite(s)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"image {name(i)}: score {s[i]} is not finite; scores must be finite numbers")
    return lab.astype(bool), s


def weighted_classification(y: np.ndarray, s: np.ndarray, threshold: float, weights: np.ndarray,
                            names: Iterable[str] = METRICS) -> dict[str, np.ndarray]:
    """The metrics for each row of image weights (R, N) (weight k = the image counted k times).

    All counts are integers, so a resample gives exactly what the unweighted formula gives on the
    resampled list.
    """
    w = np.asarray(weights, dtype=np.int64)
    names = list(names)
    for n in names:
        if n not in METRICS:
            raise ValueError(f"unknown classification metric {n!r}; use one of {', '.join(METRICS)}")
    pred = s >= threshold
    n_all = w.sum(axis=1)
    n_pos = w @ y
    n_neg = n_all - n_pos
    out: dict[str, np.ndarray] = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        if "accuracy" in names:
            out["accuracy"] = (w @ (pred == y)) / n_all
        if "tpr" in names:
            out["tpr"] = np.where(n_pos > 0, (w @ (pred & y)) / n_pos, np.nan)
        if "tnr" in names:
            out["tnr"] = np.where(n_neg > 0, (w @ (~pred & ~y)) / n_neg, np.nan)
        if "auc" in names:
            out["auc"] = _weighted_auc(y, s, w, n_pos, n_neg)
    return {n: out[n] for n in names}


def _weighted_auc(y: np.ndarray, s: np.ndarray, w: np.ndarray, n_pos: np.ndarray, n_neg: np.ndarray) -> np.ndarray:
    # Group equal scores; 2U = sum over groups of pos_g * (2 * negatives below + negatives tied): integers.
    order = np.argsort(s, kind="stable")
    ss, ys, ws = s[order], y[order], w[:, order]
    starts = np.flatnonzero(np.r_[True, ss[1:] != ss[:-1]])
    pos_g = np.add.reduceat(ws * ys, starts, axis=1)
    neg_g = np.add.reduceat(ws * ~ys, starts, axis=1)
    below = np.cumsum(neg_g, axis=1) - neg_g
    u2 = (pos_g * (2 * below + neg_g)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n_pos > 0) & (n_neg > 0), u2 / (2 * n_pos * n_neg), np.nan)
