"""Speed of the scoring engine, each fast path next to the plain loop it replaces (same run, same data).

Run: python -m pytest benchmarks/test_metrics_speed.py --benchmark-enable --benchmark-group-by=group -q
(the project's pytest options disable benchmarks by default). Compare times within a group only.
"""
from __future__ import annotations

import numpy as np
import pytest

from camkit.metrics.boxes import _boxes, _foreground, _prepare, maps_to_boxes, maps_to_boxes_sweep
from camkit.metrics import bootstrap_classification, bootstrap_froc, compare, froc


def detection_data(n_images: int, n_boxes: int, seed: int = 0):
    """Half the images hold 1-2 lesions; every image has n_boxes predictions, one near each lesion."""
    rng = np.random.default_rng(seed)
    preds, gt = {}, {}
    for i in range(n_images):
        m = int(rng.integers(0, 3))
        c = rng.uniform(0, 2000, (m, 2))
        gt[i] = np.c_[c, c + rng.uniform(40, 200, (m, 2))]
        c = rng.uniform(0, 2000, (n_boxes, 2))
        b = np.c_[c, c + rng.uniform(40, 200, (n_boxes, 2))]
        b[:m] = gt[i] + rng.normal(0, 10, (m, 4))
        b[:m, 2:] = np.maximum(b[:m, 2:], b[:m, :2] + 1)
        preds[i] = (b, rng.random(n_boxes).round(4))
    return preds, gt


def froc_per_image_loop(preds, gt, thr=0.3):
    """The straightforward implementation: per image an IoU matrix, a Python greedy loop; then the curve."""
    scores, hits, n_lesions = [], [], 0
    for k, g in gt.items():
        g = np.asarray(g, dtype=float).reshape(-1, 4)
        n_lesions += len(g)
        b, s = preds.get(k, (np.zeros((0, 4)), np.zeros(0)))
        b, s = np.asarray(b, float).reshape(-1, 4), np.asarray(s, float)
        iw = np.clip(np.minimum(b[:, None, 2], g[None, :, 2]) - np.maximum(b[:, None, 0], g[None, :, 0]), 0, None)
        ih = np.clip(np.minimum(b[:, None, 3], g[None, :, 3]) - np.maximum(b[:, None, 1], g[None, :, 1]), 0, None)
        inter = iw * ih
        area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        area_g = (g[:, 2] - g[:, 0]) * (g[:, 3] - g[:, 1])
        iou = inter / (area_b[:, None] + area_g[None, :] - inter)
        matched = np.zeros(len(g), dtype=bool)
        for i in np.argsort(-s, kind="stable"):
            cand = np.where((iou[i] > thr) & ~matched, iou[i], -1.0)
            j = int(np.argmax(cand)) if len(g) else -1
            hit = j >= 0 and cand[j] > thr
            if hit:
                matched[j] = True
            scores.append(s[i])
            hits.append(hit)
    scores, hits = np.array(scores), np.array(hits)
    order = np.argsort(-scores, kind="stable")
    scores, hits = scores[order], hits[order]
    ends = np.flatnonzero(np.r_[scores[1:] != scores[:-1], True])
    tp, fp = np.cumsum(hits)[ends], np.cumsum(~hits)[ends]
    return np.r_[0, tp] / n_lesions, np.r_[0, fp] / len(gt)


@pytest.fixture(scope="module")
def big():
    return detection_data(10_000, 20)


@pytest.mark.benchmark(group="froc 10k images x 20 boxes")
def test_froc_vectorised(benchmark, big):
    r = benchmark.pedantic(froc, args=big, rounds=3, iterations=1)
    tpr, fppi = froc_per_image_loop(*big)
    np.testing.assert_array_equal(r.tpr, tpr)
    np.testing.assert_array_equal(r.fppi, fppi)


@pytest.mark.benchmark(group="froc 10k images x 20 boxes")
def test_froc_per_image_loop(benchmark, big):
    benchmark.pedantic(froc_per_image_loop, args=big, rounds=1, iterations=1)


@pytest.mark.benchmark(group="bootstrap 1000 resamples, 500 images")
def test_bootstrap_16_methods_15_pairings(benchmark):
    """The bench's case: 16 train-cam x test-cam runs on ~500 images (~250 studies), each bootstrapped once
    (tpr@1, cpm, best operating point), then 15 paired comparisons against the baseline."""
    methods = [detection_data(500, 20, seed=s) for s in range(16)]
    gt = methods[0][1]
    studies = {k: k // 2 for k in gt}

    def run():
        res = [bootstrap_froc(p, gt, studies, metrics=("tpr@1", "cpm", "best_tpr", "best_fppi"), n=1000, seed=0,
                              images="positive") for p, _ in methods]
        return [compare(r["tpr@1"], res[0]["tpr@1"]) for r in res[1:]]

    out = benchmark.pedantic(run, rounds=1, iterations=1)
    assert len(out) == 15 and all(o.n == 1000 for o in out)


@pytest.mark.benchmark(group="bootstrap 1000 resamples, 500 images")
def test_bootstrap_classification(benchmark):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    s = np.clip(y * 0.3 + rng.random(500) * 0.7, 0, 1).round(3)
    benchmark.pedantic(bootstrap_classification, args=(y, s, np.arange(500) // 2), kwargs={"n": 1000},
                       rounds=3, iterations=1)


@pytest.fixture(scope="module")
def maps():
    from scipy import ndimage

    rng = np.random.default_rng(0)
    m = ndimage.gaussian_filter(rng.random((64, 160, 100)), (0, 3, 3)).astype(np.float32)
    m -= m.min(axis=(1, 2), keepdims=True)
    return m / m.max(axis=(1, 2), keepdims=True), rng.random(64)


@pytest.mark.benchmark(group="boxes 64 maps 160x100")
def test_boxes_whole_batch(benchmark, maps):
    benchmark(maps_to_boxes, maps[0], 0.5, maps[1])


@pytest.mark.benchmark(group="boxes 64 maps 160x100")
def test_boxes_per_image_loop(benchmark, maps):
    m, p = maps
    benchmark(lambda: [maps_to_boxes(m[i], 0.5, p[i:i + 1]) for i in range(len(m))])


THRESHOLDS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]


@pytest.mark.benchmark(group="sweep 9 thresholds, 64 maps 160x100")
def test_sweep_loop(benchmark, maps):
    benchmark(maps_to_boxes_sweep, maps[0], THRESHOLDS, maps[1])


@pytest.mark.benchmark(group="sweep 9 thresholds, 64 maps 160x100")
def test_sweep_stacked_single_labelling(benchmark, maps):
    """The alternative not taken: all thresholds' masks stacked and labelled in one call."""
    arr, p = _prepare(maps[0], maps[1], "peak_x_prob", 1, 8)

    def stacked():
        fg = np.concatenate([_foreground(arr, t) for t in THRESHOLDS])
        return _boxes(np.concatenate([arr] * len(THRESHOLDS)), fg, np.tile(p, len(THRESHOLDS)), "peak_x_prob", 1, 8)

    res = benchmark(stacked)
    loop = maps_to_boxes_sweep(maps[0], THRESHOLDS, maps[1])
    np.testing.assert_array_equal(res[4 * 64 + 3][0], loop[0.5][3][0])
