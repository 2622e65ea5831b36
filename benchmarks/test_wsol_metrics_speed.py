"""Cost of the threshold-free localisation, faithfulness and complexity metrics on 400 maps of 256x160 (the
synthetic test split) and 6 maps of 2944x1920 (VinDr-Mammo's full resolution); PxAP next to scikit-learn's
average_precision_score on the same pixels.

Run: python -m pytest benchmarks/test_wsol_metrics_speed.py --benchmark-enable --benchmark-group-by=group -q
Faithfulness uses a cheap linear score, so its times are the metric's own overhead (building and scoring
2 x (steps + 1) perturbed images per map); with a real model add that many forwards.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from camkit.metrics import (confidence_change, deletion_insertion, energy_pointing_game, max_box_acc, pointing_game,
                            pxap)

SIZES = {"400x256x160": (400, 256, 160), "6x2944x1920": (6, 2944, 1920)}


def _data(n: int, h: int, w: int, seed: int = 0):
    """Smooth maps in [0, 1] peaking near one lesion box per image, and the lesions' masks."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 1, max(h // 32, 2), max(w // 32, 2), generator=g)
    maps = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)[:, 0]
    rng = np.random.default_rng(seed)
    boxes, masks = [], torch.zeros(n, h, w, dtype=torch.bool)
    for i in range(n):
        bh, bw = int(h * rng.uniform(0.05, 0.2)), int(w * rng.uniform(0.05, 0.2))
        y, x = int(rng.integers(0, h - bh)), int(rng.integers(0, w - bw))
        maps[i, y:y + bh, x:x + bw] += 0.5
        masks[i, y:y + bh, x:x + bw] = True
        boxes.append(np.array([[x, y, x + bw, y + bh]], dtype=float))
    maps = maps / maps.flatten(1).amax(1)[:, None, None]
    return maps, masks, boxes


@pytest.fixture(scope="module", params=list(SIZES))
def data(request):
    return request.param, _data(*SIZES[request.param])


def _once(benchmark, fn, *args, **kwargs):
    return benchmark.pedantic(fn, args=args, kwargs=kwargs, rounds=1, iterations=1, warmup_rounds=0)


def test_pxap(benchmark, data):
    name, (maps, masks, _) = data
    benchmark.group = f"pxap {name}"
    _once(benchmark, pxap, maps, masks)


def test_pxap_sklearn(benchmark, data):
    from sklearn.metrics import average_precision_score

    name, (maps, masks, _) = data
    benchmark.group = f"pxap {name}"
    got = _once(benchmark, average_precision_score, masks.numpy().ravel(), maps.numpy().ravel())
    assert got == pytest.approx(pxap(maps, masks), abs=1e-6)


def test_max_box_acc(benchmark, data):
    name, (maps, _, boxes) = data
    benchmark.group = f"maxboxacc {name}"
    _once(benchmark, max_box_acc, maps, boxes)


def test_max_box_acc_relabelling(benchmark, data):
    """The reference for the walk down the thresholds: label every threshold's foreground with scipy (what
    camkit did before; the largest-component rule still does). Same hits, asserted."""
    from camkit.metrics.localization import _best_iou, _padded

    name, (maps, _, boxes) = data
    benchmark.group = f"maxboxacc {name}"
    arr, pad, ts = maps.numpy(), _padded(boxes), np.arange(100) / 100
    best = _once(benchmark, lambda: np.stack([_best_iou(arr >= t, pad, True, 8) for t in ts], axis=1))
    from camkit.metrics import box_hits

    np.testing.assert_array_equal(box_hits(maps, boxes, ts)[..., 0], best >= 0.3)


def test_pointing_games(benchmark, data):
    name, (maps, _, boxes) = data
    benchmark.group = f"pointing {name}"
    _once(benchmark, lambda: (pointing_game(maps, boxes, 15), energy_pointing_game(maps, boxes)))


def _linear_score(batch: torch.Tensor) -> torch.Tensor:
    return batch.mean(dim=(1, 2, 3))


def test_deletion_insertion(benchmark, data):
    name, (maps, _, _) = data
    benchmark.group = f"faithfulness {name}"
    n = 40 if maps.shape[0] > 6 else maps.shape[0]   # 40 of the 400 small maps: it scales linearly in N
    images = maps[:n, None].clone()
    _once(benchmark, deletion_insertion, _linear_score, images, maps[:n], steps=50, batch_size=16)


def test_confidence_change(benchmark, data):
    name, (maps, _, _) = data
    benchmark.group = f"faithfulness {name}"
    images = maps[:, None] + 0.1
    _once(benchmark, confidence_change, _linear_score, images, maps)


@pytest.mark.parametrize("shape", [(4, 256, 160), (1, 736, 480)], ids=["4x256x160", "1x736x480"])
def test_road(benchmark, shape):
    """ROAD's cost is its sparse solves (2 x 9 per image): 256x160 is the synthetic maps' size; full
    resolution is out of reach of a direct solve on a CPU (docs/metrics.md), hence the smaller second case."""
    from camkit.metrics import road

    maps, _, _ = _data(*shape)
    images = maps[:, None].clone()
    benchmark.group = f"road {shape[0]}x{shape[1]}x{shape[2]}"
    r = _once(benchmark, road, lambda b: b.mean(dim=(1, 2, 3)), images, maps)
    assert r.morf.shape == (shape[0], 9)


def test_sparseness_complexity(benchmark, data):
    """The complexity family (docs/metrics.md section 7): the Gini index sorts each map's pixels, the entropy
    is one pass; what the bench adds per test-cam and image (camkit.bench.complexity)."""
    from camkit.bench.complexity import per_image_complexity

    name, (maps, _, _) = data
    benchmark.group = f"complexity {name}"
    got = _once(benchmark, per_image_complexity, maps)
    assert len(got) == maps.shape[0] and all(0.0 <= g["sparseness"] < 1.0 for g in got)
