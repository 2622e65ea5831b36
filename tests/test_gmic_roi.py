"""GMIC ROI retrieval and crop extraction against simple per-image / per-crop reference loops."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from camkit.nn import regions as roi
from camkit_gmic.global_net import GlobalNetwork, feature_size


def _reference_crop(img: np.ndarray, r: int, c: int, ch: int, cw: int) -> np.ndarray:
    """One crop, the slow obvious way: clip the window, paste the valid part bottom-right on the minimum."""
    height, width = img.shape
    out = np.full((ch, cw), img.min(), dtype=img.dtype)
    r0, r1 = min(max(r, 0), height), min(max(r + ch, 0), height)
    c0, c1 = min(max(c, 0), width), min(max(c + cw, 0), width)
    if r1 > r0 and c1 > c0:
        out[ch - (r1 - r0):, cw - (c1 - c0):] = img[r0:r1, c0:c1]
    return out


def _reference_retrieve(maps: np.ndarray, k: int, window: tuple[int, int]) -> list[tuple[int, int]]:
    """Greedy window picks for one image (C, h, w), with explicit loops over every window position."""
    lo = maps.min(axis=(1, 2), keepdims=True)
    score = ((maps - lo) / (maps.max(axis=(1, 2), keepdims=True) - lo)).sum(0)
    wh, ww = window
    picks = []
    for _ in range(k):
        best, pos = -np.inf, (0, 0)
        for i in range(score.shape[0] - wh + 1):
            for j in range(score.shape[1] - ww + 1):
                v = score[i:i + wh, j:j + ww].mean()
                if v > best:  # strict: the first maximum in row-major order wins
                    best, pos = v, (i, j)
        picks.append(pos)
        score[pos[0]:pos[0] + wh, pos[1]:pos[1] + ww] = 0
    return picks


def test_batched_crops_equal_per_crop_loop_including_off_edge():
    g = torch.Generator().manual_seed(0)
    images = torch.randn(3, 1, 50, 37, generator=g) * 3 + torch.arange(3.0)[:, None, None, None]
    ch, cw = 16, 12
    corners = torch.tensor([
        [[0, 0], [34, 25], [40, 30], [-5, 3], [10, -7]],      # inside, flush bottom-right, off both edges
        [[45, 0], [0, 33], [49, 36], [-20, -20], [60, 50]],    # mostly or wholly outside
        [[17, 9], [3, 30], [38, 2], [20, 20], [0, 26]],
    ])
    crops = roi.extract_crops(images, corners, (ch, cw))
    assert crops.shape == (3, 5, ch, cw)
    for b in range(3):
        img = images[b, 0].numpy()
        for k in range(5):
            r, c = corners[b, k].tolist()
            np.testing.assert_array_equal(crops[b, k].numpy(), _reference_crop(img, r, c, ch, cw),
                                          err_msg=f"image {b} crop {k} at {(r, c)}")
    # a crop past the bottom edge keeps its valid rows at the bottom, minimum above them
    assert torch.equal(crops[0, 2, -10:, -7:], images[0, 0, 40:, 30:])
    assert (crops[1, 4] == images[1].min()).all()


@pytest.mark.parametrize("seed,shape,window,k", [(0, (16, 10), (3, 3), 4), (1, (16, 13), (4, 4), 6),
                                                (2, (11, 7), (2, 5), 3), (3, (5, 9), (1, 1), 8)])
def test_greedy_retrieval_equals_reference_loop(seed, shape, window, k):
    g = torch.Generator().manual_seed(seed)
    maps = torch.rand(2, 2, *shape, generator=g, dtype=torch.float64).float()
    cells = roi.greedy_windows(roi.combine_maps(maps), k, window)
    for b in range(2):
        assert [tuple(p) for p in cells[b].tolist()] == _reference_retrieve(maps[b].double().numpy(), k, window)


def test_retrieval_uses_integer_division_and_first_maximum():
    m = torch.zeros(1, 1, 16, 13)
    m[0, 0, 9:13, 7:11] = 1.0  # one 4x4 hot window well away from the left border
    m[0, 0, 2:6, 2:6] = 1.0  # and an equal one earlier in row-major order
    cells = roi.greedy_windows(roi.combine_maps(m), 2, (4, 4))
    assert cells[0].tolist() == [[2, 2], [9, 7]]


def test_flat_map_does_not_produce_nan():
    cells = roi.greedy_windows(roi.combine_maps(torch.zeros(2, 1, 6, 5)), 2, (2, 2))
    assert cells[:, 0].tolist() == [[0, 0], [0, 0]]


def test_cell_to_pixel_rounding_is_half_to_even():
    cells = torch.tensor([[[1, 1], [3, 3], [0, 2]]])
    px = roi.cells_to_pixels(cells, (4, 4), (10, 10))
    assert px.tolist() == [[[2, 2], [8, 8], [0, 5]]]  # 2.5 -> 2, 7.5 -> 8, 5.0 -> 5


def test_sizes_follow_the_released_formulas():
    strides = (1, 2, 2, 2, 2)
    assert feature_size((2944, 1920), strides) == (46, 30)
    assert feature_size((1024, 832), strides) == (16, 13)
    assert roi.window_cells((256, 256), (46, 30), (2944, 1920)) == (4, 4)
    assert roi.window_cells((256, 256), (16, 13), (1024, 832)) == (4, 4)
    net = GlobalNetwork((4, 4, 4), (1, 1, 1), (1, 2, 2)).eval()
    for hw in [(256, 160), (257, 163), (100, 71)]:
        with torch.no_grad():
            out = net(torch.zeros(1, 1, *hw))
        assert tuple(out.shape[-2:]) == feature_size(hw, (1, 2, 2))


def test_batched_retrieval_equals_single_image_calls():
    # the whole pipeline on a batch returns one tensor; per-image results equal single-image calls
    maps = torch.rand(4, 2, 16, 10)
    both = roi.retrieve_rois(maps, 3, (48, 48), (256, 160))
    single = torch.cat([roi.retrieve_rois(maps[i:i + 1], 3, (48, 48), (256, 160)) for i in range(4)])
    assert torch.equal(both, single)
