"""IS-CAM: Score-CAM weights integrated over masks scaled from 0 to the full mask."""
from __future__ import annotations

import torch
from torch import Tensor

from camkit.cams.base import CAMContext, CAMMethod, Count
from camkit.cams.rerun import chunks, feature_masks


class ISCAM(CAMMethod):
    """IS-CAM (Naidu et al., "IS-CAM: Integrated Score-CAM for axiomatic-based explanations",
    arXiv:2010.03023, 2020), as torchcam 0.5 computes it.

    ``M_k`` as in SS-CAM (normalised at feature resolution, upsampled); with ``c_i = sum_{j=1..i} j / N``,
    ``w = softmax_k( mean_i [ S(c_i * x * M_k) - S(x) ] )`` for ``i = 1..N`` (``num_samples``), ``S`` the target
    score; map = ``relu(sum_k w_k A_k)``. Deterministic; ``num_samples`` x channels extra forwards per image.
    The scale ``c_i`` grows past 1 for ``i > 1`` as in torchcam's code (its docstring's sum of ``j / N`` for
    ``j < i``); camkit keeps the code's numbers, the reference.

    Example::

        >>> import timm, torch, camkit
        >>> from camkit.cams.methods.iscam import ISCAM
        >>> model = timm.create_model("resnet18", num_classes=2, in_chans=1).eval()
        >>> maps = camkit.cam_maps(model, torch.randn(1, 1, 64, 64), [ISCAM(num_samples=2)], ["layer4"], 1)
        >>> tuple(maps["iscam"].shape)
        (1, 64, 64)
    """

    name = "iscam"
    needs_gradients = False
    cost = "perturbation"

    def __init__(self, num_samples: Count = 10, chunk: Count = 32):
        self.num_samples, self.chunk = int(num_samples), int(chunk)

    def __repr__(self) -> str:
        return f"ISCAM(num_samples={self.num_samples}, chunk={self.chunk})"

    def forwards(self, batch: int, channels: int) -> int:
        return self.num_samples * batch * channels

    def weights(self, ctx: CAMContext) -> Tensor:
        rerun, a = ctx.rerun, ctx.activations
        x = rerun.inputs
        b, k = a.shape[:2]
        targets = ctx.targets.tolist()  # one host sync, not one per chunk
        size = tuple(x.shape[-2:])
        base = ctx.scores.gather(1, ctx.targets[:, None])[:, 0].double()
        total = torch.zeros(b, k, dtype=torch.float64, device=a.device)
        for i in range(b):
            for part in chunks(k, self.chunk):  # masks per chunk: (K, H, W) at input size may not fit
                masked = x[i:i + 1] * feature_masks(a[i, part].to(x.dtype), size)[:, None]
                coeff = 0.0
                for step in range(self.num_samples):
                    coeff += (step + 1) / self.num_samples
                    s = rerun.score_inputs(coeff * masked)
                    total[i, part] += s[:, targets[i]].double() - base[i]
        return torch.softmax(total / self.num_samples, dim=1).to(a.dtype)
