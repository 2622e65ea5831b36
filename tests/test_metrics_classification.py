"""Classification metrics: hand-worked cases, and agreement with scikit-learn on random data."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import confusion_matrix, roc_auc_score

from camkit.metrics import classification, roc_auc


def test_hand_worked_with_ties_and_threshold_rule():
    labels = [0, 0, 0, 1, 1, 1]
    scores = [0.1, 0.5, 0.7, 0.5, 0.5, 0.9]
    r = classification(labels, scores)
    # score >= 0.5 is positive: predictions 0 1 1 1 1 1 -> TP 3, FN 0, TN 1, FP 2
    assert (r.tpr, r.tnr, r.accuracy) == (1.0, 1 / 3, 4 / 6)
    # pairs (pos, neg): 0.5 vs {0.1 win, 0.5 tie, 0.7 loss} twice, 0.9 wins all three -> (2*1.5 + 3) / 9
    assert r.auc == pytest.approx(6 / 9)
    assert (r.n, r.n_positive, r.n_negative, r.threshold) == (6, 3, 3, 0.5)
    assert classification(labels, scores, threshold=0.6).tpr == 1 / 3
    assert r.metric("auc") == r.auc and r.to_dict()["tnr"] == 1 / 3


def test_one_class_gives_nan_not_an_error():
    r = classification([1, 1], [0.2, 0.8])
    assert np.isnan(r.auc) and np.isnan(r.tnr) and r.tpr == 0.5 and r.accuracy == 0.5
    assert np.isnan(roc_auc([0, 0, 0], [0.1, 0.2, 0.3]))


@pytest.mark.parametrize("labels, scores, kwargs, match", [
    ([0, 2], [0.1, 0.2], {}, "index 1: label 2"),
    ([0, 1], [0.1, float("nan")], {"ids": ["x", "y"]}, "image 'y': score nan"),
    ([0, 1], [0.1, float("inf")], {}, "not finite"),
    ([0, 1, 1], [0.1, 0.2], {}, "differ in length"),
    ([], [], {}, "empty"),
])
def test_bad_input(labels, scores, kwargs, match):
    with pytest.raises(ValueError, match=match):
        classification(labels, scores, **kwargs)
    with pytest.raises(ValueError, match="unknown classification metric"):
        classification([0, 1], [0.2, 0.6]).metric("f1")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.5, 0.75, 1.0])), min_size=2,
                max_size=40),
       st.sampled_from([0.25, 0.5, 0.6]))
def test_agrees_with_sklearn(pairs, threshold):
    y = np.array([int(a) for a, _ in pairs])
    s = np.array([b for _, b in pairs])
    r = classification(y, s, threshold=threshold)
    pred = (s >= threshold).astype(int)
    tn, fp, fn, tp = confusion_matrix(y, pred, labels=[0, 1]).ravel()
    assert r.accuracy == pytest.approx((tp + tn) / len(y))
    if tp + fn:
        assert r.tpr == pytest.approx(tp / (tp + fn))
    else:
        assert np.isnan(r.tpr)
    if tn + fp:
        assert r.tnr == pytest.approx(tn / (tn + fp))
    else:
        assert np.isnan(r.tnr)
    if 0 < y.sum() < len(y):
        assert r.auc == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    else:
        assert np.isnan(r.auc)
