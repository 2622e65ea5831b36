"""The stride-2 stems of GMIC's and GLAM's networks, computed the way a CPU trains them fastest.

A k x k stride-2 convolution equals a stride-1 convolution with a ceil(k/2)-sized kernel on the 2x2
space-to-depth rearrangement of its (padded) input: the same sums of the same products, in another order.
On the CPU, oneDNN has no fast backward for a convolution with one input channel: the 7x7/2 stem on a
(32, 1, 256, 160) batch took 64 ms for its weight gradient and 108 ms with the input gradient too, against
21 and 36 ms rearranged (2 cores; the forward is ~10 ms either way). The result differs from
``F.conv2d`` only by float rounding (~1e-6 relative), so camkit uses it for training on the CPU alone and
keeps the plain convolution for evaluation, where GMIC's outputs are checked against the released model's.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def stride2_conv(x: Tensor, weight: Tensor, padding: int) -> Tensor:
    """``F.conv2d(x, weight, stride=2, padding=padding)`` (no bias) as a stride-1 convolution after
    ``pixel_unshuffle(2)``. ``weight`` (O, C, k, k); any k, any C, any input size.

    Example:
        >>> import torch
        >>> x, w = torch.randn(2, 1, 20, 14), torch.randn(4, 1, 7, 7)
        >>> torch.allclose(stride2_conv(x, w, 3), F.conv2d(x, w, stride=2, padding=3), atol=1e-5)
        True
    """
    o, c, kh, kw = weight.shape
    h, w = x.shape[-2:]
    out_h, out_w = (h + 2 * padding - kh) // 2 + 1, (w + 2 * padding - kw) // 2 + 1
    half_h, half_w = (kh + 1) // 2, (kw + 1) // 2
    # kernel taps t = 2a + b: b picks the space-to-depth channel, a the tap of the small kernel
    w2 = F.pad(weight, (0, 2 * half_w - kw, 0, 2 * half_h - kh))
    w2 = w2.reshape(o, c, half_h, 2, half_w, 2).permute(0, 1, 3, 5, 2, 4).reshape(o, c * 4, half_h, half_w)
    pad_h = 2 * (out_h + half_h - 1) - h - padding  # bottom / right: exactly the rows the windows reach
    pad_w = 2 * (out_w + half_w - 1) - w - padding
    xs = F.pixel_unshuffle(F.pad(x, (padding, pad_w, padding, pad_h)), 2)
    return F.conv2d(xs, w2)


def use_rearranged(x: Tensor, training: bool) -> bool:
    """Whether to take :func:`stride2_conv`: training, on the CPU (on CUDA the plain kernel is fast)."""
    return training and x.device.type == "cpu"
