"""PxAP against scikit-learn; MaxBoxAcc, the pointing games against plain loops (the flood fill of
tests/reference_loops.py, pixel scans here), and hand-worked cases."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from camkit.metrics import (box_hits, energy_inside, energy_pointing_game, max_box_acc, pointing_game,
                            pointing_hits, pxap)
from reference_loops import flood_components


def _random_case(seed: int, n: int = 6, h: int = 12, w: int = 10, levels: int = 20):
    rng = np.random.default_rng(seed)
    # quantised maps, so thresholds and ties matter; blobs so components are not all single pixels
    maps = np.zeros((n, h, w))
    boxes = []
    for i in range(n):
        for _ in range(rng.integers(1, 4)):
            cy, cx = rng.integers(0, h), rng.integers(0, w)
            yy, xx = np.mgrid[:h, :w]
            maps[i] += rng.uniform(0.3, 1) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / rng.uniform(2, 8))
        maps[i] += rng.uniform(0, 0.2, (h, w))
        maps[i] = np.round(maps[i] / maps[i].max() * levels) / levels
        k = rng.integers(0, 3)
        b = []
        for _ in range(k):
            x1, y1 = rng.integers(0, w - 2), rng.integers(0, h - 2)
            b.append([x1, y1, rng.integers(x1 + 1, w + 1), rng.integers(y1 + 1, h + 1)])
        boxes.append(np.array(b, dtype=float).reshape(-1, 4))
    return maps, boxes


# --- PxAP ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(5))
def test_pxap_equals_sklearn(seed):
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(seed)
    maps = np.round(rng.random((4, 9, 7)) * 10) / 10      # many ties
    masks = rng.random((4, 9, 7)) < 0.2 + 0.5 * maps
    assert pxap(maps, masks) == pytest.approx(average_precision_score(masks.ravel(), maps.ravel()), abs=1e-12)
    assert pxap(torch.tensor(maps, dtype=torch.float32), torch.tensor(masks)) == pytest.approx(
        average_precision_score(masks.ravel(), maps.astype(np.float32).ravel()), abs=1e-6)


def test_pxap_perfect_and_errors():
    maps = np.zeros((1, 3, 3)); maps[0, 1, 1] = 1
    assert pxap(maps, maps > 0) == 1.0
    with pytest.raises(ValueError, match="no foreground pixel"):
        pxap(maps, np.zeros_like(maps, dtype=bool))
    with pytest.raises(ValueError, match="masks have 8 pixels"):
        pxap(maps, np.zeros((1, 2, 4), dtype=bool))


# --- MaxBoxAcc -----------------------------------------------------------------------------------------

def _iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _loop_hits(maps, boxes, ts, ds, multi_box):
    out = np.full((len(maps), len(ts), len(ds)), np.nan)
    for n, (m, gt) in enumerate(zip(maps, boxes)):
        if not len(gt):
            continue
        for ti, t in enumerate(ts):
            comps = flood_components(m >= t)
            if not multi_box and comps:
                comps = [max(comps, key=len)]   # max() keeps the first of equal sizes
            best = 0.0
            for c in comps:
                rows, cols = [p[0] for p in c], [p[1] for p in c]
                box = (min(cols), min(rows), max(cols) + 1, max(rows) + 1)
                best = max([best] + [_iou(box, g) for g in gt])
            for di, d in enumerate(ds):
                out[n, ti, di] = best >= d
    return out


@pytest.mark.parametrize("multi_box", [True, False])
@pytest.mark.parametrize("seed", range(4))
def test_box_hits_equal_a_flood_fill_loop(seed, multi_box):
    maps, boxes = _random_case(seed)
    ts = np.arange(0, 1, 0.05)
    ds = (0.3, 0.5, 0.7)
    got = box_hits(maps, boxes, ts, ds, multi_box=multi_box)
    want = _loop_hits(maps, boxes, ts, ds, multi_box)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.nan_to_num(got, nan=-1), np.nan_to_num(want, nan=-1))


def test_box_hits_many_components_path_equals_the_loop(monkeypatch):
    from camkit.metrics import boxes

    monkeypatch.setattr(boxes, "_FEW_COMPONENTS", 0)   # the vectorised extents, used for noisy maps
    maps, boxes_ = _random_case(7)
    maps = np.round(np.random.default_rng(7).random(maps.shape) * 10) / 10
    ts = np.arange(0, 1, 0.1)
    got = box_hits(maps, boxes_, ts, (0.3, 0.5))
    want = _loop_hits(maps, boxes_, ts, (0.3, 0.5), True)
    np.testing.assert_array_equal(np.nan_to_num(got, nan=-1), np.nan_to_num(want, nan=-1))


@pytest.mark.parametrize("kind", ["noise", "quantised", "smooth"])
@pytest.mark.parametrize("connectivity", [4, 8])
def test_threshold_walk_equals_labelling_every_threshold(kind, connectivity):
    """The one-pass walk down the thresholds gives, bit for bit, the best IoU that labelling each thresholded
    foreground with scipy gives: noisy maps (many components merging), ties, smooth upsampled maps, thresholds
    unsorted with repeats, images with several boxes or none."""
    from camkit.metrics.localization import _best_iou, _padded
    from camkit.metrics.threshold_tree import best_iou_per_threshold

    rng = np.random.default_rng(["noise", "quantised", "smooth"].index(kind) + 10 * connectivity)
    for _ in range(6):
        n, h, w = int(rng.integers(1, 5)), int(rng.integers(2, 41)), int(rng.integers(2, 41))
        if kind == "noise":
            maps = rng.random((n, h, w)).astype(np.float32)
        elif kind == "quantised":
            maps = np.round(rng.random((n, h, w)) * 6) / 6
        else:
            low = torch.rand(n, 1, max(2, h // 6), max(2, w // 6), generator=torch.Generator().manual_seed(h * w))
            maps = torch.nn.functional.interpolate(low, size=(h, w), mode="bilinear")[:, 0].numpy()
        boxes = []
        for _ in range(n):
            b = []
            for _ in range(int(rng.integers(0, 4))):
                x1, y1 = rng.uniform(0, w - 1), rng.uniform(0, h - 1)
                b.append([x1, y1, rng.uniform(x1, w), rng.uniform(y1, h)])
            boxes.append(np.array(b).reshape(-1, 4))
        pad = _padded(boxes)
        ts = np.concatenate([rng.random(15), [0.0, 0.5, 0.5, 1.0]])
        want = np.stack([_best_iou(maps >= t, pad, True, connectivity) for t in ts], axis=1)
        got = best_iou_per_threshold(maps, ts, pad, connectivity)
        np.testing.assert_array_equal(got, want)
        # a threshold's pixels joining in small chunks give the same components
        np.testing.assert_array_equal(best_iou_per_threshold(maps, ts, pad, connectivity, chunk=7), want)


def test_threshold_walk_on_a_hand_worked_merge():
    from camkit.metrics.threshold_tree import best_iou_per_threshold

    # two 2x2 blocks that join through a pixel entering at 0.4: the joined box covers the ground truth's 3x3
    m = np.zeros((1, 5, 5))
    m[0, :2, :2] = 0.9
    m[0, 2:4, 2:4] = 0.7
    m[0, 4, 4] = 0.4      # joins nothing new to the ground truth's box but grows the component
    gt = np.array([[[0.0, 0.0, 4.0, 4.0]]])
    got = best_iou_per_threshold(m, np.array([0.8, 0.6, 0.3, 0.0]), gt)
    # 0.8: the first block (4/16); 0.6: both blocks touch diagonally -> box 0..4 (16/16); 0.3: box 0..5 (16/25);
    # 0.0: the whole image (16/25)
    np.testing.assert_allclose(got, [[4 / 16, 1.0, 16 / 25, 16 / 25]])


def test_max_box_acc_hand_worked():
    # image 0: a 4x4 block at 0.8 exactly on its box; image 1: the box is twice the block's width
    maps = np.zeros((2, 8, 8))
    maps[0, 2:6, 2:6] = 0.8
    maps[1, 0:4, 0:2] = 0.6
    boxes = [np.array([[2, 2, 6, 6]]), np.array([[0, 0, 4, 4]])]
    r = max_box_acc(maps, boxes, thresholds=[0.0, 0.5, 0.7, 0.9])
    # t=0: whole-image box, IoU 0.25 and 0.25 -> no hit; t=0.5: image 0 IoU 1, image 1 IoU 0.5;
    # t=0.7: image 0 only; t=0.9: nothing
    np.testing.assert_allclose(r["box_acc"], [[0, 0, 0], [1, 1, 0.5], [0.5, 0.5, 0.5], [0, 0, 0]])
    assert (r[0.3], r[0.5], r[0.7]) == (1.0, 1.0, 0.5)
    assert r["mean"] == pytest.approx(2.5 / 3)
    assert r["best_threshold"] == {0.3: 0.5, 0.5: 0.5, 0.7: 0.5}
    assert r["n_images"] == 2


def test_max_box_acc_multi_box_and_largest_component():
    # two components: a large one off the box, a small one on it
    maps = np.zeros((1, 10, 10))
    maps[0, 0:5, 0:5] = 1.0
    maps[0, 8:10, 8:10] = 1.0
    boxes = [np.array([[8, 8, 10, 10]])]
    assert max_box_acc(maps, boxes, thresholds=[0.5])[0.7] == 1.0
    assert max_box_acc(maps, boxes, thresholds=[0.5], multi_box=False)[0.7] == 0.0


def test_box_metrics_skip_images_without_boxes():
    maps = np.zeros((2, 4, 4)); maps[:, 1, 1] = 1
    boxes = [np.zeros((0, 4)), np.array([[1, 1, 2, 2]])]
    assert max_box_acc(maps, boxes)["n_images"] == 1
    assert np.isnan(pointing_hits(maps, boxes)[0]) and pointing_game(maps, boxes) == 1.0
    with pytest.raises(ValueError, match="no image has a ground-truth box"):
        max_box_acc(maps, [np.zeros((0, 4))] * 2)
    with pytest.raises(ValueError, match="1 box lists for 2 maps"):
        pointing_game(maps, boxes[:1])


# --- the pointing games --------------------------------------------------------------------------------

def _loop_first_maximum(maps, boxes, tol):
    """camkit's pointing game before the tie rule (ties="first"): the first strict maximum of a raster scan."""
    out = []
    for m, gt in zip(maps, boxes):
        if not len(gt):
            out.append(np.nan)
            continue
        best, where = -np.inf, None
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                if m[i, j] > best:
                    best, where = m[i, j], (i + 0.5, j + 0.5)
        cy, cx = where
        out.append(float(any(x1 - tol <= cx < x2 + tol and y1 - tol <= cy < y2 + tol for x1, y1, x2, y2 in gt)))
    return np.array(out)


def _loop_pointing(maps, boxes, tol, ties):
    """Every pixel equal to the maximum, each tested against every (grown) box."""
    out = []
    for m, gt in zip(maps, boxes):
        if not len(gt):
            out.append(np.nan)
            continue
        top = max(m[i, j] for i in range(m.shape[0]) for j in range(m.shape[1]))
        inside = [any(x1 - tol <= j + 0.5 < x2 + tol and y1 - tol <= i + 0.5 < y2 + tol for x1, y1, x2, y2 in gt)
                  for i in range(m.shape[0]) for j in range(m.shape[1]) if m[i, j] == top]
        out.append(sum(inside) / len(inside) if ties == "share" else float(any(inside)))
    return np.array(out)


def _loop_energy(maps, boxes):
    out = []
    for m, gt in zip(maps, boxes):
        if not len(gt):
            out.append(np.nan)
            continue
        inside = total = 0.0
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                total += m[i, j]
                if any(x1 <= j + 0.5 < x2 and y1 <= i + 0.5 < y2 for x1, y1, x2, y2 in gt):
                    inside += m[i, j]
        out.append(inside / total if total > 0 else 0.0)
    return np.array(out)


@pytest.mark.parametrize("tolerance", [0, 1, 2.5])
@pytest.mark.parametrize("seed", range(4))
def test_pointing_game_equals_a_pixel_scan(seed, tolerance):
    # 4 levels: most maps have several pixels at their maximum
    maps, boxes = _random_case(seed, n=10, levels=4 if seed % 2 else 20)
    boxes = [b + 0.25 * (i % 2) for i, b in enumerate(boxes)]   # fractional boxes too
    ties = [len(np.flatnonzero(m == m.max())) > 1 for m in maps]
    assert sum(ties) >= (3 if seed % 2 else 1)
    first = _loop_first_maximum(maps, boxes, tolerance)
    np.testing.assert_array_equal(pointing_hits(maps, boxes, tolerance, ties="first"), first)
    for rule in ("share", "any"):
        want = _loop_pointing(maps, boxes, tolerance, rule)
        np.testing.assert_array_equal(pointing_hits(maps, boxes, tolerance, ties=rule), want)
        if not np.isnan(want).all():
            assert pointing_game(maps, boxes, tolerance, ties=rule) == pytest.approx(np.nanmean(want))
    np.testing.assert_array_equal(pointing_hits(maps, boxes, tolerance), _loop_pointing(maps, boxes, tolerance,
                                                                                         "share"))


def test_pointing_ties_hand_worked():
    m = np.zeros((1, 4, 4))
    m[0, [0, 0, 3, 3], [0, 3, 0, 3]] = 1.0                       # four tied maxima, one per corner
    top_left, bottom_right = [np.array([[0, 0, 2, 2]])], [np.array([[2, 2, 4, 4]])]
    assert pointing_hits(m, top_left).tolist() == [0.25]         # share (the default)
    assert pointing_hits(m, bottom_right).tolist() == [0.25]     # the same, wherever the corner
    assert pointing_hits(m, top_left, ties="any").tolist() == [1.0]
    assert pointing_hits(m, bottom_right, ties="any").tolist() == [1.0]
    assert pointing_hits(m, top_left, ties="first").tolist() == [1.0]   # the top-left bias
    assert pointing_hits(m, bottom_right, ties="first").tolist() == [0.0]
    # a flat map: every pixel is a maximum; the box holds 2 of the 16 pixel centres
    flat = np.zeros((1, 4, 4))
    assert pointing_hits(flat, [np.array([[0, 0, 2, 1]])]).tolist() == [0.125]
    assert pointing_hits(flat, [np.array([[0, 0, 2, 1]])], ties="any").tolist() == [1.0]
    # a maximum inside two overlapping boxes counts once
    two = np.zeros((1, 4, 4)); two[0, 0, :2] = 1.0
    assert pointing_hits(two, [np.array([[0, 0, 1, 1], [0, 0, 2, 1]])]).tolist() == [1.0]
    # tolerance grows the box for every maximum alike: maxima at (0, 0) and (3, 3), box around (1, 1)
    diag = np.zeros((1, 4, 4)); diag[0, 0, 0] = diag[0, 3, 3] = 1.0
    box = [np.array([[1, 1, 2, 2]])]
    assert [pointing_hits(diag, box, t).tolist() for t in (0, 1, 2)] == [[0.0], [0.5], [1.0]]
    # ties are exact: 1 - 1e-7 does not tie with 1, in float64 or float32
    near = np.zeros((1, 4, 4)); near[0, 0, 0] = 1 - 1e-7; near[0, 3, 3] = 1.0
    assert pointing_hits(near, top_left).tolist() == [0.0]
    assert pointing_hits(torch.tensor(near, dtype=torch.float32), top_left).tolist() == [0.0]
    # three maxima, one inside: the per-image value is the fraction, the game its mean over images
    three = np.zeros((2, 3, 3)); three[0, 0, 0] = three[0, 2, 2] = three[0, 2, 0] = 1; three[1, 0, 0] = 1
    gt = [np.array([[0, 0, 1, 1]])] * 2
    np.testing.assert_array_equal(pointing_hits(three, gt), [1 / 3, 1.0])
    assert pointing_game(three, gt) == (1 / 3 + 1.0) / 2
    with pytest.raises(ValueError, match="ties must be one of share, any, first"):
        pointing_game(m, top_left, ties="all")


def test_pointing_any_equals_quantus_recorded():
    """Quantus 0.6's PointingGame (a hit when any maximum is inside), recorded by
    tests/data/make_quantus_pointing_game.py on generated maps with tied maxima (Quantus is too heavy a
    test dependency: it pulls opencv-python next to camkit's opencv-python-headless)."""
    import json
    from pathlib import Path

    ref = json.loads((Path(__file__).parent / "data" / "quantus_pointing_game.json").read_text())
    assert ref["reference"].startswith("quantus 0.6")
    maps = np.asarray(ref["maps"], dtype=np.float64) / ref["levels"]
    boxes = [np.asarray(b, dtype=np.float64) for b in ref["boxes"]]
    n_ties = sum(int((m == m.max()).sum() > 1) for m in maps)
    assert n_ties > len(maps) // 2
    for case in ref["cases"]:
        theirs = np.asarray(case["hits"])
        ours = pointing_hits(maps, boxes, case["tolerance"], ties="any")
        np.testing.assert_array_equal(ours, theirs, err_msg=f"tolerance {case['tolerance']}")
        # the rules do differ on these maps: the share is below Quantus' hit where only some maxima are in
        share = pointing_hits(maps, boxes, case["tolerance"])
        assert (share <= theirs).all() and (share < theirs).sum() >= 5


def test_bootstrap_takes_fractional_pointing_values():
    """The study bootstrap resamples the per-image shares as it did the 0/1 hits: weighted means."""
    from camkit.metrics import bootstrap_localization
    from camkit.metrics.bootstrap import resample_plan

    values = np.array([0.25, 1.0, 0.0, 1 / 3, 0.5, 1.0, 0.125])
    groups = ["a", "a", "b", "c", "c", "d", "e"]
    boot = bootstrap_localization(groups, pointing=values, n=200, seed=3)["pointing"]
    w = resample_plan(groups, 200, 3).weights().astype(np.float64)
    assert boot.estimate == pytest.approx(values.mean(), abs=1e-15)
    np.testing.assert_allclose(boot.samples, (w @ values) / w.sum(axis=1), rtol=1e-12)
    assert len(np.unique(boot.samples)) > 20 and not np.isin(boot.samples, [0.0, 1.0]).all()


@pytest.mark.parametrize("seed", range(4))
def test_energy_pointing_game_equals_a_pixel_scan(seed):
    maps, boxes = _random_case(seed, n=10)
    boxes = [b + 0.4 * (i % 2) for i, b in enumerate(boxes)]
    np.testing.assert_allclose(energy_inside(maps, boxes), _loop_energy(maps, boxes), rtol=1e-12)
    want = _loop_energy(maps, boxes)
    if not np.isnan(want).all():
        assert energy_pointing_game(maps, boxes) == pytest.approx(np.nanmean(want))


def test_pointing_game_tied_maxima_and_torch_maps():
    m = torch.zeros(1, 1, 4, 4)
    m[0, 0, 3, 3] = 1.0
    m[0, 0, 0, 0] = 1.0   # two tied maxima
    assert pointing_game(m, [np.array([[0, 0, 1, 1]])], ties="first") == 1.0   # the first in row-major order
    assert pointing_game(m, [np.array([[3, 3, 4, 4]])], ties="first") == 0.0
    assert pointing_game(m, [np.array([[3, 3, 4, 4]])], tolerance=3, ties="first") == 1.0
    assert pointing_game(m, [np.array([[0, 0, 1, 1]])]) == pointing_game(m, [np.array([[3, 3, 4, 4]])]) == 0.5
    assert energy_pointing_game(torch.zeros(1, 4, 4), [np.array([[0, 0, 1, 1]])]) == 0.0


def test_bad_maps_are_named():
    with pytest.raises(ValueError, match=r"non-finite values .* image\(s\) \[1\]"):
        pointing_game(np.stack([np.zeros((3, 3)), np.full((3, 3), np.nan)]), [np.zeros((0, 4))] * 2)
    with pytest.raises(ValueError, match="maps must be"):
        pxap(np.zeros(5), np.zeros(5, dtype=bool))
    with pytest.raises(ValueError, match="boxes of image 0"):
        energy_pointing_game(np.zeros((1, 3, 3)), [np.array([[2, 2, 1, 1]])])


def test_bench_per_image_values_round_trip_the_metrics():
    """camkit.bench.wsol stores, per image, exactly what the metric functions compute on the maps' grid."""
    from camkit.bench.wsol import N_THRESHOLDS, IOU_THRESHOLDS, _unpack, per_image_values

    maps, boxes = _random_case(11, n=8)
    model_boxes = [b * 4 for b in boxes]                     # model frame 4x the maps' grid
    values = per_image_values(torch.tensor(maps), model_boxes, (maps.shape[1] * 4, maps.shape[2] * 4))
    hits = box_hits(maps, boxes, np.arange(N_THRESHOLDS) / N_THRESHOLDS, IOU_THRESHOLDS)
    point, energy = pointing_hits(maps, boxes), energy_inside(maps, boxes)
    for i, v in enumerate(values):
        if not len(boxes[i]):
            assert v == {"pointing": None, "energy": None, "box_hits": None}
            continue
        assert v["pointing"] == point[i] and v["energy"] == pytest.approx(energy[i], abs=1e-6)
        np.testing.assert_array_equal(np.stack([_unpack(x) for x in v["box_hits"]], axis=1), hits[i])


def test_binned_pxap_is_sklearns_ap_of_the_quantised_maps():
    from sklearn.metrics import average_precision_score

    from camkit.metrics.localization import pixel_histograms, pxap_from_histograms

    g = torch.Generator().manual_seed(4)
    maps = torch.rand(6, 24, 18, generator=g)
    maps[0, 0, 0] = 1.0  # the top edge goes to the last bin
    masks = torch.rand(6, 24, 18, generator=g) < maps * 0.6
    hist = pixel_histograms(maps, masks)
    assert hist.shape == (6, 2, 100) and hist.sum() == maps.numel()
    assert int(hist[:, 0].sum()) == int(masks.sum())
    q = ((maps * 100).floor().clamp_max(99) / 100).numpy()
    expected = average_precision_score(masks.numpy().ravel(), q.ravel())
    assert pxap_from_histograms(hist[:, 0].sum(0), hist[:, 1].sum(0)) == pytest.approx(expected, abs=1e-12)
    # vectorised over leading axes: each image on its own
    per = pxap_from_histograms(hist[:, 0], hist[:, 1])
    for i in range(6):
        assert per[i] == pytest.approx(average_precision_score(masks[i].numpy().ravel(), q[i].ravel()), abs=1e-12)


# --- MaxBoxAcc in wsolevaluation's convention -----------------------------------------------------------

def _wsolevaluation_fixture():
    import json
    from pathlib import Path

    ref = json.loads((Path(__file__).parent / "data" / "wsolevaluation_maxboxacc.json").read_text())
    assert ref["reference"].startswith("clovaai/wsolevaluation")
    return ref


def _unpack_bits(text: str, n: int) -> np.ndarray:
    return np.array([(int(text, 16) >> t) & 1 for t in range(n)], dtype=np.float64)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_wsolevaluation_convention_equals_the_recorded_reference(version):
    """wsolevaluation's own BoxEvaluator, recorded by tests/data/make_wsolevaluation_maxboxacc.py on smooth
    blobs, noise, rings with ground truth around and inside them, plateaus with equal contours, maps and boxes
    at the image borders and degenerate maps: per image the same hits at every threshold, the same best IoU,
    and per family the same MaxBoxAcc (the reference prints percent)."""
    from camkit.metrics.localization import _best_iou_wsolevaluation, _padded

    ref = _wsolevaluation_fixture()
    ts = np.arange(0, 1, ref["interval"])                    # the reference's own threshold list
    ds = [d / 100 for d in ref["iou_thresholds"]]
    multi = version == "v2"
    differs = {}
    for name, fam in ref["families"].items():
        theirs = fam[version]
        ours_hits, camkit_hits = [], []
        for i, (k, b) in enumerate(zip(fam["maps"], fam["boxes"])):
            m = np.asarray(k, dtype=np.float64)[None] / ref["denominator"]
            gt = [np.asarray(b, dtype=np.float64)]
            hits = box_hits(m, gt, ts, ds, multi_box=multi, convention="wsolevaluation")[0]
            expected = np.stack([_unpack_bits(x, len(ts)) for x in theirs["hits"][i]], axis=1)
            np.testing.assert_array_equal(hits, expected, err_msg=f"{name} image {i}")
            best = _best_iou_wsolevaluation(m, ts[::ref["iou_stride"]], _padded(gt), multi)[0]
            np.testing.assert_allclose(best, theirs["best_iou"][i], rtol=1e-12, atol=0,
                                       err_msg=f"{name} image {i}")
            ours_hits.append(hits)
            camkit_hits.append(box_hits(m, gt, ts, ds, multi_box=multi)[0])
            one = max_box_acc(m, gt, ds, ts, multi_box=multi, convention="wsolevaluation")
            assert one["convention"] == "wsolevaluation"
            assert [one[d] for d in ds] == list(expected.max(axis=0))
        acc = 100 * np.mean(ours_hits, axis=0).max(axis=0)
        np.testing.assert_allclose(acc, theirs["max_box_acc"], rtol=1e-12, err_msg=name)
        differs[name] = np.abs(100 * np.mean(camkit_hits, axis=0).max(axis=0) - acc).max()
    # the conventions do differ on these inputs (so this test tells them apart); most on rings for V2,
    # whose hole contours camkit's components do not have
    assert sum(v > 0 for v in differs.values()) >= 4
    if multi:
        assert differs["rings"] >= 20


def test_wsolevaluation_convention_hand_worked():
    """The four conventions one at a time, on maps small enough to check by hand."""
    ts = np.array([0.0, 0.5])
    # a square ring over columns/rows 1..7 of a 9x9 map, its hole 3..5
    ring = np.zeros((1, 9, 9))
    ring[0, 1:8, 1:8] = 1.0
    ring[0, 3:6, 3:6] = 0.0
    # the outer border's box is [1, 1, 8, 8] (x + w = 8 = W - 1), the hole's [2, 2, 7, 7] (the hole grown by a
    # pixel, then x + w): with the ground truth [2, 2, 6, 6] (25 pixels inclusive) the hole's box has IoU
    # 25 / 36 and the outer one 25 / 64
    gt = [np.array([[2.0, 2.0, 6.0, 6.0]])]
    assert box_hits(ring, gt, ts, [0.69], convention="wsolevaluation")[0, :, 0].tolist() == [1.0, 1.0]
    assert box_hits(ring, gt, ts, [0.7], convention="wsolevaluation")[0, :, 0].tolist() == [0.0, 0.0]
    # v1 keeps the largest contour, the outer one (cv2.contourArea 36 against the hole's)
    assert box_hits(ring, gt, ts, [0.39], multi_box=False, convention="wsolevaluation")[0, :, 0].tolist() \
        == [1.0, 1.0]
    assert box_hits(ring, gt, ts, [0.4], multi_box=False, convention="wsolevaluation")[0, :, 0].tolist() \
        == [0.0, 0.0]
    # camkit has no box for the hole: its one component's box [1, 1, 8, 8] has IoU 16 / 49 with it
    assert box_hits(ring, gt, ts, [0.33])[0, :, 0].tolist() == [0.0, 0.0]
    # clipping: a component reaching the last column has x + w = W, clipped to W - 1
    edge = np.zeros((1, 4, 6))
    edge[0, 1:3, 3:] = 1.0                                    # columns 3..5: box [3, 1, 6, 3] -> [3, 1, 5, 3]
    exact = [np.array([[3.0, 1.0, 5.0, 3.0]])]
    assert box_hits(edge, exact, ts, [1.0], convention="wsolevaluation")[0, :, 0].tolist() == [1.0, 1.0]
    # strict and quantised: 0.5 * 255 = 127.5 -> 127; at t = 0.5 of a max of 255 the cut is int(127.5) = 127,
    # and 127 > 127 is false: the 0.5 pixels leave, only the 1.0 pixel stays
    two = np.zeros((1, 5, 5))
    two[0, 1:4, 1:4] = 0.5
    two[0, 2, 2] = 1.0
    # (at t = 0 the cut is 0: every pixel above 0, the square, box [1, 1, 4, 4])
    big, small = [np.array([[1.0, 1.0, 4.0, 4.0]])], [np.array([[2.0, 2.0, 3.0, 3.0]])]
    assert box_hits(two, big, ts, [1.0], convention="wsolevaluation")[0, :, 0].tolist() == [1.0, 0.0]
    assert box_hits(two, small, ts, [1.0], convention="wsolevaluation")[0, :, 0].tolist() == [0.0, 1.0]
    # camkit: map >= 0 is the whole image, map >= 0.5 the square [1, 1, 4, 4]
    assert box_hits(two, big, ts, [1.0])[0, :, 0].tolist() == [0.0, 1.0]
    # no foreground at all (a map below 1/255): the reference's box [0, 0, 0, 0], one pixel at the origin
    faint = np.full((1, 4, 4), 0.003)
    origin = [np.array([[0.0, 0.0, 0.0, 0.0]])]
    assert box_hits(faint, origin, ts, [1.0], convention="wsolevaluation")[0, :, 0].tolist() == [1.0, 1.0]
    assert box_hits(faint, origin, ts, [0.5])[0, :, 0].tolist() == [0.0, 0.0]


def test_wsolevaluation_v1_takes_the_first_of_equal_contours_in_opencvs_order():
    """Two equal squares: OpenCV lists the one its raster scan finds last first, and v1 (max by
    cv2.contourArea) keeps it."""
    m = np.zeros((1, 10, 10))
    m[0, 1:4, 1:4] = 1.0                                      # found first
    m[0, 6:9, 5:8] = 1.0                                      # found second: listed first, v1's box
    first, second = [np.array([[1.0, 1.0, 4.0, 4.0]])], [np.array([[5.0, 6.0, 8.0, 9.0]])]
    ts = np.array([0.5])
    assert box_hits(m, second, ts, [1.0], multi_box=False, convention="wsolevaluation")[0, 0, 0] == 1.0
    assert box_hits(m, first, ts, [1.0], multi_box=False, convention="wsolevaluation")[0, 0, 0] == 0.0
    assert box_hits(m, first, ts, [1.0], multi_box=True, convention="wsolevaluation")[0, 0, 0] == 1.0


@pytest.mark.parametrize("seed", range(3))
def test_contours_equal_opencv(seed):
    """camkit.metrics.contours (numpy/scipy) against cv2.findContours(RETR_TREE): the same boxes, the same
    cv2.contourArea and the same order, on random masks, smooth ones and noisy rings (nested holes)."""
    cv2 = pytest.importorskip("cv2")
    from scipy import ndimage

    from camkit.metrics.contours import contour_areas, contour_boxes

    rng = np.random.default_rng(seed)
    for it in range(300):
        h, w = (int(v) for v in rng.integers(1, 30, 2))
        if it % 3 == 0:
            fg = rng.random((h, w)) < rng.uniform(0.2, 0.8)
        elif it % 3 == 1:
            x = ndimage.gaussian_filter(rng.random((h, w)), rng.uniform(0.5, 2))
            fg = x > np.quantile(x, rng.uniform(0.2, 0.8))
        else:
            yy, xx = np.mgrid[:h, :w]
            r = np.hypot(yy - h / 2, xx - w / 2)
            fg = (np.abs(r - rng.uniform(1, 8)) < rng.uniform(0.5, 2)) ^ (rng.random((h, w)) < 0.1)
        contours, _ = cv2.findContours(fg.astype(np.uint8) * 255, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
        theirs = []
        for c in contours:
            x, y, cw, ch = cv2.boundingRect(c)
            theirs.append(((x, y, x + cw, y + ch), cv2.contourArea(c)))
        _, boxes, areas, rank = contour_areas(fg[None])
        ours = [(tuple(int(v) for v in boxes[i]), float(areas[i])) for i in np.argsort(rank)]
        assert ours == theirs, f"case {it}:\n{fg.astype(int)}"
        _, largest = contour_boxes(fg[None], largest_only=True)
        if contours:
            x, y, cw, ch = cv2.boundingRect(max(contours, key=cv2.contourArea))
            assert tuple(largest[0]) == (x, y, x + cw, y + ch)
        else:
            assert len(largest) == 0


def test_wsolevaluation_convention_needs_no_opencv():
    """camkit computes the reference's contours itself: cv2 is never imported."""
    import subprocess
    import sys

    code = ("import sys, numpy as np\n"
            "from camkit.metrics import max_box_acc\n"
            "m = np.random.default_rng(0).random((2, 9, 9))\n"
            "for multi in (True, False):\n"
            "    max_box_acc(m, [np.array([[1, 1, 5, 5]]), np.array([[0, 0, 3, 3]])], multi_box=multi,\n"
            "                convention='wsolevaluation')\n"
            "assert 'cv2' not in sys.modules, 'cv2 imported'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_maxboxacc_convention_errors():
    m, gt = np.zeros((1, 4, 4)), [np.array([[0.0, 0.0, 2.0, 2.0]])]
    with pytest.raises(ValueError, match="convention must be one of camkit, wsolevaluation"):
        max_box_acc(m, gt, convention="opencv")
    with pytest.raises(ValueError, match="leave connectivity 8"):
        box_hits(m, gt, connectivity=4, convention="wsolevaluation")
    with pytest.raises(ValueError, match="maps in \\[0, 1\\]"):
        max_box_acc(m + 1.5, gt, convention="wsolevaluation")
    assert max_box_acc(m + 1.5, gt)["convention"] == "camkit"     # camkit's rules take any finite maps


def test_bench_per_image_values_in_wsolevaluation_convention():
    """The bench's stored hits in the wsolevaluation convention: the reference's threshold array and the
    ground-truth boxes truncated to integers on the maps' grid, as its resize_bbox does."""
    from camkit.bench.wsol import IOU_THRESHOLDS, _unpack, per_image_values, thresholds

    maps, boxes = _random_case(12, n=8)
    model_boxes = [b * 4 + 1.5 for b in boxes]                 # model frame 4x the maps' grid, off the grid
    values = per_image_values(torch.tensor(maps), model_boxes, (maps.shape[1] * 4, maps.shape[2] * 4),
                              convention="wsolevaluation")
    grid = [np.trunc(b / 4) for b in model_boxes]
    ts = thresholds("wsolevaluation")
    np.testing.assert_array_equal(ts, np.arange(0, 1, 0.01))
    hits = box_hits(maps, grid, ts, IOU_THRESHOLDS, convention="wsolevaluation")
    default = box_hits(maps, [b / 4 for b in model_boxes], thresholds(), IOU_THRESHOLDS)
    for i, v in enumerate(values):
        if len(boxes[i]):
            np.testing.assert_array_equal(np.stack([_unpack(x) for x in v["box_hits"]], axis=1), hits[i])
    assert not np.array_equal(np.nan_to_num(hits), np.nan_to_num(default))
