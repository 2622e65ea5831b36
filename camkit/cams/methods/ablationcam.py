"""Ablation-CAM: each channel weighted by how much the score drops when that channel is removed."""
from __future__ import annotations

import torch
from torch import Tensor

from camkit.cams.base import CAMContext, CAMMethod, Count
from camkit.cams.rerun import chunks


class AblationCAM(CAMMethod):
    """Ablation-CAM (Desai & Ramaswamy, "Ablation-CAM: Visual explanations for deep convolutional network via
    gradient-free localization", WACV 2020).

    ``w_k = (y - y_k) / y``, ``y`` the target score and ``y_k`` the score with channel ``k`` of the layer
    ablated; map = ``relu(sum_k w_k A_k)``. As in grad-cam 1.5.7, ablating sets the channel to 0 when the
    image's activations have minimum 0 (after a ReLU) and to ``min(A) - 1e7`` otherwise: one value per image,
    read before any ablation, for every channel (grad-cam re-reads the minimum after each write, so its value
    compounds across the copies of a batch; docs/cams.md). Only the network after
    the layer runs again when the model provides ``score_from`` (GMIC); otherwise the whole model does, with
    the layer's output replaced. ``chunk`` ablated copies at a time; no gradients.

    Example::

        >>> import timm, torch, camkit
        >>> model = timm.create_model("resnet18", num_classes=2, in_chans=1).eval()
        >>> maps = camkit.cam_maps(model, torch.randn(1, 1, 64, 64), ["ablationcam"], ["layer4"], 1)
        >>> tuple(maps["ablationcam"].shape)
        (1, 64, 64)
    """

    name = "ablationcam"
    needs_gradients = False
    cost = "perturbation"

    def __init__(self, chunk: Count = 32):
        self.chunk = int(chunk)

    def __repr__(self) -> str:
        return f"AblationCAM(chunk={self.chunk})"

    def weights(self, ctx: CAMContext) -> Tensor:
        rerun, a = ctx.rerun, ctx.activations
        b, k = a.shape[:2]
        targets = ctx.targets.tolist()  # one host sync, not one per chunk
        original = ctx.scores.gather(1, ctx.targets[:, None])[:, 0].double()
        ablated = torch.empty(b, k, dtype=torch.float64, device=a.device)
        for i in range(b):
            source = a[i]
            low = source.min()      # once per image: every channel gets the same ablation value
            value = 0.0 if bool(low == 0) else float(low) - 1e7
            for part in chunks(k, self.chunk):
                channels = torch.arange(part.start, part.stop, device=a.device)
                copies = source.unsqueeze(0).repeat(len(channels), 1, 1, 1)
                copies[torch.arange(len(channels)), channels] = value
                s = rerun.score_activations(i, copies)
                ablated[i, part] = s[:, targets[i]].double()
        return ((original[:, None] - ablated) / original[:, None]).to(a.dtype)
