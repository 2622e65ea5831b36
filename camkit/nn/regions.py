"""Region-of-interest retrieval, crop extraction and paste-back, batched on the device (no host syncs, no
per-image loop).

Released behaviour (docs/gmic.md): min-max normalise each class map and sum over classes; K times take the
first maximum of a stride-1 average pool with the crop's window in map cells, corner row = idx // pooled width
(integer division), and zero that window; corners go to input pixels with round(row / h * H) (half to even).
A crop that runs off the image is filled with the image's minimum and its valid pixels sit bottom-right.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def window_cells(crop_size: tuple[int, int], map_hw: tuple[int, int], input_hw: tuple[int, int]) -> tuple[int, int]:
    """The crop's size in map cells: round(crop * h / H), clipped to [1, h]."""
    wh, ww = (max(1, min(m, int(round(c * m / n)))) for c, m, n in zip(crop_size, map_hw, input_hw))
    return wh, ww


def combine_maps(maps: Tensor) -> Tensor:
    """Min-max normalise each (B, C, h, w) class map and sum over classes -> (B, h, w), float32."""
    flat = maps.detach().float().flatten(2)
    lo = flat.amin(-1, keepdim=True)
    rng = (flat.amax(-1, keepdim=True) - lo).clamp_min(1e-12)  # a flat map becomes 0, not NaN
    return ((flat - lo) / rng).sum(1).view(maps.shape[0], *maps.shape[2:])


def greedy_windows(score: Tensor, num: int, window: tuple[int, int]) -> Tensor:
    """Upper-left map cells (B, num, 2) of ``num`` windows picked greedily from ``score`` (B, h, w).

    Each pick is the first maximum of the window-averaged map; the picked window is then zeroed.
    """
    b, h, w = score.shape
    wh, ww = window
    pw = w - ww + 1
    rows_ar = torch.arange(h, device=score.device)
    cols_ar = torch.arange(w, device=score.device)
    current = score.clone()
    picks = []
    for _ in range(num):
        pooled = F.avg_pool2d(current[:, None], (wh, ww), stride=1).flatten(1)
        idx = pooled.argmax(1)  # first maximum
        row, col = idx // pw, idx % pw
        picks.append(torch.stack([row, col], 1))
        inside_r = (rows_ar >= row[:, None]) & (rows_ar < row[:, None] + wh)
        inside_c = (cols_ar >= col[:, None]) & (cols_ar < col[:, None] + ww)
        current = current.masked_fill(inside_r[:, :, None] & inside_c[:, None, :], 0.0)
    return torch.stack(picks, 1)


def cells_to_pixels(cells: Tensor, map_hw: tuple[int, int], input_hw: tuple[int, int]) -> Tensor:
    """Map-cell corners (B, K, 2) -> input-pixel corners, round(cell / h * H) with ties to even (long)."""
    dtype = torch.float32 if cells.device.type == "mps" else torch.float64  # float64 as the released numpy
    # Python-scalar arithmetic: no host-to-device copy (and so no sync) in the forward
    rows = torch.round(cells[..., 0].to(dtype) / map_hw[0] * input_hw[0])
    cols = torch.round(cells[..., 1].to(dtype) / map_hw[1] * input_hw[1])
    return torch.stack([rows, cols], -1).long()


def retrieve_rois(maps: Tensor, num: int, crop_size: tuple[int, int], input_hw: tuple[int, int]) -> Tensor:
    """Patch corners (B, num, 2) in input pixels from class maps (B, C, h, w). Non-differentiable."""
    h, w = maps.shape[-2:]
    window = window_cells(crop_size, (h, w), input_hw)
    cells = greedy_windows(combine_maps(maps), num, window)
    return cells_to_pixels(cells, (h, w), input_hw)


def extract_crops(images: Tensor, corners: Tensor, crop_size: tuple[int, int]) -> Tensor:
    """Crops (B, K, ch, cw) at upper-left ``corners`` (B, K, 2) from ``images`` (B, 1, H, W), in one gather.

    The window [r, r+ch) x [c, c+cw) is clipped to the image; the valid part lands at the crop's
    bottom-right and the rest is the image's minimum (as released).
    """
    b, _, height, width = images.shape
    ch, cw = crop_size
    img = images[:, 0]
    rows = _source_index(corners[..., 0], ch, height)  # (B, K, ch), -1 where outside
    cols = _source_index(corners[..., 1], cw, width)  # (B, K, cw)
    bi = torch.arange(b, device=images.device)[:, None, None, None]
    vals = img[bi, rows.clamp_min(0)[..., :, None], cols.clamp_min(0)[..., None, :]]
    valid = (rows[..., :, None] >= 0) & (cols[..., None, :] >= 0)
    fill = img.flatten(1).amin(1)[:, None, None, None].to(vals.dtype)
    return torch.where(valid, vals, fill)


def _source_index(start: Tensor, size: int, limit: int) -> Tensor:
    """Source index for each of ``size`` output positions of a clipped, bottom/right-aligned window."""
    lo = start.clamp(0, limit)
    hi = (start + size).clamp(0, limit)
    offset = size - (hi - lo)  # output positions before this one are padding
    i = torch.arange(size, device=start.device)
    src = lo[..., None] + i - offset[..., None]
    return torch.where(i >= offset[..., None], src, torch.full_like(src, -1))


def paste_patch_maps(maps: Tensor, corners: Tensor, patch_size: tuple[int, int], input_hw: tuple[int, int]
                     ) -> Tensor:
    """Patch maps back into a full-resolution map (GLAM's ``saliency_map_local``): each of ``maps``
    (B, K, C, mh, mw) nearest-upsampled to ``patch_size`` (every value repeated) and *assigned* into zeros at
    its upper-left ``corners`` (B, K, 2) in pixels; a later patch overwrites an earlier one where they
    overlap. Returns (B, C, H, W)."""
    b, k, c, mh, mw = maps.shape
    height, width = input_hw
    ph, pw = patch_size
    # each patch pixel's nearest source cell, and its flat destination; only the patches' pixels are touched
    # (a gather over the whole canvas was 5x slower than a per-image loop on a CPU), and nothing syncs the host
    rr = torch.arange(ph, device=maps.device)
    cc = torch.arange(pw, device=maps.device)
    sr, sc = (rr * mh) // ph, (cc * mw) // pw
    outside = height * width  # pixels of a patch past the image edge land on a spare row, dropped at the end
    canvas = maps.new_zeros(b, c, height + 1, width)
    out = canvas.view(b, c, -1)
    for j in range(k):  # K patches, in order (K = 1 as released): a later patch overwrites an earlier one
        r = corners[:, j, 0:1] + rr  # (B, ph)
        q = corners[:, j, 1:2] + cc  # (B, pw)
        ok = ((r >= 0) & (r < height))[:, :, None] & ((q >= 0) & (q < width))[:, None, :]
        dest = torch.where(ok, r[:, :, None] * width + q[:, None, :], outside).reshape(b, 1, -1)
        vals = maps[:, j][:, :, sr][:, :, :, sc]  # (B, C, ph, pw) nearest upsampling
        out.scatter_(2, dest.expand(b, c, -1), vals.reshape(b, c, -1))
    return canvas[:, :, :height]  # a view: no copy of the full-resolution map
