"""ROAD against grad-cam 1.5.7's own ROAD classes (noise off, so both are deterministic), and the noise."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from camkit.metrics.imputation import impute, road

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
    ps = (10, 50, 90)
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
    # nothing is below the 10th percentile of a flat map: the image's mean fills it
    r = road(lambda b: b.mean(dim=(1, 2, 3)), img, flat, percentiles=(10,), noise=0.0)
    assert r.morf[0, 0] == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="percentiles"):
        road(lambda b: b.sum(dim=(1, 2, 3)), img, flat, percentiles=(120,))
    with pytest.raises(ValueError, match="noise"):
        road(lambda b: b.sum(dim=(1, 2, 3)), img, flat, noise=-1)
