"""Smooth Grad-CAM++: Grad-CAM++'s weights from gradients averaged over noisy copies of the image."""
from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from camkit.cams.base import CAMContext, CAMMethod, Count, NonNegative

CONVENTIONS = ("torchcam", "original")


class SmoothGradCAMpp(CAMMethod):
    """Smooth Grad-CAM++ (Omeiza et al., "Smooth Grad-CAM++: An enhanced inference level visualization
    technique for deep convolutional neural network models", arXiv:1908.01224, 2019).

    ``x_m = x + eps_m`` for ``m = 1..n`` (``num_samples``), ``eps_m ~ N(0, std^2)`` per input pixel;
    ``G_m = dS(x_m)/dA(x_m)`` the target score's activation gradient on copy ``m``; ``D_p = mean_m G_m^p``;
    ``A`` the clean image's activations, ``sum_A = sum_ab A_kab``.

    ``convention="original"``: ``alpha = D2 / (2 D2 + sum_A D3 + 1e-6)``, 0 where ``D2 == 0``;
    ``w_k = sum_ij alpha_kij relu(D1_kij)``; map = ``relu(sum_k w_k A_k)``. This is camkit's ``gradcampp``
    (Grad-CAM++'s eq. 19) on smoothed gradients: with ``std=0`` the two are equal. (The paper prints ``D1`` in
    alpha's numerator; ``D2`` is Grad-CAM++'s, as torchcam notes too.)

    ``convention="torchcam"`` (the default; torchcam 0.5's code, the reference the tests replay):
    ``alpha = D2 / (2 D2 + sum_ab (A D3)_kab + 1e-8)``; ``w_k = sum_ij alpha_kij relu(G_n,kij)``;
    map = ``relu(sum_k w_k A'_k)`` where ``G_n`` and ``A'`` are the **last** noisy copy's gradient and
    activations (torchcam's hooks keep the last forward's), not smoothed ones.

    Cost class ``"gradient-reruns"``: ``num_samples`` x batch extra forwards and backwards of the whole model
    (``ctx.rerun.activation_gradients``), ``chunk`` copies at a time; test-time only. The noise comes from a
    CPU ``torch.Generator`` seeded with ``seed`` for every map (the same images give the same map), drawn per
    sample for the whole batch (B, C, H, W), in order, as torchcam draws it.

    Example::

        >>> import timm, torch, camkit
        >>> from camkit.cams.methods.smoothgradcampp import SmoothGradCAMpp
        >>> model = timm.create_model("resnet18", num_classes=2, in_chans=1).eval()
        >>> x = torch.randn(1, 1, 64, 64)
        >>> maps = camkit.cam_maps(model, x, [SmoothGradCAMpp(num_samples=2)], ["layer4"], 1)
        >>> tuple(maps["smoothgradcampp"].shape)
        (1, 64, 64)
    """

    name = "smoothgradcampp"
    needs_gradients = True
    cost = "gradient-reruns"

    def __init__(self, num_samples: Count = 4, std: NonNegative = 0.3, chunk: Count = 32, seed: int = 0,
                 convention: Literal["torchcam", "original"] = "torchcam"):
        if convention not in CONVENTIONS:
            raise ValueError(f"convention must be one of {', '.join(CONVENTIONS)}, got {convention!r}")
        self.num_samples, self.std, self.chunk, self.seed = int(num_samples), float(std), int(chunk), int(seed)
        self.convention = convention

    def __repr__(self) -> str:
        return (f"SmoothGradCAMpp(num_samples={self.num_samples}, std={self.std:g}, chunk={self.chunk}, "
                f"seed={self.seed}, convention={self.convention!r})")

    def noise(self, generator: torch.Generator, shape: tuple[int, ...]) -> Tensor:
        """The next noise draw (one sample's, for the whole batch) of the stream, on the CPU."""
        return torch.randn(shape, generator=generator, dtype=torch.float32) * self.std

    def forwards(self, batch: int, channels: int) -> int:
        return self.num_samples * batch

    def raw_map(self, ctx: CAMContext) -> Tensor:
        rerun, a = ctx.rerun, ctx.activations
        x = rerun.inputs
        b = x.shape[0]
        generator = torch.Generator().manual_seed(self.seed)
        d1, d2, d3 = torch.zeros_like(a), torch.zeros_like(a), torch.zeros_like(a)
        last_a = last_g = a
        per_call = max(1, self.chunk // b)  # several samples' copies share a forward when the batch is small
        for start in range(0, self.num_samples, per_call):
            count = min(per_call, self.num_samples - start)
            # noise in the input's dtype: a bf16 model's copies stay bf16 (float64 holds float32 draws exactly)
            copies = torch.cat([x + self.noise(generator, tuple(x.shape)).to(x.device, x.dtype)
                                for _ in range(count)])
            found = rerun.activation_gradients(copies, ctx.targets.repeat(count), chunk=self.chunk)
            g = found.gradients.to(a.dtype).unflatten(0, (count, b))
            d1 += g.sum(0)
            d2 += (g * g).sum(0)
            d3 += (g * g * g).sum(0)
            last_a, last_g = found.activations.to(a.dtype)[-b:], g[-1]
        d1, d2, d3 = d1 / self.num_samples, d2 / self.num_samples, d3 / self.num_samples
        if self.convention == "original":
            alpha = d2 / (2 * d2 + a.sum(dim=(2, 3), keepdim=True) * d3 + 1e-6)
            alpha = torch.where(d2 != 0, alpha, torch.zeros_like(alpha))
            return torch.einsum("bk,bkhw->bhw", (alpha * d1.clamp(min=0)).sum(dim=(2, 3)), a)
        alpha = d2 / (2 * d2 + (d3 * a).sum(dim=(2, 3), keepdim=True) + 1e-8)
        return torch.einsum("bk,bkhw->bhw", (alpha * last_g.clamp(min=0)).sum(dim=(2, 3)), last_a)
