"""Extra forwards for perturbation methods (Score-CAM, Ablation-CAM): masked inputs or ablated activations,
batched in memory-bounded chunks, without gradients, on the model's device.

The engine hands a perturbation method a :class:`Rerun` for each hooked layer. ``score_inputs`` runs the
model on new images (only the part the score depends on when the model exposes it, ``model.score_images``);
``score_activations`` re-runs only what follows the layer when the model exposes it
(``model.score_from(layer, activations, output)``, GMIC's saliency head and pooling after ``ds_net``), and
otherwise runs the whole model on the original image with the layer's output replaced by a forward hook.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from camkit.cams.capture import uncaptured
from camkit.cams.resolve import select_scores


@dataclass
class Rerun:
    """The model again, for one hooked layer: ``inputs`` (B, C, H, W) and the explained ``output``."""

    model: nn.Module
    layer_name: str
    layer: nn.Module
    inputs: Tensor
    output: str | int | None
    progress: Callable[[int], None] | None = None  # called with the number of rows of every extra forward

    def _ran(self, rows: int) -> None:
        if self.progress is not None:
            self.progress(rows)

    def score_inputs(self, images: Tensor) -> Tensor:
        """Class scores (N, C) of the model on ``images`` (N, C, H, W), no grad, float32 (the model's own
        ``score_images(images, output)`` when it has one: only the part the score depends on, GMIC's global
        network for y_global)."""
        fast: Callable[..., Any] | None = getattr(self.model, "score_images", None)
        self._ran(images.shape[0])
        with torch.no_grad():
            if callable(fast):
                scores = fast(images, self.output)
                if scores is not NotImplemented:
                    return scores.float()
            return select_scores(self.model(images), self.output, self.model).float()

    def score_activations(self, image: int, activations: Tensor) -> Tensor:
        """Class scores (N, C) with the layer's output replaced by ``activations`` (N, K, h, w), all for image
        ``image`` of the batch (the model's own ``score_from`` when it has one: only the part after the layer)."""
        fast: Callable[..., Any] | None = getattr(self.model, "score_from", None)
        self._ran(activations.shape[0])
        with torch.no_grad():
            if callable(fast):
                scores = fast(self.layer_name, activations, self.output)
                if scores is not NotImplemented:
                    return scores.float()
            # The network before the layer sees one image, not N copies of it: the hook hands on N ablated
            # outputs and what follows runs on N. Every tensor from before the layer is the same for all copies,
            # so a later op that mixes it in (a long skip connection) broadcasts to the same values; a model
            # where that fails (a concatenation across the layer) is run on N copies instead.
            single = self.inputs[image:image + 1]
            try:
                return self._replaced(single, activations)
            except RuntimeError:
                return self._replaced(single.expand(activations.shape[0], *single.shape[1:]), activations)

    def _replaced(self, x: Tensor, activations: Tensor) -> Tensor:
        handle = self.layer.register_forward_hook(lambda module, args, out: activations)
        try:
            scores = select_scores(self.model(x), self.output, self.model).float()
        finally:
            handle.remove()
        if scores.shape[0] != activations.shape[0]:
            raise RuntimeError("the scores did not follow the replaced activations' batch")
        return scores


@dataclass
class ScoreRerun:
    """The :class:`Rerun` interface from two functions, for a model that computes a perturbation method's map
    inside its own forward (GMIC's train-cam): ``score_inputs_fn(images) -> (N, C)`` and
    ``score_activations_fn(activations) -> (N, C)``, both run without gradients."""

    inputs: Tensor
    score_inputs_fn: Callable[[Tensor], Tensor]
    score_activations_fn: Callable[[Tensor], Tensor]

    def score_inputs(self, images: Tensor) -> Tensor:
        with torch.no_grad(), uncaptured():
            return self.score_inputs_fn(images).float()

    def score_activations(self, image: int, activations: Tensor) -> Tensor:
        with torch.no_grad(), uncaptured():
            return self.score_activations_fn(activations).float()


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """``module`` in eval mode for the block, each submodule's own mode restored after: extra forwards of a
    training model must neither update BatchNorm's running statistics nor use the masked copies' batch ones."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for m, mode in modes:
            m.training = mode


def chunks(total: int, size: int) -> Iterator[slice]:
    """Consecutive slices of at most ``size`` covering ``range(total)``."""
    size = max(1, int(size))
    for start in range(0, total, size):
        yield slice(start, min(total, start + size))


def feature_masks(a: Tensor, size: tuple[int, int]) -> Tensor:
    """torchcam's Score-CAM masks: each channel min-max normalised at feature resolution (eps 1e-8), then
    upsampled bilinearly (``align_corners=False``) to ``size``: (K, h, w) -> (K, H, W)."""
    lo = a.flatten(1).amin(1)[:, None, None]
    norm = a - lo
    norm = norm / (norm.flatten(1).amax(1)[:, None, None] + 1e-8)
    return F.interpolate(norm[None], size=size, mode="bilinear", align_corners=False)[0]
