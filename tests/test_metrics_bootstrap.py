"""Bootstrap over studies: the fast paths equal the generic one, skipping, pairing and the p-value rule."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from camkit.metrics import (bootstrap, bootstrap_classification, bootstrap_froc, classification, compare, froc, paired_bootstrap, resample_plan)
from camkit.metrics.bootstrap import BootstrapResult
from camkit.metrics.detection import froc_metrics, match_table


def _detection_data(n_images=24, seed=0, quality=0.5):
    """Images in studies of two; about half have one lesion; each has a few boxes, some on the lesion."""
    rng = np.random.default_rng(seed)
    gt, preds, studies = {}, {}, {}
    for i in range(n_images):
        k = f"img{i}"
        studies[k] = f"study{i // 2}"
        lesion = [[20.0, 20.0, 40.0, 40.0]] if rng.random() < 0.5 else []
        gt[k] = lesion
        m = int(rng.integers(0, 4))
        boxes = [[x, x, x + 20.0, x + 20.0] for x in rng.uniform(50, 200, m)]
        if lesion and rng.random() < quality:
            boxes.append([22.0, 21.0, 41.0, 39.0])
        preds[k] = (boxes, rng.choice([0.2, 0.4, 0.6, 0.8], size=len(boxes)).tolist())
    return preds, gt, studies


def _renamed(records):
    """Resampled records -> dicts with unique keys (an image drawn twice is two images)."""
    preds, gt = {}, {}
    for j, (k, p, g) in enumerate(records):
        preds[f"{k}#{j}"], gt[f"{k}#{j}"] = p, g
    return preds, gt


@pytest.mark.parametrize("images", ["all", "positive"])
def test_froc_fast_path_equals_generic_bootstrap(images):
    preds, gt, studies = _detection_data()
    names = ["tpr@0.25", "tpr@1", "cpm", "best_tpr", "best_fppi"]
    fast = bootstrap_froc(preds, gt, studies, metrics=names, n=40, seed=3, images=images)
    ids = [k for k in gt if images == "all" or gt[k]]
    records = [(k, preds[k], gt[k]) for k in ids]
    for name in names:
        def metric(recs, name=name):
            p, g = _renamed(recs)
            return froc(p, g).metric(name)

        slow = bootstrap(metric, records, [studies[k] for k in ids], n=40, seed=3, name=name)
        np.testing.assert_array_equal(fast[name].samples, slow.samples)  # exact, NaNs in the same places
        assert fast[name].estimate == froc(preds, gt, images=images).metric(name) == slow.estimate
        assert (fast[name].low, fast[name].high, fast[name].n_skipped) == (slow.low, slow.high, slow.n_skipped)
        assert fast[name].plan_key == slow.plan_key


def test_classification_fast_path_equals_generic_and_skips_one_class_resamples():
    rng = np.random.default_rng(1)
    # 6 studies of 2 images; only study 0 holds positives, so some resamples have no positive at all.
    groups = np.repeat(np.arange(6), 2)
    labels = np.array([1, 1] + [0] * 10)
    scores = rng.choice([0.1, 0.3, 0.5, 0.7, 0.9], size=12)
    fast = bootstrap_classification(labels, scores, groups, n=200, seed=0)
    records = list(zip(labels, scores))
    plan = resample_plan(groups, 200, 0)
    no_positive = int((~(plan.draws() == 0).any(axis=1)).sum())  # study 0 never drawn
    assert no_positive > 0
    for name in ("accuracy", "auc", "tpr", "tnr"):
        slow = bootstrap(lambda recs, name=name: classification([a for a, _ in recs], [b for _, b in recs])
                         .metric(name), records, groups, n=200, seed=0, name=name)
        np.testing.assert_allclose(fast[name].samples, slow.samples, rtol=0, atol=1e-12)
        assert fast[name].estimate == pytest.approx(slow.estimate)
    assert fast["auc"].n_skipped == no_positive == fast["tpr"].n_skipped
    assert fast["accuracy"].n_skipped == 0 and fast["tnr"].n_skipped == 0
    ok = fast["auc"].samples[~np.isnan(fast["auc"].samples)]
    assert (fast["auc"].low, fast["auc"].high) == tuple(np.percentile(ok, [2.5, 97.5]))


def test_resamples_are_whole_studies_and_do_not_depend_on_record_order():
    groups = ["s2", "s1", "s2", "s3", "s1"]
    plan = resample_plan(groups, n=300, seed=5)
    w = plan.weights()
    assert w.shape == (300, 5) and (w.sum(axis=1) == [5] * 300).sum() < 300  # sizes vary with the draw
    np.testing.assert_array_equal(w[:, 0], w[:, 2])  # same study -> same multiplicity
    np.testing.assert_array_equal(w[:, 1], w[:, 4])
    assert (w.reshape(300, 5)[:, [0, 1, 3]].sum(axis=1) == 3).all()  # 3 studies drawn per resample
    perm = [4, 3, 2, 1, 0]
    plan2 = resample_plan([groups[i] for i in perm], n=300, seed=5)
    np.testing.assert_array_equal(plan2.weights(), w[:, perm])
    assert plan2.key == plan.key and resample_plan(groups, n=300, seed=6).key != plan.key


def test_paired_comparison():
    preds, gt, studies = _detection_data(n_images=60, seed=2, quality=0.9)
    worse = {k: ([b for b in p[0] if b[0] != 22.0], [s for b, s in zip(*p) if b[0] != 22.0])
             for k, p in preds.items()}  # the same boxes without the hits
    a = bootstrap_froc(preds, gt, studies, metrics=["tpr@1", "cpm"], n=300, seed=0)
    b = bootstrap_froc(worse, gt, studies, metrics=["tpr@1", "cpm"], n=300, seed=0)
    same = compare(a["tpr@1"], a["tpr@1"])
    assert (same.difference, same.low, same.high, same.p_value) == (0.0, 0.0, 0.0, 1.0)
    d = compare(a["tpr@1"], b["tpr@1"])
    assert d.difference == a["tpr@1"].estimate - b["tpr@1"].estimate > 0.2
    assert d.low > 0 and d.p_value == pytest.approx(2 / 301)  # every resample favours a
    np.testing.assert_array_equal(d.samples, a["tpr@1"].samples - b["tpr@1"].samples)
    c = bootstrap_froc(preds, gt, studies, metrics=["tpr@1"], n=300, seed=1)
    with pytest.raises(ValueError, match="different resamples"):
        compare(a["tpr@1"], c["tpr@1"])
    with pytest.raises(ValueError, match="different metrics"):
        compare(a["tpr@1"], b["cpm"])


def test_p_value_rule():
    def result(samples):
        return BootstrapResult("m", 0.0, 0.0, 0.0, 0.95, len(samples), 0, 0, "k", np.asarray(samples, float))

    zeros = result([0.0] * 9)
    # d = [-1, 1, 2, 3, 4, 5, 6, 7, nan]: 1 at or below 0, 7 at or above; n_valid 8 -> 2 * (1 + 1) / 9
    d = compare(result([-1, 1, 2, 3, 4, 5, 6, 7, np.nan]), zeros)
    assert d.p_value == pytest.approx(4 / 9) and d.n_skipped == 1
    assert compare(result([1, 2, 0, -3, 5, 6, 7, 8, 9]), zeros).p_value == pytest.approx(2 * (1 + 2) / 10)


def test_generic_paired_bootstrap_and_errors():
    recs_a, recs_b, groups = [1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 5.0], ["a", "a", "b", "c"]
    r = paired_bootstrap(lambda x: float(np.mean(x)), recs_a, recs_b, groups, n=100, seed=0)
    assert r.difference == pytest.approx(-0.25) and r.high <= 0 and r.n == 100
    with pytest.raises(ValueError, match="same images"):
        paired_bootstrap(np.mean, recs_a, recs_b[:3], groups)
    with pytest.raises(ValueError, match="groups has 3 entries for 4 records"):
        bootstrap(np.mean, recs_a, groups[:3])
    with pytest.raises(ValueError, match="level"):
        bootstrap(np.mean, recs_a, groups, level=95)
    with pytest.raises(ValueError, match="n \\(number of resamples\\)"):
        bootstrap(np.mean, recs_a, groups, n=0)
    preds, gt, studies = _detection_data()
    del studies["img3"]
    with pytest.raises(ValueError, match="no study id for evaluated image.*img3"):
        bootstrap_froc(preds, gt, studies, n=10)
    res = bootstrap_froc(preds, gt, None, n=10)["tpr@1"]  # None: every image its own study
    assert res.n == 10 and set(res.to_dict()) >= {"estimate", "low", "high", "n_skipped", "plan_key"}


def test_undefined_everywhere_gives_nan_interval():
    r = bootstrap(lambda x: float("nan"), [1, 2], ["a", "b"], n=20)
    assert r.n_skipped == 20 and np.isnan(r.low) and np.isnan(r.high)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from(["fp", "ignore"]))
def test_hit_points_give_the_same_numbers_as_the_full_curve(seed, duplicates):
    """The bootstrap reads its numbers off the hit points only; they must equal the full curve's."""
    rng = np.random.default_rng(seed)
    preds, gt, _ = _detection_data(n_images=int(rng.integers(1, 12)), seed=seed, quality=rng.random())
    table = match_table(preds, gt, duplicates=duplicates)
    w = rng.integers(0, 3, size=(7, len(gt)))
    w[0] = 0  # a resample without any image of ours is still well defined (NaN TPR, not a crash)
    w[0, 0] = 1
    names = ["tpr@0", "tpr@0.125", "tpr@0.5", "tpr@1", "tpr@3", "tpr@inf", "cpm", "best_tpr", "best_fppi"]
    full = froc_metrics(*table.counts(w), names)
    fast = froc_metrics(*table.hit_points(w), names)
    for n in names:
        np.testing.assert_array_equal(fast[n], full[n], err_msg=n)


def test_bootstrap_localization_equals_the_generic_bootstrap():
    """Weighted resample means (and MaxBoxAcc's max inside each resample) against camkit's generic bootstrap
    calling the plain metric on each resample's records."""
    from camkit.metrics import bootstrap, bootstrap_localization

    rng = np.random.default_rng(5)
    n_img = 30
    groups = [f"s{i // 2}" for i in range(n_img)]
    pointing = (rng.random(n_img) < 0.6).astype(float)
    energy = rng.random(n_img)
    hits = (rng.random((n_img, 7, 2)) < 0.5).astype(float)
    got = bootstrap_localization(groups, pointing, energy, hits, (0.3, 0.5), n=200, seed=3)
    records = list(range(n_img))
    ref = {
        "pointing": bootstrap(lambda r: pointing[r].mean(), records, groups, n=200, seed=3),
        "energy": bootstrap(lambda r: energy[r].mean(), records, groups, n=200, seed=3),
        "maxboxacc@0.5": bootstrap(lambda r: hits[r][:, :, 1].mean(0).max(), records, groups, n=200, seed=3),
        "maxboxacc": bootstrap(lambda r: hits[r].mean(0).max(0).mean(), records, groups, n=200, seed=3),
    }
    for name, r in ref.items():
        assert got[name].estimate == pytest.approx(r.estimate)
        np.testing.assert_allclose(got[name].samples, r.samples, rtol=1e-12)
        assert (got[name].low, got[name].high) == pytest.approx((r.low, r.high))
