"""maps -> boxes: thresholds, components, coordinates, scores, the transform back to the original image."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from camkit.metrics.boxes import batch_to_original, boxes_to_original, maps_to_boxes, maps_to_boxes_sweep
from camkit.data.sample import BoxTransform
from reference_loops import flood_components


def test_box_uses_continuous_coordinates():
    m = np.zeros((1, 8, 10))
    m[0, 2:5, 3:7] = 0.8  # rows 2..4, columns 3..6
    boxes, scores = maps_to_boxes(m, score="peak")[0]
    np.testing.assert_array_equal(boxes, [[3, 2, 7, 5]])
    np.testing.assert_array_equal(scores, [0.8])


def test_single_pixel_and_full_map():
    m = np.zeros((2, 4, 5))
    m[0, 3, 4] = 1.0
    m[1] = 0.5
    res = maps_to_boxes(m, score="peak")
    np.testing.assert_array_equal(res[0][0], [[4, 3, 5, 4]])
    np.testing.assert_array_equal(res[1][0], [[0, 0, 5, 4]])


def test_components_do_not_connect_across_images():
    m = np.zeros((3, 6, 6))
    m[:, 1:4, 1:4] = 1.0  # the same place in every image: three separate components
    res = maps_to_boxes(m, score="peak")
    assert [len(b) for b, _ in res] == [1, 1, 1]
    for b, _ in res:
        np.testing.assert_array_equal(b, [[1, 1, 4, 4]])


def test_connectivity_8_joins_diagonals_4_does_not():
    m = np.zeros((1, 4, 4))
    m[0, 0, 0] = m[0, 1, 1] = 1.0
    assert len(maps_to_boxes(m, score="peak")[0][0]) == 1
    b4, _ = maps_to_boxes(m, score="peak", connectivity=4)[0]
    np.testing.assert_array_equal(b4, [[0, 0, 1, 1], [1, 1, 2, 2]])


def test_threshold_is_relative_to_each_maps_max():
    m = np.zeros((2, 6, 6))
    m[0, 1, 1], m[0, 4, 4] = 1.0, 0.4
    m[1] = m[0] * 0.1  # same shape, ten times weaker: same boxes
    for t, n in ((0.5, 1), (0.4, 2), (0.41, 1)):
        res = maps_to_boxes(m, threshold=t, score="peak")
        assert len(res[0][0]) == n and len(res[1][0]) == n
        np.testing.assert_array_equal(res[0][0], res[1][0])


def test_scores_and_order():
    m = np.zeros((2, 6, 8))
    m[0, 0:2, 0:2] = [[0.6, 0.5], [0.5, 0.4]]  # peak 0.6, mean 0.5
    m[0, 4:6, 5:8] = 1.0
    m[1, 2, 2] = 0.9
    probs = np.array([0.5, 0.2])
    b, s = maps_to_boxes(m, threshold=0.3, probs=probs)[0]  # default peak_x_prob
    np.testing.assert_allclose(s, [0.5, 0.3])
    np.testing.assert_array_equal(b, [[5, 4, 8, 6], [0, 0, 2, 2]])
    np.testing.assert_allclose(maps_to_boxes(m, threshold=0.3, score="mean")[0][1], [1.0, 0.5])
    np.testing.assert_allclose(maps_to_boxes(m, threshold=0.3, probs=probs, score="mean_x_prob")[0][1], [0.5, 0.25])
    np.testing.assert_allclose(maps_to_boxes(m, threshold=0.3, probs=probs)[1][1], [0.18])


def test_min_area_and_empty_maps():
    m = np.zeros((2, 6, 6))
    m[0, 0, 0] = 1.0
    m[0, 3:5, 3:5] = 1.0
    res = maps_to_boxes(m, score="peak", min_area=2)
    np.testing.assert_array_equal(res[0][0], [[3, 3, 5, 5]])
    assert res[1][0].shape == (0, 4) and res[1][1].shape == (0,)  # an all-zero map has no boxes


def test_torch_input_and_shapes():
    m = torch.zeros(2, 1, 5, 5)
    m[1, 0, 2, 2] = 1.0
    res = maps_to_boxes(m, probs=torch.tensor([0.3, 0.7]))
    assert len(res) == 2 and len(res[0][0]) == 0
    np.testing.assert_allclose(res[1][1], [0.7])
    assert len(maps_to_boxes(np.ones((4, 4)), score="peak")) == 1  # a single (H, W) map


@pytest.mark.parametrize("kwargs, match", [
    ({"threshold": 0.0}, "threshold"), ({"threshold": 1.5}, "threshold"), ({"score": "max"}, "unknown score"),
    ({"score": "peak_x_prob"}, "probs"), ({"connectivity": 6}, "connectivity"), ({"min_area": 0}, "min_area"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        maps_to_boxes(np.ones((1, 4, 4)), **{"score": "peak", **kwargs})


def test_bad_maps():
    m = np.ones((3, 4, 4))
    m[2, 1, 1] = np.nan
    with pytest.raises(ValueError, match=r"batch item\(s\) \[2\]"):
        maps_to_boxes(m, score="peak")
    with pytest.raises(ValueError, match="shape"):
        maps_to_boxes(np.ones((2, 2, 4, 4)), score="peak")
    with pytest.raises(ValueError, match="2 values for 3 maps"):
        maps_to_boxes(np.ones((3, 4, 4)), probs=[0.1, 0.2])


def _reference(m2d: np.ndarray, t: float, prob: float) -> list[tuple[list[float], float]]:
    """Plain flood fill on one image (8-connected), one box per component, peak x prob."""
    h, w = m2d.shape
    peak = m2d.max()
    if peak <= 0:
        return []
    out = []
    for cells in flood_components(m2d >= t * peak):
        ys, xs = zip(*cells)
        out.append(([min(xs), min(ys), max(xs) + 1, max(ys) + 1], max(m2d[c] for c in cells) * prob))
    return out


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(1, 7), st.integers(1, 7)),
              elements=st.sampled_from([0.0, 0.1, 0.3, 0.5, 0.7, 1.0])),
       st.sampled_from([0.2, 0.5, 0.7, 1.0]))
def test_matches_per_image_flood_fill(maps, t):
    probs = np.linspace(0.2, 0.9, maps.shape[0])
    res = maps_to_boxes(maps, threshold=t, probs=probs)
    for i in range(maps.shape[0]):
        ref = sorted(_reference(maps[i], t, probs[i]))
        got = sorted((b.tolist(), s) for b, s in zip(*res[i]))
        assert [b for b, _ in got] == [b for b, _ in ref]
        np.testing.assert_allclose([s for _, s in got], [s for _, s in ref])
        assert np.all(np.diff(res[i][1]) <= 0)  # sorted by descending score


def test_sweep_equals_separate_calls():
    rng = np.random.default_rng(0)
    m = rng.random((3, 12, 9)) ** 3
    ts = [0.2, 0.5, 0.9]
    sweep = maps_to_boxes_sweep(m, ts, score="mean")
    assert list(sweep) == ts
    for t in ts:
        single = maps_to_boxes(m, threshold=t, score="mean")
        for (b1, s1), (b2, s2) in zip(sweep[t], single):
            np.testing.assert_array_equal(b1, b2)
            np.testing.assert_array_equal(s1, s2)
    with pytest.raises(ValueError, match="empty"):
        maps_to_boxes_sweep(m, [], score="mean")


def test_back_to_original_frame():
    # Original 400x300 (H, W), right view: flipped, cropped to rows 50..350 / cols 0..200, resized to 150x100;
    # maps at a quarter of the model size (75x50... here 30x20 for a 150x100 model input: factor 5).
    tr = BoxTransform(original_size=(400, 300), model_size=(150, 100), crop=(50.0, 0.0, 350.0, 200.0),
                      flipped=True)
    orig = np.array([[150.0, 110.0, 250.0, 170.0]])
    model = tr.to_model(orig)
    in_map = model / 5.0
    np.testing.assert_allclose(boxes_to_original(in_map, tr, (30, 20)), orig)
    out = batch_to_original([(in_map, np.array([0.7]))], [tr], (30, 20))
    np.testing.assert_allclose(out[0][0], orig)
    np.testing.assert_array_equal(out[0][1], [0.7])
    with pytest.raises(ValueError, match="transforms"):
        batch_to_original([(in_map, np.array([0.7]))], [], (30, 20))


# --- proposals: several thresholds + box NMS -----------------------------------------------------------------

def _blob_maps(seed: int, n: int = 6, h: int = 40, w: int = 32) -> np.ndarray:
    """Sums of Gaussian blobs (several per map, some overlapping): nested components at several thresholds."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    maps = np.zeros((n, h, w))
    for i in range(n):
        for _ in range(int(rng.integers(1, 5))):
            cy, cx, s = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(1.5, 6)
            maps[i] += rng.uniform(0.3, 1) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
    return maps / maps.reshape(n, -1).max(axis=1)[:, None, None]


def _reference_proposals(m: np.ndarray, ts: list[float], prob: float, relative: float = 0.5):
    """maps_to_proposals for one map as its docstring states it: flood-filled components at every threshold,
    grouped by their first maximal pixel, the one nearest relative x peak kept, scored peak x prob, sorted,
    then torchvision's NMS."""
    from torchvision.ops import nms

    top = m.max()
    blobs: dict[tuple[int, int], tuple[float, float, list[float], float]] = {}
    for t in sorted(ts, reverse=True):
        for cells in flood_components(m >= t * top):
            peak_cell = min(cells, key=lambda c: (-m[c], c))       # highest, then first in raster order
            ys, xs = [c[0] for c in cells], [c[1] for c in cells]
            box = [min(xs), min(ys), max(xs) + 1, max(ys) + 1]
            dist = abs(t - relative * m[peak_cell] / top)
            if peak_cell not in blobs or dist < blobs[peak_cell][0]:   # strict: the higher threshold on ties
                blobs[peak_cell] = (dist, t, box, float(m[peak_cell]) * prob)
    items = sorted(blobs.items(), key=lambda kv: (-kv[1][3], kv[0]))
    boxes = np.array([v[2] for _, v in items], dtype=np.float64).reshape(-1, 4)
    scores = np.array([v[3] for _, v in items])
    keep = nms(torch.as_tensor(boxes), torch.as_tensor(scores), 0.5).numpy() if len(boxes) else np.zeros(0, int)
    return boxes[np.sort(keep)], scores[np.sort(keep)]


@pytest.mark.parametrize("seed", range(6))
def test_proposals_match_a_flood_fill_reference_and_torchvision_nms(seed):
    from camkit.metrics.boxes import maps_to_proposals

    maps = np.round(_blob_maps(seed), 3)   # rounding makes ties between pixels, which the rule must break
    probs = np.linspace(0.3, 0.9, len(maps))
    ts = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    got = maps_to_proposals(maps, ts, probs, score="peak_x_prob")
    single = maps_to_boxes(maps, 0.5, probs, "peak_x_prob")
    for i in range(len(maps)):
        boxes, scores = _reference_proposals(maps[i], ts, probs[i])
        np.testing.assert_array_equal(got[i][0], boxes)
        np.testing.assert_allclose(got[i][1], scores)
        # the highest blob's box is the single rule's box at 0.5
        assert got[i][0][0].tolist() in single[i][0].tolist()
        assert len(got[i][0]) >= 1


def test_proposals_give_weaker_blobs_their_own_box():
    from camkit.metrics.boxes import maps_to_proposals

    m = np.zeros((1, 10, 20))
    m[0, 2:8, 2:8] = 1.0
    m[0, 2:8, 12:18] = 0.2   # below 0.5 x the maximum: the single rule never boxes it
    assert len(maps_to_boxes(m, 0.5, score="peak")[0][0]) == 1
    boxes, scores = maps_to_proposals(m, score="peak")[0]
    assert boxes.tolist() == [[2.0, 2.0, 8.0, 8.0], [12.0, 2.0, 18.0, 8.0]] and scores.tolist() == [1.0, 0.2]
    with pytest.raises(ValueError, match="nms_iou"):
        maps_to_proposals(m, score="peak", nms_iou=1.5)
    with pytest.raises(ValueError, match="threshold"):
        maps_to_proposals(m, (0.0,), score="peak")
    with pytest.raises(ValueError, match="relative"):
        maps_to_proposals(m, score="peak", relative=0.0)
