"""A metric over several training runs (camkit.metrics.runs): the random-effects t interval against hand-worked
cases and statsmodels, the shared test-set term, and its coverage in the calibration study's designs."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from camkit.metrics import (BootstrapResult, PairedResult, bootstrap_froc, bootstrap_means, combine_paired,
                            combine_runs, compare, holm)

ROOT = Path(__file__).resolve().parents[1]


def _run(estimate, samples, key="k", studies=("s1", "s2"), name="tpr@1"):
    s = np.asarray(samples, float)
    return BootstrapResult(name, estimate, float(np.nanmin(s)), float(np.nanmax(s)), 0.95, s.size, 0, 0, key, s,
                           tuple(studies))


def test_separate_test_sets_give_the_t_interval_over_runs():
    """Runs on separate test sets: mean +- t(R-1) * S / sqrt(R), as statsmodels' one-sample t interval."""
    from statsmodels.stats.weightstats import DescrStatsW

    runs = [_run(v, [v - 0.01, v + 0.01], key=f"k{i}", studies=(f"a{i}", f"b{i}"))
            for i, v in enumerate((0.8, 0.2, 0.5))]
    c = combine_runs(runs)
    # by hand: mean 0.5, S^2 = (0.09 + 0.09 + 0) / 2 = 0.09, se = 0.3 / sqrt(3), t(2, 0.975) = 4.302653
    assert c.estimate == pytest.approx(0.5) and c.sd == pytest.approx(0.3) and c.values == (0.8, 0.2, 0.5)
    assert c.se == pytest.approx(0.3 / np.sqrt(3)) and c.df == pytest.approx(2) and c.shared_var == 0
    assert (c.low, c.high) == pytest.approx((0.5 - 4.302653 * 0.173205, 0.5 + 4.302653 * 0.173205), abs=1e-5)
    assert (c.low, c.high) == pytest.approx(DescrStatsW(np.array([0.8, 0.2, 0.5])).tconfint_mean(0.05))
    assert "separate test sets" in c.method and c.to_dict()["df"] == pytest.approx(2)
    clipped = combine_runs(runs, bounds=(0.0, 1.0))  # a proportion's interval stays in [0, 1]
    assert (clipped.low, clipped.high) == (0.0, 1.0)
    assert combine_runs(runs, level=0.5).high - 0.5 == pytest.approx(stats.t.ppf(0.75, 2) * c.se)


def test_runs_on_one_test_set_add_the_covariance_they_share():
    """Same plan (same studies, n, seed): c is the covariance of their resamples, Var = S^2 / R + c, df by
    Satterthwaite with c known."""
    base = np.array([0.7, 0.9, 0.8, 0.6, 0.75, 0.85])
    a, b = _run(0.75, base), _run(0.85, base + 0.1)
    c = combine_runs([a, b])
    # the two runs move together on every resample; a bootstrap over S = 2 studies gives (S - 1) / S of the
    # unbiased variance, hence the factor 2
    cov = float(np.var(base, ddof=1)) * 2
    s2 = float(np.var([0.75, 0.85], ddof=1))  # 0.005
    var = s2 / 2 + cov
    assert c.shared_var == pytest.approx(cov) and c.se == pytest.approx(np.sqrt(var))
    # df: Satterthwaite's (R - 1) (1 + c / (S^2 / R))^2 with S^2 at its 80% upper bound S^2 / chi2(0.2, 1)
    assert c.df == pytest.approx((1 + cov / (s2 / stats.chi2.ppf(0.2, 1) / 2)) ** 2)
    half = stats.t.ppf(0.975, c.df) * np.sqrt(var)
    assert (c.low, c.high) == pytest.approx((0.8 - half, 0.8 + half))
    assert "measured on one resample plan" in c.method
    # the same runs on separate test sets: no shared term, the plain t interval with 1 df
    apart = combine_runs([_run(0.75, base, "k1", ("x",)), _run(0.85, base + 0.1, "k2", ("y",))])
    assert apart.shared_var == 0 and apart.df == pytest.approx(1)


def test_shared_studies_on_different_plans_are_bounded_from_above():
    a = _run(0.5, [0.4, 0.6, 0.5], key="k1", studies=("s1", "s2", "s3", "s4"))
    b = _run(0.6, [0.5, 0.7, 0.6], key="k2", studies=("s3", "s4", "s5", "s6"))
    c = combine_runs([a, b])
    # half the studies in common: c <= 0.5 * sd_a * sd_b (each 0.1)
    assert c.shared_var == pytest.approx(0.5 * 0.1 * 0.1)
    assert "bounded from above" in c.method


def test_independent_runs_on_one_plan_measure_about_no_shared_error():
    """The synthetic data's seeds reuse the study ids with other images: one plan, but nothing shared; the
    measured covariance is ~0 and the interval is the t interval's."""
    rng = np.random.default_rng(0)
    groups = [f"study-{i // 2}" for i in range(400)]
    runs = [bootstrap_means(groups, {"tpr@1": (rng.random(400) < 0.7).astype(float)}, n=1000)["tpr@1"]
            for _ in range(5)]
    assert len({r.plan_key for r in runs}) == 1
    c = combine_runs(runs)
    one = np.var([r.samples for r in runs], axis=1, ddof=1).mean()
    assert c.shared_var < 0.1 * one and c.df < 4.5


def test_one_run_keeps_its_own_interval_and_nan_runs_are_left_out():
    a = _run(0.8, [0.7, 0.9])
    one = combine_runs([a])
    assert (one.estimate, one.low, one.high) == (0.8, 0.7, 0.9) and np.isnan(one.sd) and "one run" in one.method
    both = combine_runs([a, BootstrapResult("tpr@1", float("nan"), float("nan"), float("nan"), 0.95, 2, 2, 0, "k",
                                            np.full(2, np.nan))])
    assert both.estimate == 0.8 and both.values[0] == 0.8 and np.isnan(both.values[1])
    with pytest.raises(ValueError, match="different metrics"):
        combine_runs([_run(0.5, [0.5]), _run(0.5, [0.5], name="cpm")])
    with pytest.raises(ValueError, match="at least one"):
        combine_runs([])


def test_the_hit_rate_design_bootstraps_as_the_froc_bootstrap():
    """The calibration study bootstraps TPR@1FPPI with one box per image through bootstrap_means; that is
    exactly what bootstrap_froc gives on the same images."""
    rng = np.random.default_rng(3)
    hits = rng.random(60) < 0.6
    groups = {i: f"s{i // 2}" for i in range(60)}
    gt = {i: np.array([[0.0, 0, 10, 10]]) for i in range(60)}
    preds = {i: (np.array([[0.0, 0, 10, 10]] if hits[i] else [[50.0, 50, 60, 60]]), np.array([0.5]))
             for i in range(60)}
    froc = bootstrap_froc(preds, gt, groups, metrics=("tpr@1",), n=300)["tpr@1"]
    means = bootstrap_means(list(groups.values()), {"tpr@1": hits.astype(float)}, n=300)["tpr@1"]
    np.testing.assert_allclose(froc.samples, means.samples)
    assert froc.plan_key == means.plan_key and froc.estimate == pytest.approx(means.estimate)


# -- paired differences and Holm ----------------------------------------------------------------------------

def _paired(diff, samples, key="k", studies=("s1",)):
    s = np.asarray(samples, float)
    return PairedResult("tpr@1", diff, s.min(), s.max(), 0.5, 0.95, s.size, 0, 0, s, key, studies)


def test_combine_paired_is_a_t_test_over_runs_on_separate_test_sets():
    from statsmodels.stats.weightstats import DescrStatsW

    d = [0.05, 0.02, 0.08, 0.03]
    runs = [_paired(v, v + 1e-4 * np.arange(-2, 3), key=f"k{i}", studies=(f"s{i}",)) for i, v in enumerate(d)]
    out = combine_paired(runs)
    t, p, df = DescrStatsW(np.array(d)).ttest_mean(0)
    assert out["difference"] == pytest.approx(np.mean(d)) and out["df"] == pytest.approx(df)
    assert out["p_value"] == pytest.approx(p)
    assert out["ci"] == pytest.approx(list(DescrStatsW(np.array(d)).tconfint_mean(0.05)))
    one = combine_paired(runs[:1])  # one run: its own paired bootstrap
    assert one["p_value"] == 0.5 and one["runs"] == 1
    with pytest.raises(ValueError):
        combine_paired([])


def test_compare_carries_the_plan_for_combining():
    groups = [f"s{i // 2}" for i in range(20)]
    rng = np.random.default_rng(1)
    a, b = (bootstrap_means(groups, {"m": rng.random(20)}, n=50)["m"] for _ in range(2))
    c = compare(a, b)
    assert c.plan_key == a.plan_key and c.studies == a.studies == tuple(sorted(set(groups)))


@pytest.mark.parametrize("seed", range(10))
def test_holm_rejects_what_statsmodels_rejects_at_alpha_itself(seed):
    """Holm (1979) rejects p_(j) <= alpha / (m - j + 1): an adjusted p equal to alpha is rejected."""
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(seed)
    p = np.r_[0.025, 0.05, 0.0125, rng.random(int(rng.integers(0, 8))) ** 2]  # exact boundary cases first
    for alpha in (0.05, 0.1):
        reject, adjusted, _, _ = multipletests(p, alpha=alpha, method="holm")
        np.testing.assert_allclose(holm(p), adjusted)
        assert ((holm(p) <= alpha) == reject).all()
    assert (holm([0.025, 0.05]) <= 0.05).all()  # both rejected at 0.05


# -- coverage: a slice of benchmarks/interval_calibration.py --------------------------------------------------

def _calibration():
    spec = importlib.util.spec_from_file_location("interval_calibration", ROOT / "benchmarks" /
                                                  "interval_calibration.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("interval_calibration", module)  # its dataclasses look their module up
    spec.loader.exec_module(sys.modules["interval_calibration"])
    module = sys.modules["interval_calibration"]
    return module


@pytest.mark.slow  # 900 simulated seed studies
@pytest.mark.parametrize("name", ["3x100 tau=0.1", "5x200 shared tau=0.1", "5x200 shared tau=0 rho=0.9"])
def test_the_interval_covers_in_the_hard_designs(name):
    """300 simulated seed studies each (seeded: the same numbers every run): the 95% interval covers 91-99%
    (3 Monte Carlo standard errors around 95%), where the two-level bootstrap it replaced covered less."""
    cal = _calibration()
    design = next(d for d in cal.designs() if d.name == name)
    found = cal.coverage(design, reps=300, n=300)
    assert 0.91 <= found["coverage"] <= 0.99, found
    assert found["coverage_before"] < found["coverage"], found
