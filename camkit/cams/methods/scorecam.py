"""Score-CAM: each channel weighted by the score of the image masked with that channel."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from camkit.cams.base import CAMContext, CAMMethod, Count
from camkit.cams.rerun import chunks


class ScoreCAM(CAMMethod):
    """Score-CAM (Wang et al., "Score-CAM: Score-weighted visual explanations for convolutional neural
    networks", CVPR workshops 2020).

    ``M_k = minmax(up(A_k))`` (bilinear upsampling to the input, ``align_corners=True`` as grad-cam's
    ``UpsamplingBilinear2d``, per-channel min-max with eps 1e-8); ``S_k`` = the target score of the image
    ``x * M_k``; ``w = softmax_k(S_k)``; map = ``relu(sum_k w_k A_k)``. One extra forward per channel and
    image, ``chunk`` at a time; no gradients.

    Example::

        >>> import timm, torch, camkit
        >>> from camkit.cams.methods.scorecam import ScoreCAM
        >>> model = timm.create_model("resnet18", num_classes=2, in_chans=1).eval()
        >>> maps = camkit.cam_maps(model, torch.randn(1, 1, 64, 64), [ScoreCAM(chunk=128)], ["layer4"], 1)
        >>> tuple(maps["scorecam"].shape)
        (1, 64, 64)
    """

    name = "scorecam"
    needs_gradients = False
    cost = "perturbation"

    def __init__(self, chunk: Count = 32):
        self.chunk = int(chunk)

    def __repr__(self) -> str:
        return f"ScoreCAM(chunk={self.chunk})"

    def weights(self, ctx: CAMContext) -> Tensor:
        rerun = ctx.rerun
        x = rerun.inputs
        b, k = ctx.activations.shape[:2]
        targets = ctx.targets.tolist()  # one host sync, not one per chunk
        scores = torch.empty(b, k, dtype=torch.float64, device=ctx.activations.device)
        for i in range(b):
            a = ctx.activations[i:i + 1]
            for part in chunks(k, self.chunk):
                up = F.interpolate(a[:, part].to(x.dtype), size=x.shape[-2:], mode="bilinear", align_corners=True)[0]
                lo = up.flatten(1).amin(1)[:, None, None]
                hi = up.flatten(1).amax(1)[:, None, None]
                masks = (up - lo) / (hi - lo + 1e-8)
                s = rerun.score_inputs(x[i:i + 1] * masks[:, None])
                scores[i, part] = s[:, targets[i]].double()
        return torch.softmax(scores, dim=1).to(ctx.activations.dtype)
