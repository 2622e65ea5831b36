"""Lesion masks (camkit.data.masks): components, polygon fill against matplotlib's point-in-polygon, size
alignment, the model frame and back, the cache's bit packing."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.path import Path as MplPath

from camkit.data.cache import pack_masks, unpack_masks
from camkit.data.masks import (MaskSizeError, align_mask, boxes_from_mask, components, lesions_from_masks,
                               rasterize_polygon, tight_box, to_model)
from camkit.data.sample import BoxTransform


def test_boxes_from_mask_hand_worked():
    m = np.zeros((10, 12), bool)
    m[2:5, 3:7] = True          # rows 2-4, columns 3-6 -> x1 3, y1 2, x2 7, y2 5
    m[6, 10] = True             # a single pixel
    m[7, 11] = True             # touches it diagonally: the same 8-connected component
    assert boxes_from_mask(m).tolist() == [[3, 2, 7, 5], [10, 6, 12, 8]]
    assert tight_box(m).tolist() == [3, 2, 12, 8]
    assert tight_box(np.zeros((3, 3), bool)) is None
    parts = components(m)
    assert len(parts) == 2 and parts[0].sum() == 12 and parts[1].sum() == 2


@pytest.mark.parametrize("seed", range(5))
def test_polygon_fill_matches_matplotlib_at_pixel_centres(seed):
    rng = np.random.default_rng(seed)
    h, w = 40, 56
    angles = np.sort(rng.uniform(0, 2 * np.pi, 25))
    radii = rng.uniform(5, 22, 25)
    # a star-shaped polygon, some vertices outside the image (negative and beyond the edge)
    pts = np.stack([30 + radii * np.cos(angles) * 1.4, 18 + radii * np.sin(angles)], axis=1)
    ours = rasterize_polygon(pts, (h, w))
    yy, xx = np.mgrid[0:h, 0:w]
    centres = np.stack([xx.ravel() + 0.5, yy.ravel() + 0.5], axis=1)
    ref = MplPath(np.vstack([pts, pts[:1]]), closed=True).contains_points(centres).reshape(h, w)
    assert ours.sum() > 100
    # matplotlib and the even-odd rule may differ only for a centre lying exactly on an edge (none here)
    assert np.array_equal(ours, ref)


def test_polygon_hand_worked_and_degenerate():
    square = rasterize_polygon([(1, 1), (4, 1), (4, 3), (1, 3)], (4, 5))
    assert square.astype(int).tolist() == [[0, 0, 0, 0, 0], [0, 1, 1, 1, 0], [0, 1, 1, 1, 0], [0, 0, 0, 0, 0]]
    assert not rasterize_polygon([(1, 1), (3, 3)], (4, 4)).any()       # two points: no area
    assert not rasterize_polygon([(-9, -9), (-5, -9), (-5, -5)], (4, 4)).any()   # wholly outside


def test_align_mask_stretches_small_mismatches_and_refuses_large_ones():
    mask = np.zeros((202, 101), bool)
    mask[50:100, 20:60] = True
    aligned, rescaled = align_mask(mask, (200, 100))
    assert rescaled and aligned.shape == (200, 100)
    assert abs(tight_box(aligned)[1] - 50 * 200 / 202) <= 1 and abs(tight_box(aligned)[3] - 100 * 200 / 202) <= 1
    same, rescaled = align_mask(mask, (202, 101))
    assert not rescaled and same is not None and same.shape == (202, 101)
    with pytest.raises(MaskSizeError, match="172x86"):
        align_mask(np.zeros((172, 86), bool), (200, 100))   # 14% smaller: CBIS-DDSM's large mismatches


@pytest.mark.parametrize("flipped,crop", [(False, None), (True, None), (True, (10.0, 4.0, 90.0, 60.0)),
                                          (False, (-6.0, 0.0, 74.0, 50.0))])
def test_masks_to_the_model_frame_and_back(flipped, crop):
    h0, w0 = 80, 60
    mask = np.zeros((h0, w0), bool)
    mask[30:52, 12:33] = True
    mask[60:66, 40:47] = True
    t = BoxTransform((h0, w0), (40, 28), crop=crop, flipped=flipped)
    lesions = lesions_from_masks([mask], t)
    assert lesions.boxes.tolist() == [[12, 30, 33, 52], [40, 60, 47, 66]]
    assert lesions.masks.shape == (2, 40, 28) and lesions.masks.dtype == torch.bool
    sy, sx = t.scale()
    for k in range(2):
        # the model-frame mask's own box, mapped back, is the original box within one model pixel
        back = t.to_original(tight_box(lesions.masks[k].numpy())[None])[0]
        assert np.abs(back - lesions.boxes[k]).max() <= 1 / min(sy, sx) + 1e-6
    # at the original size with no crop, the round trip is exact
    exact = to_model(mask[None], BoxTransform((h0, w0), (h0, w0), flipped=flipped))[0].numpy()
    assert np.array_equal(exact[:, ::-1] if flipped else exact, mask)


def test_pack_unpack_round_trip():
    rng = np.random.default_rng(0)
    masks = torch.from_numpy(rng.random((3, 17, 29)) > 0.5)
    packed = pack_masks(masks)
    assert packed.shape == (3, 17, 4) and packed.dtype == np.uint8
    assert torch.equal(unpack_masks(packed, 29), masks)
    assert unpack_masks(pack_masks(torch.zeros((0, 5, 9), dtype=torch.bool)), 9).shape == (0, 5, 9)
