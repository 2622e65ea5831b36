"""A metric over several training runs (seeds): the mean of the runs, and an interval that holds its level.

What the interval covers: the **grand mean** of the metric over training seeds and test studies, i.e. what the
recipe gives on average when both the seed and the test set are drawn again. Each run r gives an estimate
``x_r`` (on its test set) and a study-level bootstrap of it (``samples``, made on the run's resample plan).

The model is a random-effects one over run means, ``x_r = mu + s_r + e_r``: ``s_r`` is the seed's effect, ``e_r``
the test-set sampling error of run r. The estimate is ``xbar = mean(x_r)`` and

    Var(xbar) = S^2 / R + c

- ``S^2``, the sample variance of the R run estimates, already holds each run's *own* test-set noise besides
  the seeds' spread (a run's test noise is counted once, here, not again from its resamples);
- ``c``, the mean covariance between two runs' estimates through test studies they *share*, is measured from
  their bootstraps on one shared resample plan (the same study ids, ``n`` and seed give the same draws, so the
  runs are resampled with one shared index). Runs scored on separate test sets have ``c = 0``; runs scored on
  one test set (VinDr-Mammo, CBIS-DDSM, INbreast: every seed sees the same studies) have ``c`` > 0, the part of
  the test-set error that no number of seeds averages away.

The interval is ``xbar +- t * sqrt(Var)``, with ``t`` the Student quantile on Satterthwaite's degrees of
freedom ``(R - 1) (1 + c / (S^2 / R))^2`` (``c`` comes from hundreds of studies and counts as known; in the df
alone ``S^2`` is floored at the runs' unshared test noise, their mean bootstrap variance less ``c``, so that a
spread that came out small by chance does not also shrink ``t``): with separate test sets this is the classic
t interval over R run means, ``R - 1`` degrees of freedom, because the spread of 3-5 runs is itself uncertain;
where the shared test set dominates it tends to the normal one.
``benchmarks/interval_calibration.py`` measures the coverage (docs/metrics.md, "Several training runs").

One run alone says nothing about the seeds: its own study interval is returned, and ``method`` says so.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from camkit.metrics.bootstrap import BootstrapResult, PairedResult, check_level

# In the df formula S^2 is replaced by its one-sided 80% upper confidence bound, S^2 (R - 1) / chi2(0.2, R - 1):
# with 2-4 degrees of freedom S^2 is often far below its mean, and Satterthwaite's df, computed from it, would
# then treat the seeds' spread as negligible (the calibration study's shared designs with 2-3 seeds fell to
# 0.88-0.92 coverage with the plain estimate).
DF_QUANTILE = 0.2
METHOD = ("random-effects t interval over runs (Satterthwaite df), test studies shared between runs "
          "resampled with one index")


@dataclass(frozen=True)
class CombinedResult:
    """A metric over several runs: the mean of their estimates, its interval (module docstring), their spread.

    ``se`` is the standard error of the mean, ``df`` the interval's degrees of freedom (inf: normal),
    ``shared_var`` the test-set covariance ``c`` the runs share, ``method`` how the interval was made.
    """

    metric: str
    estimate: float
    low: float
    high: float
    sd: float
    values: tuple[float, ...]  # each run's estimate
    level: float
    n: int
    seed: int
    se: float = float("nan")
    df: float = float("nan")
    shared_var: float = 0.0
    method: str = METHOD

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "estimate": self.estimate, "low": self.low, "high": self.high,
                "sd": self.sd, "values": list(self.values), "level": self.level, "n": self.n, "seed": self.seed,
                "se": self.se, "df": self.df, "shared_var": self.shared_var, "method": self.method}


@dataclass(frozen=True)
class RunsInterval:
    """What :func:`runs_interval` finds: the mean, its standard error, degrees of freedom and interval."""

    estimate: float
    se: float
    df: float
    low: float
    high: float
    sd: float
    shared_var: float
    runs: int
    method: str

    def p_value(self) -> float:
        """Two-sided p-value of "the grand mean is 0" (for differences) from the same t distribution."""
        if not np.isfinite(self.estimate):
            return float("nan")
        if self.se == 0:
            return 1.0 if self.estimate == 0 else 0.0
        return float(min(1.0, 2.0 * stats.t.sf(abs(self.estimate) / self.se, self.df)))


def combine_runs(results: Sequence[BootstrapResult], n: int = 1000, seed: int = 0, level: float = 0.95,
                 bounds: tuple[float, float] | None = None) -> CombinedResult:
    """One metric over runs that each carry a study-level bootstrap (``bootstrap_froc``, ``bootstrap_means``,
    ...): the mean of the runs' estimates with a random-effects t interval (module docstring).

    Runs whose estimate is undefined (NaN) are left out. ``bounds`` (e.g. ``(0, 1)`` for a proportion) clips the
    interval to the metric's range, which never lowers its coverage. ``n`` and ``seed`` are recorded only: the
    interval is computed, not resampled (they stay for callers of the two-level bootstrap this replaced).

    Example:
        >>> from camkit.metrics import bootstrap_means
        >>> runs = [bootstrap_means(range(4), {"m": v}, n=200)["m"] for v in ([1, 0, 1, 1], [1, 1, 0, 1])]
        >>> c = combine_runs(runs)
        >>> round(c.estimate, 3), c.df > 100   # one test set's four studies shared: its error dominates
        (0.75, True)
    """
    check_level(level)
    if not results:
        raise ValueError("combine_runs needs at least one run")
    names = {r.metric for r in results}
    if len(names) != 1:
        raise ValueError(f"combine_runs: the runs hold different metrics {sorted(names)}")
    found = runs_interval(results, level, bounds)
    values = tuple(float(r.estimate) for r in results)
    return CombinedResult(results[0].metric, found.estimate, found.low, found.high, found.sd, values, float(level),
                          int(n), int(seed), found.se, found.df, found.shared_var, found.method)


def runs_interval(results: Sequence[BootstrapResult | PairedResult], level: float = 0.95,
                  bounds: tuple[float, float] | None = None) -> RunsInterval:
    """The random-effects interval of the mean over runs (module docstring); works on bootstraps of a metric
    and on paired differences alike (``estimate`` / ``difference``)."""
    check_level(level)
    est = np.array([_estimate(r) for r in results], dtype=float)
    keep = [i for i in range(len(results)) if np.isfinite(est[i])]
    nan = float("nan")
    if not keep:
        return RunsInterval(nan, nan, nan, nan, nan, nan, 0.0, 0, "no run has a value")
    used = [results[i] for i in keep]
    x = est[keep]
    r = x.size
    if r == 1:  # no seed spread to learn from: the run's own study interval
        one = used[0]
        return RunsInterval(float(x[0]), _boot_sd(one), nan, float(one.low), float(one.high), nan, 0.0, 1,
                            "one run: its study bootstrap (test-set sampling only, nothing about other seeds)")
    s2 = float(x.var(ddof=1))
    shared, how = shared_covariance(used)
    var = s2 / r + shared
    se = float(np.sqrt(var))
    # Satterthwaite's df, (R - 1) (1 + c / (S^2 / R))^2, with S^2 taken at its upper bound (DF_QUANTILE) and
    # floored at the runs' unshared test noise (their mean bootstrap variance less c): a spread of 3-5 runs
    # that came out small by chance must not also make the df large (the calibration study's paired designs
    # went to 11% family-wise error without it)
    noise = [_boot_sd(u) ** 2 * _small_sample(u) for u in used]
    floor = max(0.0, float(np.nanmean(noise)) - shared) if np.isfinite(noise).any() else 0.0
    spread = max(s2 * (r - 1) / stats.chi2.ppf(DF_QUANTILE, r - 1), floor) / r
    df = (r - 1) * (1 + shared / spread) ** 2 if spread > 0 else float("inf")
    half = float(stats.t.ppf(0.5 + level / 2, df)) * se if se > 0 else 0.0
    low, high = float(x.mean()) - half, float(x.mean()) + half
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return RunsInterval(float(x.mean()), se, float(df), low, high, float(np.sqrt(s2)), shared, r,
                        f"{METHOD}; {how}")


def shared_covariance(results: Sequence[BootstrapResult | PairedResult]) -> tuple[float, str]:
    """``c``: the mean over pairs of runs of the covariance their estimates get from shared test studies, with
    a phrase saying how it was found.

    Two runs bootstrapped on one plan (equal ``plan_key``: same study ids, n and seed, so the same draws) give
    it directly, as the covariance of their resamples; this also measures ~0 for runs whose test studies
    merely carry the same ids. Runs on different plans whose study ids overlap cannot be measured: each pair is
    bounded by ``overlap * sqrt(var_r var_r')`` (the shared studies' error taken as fully common, which can
    only widen the interval). Runs with no study in common add 0.
    """
    r = len(results)
    if r < 2:
        return 0.0, "one run"
    total, measured, bounded = 0.0, 0, 0
    for i in range(r):
        for j in range(i + 1, r):
            a, b = results[i], results[j]
            if a.plan_key and a.plan_key == b.plan_key and a.samples.size == b.samples.size:
                ok = np.isfinite(a.samples) & np.isfinite(b.samples)
                if ok.sum() > 1:
                    total += float(np.cov(a.samples[ok], b.samples[ok])[0, 1]) * _small_sample(a)
                    measured += 1
                continue
            sa, sb = set(a.studies), set(b.studies)
            common = len(sa & sb)
            bound = common / np.sqrt(len(sa) * len(sb)) * _boot_sd(a) * _boot_sd(b) if common else 0.0
            if bound == bound and bound > 0:
                total += bound
                bounded += 1
    pairs = r * (r - 1) // 2
    if bounded:
        how = (f"{bounded} of {pairs} pairs of runs share studies on different resample plans: their shared "
               "test-set error bounded from above (bootstrap every run with one seed and n to measure it)")
    elif measured:
        how = "the shared test-set error measured on one resample plan"
    else:
        how = "runs on separate test sets"
    return max(0.0, total / pairs), how


def _estimate(r: BootstrapResult | PairedResult) -> float:
    return float(r.difference if isinstance(r, PairedResult) else r.estimate)


def _small_sample(r: BootstrapResult | PairedResult) -> float:
    """S / (S - 1): a bootstrap over S studies gives (S - 1) / S of the unbiased variance of a mean."""
    s = len(r.studies)
    return s / (s - 1) if s > 1 else 1.0


def _boot_sd(r: BootstrapResult | PairedResult) -> float:
    ok = r.samples[np.isfinite(r.samples)]
    return float(ok.std(ddof=1)) if ok.size > 1 else float("nan")
