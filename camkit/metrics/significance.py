"""Significance across a leaderboard: Holm's step-down correction, and paired differences combined over runs.

A leaderboard compares every pairing with one baseline pairing, i.e. many tests at once; uncorrected, about one
in twenty "significant" differences at alpha 0.05 would be noise. Holm (1979), "A simple sequentially rejective
multiple test procedure", controls the family-wise error rate at alpha under any dependence between the tests
(pairings of one matrix share images, so their tests are dependent) and is uniformly more powerful than
Bonferroni.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from camkit.metrics.bootstrap import PairedResult
from camkit.metrics.runs import runs_interval


def holm(p_values: Any) -> np.ndarray:
    """Holm-adjusted p-values, in the input's order (NaN entries stay NaN and do not count as tests).

    With the m finite p-values sorted ascending, p_(1) <= ... <= p_(m), the adjusted value of the k-th is
    ``max over j <= k of min(1, (m - j + 1) * p_(j))``; rejecting where the adjusted value is <= alpha is Holm's
    procedure at level alpha (Holm 1979 rejects ``p_(j) <= alpha / (m - j + 1)``; statsmodels'
    ``multipletests(method="holm")`` gives the same values).

    Example:
        >>> holm([0.01, 0.04, 0.03]).round(2).tolist()
        [0.03, 0.06, 0.06]
    """
    p = np.asarray(p_values, dtype=float).ravel()
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    if ok.size == 0:
        return out
    if ((p[ok] < 0) | (p[ok] > 1)).any():
        raise ValueError(f"holm: p-values must lie in [0, 1], got {p[ok].min()} .. {p[ok].max()}")
    order = ok[np.argsort(p[ok], kind="stable")]
    m = order.size
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out


def combine_paired(results: Sequence[PairedResult], n: int = 1000, seed: int = 0,
                   level: float = 0.95) -> dict[str, Any]:
    """A paired difference over several training runs: the mean of the runs' differences with the random-effects
    t interval of camkit.metrics.runs (test studies the runs share resampled with one index) and the two-sided
    p-value of "no difference" from the same t distribution; one run: its own paired bootstrap. Returns
    ``{"difference", "ci", "p_value", "runs", "df", "method"}``; ``n`` and ``seed`` are not used (the interval
    is computed, not resampled) and stay for earlier callers."""
    if not results:
        raise ValueError("combine_paired needs at least one run")
    found = runs_interval(results, level)
    if found.runs == 1:
        one = next(r for r in results if r.difference == r.difference)
        p = one.p_value
    else:
        p = found.p_value()
    return {"difference": found.estimate, "ci": [found.low, found.high], "p_value": p, "runs": len(results),
            "df": found.df, "method": found.method}
