"""Extra forwards for perturbation methods (Score-CAM, Ablation-CAM): masked inputs or ablated activations,
batched in memory-bounded chunks, without gradients, on the model's device; and extra forwards and backwards
for gradient-reruns methods (Smooth Grad-CAM++): modified copies of the images with their activation gradients.

The engine hands such a method a :class:`Rerun` for each hooked layer. ``score_inputs`` runs the
model on new images (only the part the score depends on when the model exposes it, ``model.score_images``);
``score_activations`` re-runs only what follows the layer when the model exposes it
(``model.score_from(layer, activations, output)``, GMIC's saliency head and pooling after ``ds_net``), and
otherwise runs the whole model on the original image with the layer's output replaced by a forward hook.
``activation_gradients`` runs the whole model, in eval mode, on new images and returns the hooked layer's
output on each and the gradient of each one's target score with respect to it.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from camkit.cams.capture import LayerCapture, uncaptured
from camkit.cams.resolve import select_scores
from camkit.errors import CamkitError


class CopyGradients(NamedTuple):
    """What :meth:`Rerun.activation_gradients` returns for N images, all detached, float32 (float64 for a
    float64 model): ``activations`` (N, K, h, w) the hooked layer's output on each image, ``gradients``
    (N, K, h, w) the gradient of each image's target score with respect to its own activations, ``scores``
    (N, C) the class scores."""

    activations: Tensor
    gradients: Tensor
    scores: Tensor


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

    def activation_gradients(self, images: Tensor, targets: int | Sequence[int] | Tensor,
                             chunk: int = 32) -> CopyGradients:
        """The hooked layer's activations on ``images`` (N, C, H, W) and the gradient of each image's target
        score (class ``targets``: one int for all or one per image) with respect to them, as
        :class:`CopyGradients` (``a, g, scores = ...``).

        For methods of cost class ``"gradient-reruns"``: ``images`` are modified copies of the batch
        (``inputs``), noisy for SmoothGrad, scaled for integrated gradients, of one image or several. The whole
        model runs on ``chunk`` images at a time, in eval mode (BatchNorm uses and keeps its running statistics;
        the copies do not see each other), parameters frozen (no parameter gradient is built); one backward per
        chunk, as images do not interact. Every image counts as one extra forward (and backward) in the
        engine's progress: declare them in :meth:`camkit.cams.base.CAMMethod.forwards`.
        """
        n = images.shape[0]
        t = torch.as_tensor(targets, dtype=torch.long, device=images.device).reshape(-1)
        if t.numel() == 1:
            t = t.expand(n)
        if t.numel() != n:
            raise CamkitError(f"activation_gradients: {t.numel()} targets for {n} images; give one int or one per "
                              "image")
        parts = []
        with eval_mode(self.model), frozen_parameters(self.model):
            for part in chunks(n, chunk):
                parts.append(self._copy_gradients(images[part], t[part]))
        return CopyGradients(*(torch.cat(p) for p in zip(*parts)))

    def _copy_gradients(self, x: Tensor, targets: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(A, G, scores) of one chunk: one forward with the layer hooked, one ``autograd.grad`` of the summed
        target scores with respect to A (the images are independent in eval mode)."""
        self._ran(x.shape[0])
        with torch.enable_grad(), LayerCapture({self.layer_name: self.layer}, track_grad=True) as capture:
            outputs = self.model(x.detach())
        a = capture.activations.get(self.layer_name)
        if a is None:
            raise CamkitError(f"target layer {self.layer_name!r} did not run in the forward of the copies")
        scores = select_scores(outputs, self.output, self.model)
        if not scores.requires_grad:
            raise CamkitError(f"the target score of the copies is not differentiable with respect to "
                              f"{self.layer_name!r}: the model detaches it or computes it under torch.no_grad")
        dtype = torch.float64 if a.dtype == torch.float64 else torch.float32
        with torch.enable_grad():
            picked = scores.to(dtype).gather(1, targets[:, None]).sum()
            (g,) = torch.autograd.grad(picked, a, allow_unused=True)
        if g is None:
            raise CamkitError(f"the target score does not depend on target layer {self.layer_name!r}")
        return a.detach().to(dtype), g.to(dtype), scores.detach().to(dtype)

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


@contextmanager
def frozen_parameters(module: nn.Module) -> Iterator[nn.Module]:
    """``module`` with every parameter that requires grad set to ``requires_grad=False`` for the block (restored
    after, also on error): autograd then records only what depends on the hooked activations, and no parameter
    gradient can be built."""
    frozen = [p for p in module.parameters() if p.requires_grad]
    try:
        for p in frozen:
            p.requires_grad_(False)
        yield module
    finally:
        for p in frozen:
            p.requires_grad_(True)


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
