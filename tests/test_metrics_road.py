"""ROAD against grad-cam 1.5.7's own ROAD classes (noise off, so both are deterministic) on maps without ties,
the fixed removed share by rank on maps with ties (where grad-cam removes everything), and the noise."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import math

from camkit.metrics.imputation import PERCENTILES, impute, keep_mask, road

# grad-cam's own code converts tensors with numpy functions, which numpy 2 warns about
pytestmark = pytest.mark.filterwarnings("ignore:__array_wrap__:DeprecationWarning")
gradcam_road = pytest.importorskip("pytorch_grad_cam.metrics.road")
from pytorch_grad_cam.metrics.perturbation_confidence import (PerturbationConfidenceMetric,  # noqa: E402
                                                              RemoveLeastRelevantFirst, RemoveMostRelevantFirst)


class _Net(torch.nn.Module):
    """A small fixed network whose score depends on where the intensity is."""

    def __init__(self, c: int):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(c, 4, 3, padding=1)
        self.head = torch.nn.Linear(4, 2)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).amax(dim=(2, 3)))


def _case(seed: int, c: int, h: int = 14, w: int = 11):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(3, c, h, w, generator=g)
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    maps = torch.stack([torch.exp(-((yy - h * k / 4.0) ** 2 + (xx - w / 2) ** 2) / 20.0) for k in (1, 2, 3)])
    maps = maps + 0.01 * torch.rand(3, h, w, generator=g)  # no ties
    return images, maps / maps.amax(dim=(1, 2), keepdim=True)


@pytest.mark.parametrize("c", [1, 3])
def test_imputation_equals_grad_cams(c):
    images, maps = _case(0, c)
    theirs = gradcam_road.NoisyLinearImputer(noise=0.0)
    for i in range(3):
        keep = (maps[i] < np.percentile(maps[i].numpy(), 60)).numpy()
        expected = theirs(images[i], torch.from_numpy(keep.astype(np.float32)))
        np.testing.assert_allclose(impute(images[i], keep, noise=0.0).numpy(), expected.numpy(), atol=1e-5)


@pytest.mark.parametrize("c", [1, 3])
def test_morf_and_lerf_equal_grad_cams(c):
    images, maps = _case(1, c)
    net = _Net(c).eval()
    target = 1
    ps = PERCENTILES
    ours = road(lambda b: net(b)[:, target], images, maps, percentiles=ps, noise=0.0, batch_size=4)
    targets = [lambda out: out[target]] * len(images)
    for j, p in enumerate(ps):
        for kind, cls, got in (("morf", RemoveMostRelevantFirst, ours.morf), ("lerf", RemoveLeastRelevantFirst,
                                                                               ours.lerf)):
            metric = PerturbationConfidenceMetric(cls(p, gradcam_road.NoisyLinearImputer(noise=0.0)))
            expected = metric(images, maps.numpy(), targets, net)
            np.testing.assert_allclose(got[:, j], expected, atol=1e-5, err_msg=f"{kind} at {p}")
    combined = ((ours.lerf - ours.morf) / 2).mean(axis=1)
    np.testing.assert_allclose(ours.combined, combined)
    assert set(ours.summary()) == {"morf", "lerf", "combined"}


def test_noise_is_seeded_and_only_on_imputed_pixels():
    images, maps = _case(2, 1, 40, 30)
    keep = (maps[0] < np.percentile(maps[0].numpy(), 50)).numpy()
    clean = impute(images[0], keep, noise=0.0)
    a = impute(images[0], keep, noise=0.01, generator=torch.Generator().manual_seed(3))
    b = impute(images[0], keep, noise=0.01, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    diff = (a - clean)[0].numpy()
    assert np.all(diff[keep] == 0)
    assert abs(diff[~keep].mean()) < 0.002 and 0.008 < diff[~keep].std() < 0.012
    net = _Net(1).eval()
    r1 = road(lambda x: net(x)[:, 1], images, maps, percentiles=(50,), seed=5)
    r2 = road(lambda x: net(x)[:, 1], images, maps, percentiles=(50,), seed=5)
    assert np.array_equal(r1.morf, r2.morf)


def test_flat_map_and_bad_arguments():
    img = torch.rand(1, 1, 6, 6)
    flat = torch.zeros(1, 6, 6)
    # p = 0 keeps no pixel: the image's mean fills it
    r = road(lambda b: b.mean(dim=(1, 2, 3)), img, flat, percentiles=(0,), noise=0.0)
    assert r.morf[0, 0] == pytest.approx(0.0, abs=1e-6)
    # a flat map still keeps its share, ceil(0.1 * 35) = 4 pixels: the first four in row-major order
    assert keep_mask(flat[0].numpy(), 10).reshape(-1).nonzero()[0].tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="percentiles"):
        road(lambda b: b.sum(dim=(1, 2, 3)), img, flat, percentiles=(120,))
    with pytest.raises(ValueError, match="percentiles"):
        keep_mask(flat[0].numpy(), -1)
    with pytest.raises(ValueError, match="noise"):
        road(lambda b: b.sum(dim=(1, 2, 3)), img, flat, noise=-1)


# --- the removed share when the map ties (issue 27) --------------------------------------------------------------

def _relu_like(h: int = 14, w: int = 11, zeros: float = 0.7, seed: int = 0) -> np.ndarray:
    """A map with ``zeros`` of its pixels at 0 (its minimum, as after a ReLU) and the rest distinct."""
    rng = np.random.default_rng(seed)
    m = np.zeros(h * w)
    on = rng.choice(h * w, size=round(h * w * (1 - zeros)), replace=False)
    m[on] = rng.permutation(np.arange(1, on.size + 1)) / on.size
    return m.reshape(h, w)


def _gradcam_kept(cls, m: np.ndarray, p: float) -> int:
    """How many pixels grad-cam 1.5.7's removal keeps: its own class, handed an imputer that records the mask."""
    seen = []
    cls(p, lambda image, mask: seen.append(mask) or image)(torch.zeros(1, *m.shape), torch.from_numpy(m))
    return int(seen[0].sum())


def test_removed_count_is_exact_on_large_flat_minima(monkeypatch):
    m = _relu_like()
    n = m.size                                          # 154 pixels, 108 of them at the minimum
    want = {p: -(-p * (n - 1) // 100) for p in PERCENTILES}   # kept: ceil(p (n - 1) / 100), integer arithmetic
    assert [want[p] for p in (10, 50, 70, 90)] == [16, 77, 108, 138]
    for p in PERCENTILES:
        assert keep_mask(m, p).sum() == want[p]
        assert keep_mask(-m, p).sum() == want[p]
        # grad-cam keeps nothing (removes all 154 pixels) wherever its percentile falls on the minimum
        theirs = _gradcam_kept(RemoveMostRelevantFirst, m.astype(np.float32), p)
        assert theirs == (0 if p <= 60 else want[p])
    # MoRF keeps only minimum pixels up to 70%, then the least relevant of the others, in order
    assert (m[keep_mask(m, 70)] == 0).all() and keep_mask(m, 80)[m > 0].sum() == want[80] - 108
    # the same counts reach the imputation inside road(), for both orders; a plateau at the maximum for LeRF
    plateau = 1 - m                                     # 108 pixels at the maximum
    seen = []
    real = impute
    monkeypatch.setattr("camkit.metrics.imputation.impute",
                        lambda image, keep, noise, gen: seen.append(keep.copy()) or real(image, keep, noise, gen))
    images = torch.rand(2, 1, *m.shape, generator=torch.Generator().manual_seed(0))
    road(lambda b: b.mean(dim=(1, 2, 3)), images, torch.tensor(np.stack([m, plateau])), noise=0.0)
    counts = np.array([k.sum() for k in seen]).reshape(2, 2, len(PERCENTILES))   # order, image, percentile
    assert (counts == np.array([want[p] for p in PERCENTILES])).all()
    # LeRF keeps the most relevant: on the plateau map that is plateau pixels while there are enough of them
    lerf_plateau_70 = seen[3 * len(PERCENTILES) + PERCENTILES.index(70)]
    assert (plateau[lerf_plateau_70] == 1).all() and lerf_plateau_70.sum() == 108


def test_tie_break_is_stable_and_deterministic():
    m = _relu_like(zeros=0.7, seed=3)
    zeros = np.flatnonzero(m.reshape(-1) == 0)
    for p in (10, 30, 50):
        keep = keep_mask(m, p).reshape(-1)
        k = -(-p * (m.size - 1) // 100)
        # among tied minima, the first k in row-major order are kept, the later ones removed
        assert np.flatnonzero(keep).tolist() == zeros[:k].tolist()
        # the same mask again, from float32, from a torch tensor and from a (1, H, W) copy
        assert np.array_equal(keep_mask(m, p).reshape(-1), keep)
        assert np.array_equal(keep_mask(m.astype(np.float32), p).reshape(-1), keep)
        assert np.array_equal(keep_mask(torch.tensor(m), p).reshape(-1), keep)
        assert np.array_equal(keep_mask(m[None], p).reshape(-1), keep)
    # road itself: two calls, identical values, with noise on (seeded)
    images = torch.rand(1, 1, *m.shape, generator=torch.Generator().manual_seed(1))
    net = _Net(1).eval()
    a = road(lambda b: net(b)[:, 1], images, torch.tensor(m)[None], percentiles=(30, 50), seed=2)
    b = road(lambda b: net(b)[:, 1], images, torch.tensor(m)[None], percentiles=(30, 50), seed=2)
    assert np.array_equal(a.morf, b.morf) and np.array_equal(a.lerf, b.lerf)


def test_keep_mask_is_the_percentile_rule_without_ties():
    """Without ties the kept pixels are exactly grad-cam's (``map < numpy.percentile(map, p)``), except where
    p (n - 1) / 100 is an integer and numpy's float index lands a hair above it: numpy then keeps one more."""
    rng = np.random.default_rng(0)
    off_by_one = 0
    for n in list(range(2, 160)) + [14 * 11, 64 * 64]:
        m = rng.random(n)
        for p in range(0, 101):
            theirs, ours = m < np.percentile(m, p), keep_mask(m, p)
            if (p * (n - 1)) % 100:
                assert np.array_equal(ours, theirs), (n, p)
            elif not np.array_equal(ours, theirs):
                off_by_one += 1
                assert theirs.sum() == ours.sum() + 1 and (theirs >= ours).all()
    assert off_by_one < 20
    assert math.ceil(7 / 100 * 100) == 8 and keep_mask(np.arange(101.0), 7).sum() == 7   # exact, not float, index
