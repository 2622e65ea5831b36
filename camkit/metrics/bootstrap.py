"""Bootstrap confidence intervals over studies, and paired comparisons of two methods.

Rules (docs/metrics.md):

- A resample draws ``S`` studies with replacement out of the ``S`` distinct study ids (sorted, so the draw does
  not depend on record order), from ``numpy.random.default_rng(seed).integers(0, S, (n, S))``; a study drawn k
  times brings all of its images k times. The same (groups, n, seed) always gives the same resamples — this
  is what makes two methods' bootstraps *paired*.
- CI: percentiles ``(1 - level) / 2`` and ``(1 + level) / 2`` (2.5 / 97.5 by default, numpy's linear
  interpolation) of the resampled values. The estimate is the metric on the full data, not the resample mean.
- A resample on which the metric is undefined (the metric returns NaN, e.g. AUC with one class only) is
  skipped; ``n_skipped`` says how many, and the CI uses the rest (NaN if none is left).
- Several training runs (seeds) of one method: :func:`camkit.metrics.combine_runs` (camkit.metrics.runs), a
  random-effects interval over the runs' estimates that uses these bootstraps only for the test studies the
  runs share. Each result therefore carries its plan's study ids (``studies``) and ``plan_key``.
- Paired comparison of a and b: per resample d = a - b (skipped when either is undefined); CI from the
  percentiles of d; two-sided p-value ``min(1, 2 * (1 + min(#{d <= 0}, #{d >= 0})) / (n_valid + 1))``.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from camkit.metrics.classify import METRICS as CLASSIFICATION_METRICS
from camkit.metrics.classify import check_labels_scores, weighted_classification
from camkit.metrics.detection import FROCOptions, froc_metrics, match_table

# Rows of weights handled at once: bounds memory at ~ this many (resample x prediction) cells.
_CELLS = 4_000_000


@dataclass(frozen=True)
class ResamplePlan:
    """Which studies each resample draws; ``member[i]`` is record i's study index into ``groups``."""

    groups: tuple[Any, ...]
    member: np.ndarray
    n: int
    seed: int

    @property
    def key(self) -> str:
        """Fingerprint of (studies, n, seed): equal keys mean identical resamples."""
        h = hashlib.sha1(repr((self.groups, self.n, self.seed)).encode())
        return h.hexdigest()[:16]

    def draws(self) -> np.ndarray:
        """(n, S) drawn study indices, in draw order."""
        s = len(self.groups)
        return np.random.default_rng(self.seed).integers(0, s, size=(self.n, s))

    def weights(self) -> np.ndarray:
        """(n, records) how many times each record enters each resample."""
        d = self.draws()
        s = len(self.groups)
        counts = np.zeros((self.n, s), dtype=np.int64)
        np.add.at(counts, (np.repeat(np.arange(self.n), s), d.ravel()), 1)
        return counts[:, self.member]


def resample_plan(groups: Sequence[Any], n: int = 1000, seed: int = 0) -> ResamplePlan:
    """The resampling plan for records whose study ids are ``groups`` (one per record)."""
    if int(n) < 1:
        raise ValueError(f"n (number of resamples) must be >= 1, got {n!r}")
    g = list(groups)
    if not g:
        raise ValueError("no records to resample")
    uniq = sorted(set(g), key=lambda x: (type(x).__name__, x))
    index = {u: i for i, u in enumerate(uniq)}
    return ResamplePlan(tuple(uniq), np.array([index[x] for x in g], dtype=np.int64), int(n), int(seed))


@dataclass(frozen=True)
class BootstrapResult:
    """A metric with its percentile bootstrap CI; ``samples`` holds one value per resample (NaN = skipped)."""

    metric: str
    estimate: float
    low: float
    high: float
    level: float
    n: int
    n_skipped: int
    seed: int
    plan_key: str
    samples: np.ndarray
    studies: tuple[Any, ...] = ()  # the plan's study ids: runs sharing test studies are told apart by them

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, without the samples and study ids."""
        return {"metric": self.metric, "estimate": self.estimate, "low": self.low, "high": self.high,
                "level": self.level, "n": self.n, "n_skipped": self.n_skipped, "seed": self.seed,
                "plan_key": self.plan_key}


@dataclass(frozen=True)
class PairedResult:
    """a - b on the same resamples: the difference, its CI and a two-sided p-value."""

    metric: str
    difference: float
    low: float
    high: float
    p_value: float
    level: float
    n: int
    n_skipped: int
    seed: int
    samples: np.ndarray
    plan_key: str = ""             # the resample plan both sides were drawn on
    studies: tuple[Any, ...] = ()  # its study ids

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "difference": self.difference, "low": self.low, "high": self.high,
                "p_value": self.p_value, "level": self.level, "n": self.n, "n_skipped": self.n_skipped,
                "seed": self.seed}


def bootstrap(metric_fn: Callable[[list[Any]], float], records: Sequence[Any], groups: Sequence[Any],
              n: int = 1000, seed: int = 0, level: float = 0.95, name: str = "metric") -> BootstrapResult:
    """Generic study-level bootstrap: ``metric_fn`` is called on each resample's list of records.

    ``groups[i]`` is record i's study id. A resample lists the records of the drawn studies in draw order
    (repeats included); ``metric_fn`` returns NaN when the metric is undefined on it (then it is skipped).
    """
    check_level(level)
    records = list(records)
    if len(groups) != len(records):
        raise ValueError(f"groups has {len(groups)} entries for {len(records)} records")
    plan = resample_plan(groups, n, seed)
    by_group: list[list[int]] = [[] for _ in plan.groups]
    for i, m in enumerate(plan.member):
        by_group[m].append(i)
    samples = np.empty(plan.n)
    for r, row in enumerate(plan.draws()):
        samples[r] = float(metric_fn([records[i] for s in row for i in by_group[s]]))
    return percentile_result(name, float(metric_fn(records)), samples, plan, level)


def bootstrap_froc(predictions: Mapping[Any, Any], ground_truth: Mapping[Any, Any],
                   groups: Mapping[Any, Any] | None = None, metrics: Iterable[str] = ("tpr@1",), n: int = 1000,
                   seed: int = 0, level: float = 0.95, options: FROCOptions | None = None,
                   **overrides: Any) -> dict[str, BootstrapResult]:
    """Bootstrap CIs of FROC numbers (``"tpr@<fppi>"``, ``"cpm"``, ``"best_tpr"``, ``"best_fppi"``).

    ``groups`` maps each evaluated image id to its study id (None: every image is its own study). ``options``:
    the scoring rules of :func:`camkit.metrics.froc` (a :class:`FROCOptions`: ``iou_threshold``,
    ``criterion``, ``duplicates``, ``images``, and ``lesions``, which counts a stratum of the boxes only); any
    of them may also be given by name (``images="positive"``), over ``options``. Matching runs once; each
    resample is a weighted cumulative count (a prediction's hit/miss does not change when whole images are
    resampled).
    """
    o = (options or FROCOptions()).with_overrides(overrides)
    check_level(level)
    table = match_table(predictions, ground_truth, o.iou_threshold, o.criterion, o.duplicates, o.images, o.lesions)
    names = list(metrics)
    plan = resample_plan(_groups_for(table.image_ids, groups), n, seed)
    ones = np.ones((1, len(table.image_ids)), dtype=np.int64)
    full = _froc_rows(table, ones, names)
    w = plan.weights()
    rows = max(1, _CELLS // max(len(table.image_ids), int(table.tp.sum()), 1))
    parts = [_froc_rows(table, w[i:i + rows], names) for i in range(0, plan.n, rows)]
    return {m: percentile_result(m, float(full[m][0]), np.concatenate([p[m] for p in parts]), plan, level)
            for m in names}


def bootstrap_classification(labels: Any, scores: Any, groups: Sequence[Any] | None = None, threshold: float = 0.5,
                             metrics: Iterable[str] = CLASSIFICATION_METRICS, n: int = 1000, seed: int = 0,
                             level: float = 0.95) -> dict[str, BootstrapResult]:
    """Bootstrap CIs of accuracy, AUC, TPR, TNR; ``groups[i]`` is image i's study id (None: image = study)."""
    check_level(level)
    y, s = check_labels_scores(labels, scores)
    names = list(metrics)
    g = list(range(y.size)) if groups is None else list(groups)
    if len(g) != y.size:
        raise ValueError(f"groups has {len(g)} entries for {y.size} images")
    plan = resample_plan(g, n, seed)
    full = weighted_classification(y, s, threshold, np.ones((1, y.size), dtype=np.int64), names)
    w = plan.weights()
    rows = max(1, _CELLS // y.size)
    parts = [weighted_classification(y, s, threshold, w[i:i + rows], names) for i in range(0, plan.n, rows)]
    return {m: percentile_result(m, float(full[m][0]), np.concatenate([p[m] for p in parts]), plan, level)
            for m in names}


def bootstrap_localization(groups: Sequence[Any], pointing: Any = None, energy: Any = None, hits: Any = None,
                           iou_thresholds: Sequence[float] = (0.3, 0.5, 0.7), n: int = 1000, seed: int = 0,
                           level: float = 0.95) -> dict[str, BootstrapResult]:
    """Study-level bootstrap of the per-image values of camkit.metrics.localization.

    ``pointing`` (N,) from ``pointing_hits``, ``energy`` (N,) from ``energy_inside``, ``hits`` (N, T, D) from
    ``box_hits``; ``groups[i]`` is image i's study. Images without a box (NaN) must be left out by the caller.
    A resample is a weighted mean over images (each image as often as its study is drawn); MaxBoxAcc takes the
    maximum over thresholds inside each resample, as its definition does. Returns ``"pointing"``, ``"energy"``,
    ``"maxboxacc"`` (mean over the IoU thresholds) and ``"maxboxacc@d"`` for each d, for the values given.
    """
    check_level(level)
    plan = resample_plan(groups, n, seed)
    w = plan.weights().astype(np.float64)                          # (n, N)
    total = w.sum(axis=1)
    out = _weighted_means({k: v for k, v in (("pointing", pointing), ("energy", energy)) if v is not None},
                          w, total, plan, level)
    if hits is not None:
        h = np.asarray(hits, dtype=np.float64)
        acc = np.tensordot(w, h, axes=(1, 0)) / total[:, None, None]   # (n, T, D)
        per_d, full = acc.max(axis=1), h.mean(axis=0).max(axis=0)       # (n, D), (D,)
        for j, d in enumerate(iou_thresholds):
            out[f"maxboxacc@{d:g}"] = percentile_result(f"maxboxacc@{d:g}", float(full[j]), per_d[:, j], plan, level)
        out["maxboxacc"] = percentile_result("maxboxacc", float(full.mean()), per_d.mean(axis=1), plan, level)
    return out


def bootstrap_means(groups: Sequence[Any], values: Mapping[str, Any], n: int = 1000, seed: int = 0,
                    level: float = 0.95) -> dict[str, BootstrapResult]:
    """Study bootstrap of per-image means: ``values[name]`` (N,) one value per image, ``groups[i]`` image i's
    study; a resample is the weighted mean over images (each as often as its study is drawn). The faithfulness
    metrics of a bench (deletion/insertion areas, drops, ROAD) are such means."""
    check_level(level)
    plan = resample_plan(groups, n, seed)
    w = plan.weights().astype(np.float64)
    return _weighted_means(values, w, w.sum(axis=1), plan, level)


def _weighted_means(values: Mapping[str, Any], w: np.ndarray, total: np.ndarray, plan: ResamplePlan,
                    level: float) -> dict[str, BootstrapResult]:
    out: dict[str, BootstrapResult] = {}
    for name, vals in values.items():
        v = np.asarray(vals, dtype=np.float64).reshape(-1)
        if v.size != w.shape[1]:
            raise ValueError(f"{name}: {v.size} values for {w.shape[1]} images")
        out[name] = percentile_result(name, float(v.mean()), (w @ v) / total, plan, level)
    return out


def compare(a: BootstrapResult, b: BootstrapResult) -> PairedResult:
    """Paired comparison a - b of two bootstraps made on the same resamples (same studies, n and seed)."""
    if a.plan_key != b.plan_key:
        raise ValueError("compare: the two bootstraps used different resamples (different studies, n or seed); "
                         "bootstrap both methods on the same images with the same groups, n and seed")
    if a.metric != b.metric:
        raise ValueError(f"compare: different metrics {a.metric!r} and {b.metric!r}")
    d = a.samples - b.samples
    ok = d[~np.isnan(d)]
    lo, hi = percentiles(ok, a.level)
    return PairedResult(a.metric, a.estimate - b.estimate, lo, hi, bootstrap_p_value(ok), a.level, a.n,
                        int(d.size - ok.size), a.seed, d, a.plan_key, a.studies)


def bootstrap_p_value(differences: np.ndarray) -> float:
    """Two-sided p-value of "no difference" from bootstrap differences (NaN-free): twice the smaller share of
    resamples on either side of zero, with the +1 correction so that it is never 0; NaN without resamples."""
    ok = np.asarray(differences, dtype=float)
    if not ok.size:
        return float("nan")
    extreme = min(int((ok <= 0).sum()), int((ok >= 0).sum()))
    return min(1.0, 2.0 * (1 + extreme) / (ok.size + 1))


def paired_bootstrap(metric_fn: Callable[[list[Any]], float], records_a: Sequence[Any], records_b: Sequence[Any],
                     groups: Sequence[Any], n: int = 1000, seed: int = 0, level: float = 0.95,
                     name: str = "metric") -> PairedResult:
    """Generic paired bootstrap: the same resamples of ``records_a`` and ``records_b`` (record i of each
    belongs to study ``groups[i]``), compared with :func:`compare`."""
    if len(records_a) != len(records_b):
        raise ValueError(f"paired_bootstrap: {len(records_a)} records for a, {len(records_b)} for b; "
                         "both methods must be scored on the same images")
    return compare(bootstrap(metric_fn, records_a, groups, n, seed, level, name),
                   bootstrap(metric_fn, records_b, groups, n, seed, level, name))


# --- internals -------------------------------------------------------------------------------------------

def _froc_rows(table: Any, w: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    tp, fp, n_les, n_img = table.hit_points(w)
    return froc_metrics(tp, fp, n_les, n_img, names)


def _groups_for(ids: tuple[Any, ...], groups: Mapping[Any, Any] | None) -> list[Any]:
    if groups is None:
        return list(range(len(ids)))
    missing = [k for k in ids if k not in groups]
    if missing:
        raise ValueError(f"groups has no study id for evaluated image(s) {missing[:5]!r}; map every image id "
                         "to its study id")
    return [groups[k] for k in ids]


def check_level(level: float) -> None:
    """Raise ValueError unless 0 < level < 1."""
    if not (0.0 < level < 1.0):
        raise ValueError(f"level must be in (0, 1), e.g. 0.95, got {level!r}")


def percentiles(values: np.ndarray, level: float) -> tuple[float, float]:
    """The central ``level`` percentile interval of ``values`` (NaN, NaN when empty)."""
    if values.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.percentile(values, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def percentile_result(name: str, estimate: float, samples: np.ndarray, plan: ResamplePlan,
                      level: float) -> BootstrapResult:
    """The :class:`BootstrapResult` of ``samples`` (one value per resample of ``plan``, NaN = undefined):
    percentile CI at ``level`` over the defined ones, ``estimate`` the metric on the full data."""
    ok = samples[~np.isnan(samples)]
    lo, hi = percentiles(ok, level)
    return BootstrapResult(name, estimate, lo, hi, float(level), plan.n, int(samples.size - ok.size), plan.seed,
                           plan.key, samples, plan.groups)
