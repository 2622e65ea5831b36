"""Deletion/insertion and average drop against plain per-step loops written here, and hand-worked cases."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from camkit.metrics import confidence_change, deletion_insertion
from camkit.metrics.faithfulness import BLUR_KERNEL, BLUR_SIGMA, _baseline


def _score(batch: torch.Tensor) -> torch.Tensor:
    # a fixed non-linear score: weighted pixels through a sigmoid, so every pixel's removal counts differently
    g = torch.Generator().manual_seed(0)
    w = torch.randn(batch.shape[1:], generator=g, dtype=torch.float64)
    return torch.sigmoid((batch.double() * w).sum(dim=(1, 2, 3)))


def _loop(images: np.ndarray, maps: np.ndarray, steps: int, base: np.ndarray):
    n, c, h, w = images.shape
    dele = np.zeros((n, steps + 1))
    ins = np.zeros((n, steps + 1))
    for i in range(n):
        flat = maps[i].ravel()
        order = sorted(range(h * w), key=lambda p: (-flat[p], p))
        for s in range(steps + 1):
            k = round(s * h * w / steps)
            d = images[i].copy()
            a = base[i].copy()
            for p in order[:k]:
                r, q = divmod(p, w)
                d[:, r, q] = base[i][:, r, q]
                a[:, r, q] = images[i][:, r, q]
            dele[i, s] = float(_score(torch.tensor(d[None]))[0])
            ins[i, s] = float(_score(torch.tensor(a[None]))[0])
    x = np.arange(steps + 1) / steps
    trap = lambda y: np.array([np.sum((y[j, 1:] + y[j, :-1]) / 2 * np.diff(x)) for j in range(len(y))])
    return dele, ins, trap(dele), trap(ins)


@pytest.mark.parametrize("baseline", ["min", "zero", "blur"])
@pytest.mark.parametrize("steps,batch_size", [(7, 3), (10, 32), (1, 1)])
def test_deletion_insertion_equals_a_per_step_loop(baseline, steps, batch_size):
    rng = np.random.default_rng(steps)
    images = rng.normal(size=(3, 2, 6, 5))
    maps = np.round(rng.random((3, 6, 5)) * 4) / 4        # ties: ascending row-major index goes first
    base = _baseline(torch.tensor(images), baseline).numpy()
    got = deletion_insertion(_score, torch.tensor(images), torch.tensor(maps), steps=steps, baseline=baseline,
                             batch_size=batch_size)
    want = _loop(images, maps, steps, base)
    for g, w in zip((got.deletion, got.insertion, got.deletion_auc, got.insertion_auc), want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)
    assert got.deletion.shape == (3, steps + 1)


def test_baselines_are_what_the_docs_say():
    x = torch.arange(2 * 3 * 20 * 20, dtype=torch.float64).reshape(2, 3, 20, 20)
    assert torch.equal(_baseline(x, "zero"), torch.zeros_like(x))
    assert torch.equal(_baseline(x, "min")[1], torch.full((3, 20, 20), float(x[1].min())))
    # the blur: a normalised 11-tap Gaussian, sigma 5, applied along rows then columns with reflect padding
    t = np.arange(BLUR_KERNEL) - BLUR_KERNEL // 2
    g = np.exp(-t ** 2 / (2 * BLUR_SIGMA ** 2)); g /= g.sum()
    xn = np.pad(x.numpy(), ((0, 0), (0, 0), (5, 5), (5, 5)), mode="reflect")
    want = np.zeros_like(x.numpy())
    for i in range(20):
        for j in range(20):
            want[..., i, j] = np.einsum("ncab,a,b->nc", xn[..., i:i + 11, j:j + 11], g, g)
    np.testing.assert_allclose(_baseline(x, "blur").numpy(), want, rtol=1e-10)
    with pytest.raises(ValueError, match="unknown baseline 'noise'"):
        _baseline(x, "noise")


def test_deletion_insertion_hand_worked_and_resized_maps():
    img = torch.zeros(1, 1, 2, 2)
    img[0, 0, 0, 0] = 1.0
    r = deletion_insertion(lambda b: b.sum(dim=(1, 2, 3)), img, img[:, 0], steps=4, baseline="zero")
    assert r.deletion[0].tolist() == [1, 0, 0, 0, 0] and r.insertion[0].tolist() == [0, 1, 1, 1, 1]
    assert r.deletion_auc[0] == pytest.approx(0.125) and r.insertion_auc[0] == pytest.approx(0.875)
    assert r.summary() == {"deletion": pytest.approx(0.125), "insertion": pytest.approx(0.875)}
    # a coarse map is resized to the image first: a map peaked top-left orders that quadrant first
    big = torch.zeros(1, 1, 8, 8)
    big[0, 0, :4, :4] = 1.0
    coarse = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
    r = deletion_insertion(lambda b: b.sum(dim=(1, 2, 3)), big, coarse, steps=4, baseline="zero")
    assert r.deletion[0, 1] == 0.0


def test_confidence_change_equals_its_formula():
    rng = np.random.default_rng(3)
    images = torch.tensor(rng.normal(size=(5, 1, 4, 4)))
    maps = torch.tensor(rng.random((5, 4, 4)))
    r = confidence_change(_score, images, maps, batch_size=2)
    y = _score(images).numpy()
    o = _score(images * maps[:, None]).numpy()
    assert r["average_drop"] == pytest.approx(np.mean(np.maximum(0, y - o) / y))
    assert r["increase"] == pytest.approx(np.mean(o > y))
    np.testing.assert_allclose(r["y"], y)


def test_faithfulness_errors_are_named():
    img = torch.zeros(2, 1, 3, 3)
    with pytest.raises(ValueError, match="score of image"):
        confidence_change(lambda b: b.sum(dim=(1, 2, 3)), img, torch.ones(2, 3, 3))
    with pytest.raises(ValueError, match="returned 1 scores for a batch of 2"):
        confidence_change(lambda b: b.sum().reshape(1), img + 1, torch.ones(2, 3, 3))
    with pytest.raises(ValueError, match="maps must be"):
        deletion_insertion(lambda b: b.sum(dim=(1, 2, 3)), img, torch.ones(3, 3, 3))
    with pytest.raises(ValueError, match="steps must be >= 1"):
        deletion_insertion(lambda b: b.sum(dim=(1, 2, 3)), img, torch.ones(2, 3, 3), steps=0)
