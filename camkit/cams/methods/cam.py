"""CAM: the classifier's weights of the target class (or the model's own CAM head)."""
from __future__ import annotations

import torch
from torch import Tensor

from camkit.errors import CamkitError
from camkit.cams.base import CAMContext, CAMMethod


class CAM(CAMMethod):
    """CAM (Zhou et al., "Learning deep features for discriminative localization", CVPR 2016).

    For a global-average-pool + linear classifier: ``w_k = W[c, k]`` (the classifier weight of class ``c``),
    map = ``relu(sum_k w_k A_k)`` (no bias). A model with its own CAM head (``model.native_cam(outputs)``,
    e.g. GMIC's saliency map ``sigmoid(conv1x1(h_g))``) uses channel ``c`` of that head instead; no gradients
    are needed either way. Target layers whose channel count differs from the classifier's input are
    skipped (``raw_map`` returns None), so ``"all"`` works with several layers.

    Example::

        >>> import timm, torch, camkit
        >>> model = timm.create_model("resnet18", num_classes=2, in_chans=1).eval()
        >>> maps = camkit.cam_maps(model, torch.randn(1, 1, 64, 64), ["cam"], ["layer4"], targets=1)
        >>> tuple(maps["cam"].shape)
        (1, 64, 64)
    """

    name = "cam"
    needs_gradients = False
    not_applicable = ("with a linear classifier, CAM needs the layer that feeds the global pooling and the "
                      "classifier (its channel count equals the classifier's in_features; timm: the last "
                      "stage, e.g. 'layer4')")

    def raw_map(self, ctx: CAMContext) -> Tensor:
        batch = torch.arange(ctx.targets.shape[0], device=ctx.targets.device)
        if ctx.native_cam is not None:
            return ctx.native_cam[batch, ctx.targets]
        if ctx.classifier_weight is None:
            raise CamkitError(
                "cam needs the model's own CAM head (model.native_cam(outputs)) or a linear classifier "
                "(model.get_classifier(), as in timm); this model has neither. Use a gradient method "
                "(gradcam, gradcampp, xgradcam, layercam) instead")
        weight = ctx.classifier_weight
        if weight.shape[1] != ctx.activations.shape[1]:
            return None  # not the layer that feeds the classifier: the engine uses the other target layers
        return torch.einsum("bk,bkhw->bhw", weight[ctx.targets], ctx.activations)
