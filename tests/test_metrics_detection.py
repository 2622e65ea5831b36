"""Detection scoring: hand-worked cases for every rule, a pure-Python reference, invariances."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from camkit.metrics import froc, iou_matrix, match_image

G = [0.0, 0.0, 10.0, 10.0]  # a 10x10 lesion at the origin


def curve(r):
    return list(zip(r.thresholds.tolist(), r.tpr.tolist(), r.fppi.tolist()))


# --- hand-worked cases ----------------------------------------------------------------------------------

def test_iou_exactly_threshold_is_not_a_hit():
    # [0,0,10,3] inside [0,0,10,10]: IoU = 30 / 100 = 0.3 exactly (also in floating point).
    assert iou_matrix([[0, 0, 10, 3]], [G])[0, 0] == 0.3
    r = froc({"a": ([[0, 0, 10, 3]], [0.9])}, {"a": [G]})
    assert curve(r) == [(np.inf, 0.0, 0.0), (0.9, 0.0, 1.0)]
    r = froc({"a": ([[0, 0, 10, 3.01]], [0.9])}, {"a": [G]})
    assert curve(r) == [(np.inf, 0.0, 0.0), (0.9, 1.0, 0.0)]
    assert froc({"a": ([[0, 0, 10, 3]], [0.9])}, {"a": [G]}, iou_threshold=0.29).tpr[-1] == 1.0


def test_far_box_is_never_a_hit_even_when_alone():
    # coco-froc-analysis 0.2.15 counted every Hungarian assignment as a hit, far-away pairs included.
    r = froc({"a": ([[500, 500, 520, 520]], [0.99])}, {"a": [G]})
    assert r.tpr.tolist() == [0.0, 0.0] and r.fppi.tolist() == [0.0, 1.0]
    assert r.best_operating_point.tpr == 0.0
    assert froc({"a": ([[500, 500, 520, 520]], [0.99])}, {"a": [G]}, criterion="center").tpr[-1] == 0.0


def test_equal_scores_enter_together_as_one_step():
    gt = {"a": [G], "b": [], "c": [G]}
    preds = {"a": ([G], [0.5]), "b": ([G], [0.5]), "c": ([G], [0.9])}
    r = froc(preds, gt)
    # No intermediate point between the hit on a and the false positive on b: they share score 0.5.
    assert curve(r) == [(np.inf, 0.0, 0.0), (0.9, 0.5, 0.0), (0.5, 1.0, 1 / 3)]
    assert r.tpr_at(0.0) == 0.5 and r.tpr_at(1 / 3) == 1.0 and r.tpr_at(0.3) == 0.5


@pytest.mark.parametrize("duplicates, expected, ignored", [
    ("fp", [(np.inf, 0.0, 0.0), (0.9, 1.0, 0.0), (0.8, 1.0, 1.0)], 0),
    ("ignore", [(np.inf, 0.0, 0.0), (0.9, 1.0, 0.0)], 1),
])
def test_two_predictions_on_one_lesion(duplicates, expected, ignored):
    preds = {"a": ([[0, 0, 10, 10], [1, 1, 10, 10]], [0.8, 0.9])}
    r = froc(preds, {"a": [G]}, duplicates=duplicates)
    assert curve(r) == expected
    assert r.n_ignored == ignored and r.n_predictions == 2
    np.testing.assert_array_equal(match_image(*preds["a"], [G], duplicates=duplicates), [-1 if ignored else 0, 1])


def test_one_prediction_on_two_lesions_matches_one_of_them():
    l1, l2 = [0, 0, 10, 10], [4, 0, 14, 10]
    p = [2, 0, 12, 10]  # IoU 80/120 with each: equal, so the lower index (l1) is taken
    assert iou_matrix([p], [l1, l2]).tolist() == [[80 / 120, 80 / 120]]
    r = froc({"a": ([p], [0.9])}, {"a": [l1, l2]})
    assert r.tpr.tolist() == [0.0, 0.5] and r.n_lesions == 2
    only_l1 = [0, 0, 6, 10]  # IoU 0.6 with l1, 20/140 with l2: l1 is taken -> duplicate
    only_l2 = [8, 0, 18, 10]  # IoU 60/140 with l2, 20/180 with l1: l2 is free -> hit
    np.testing.assert_array_equal(match_image([p, only_l1, only_l2], [0.9, 0.5, 0.4], [l1, l2]), [1, 0, 1])


def test_a_prediction_takes_its_best_overlapping_free_lesion():
    l1, l2 = [0, 0, 10, 10], [4, 0, 14, 10]
    top = [3, 0, 13, 10]  # IoU 70/130 with l1, 90/110 with l2 -> takes l2
    both = [4, 0, 14, 9]  # IoU 0.9 with l2 (taken), 54/136 with l1 (free) -> hit on l1
    only_l2 = [6, 0, 16, 10]  # IoU 80/120 with l2 (taken), 40/160 = 0.25 with l1 -> duplicate
    np.testing.assert_array_equal(match_image([top, both], [0.9, 0.5], [l1, l2]), [1, 1])
    np.testing.assert_array_equal(match_image([top, only_l2], [0.9, 0.5], [l1, l2]), [1, 0])
    # Order is by score, not by position in the list.
    np.testing.assert_array_equal(match_image([only_l2, top], [0.5, 0.9], [l1, l2]), [0, 1])


def test_greedy_is_not_an_optimal_assignment():
    l1, l2 = [0, 0, 10, 10], [0, 10, 10, 20]
    a = [0, 2, 10, 16]  # IoU 80/160 = 0.5 with l1, 60/180 = 0.33 with l2 -> takes l1
    b = [0, 0, 10, 6]   # IoU 0.6 with l1 only -> duplicate, although a->l2, b->l1 would hit both
    np.testing.assert_array_equal(match_image([a, b], [0.9, 0.8], [l1, l2]), [1, 0])
    assert froc({"x": ([a, b], [0.9, 0.8])}, {"x": [l1, l2]}).tpr[-1] == 0.5


def test_images_without_predictions_and_normals():
    gt = {"pos1": [G], "pos2": [G, [20, 20, 30, 30]], "normal": []}
    preds = {"pos1": ([G], [0.9]), "normal": ([[0, 0, 5, 5], [6, 6, 9, 9]], [0.8, 0.7])}
    r_all = froc(preds, gt)  # 3 images, 3 lesions; the normal's two boxes are false positives
    assert (r_all.n_images, r_all.n_lesions, r_all.images) == (3, 3, "all")
    assert curve(r_all) == [(np.inf, 0, 0), (0.9, 1 / 3, 0), (0.8, 1 / 3, 1 / 3), (0.7, 1 / 3, 2 / 3)]
    r_pos = froc(preds, gt, images="positive")  # the paper: only images with masses; normal not scored at all
    assert (r_pos.n_images, r_pos.n_lesions, r_pos.images, r_pos.n_predictions) == (2, 3, "positive", 1)
    assert curve(r_pos) == [(np.inf, 0, 0), (0.9, 1 / 3, 0)]
    r_list = froc(preds, gt, images=["pos2", "normal"])
    assert (r_list.n_images, r_list.n_lesions, r_list.images) == (2, 2, "explicit")
    assert r_list.tpr[-1] == 0.0 and r_list.fppi[-1] == 1.0
    assert froc(preds, gt, images=None).n_images == 3


def test_no_lesions_gives_nan_tpr():
    r = froc({"n": ([G], [0.5])}, {"n": []})
    assert r.n_lesions == 0 and np.isnan(r.tpr).all() and r.fppi.tolist() == [0.0, 1.0]
    assert np.isnan(r.tpr_at(1.0))


def test_center_criterion():
    big = [-20, -20, 30, 30]  # centre (5, 5) inside G, IoU 100/2500
    assert froc({"a": ([big], [0.9])}, {"a": [G]}).tpr[-1] == 0.0
    assert froc({"a": ([big], [0.9])}, {"a": [G]}, criterion="center").tpr[-1] == 1.0
    edge = [8, 8, 12, 12]  # centre (10, 10) on G's corner: inside (edges included)
    assert froc({"a": ([edge], [0.9])}, {"a": [G]}, criterion="center").tpr[-1] == 1.0
    outside = [9, 9, 13, 13]
    assert froc({"a": ([outside], [0.9])}, {"a": [G]}, criterion="center").tpr[-1] == 0.0


def test_tpr_at_best_point_and_cpm():
    # 4 images, 4 lesions. Sorted: 0.9 hit, 0.8 FP, 0.7 FP, 0.6 hit, 0.5 FP x 4, 0.4 hit, 0.3 FP.
    far = [100, 100, 110, 110]
    gt = {i: [G] for i in "abcd"}
    preds = {"a": ([G, far, far], [0.9, 0.8, 0.5]), "b": ([far, G, far], [0.7, 0.6, 0.5]),
             "c": ([far, G, far], [0.5, 0.4, 0.3]), "d": ([far], [0.5])}
    r = froc(preds, gt)
    assert r.fppi.tolist() == [0, 0, 0.25, 0.5, 0.5, 1.5, 1.5, 1.75]
    assert r.tpr.tolist() == [0, 0.25, 0.25, 0.25, 0.5, 0.5, 0.75, 0.75]
    assert r.tpr_at(0.4) == 0.25 and r.tpr_at(0.5) == 0.5 and r.tpr_at(1.0) == 0.5  # no interpolation
    assert r.tpr_at(1.5) == 0.75 and r.tpr_at(100) == 0.75
    assert r.best_operating_point == (0.75, 1.5, 0.4)  # the lowest FPPI reaching the top TPR
    assert r.cpm() == pytest.approx((0.25 + 0.25 + 0.5 + 0.5 + 0.75 * 3) / 7)
    assert r.metric("tpr@1") == 0.5 and r.metric("best_fppi") == 1.5 and r.metric("cpm") == r.cpm()
    d = r.to_dict()
    assert d["thresholds"][0] is None and d["tpr@1"] == 0.5 and d["best_tpr"] == 0.75
    with pytest.raises(ValueError, match="unknown FROC metric"):
        r.metric("auc")


def test_accepts_tensors_and_dicts():
    preds = {"a": {"boxes": torch.tensor([G]), "scores": torch.tensor([0.9])}}
    assert froc(preds, {"a": torch.tensor([G])}).tpr[-1] == 1.0


@pytest.mark.parametrize("preds, gt, match", [
    ({"a": ([G], [float("nan")])}, {"a": [G]}, "image 'a'.*not finite"),
    ({"a": ([G], [float("inf")])}, {"a": [G]}, "image 'a'.*not finite"),
    ({"a": ([[5, 0, 2, 4]], [0.5])}, {"a": [G]}, "image 'a'.*predicted box.*x2 < x1"),
    ({"a": ([G], [0.5])}, {"a": [[0, 9, 5, 2]]}, "image 'a'.*ground-truth box.*y2 < y1"),
    ({"a": ([[0, 0, np.nan, 4]], [0.5])}, {"a": [G]}, "image 'a'.*non-finite"),
    ({"zz": ([G], [0.5])}, {"a": [G]}, r"not in ground_truth: \['zz'\]"),
    ({"a": ([G, G], [0.5])}, {"a": [G]}, "image 'a'.*shapes"),
    ({"a": ([G], [0.5])}, {"a": [[1, 2, 3]]}, "image 'a'.*ground-truth boxes must be"),
])
def test_bad_input_names_the_image(preds, gt, match):
    with pytest.raises(ValueError, match=match):
        froc(preds, gt)


def test_bad_settings():
    gt = {"a": [G], "n": []}
    with pytest.raises(ValueError, match="criterion"):
        froc({}, gt, criterion="giou")
    with pytest.raises(ValueError, match="duplicates"):
        froc({}, gt, duplicates="drop")
    with pytest.raises(ValueError, match="'all', 'positive'"):
        froc({}, gt, images="a")
    with pytest.raises(ValueError, match="missing from ground_truth"):
        froc({}, gt, images=["b"])
    with pytest.raises(ValueError, match="no images to evaluate"):
        froc({}, {"n": []}, images="positive")


# --- a plain per-image reference ------------------------------------------------------------------------

def _iou_py(a, b):
    iw = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
    ih = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def reference_froc(preds, gt, thr=0.3, criterion="iou", duplicates="fp", images="all"):
    ids = [k for k in gt if images == "all" or len(gt[k])]
    entries, n_lesions = [], 0
    for k in ids:
        lesions = [list(map(float, g)) for g in gt[k]]
        n_lesions += len(lesions)
        boxes, scores = preds.get(k, ([], []))
        matched = set()
        for i in sorted(range(len(scores)), key=lambda i: -scores[i]):
            b = list(map(float, boxes[i]))
            best, best_iou, any_hit = None, -1.0, False
            for j, g in enumerate(lesions):
                v = _iou_py(b, g)
                if criterion == "iou":
                    hit = v > thr
                else:
                    cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
                    hit = g[0] <= cx <= g[2] and g[1] <= cy <= g[3]
                any_hit |= hit
                if hit and j not in matched and v > best_iou:
                    best, best_iou = j, v
            if best is not None:
                matched.add(best)
                entries.append((scores[i], 1))
            elif not (any_hit and duplicates == "ignore"):
                entries.append((scores[i], 0))
    entries.sort(key=lambda e: -e[0])
    out, tp, fp = [(np.inf, 0.0 if n_lesions else np.nan, 0.0)], 0, 0
    for i, (s, t) in enumerate(entries):
        tp, fp = tp + t, fp + 1 - t
        if i + 1 == len(entries) or entries[i + 1][0] != s:
            out.append((s, tp / n_lesions if n_lesions else np.nan, fp / len(ids)))
    return out


coord = st.integers(0, 12)
box = st.tuples(coord, coord, st.integers(1, 8), st.integers(1, 8)).map(
    lambda t: [t[0], t[1], t[0] + t[2], t[1] + t[3]])
image = st.tuples(st.lists(box, max_size=3),
                  st.lists(st.tuples(box, st.sampled_from([0.1, 0.2, 0.3, 0.5, 0.9])), max_size=6))
dataset = st.lists(image, min_size=1, max_size=6)


def _split(data):
    gt = {f"im{i}": g for i, (g, _) in enumerate(data)}
    preds = {f"im{i}": ([b for b, _ in p], [s for _, s in p]) for i, (_, p) in enumerate(data) if p}
    return preds, gt


@settings(max_examples=100, deadline=None)
@given(dataset, st.sampled_from(["iou", "center"]), st.sampled_from(["fp", "ignore"]),
       st.sampled_from(["all", "positive"]), st.sampled_from([0.1, 0.3, 0.5]))
def test_matches_pure_python_reference(data, criterion, duplicates, images, thr):
    preds, gt = _split(data)
    if images == "positive" and not any(len(g) for g in gt.values()):
        return
    r = froc(preds, gt, iou_threshold=thr, criterion=criterion, duplicates=duplicates, images=images)
    ref = reference_froc(preds, gt, thr, criterion, duplicates, images)
    np.testing.assert_array_equal(curve(r), ref)  # identical, not approximately equal


@settings(max_examples=40, deadline=None)
@given(dataset, st.randoms(use_true_random=False))
def test_permuting_and_renaming_images_changes_nothing(data, rnd):
    preds, gt = _split(data)
    keys = list(gt)
    rnd.shuffle(keys)
    gt2 = {f"x{k}": gt[k] for k in keys}
    preds2 = {f"x{k}": preds[k] for k in reversed(keys) if k in preds}
    np.testing.assert_array_equal(curve(froc(preds, gt)), curve(froc(preds2, gt2)))


@settings(max_examples=40, deadline=None)
@given(dataset, st.integers(0, 5))
def test_a_far_lowest_scored_box_only_adds_a_final_false_positive_point(data, which):
    """Adding a box that hits nothing, scored strictly below every other prediction: the old curve is kept
    point for point and one point is appended (same TPR, FPPI + 1/images), so tpr_at(f) is unchanged for
    every f and so is the best operating point. (A box that *ties* the lowest score would instead move the
    last point right, and tpr_at could drop for f between the old and new last FPPI.)"""
    preds, gt = _split(data)
    r = froc(preds, gt)
    k = list(gt)[which % len(gt)]
    b, s = preds.get(k, ([], []))
    preds2 = dict(preds)
    preds2[k] = ([*b, [1000, 1000, 1001, 1001]], [*s, 0.01])
    r2 = froc(preds2, gt)
    np.testing.assert_array_equal(curve(r2)[:-1], curve(r))
    last = curve(r2)[-1]
    assert last[0] == 0.01 and last[2] == pytest.approx(r.fppi[-1] + 1 / len(gt))
    np.testing.assert_array_equal(last[1], r.tpr[-1])
    for f in (0, 0.125, 0.5, 1, 2, 8, 100):
        np.testing.assert_array_equal(r2.tpr_at(f), r.tpr_at(f))
    np.testing.assert_array_equal(r2.best_operating_point[:2], r.best_operating_point[:2])


@settings(max_examples=40, deadline=None)
@given(dataset)
def test_monotone_rescoring_keeps_the_curve(data):
    preds, gt = _split(data)
    preds2 = {k: (b, [10 * x ** 2 + 3 for x in s]) for k, (b, s) in preds.items()}
    r, r2 = froc(preds, gt), froc(preds2, gt)
    np.testing.assert_array_equal(r.tpr, r2.tpr)
    np.testing.assert_array_equal(r.fppi, r2.fppi)


def test_iou_matrix_values():
    m = iou_matrix([[0, 0, 2, 2], [1, 1, 3, 3], [0, 0, 0, 0]], [[0, 0, 2, 2], [0, 0, 0, 0]])
    np.testing.assert_allclose(m, [[1, 0], [1 / 7, 0], [0, 0]])


# --- strata of lesions (lesions=) -------------------------------------------------------------------------

def test_a_hit_on_another_strata_lesion_is_neither_hit_nor_false_positive():
    gt = {"a": [[0, 0, 10, 10], [50, 50, 90, 90]], "b": []}
    preds = {"a": ([[50, 50, 90, 90], [0, 0, 10, 10], [200, 0, 210, 10]], [0.9, 0.8, 0.7])}
    small = froc(preds, gt, lesions={"a": [True, False]}, images="all")
    # the large lesion's hit (0.9) is left out; the small one's hit (0.8) enters first, then the false positive
    assert small.n_lesions == 1 and small.tpr.tolist() == [0.0, 1.0, 1.0]
    assert small.fppi.tolist() == [0.0, 0.0, 0.5] and small.n_ignored == 1
    large = froc(preds, gt, lesions={"a": [False, True]}, images="all")
    assert large.tpr.tolist() == [0.0, 1.0, 1.0] and large.fppi.tolist() == [0.0, 0.0, 0.5]
    # an image missing from lesions: none of its boxes count
    none = froc(preds, gt, lesions={}, images="all")
    assert none.n_lesions == 0 and none.fppi[-1] == 0.5
    with pytest.raises(ValueError, match="lesions mask has 1 entries for 2"):
        froc(preds, gt, lesions={"a": [True]})


@pytest.mark.parametrize("seed", range(5))
def test_lesion_strata_partition_the_hits(seed):
    """Each hit belongs to exactly one stratum: over a partition of the lesions the hits add up to all of them
    at every score threshold, and every stratum counts the same false positives."""
    from camkit.metrics import match_table

    rng = np.random.default_rng(seed)
    gt, preds, strata = {}, {}, {}
    for i in range(30):
        k = int(rng.integers(0, 4))
        xy = rng.uniform(0, 200, size=(k, 2))
        gt[i] = np.c_[xy, xy + rng.uniform(5, 40, size=(k, 2))]
        m = int(rng.integers(0, 6))
        jitter = rng.normal(0, 4, size=(m, 4))
        base = gt[i][rng.integers(0, k, size=m)] if k else np.c_[xy := rng.uniform(0, 200, (m, 2)), xy + 20]
        b = base + jitter
        preds[i] = (np.c_[np.minimum(b[:, :2], b[:, 2:]), np.maximum(b[:, :2], b[:, 2:]) + 1],
                    rng.choice([0.2, 0.4, 0.6, 0.8], size=m))
        strata[i] = rng.integers(0, 3, size=k)
    full = match_table(preds, gt)
    parts = [match_table(preds, gt, lesions={i: s == j for i, s in strata.items()}) for j in range(3)]
    thresholds = [0.9, 0.7, 0.5, 0.3, 0.1]

    def counts(t):  # hits and false positives scoring >= t
        return t.tp[t.scores >= thr].sum(), (~t.tp[t.scores >= thr]).sum()

    for thr in thresholds:
        tp_all, fp_all = counts(full)
        assert sum(counts(p)[0] for p in parts) == tp_all
        assert all(counts(p)[1] == fp_all for p in parts)
    assert sum(int(p.n_gt.sum()) for p in parts) == int(full.n_gt.sum())
    # every lesion counting is the unstratified table
    every = match_table(preds, gt, lesions={i: np.ones(len(g), bool) for i, g in gt.items()})
    assert np.array_equal(every.tp, full.tp) and np.array_equal(every.scores, full.scores)
