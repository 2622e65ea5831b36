"""Holm's correction against a hand-worked case and the step-down procedure written as a loop (paired
differences combined over runs: tests/test_metrics_runs.py)."""
from __future__ import annotations

import numpy as np
import pytest

from camkit.metrics import bootstrap_p_value, holm


def test_holm_hand_worked():
    # sorted: 0.005 x4 = 0.02, 0.01 x3 = 0.03, 0.03 x2 = 0.06, 0.04 x1 = 0.04 -> kept monotone: 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]).tolist() == pytest.approx([0.03, 0.06, 0.06, 0.02])


def _holm_rejects(p: list[float], alpha: float) -> list[bool]:
    """Holm's procedure as he stated it: test the smallest p against alpha / m, the next against
    alpha / (m - 1), ..., and stop at the first that fails."""
    order = sorted(range(len(p)), key=lambda i: p[i])
    reject = [False] * len(p)
    for k, i in enumerate(order):
        if p[i] > alpha / (len(p) - k):
            break
        reject[i] = True
    return reject


@pytest.mark.parametrize("seed", range(20))
def test_holm_adjusted_values_reject_exactly_what_the_procedure_rejects(seed):
    rng = np.random.default_rng(seed)
    p = (rng.random(int(rng.integers(1, 30))) ** 3).tolist()  # many small p-values
    adjusted = holm(p)
    for alpha in (0.01, 0.05, 0.1, 0.2):
        assert (adjusted <= alpha).tolist() == _holm_rejects(p, alpha)
    assert (adjusted >= np.asarray(p) - 1e-15).all() and (adjusted <= 1).all()


def test_holm_leaves_nan_out_of_the_count():
    out = holm([0.01, float("nan"), 0.02])
    assert np.isnan(out[1]) and out[[0, 2]].tolist() == pytest.approx([0.02, 0.02])
    assert np.isnan(holm([float("nan")])).all() and holm([]).size == 0
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm([0.5, 1.5])


def test_bootstrap_p_value_never_reaches_zero():
    assert bootstrap_p_value(np.ones(999)) == pytest.approx(2 / 1000)
    assert bootstrap_p_value(np.r_[np.ones(500), -np.ones(500)]) == 1.0
    assert bootstrap_p_value(np.r_[-np.ones(10), np.ones(90)]) == pytest.approx(2 * 11 / 101)
    assert np.isnan(bootstrap_p_value(np.zeros(0)))
