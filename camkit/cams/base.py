"""The interface of an activation-map method: a tiny object whose one job is its formula.

The engine (``camkit.cams.engine``) owns hooks, gradients, ReLU, normalisation, resizing, multi-layer fusion
and cleanup; a method only turns one layer's activations ``A`` (and gradients ``G``) into a raw map.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

import torch
from torch import Tensor, nn

from camkit.registry.options import Range

#: How a method's map is paid for: from the engine's one forward and one activation gradient ("one-pass"), with
#: an extra double-backward ("second-order"), with the shared backward carried on through the whole network to
#: the input ("full-backward": FullGrad), with extra masked or ablated forwards, no gradients ("perturbation"),
#: or with an extra forward and backward of the whole model per modified copy of the image, each copy's
#: activation gradient taken ("gradient-reruns": Smooth Grad-CAM++'s noisy copies, integrated gradients' scaled ones).
COST_CLASSES = ("one-pass", "second-order", "full-backward", "perturbation", "gradient-reruns")
#: The cost classes whose extra work is model forwards, handed to the method as ``ctx.rerun``.
RERUN_COSTS = ("perturbation", "gradient-reruns")
#: The cost classes :func:`camkit.cams.engine.train_time_map` can serve inside a model's own forward (a
#: "train-cam"): a gradient-reruns method needs the whole model again with gradients on new inputs, which a
#: forward in progress cannot give.
TRAIN_TIME_COSTS = ("one-pass", "second-order", "full-backward", "perturbation")

# Option declarations for methods' constructors: ``--cam-opt`` values are checked against the constructor's
# annotations before the method is built (camkit.registry.options), e.g. ``def __init__(self, chunk: Count = 32)``.
#: a whole number >= 1 (chunk sizes, sample counts)
Count = Annotated[int, Range(min=1)]
#: a number >= 0
NonNegative = Annotated[float, Range(min=0)]


@dataclass
class FullBackward:
    """What a ``cost = "full-backward"`` method sees besides the target layer: the input and its gradient, and
    the output gradient of every module it asked for (:meth:`CAMMethod.gradient_layers`), in forward order.

    inputs          x, (B, C, H, W), detached
    input_gradient  dS/dx, (B, C, H, W)
    layers          [(name, module, dS/d(module output))]; a module the score does not depend on (GMIC's local
                    network, for y_global) is left out
    """

    inputs: Tensor
    input_gradient: Tensor
    layers: list[tuple[str, nn.Module, Tensor]]


@dataclass
class CAMContext:
    """What a method sees for one hooked layer of one batch.

    activations        A, (B, K, h, w) float32, detached
    gradients          G = dS/dA, (B, K, h, w) float32, or None when no requested method needs gradients
    targets            (B,) long, the class index each image's map is for
    classifier_weight  (C, K) weight of the model's linear classifier (CAM on GAP + linear models), or None
    native_cam         (B, C, h', w') the model's own CAM head (GMIC's saliency map), or None
    scores             (B, C) the class scores the targets index, detached, or None
    hessian_vector     H A, (B, K, h, w): the Hessian of the target score with respect to A applied to A, for
                       methods with ``needs_hessian_vector``; None otherwise
    rerun              a :class:`camkit.cams.rerun.Rerun` (the model again on masked inputs or ablated
                       activations; on modified copies with their activation gradients,
                       ``activation_gradients``) for ``cost = "perturbation"`` and ``"gradient-reruns"``
                       methods; None otherwise
    full               a :class:`FullBackward` for ``cost = "full-backward"`` methods, in the first target
                       layer's context only (the map does not depend on the layer); None otherwise

    ``gradients`` (and ``hessian_vector``) are of the method's own :meth:`CAMMethod.target_score`.
    """

    activations: Tensor
    gradients: Tensor | None
    targets: Tensor
    classifier_weight: Tensor | None = None
    native_cam: Tensor | None = None
    scores: Tensor | None = None
    hessian_vector: Tensor | None = None
    rerun: Any = None
    full: FullBackward | None = None


class CAMMethod:
    """Base class: override ``weights`` (per-channel weights) or ``raw_map`` (a whole map).

    ``raw_map`` returns (B, h, w) before ReLU and normalisation (at the input's (H, W) for
    ``resolution = "input"``); the engine applies those. It may return
    None when the method does not apply to this layer (CAM on a layer that does not feed the classifier);
    the engine then fuses the layers that gave a map and raises, quoting ``not_applicable``, if none did.
    """

    name: ClassVar[str] = ""
    needs_gradients: ClassVar[bool] = True
    needs_hessian_vector: ClassVar[bool] = False  # the engine then builds G with create_graph and one H A
    cost: ClassVar[str] = "one-pass"  # one of COST_CLASSES
    #: False: a test-time method only, refused as a train-cam (``camkit bench --train-cam``) before training. A
    #: gradient-reruns method is test-time only whatever it says (:func:`train_time_problem`).
    train_time: ClassVar[bool] = True
    #: "layer": raw maps at the hooked layer's resolution; "input": at the input's (FullGrad)
    resolution: ClassVar[str] = "layer"

    @classmethod
    def test_time_only(cls) -> str | None:
        """Why this method cannot be a train-cam, in words (:func:`train_time_problem`), or None when it can."""
        return train_time_problem(cls)

    def forwards(self, batch: int, channels: int) -> int:
        """How many extra image (or activation) forwards a ``cost = "perturbation"`` method runs for a batch
        of ``batch`` images on a layer of ``channels`` channels (the engine's progress total): by default one per
        channel and image. A ``cost = "gradient-reruns"`` method returns how many copies it hands
        ``ctx.rerun.activation_gradients`` (each one forward and one backward), e.g. ``num_samples * batch``;
        :func:`camkit.testing.check_cam` checks the count against what it runs."""
        return batch * channels if self.cost == "perturbation" else 0

    def gradient_layers(self, model: nn.Module) -> dict[str, nn.Module]:
        """{name: module} whose output gradients a ``cost = "full-backward"`` method reads (``ctx.full``)."""
        return {}

    def target_score(self, scores: Tensor, targets: Tensor) -> Tensor:
        """The differentiable (B,) score whose gradient ``G`` is: by default each image's target-class score.

        Override for another score (FinerCAM's contrast with the most similar classes); the engine then takes
        one more activation gradient, for this method alone. ``scores`` (B, C) are in the autograd graph.
        """
        return scores.gather(1, targets[:, None])[:, 0]

    def weights(self, ctx: CAMContext) -> Tensor:
        """Per-channel weights (B, K) for ``sum_k w_k A_k``."""
        raise NotImplementedError(f"{type(self).__name__} must define weights() or raw_map()")  # abstract

    def raw_map(self, ctx: CAMContext) -> Tensor | None:
        """The map (B, h, w) before ReLU and normalisation (None: not applicable to this layer)."""
        w = self.weights(ctx)
        b, k = ctx.activations.shape[:2]
        if not isinstance(w, Tensor) or tuple(w.shape) != (b, k):
            from camkit.errors import ContractError

            shape = tuple(w.shape) if isinstance(w, Tensor) else type(w).__name__
            raise ContractError(f"CAM method {self.name or type(self).__name__!r}: weights() returned {shape}; it "
                                f"must return (B, K) = ({b}, {k}), one weight per image and channel")
        return torch.einsum("bk,bkhw->bhw", w, ctx.activations)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def train_time_problem(method: Any) -> str | None:
    """Why ``method`` (an instance or class) cannot be a train-cam, in words, or None when it can: it declares
    ``train_time = False``, or its cost class is one :func:`camkit.cams.engine.train_time_map` cannot serve."""
    name = getattr(method, "name", "") or getattr(method, "__name__", "") or type(method).__name__
    cost = getattr(method, "cost", "one-pass")
    if cost not in TRAIN_TIME_COSTS and cost in COST_CLASSES:
        return (f"CAM method {name!r} is test-time only: its cost class {cost!r} runs the whole model again, with "
                "gradients, on new copies of the image, which a model's forward in training cannot do")
    if getattr(method, "train_time", True) is False:
        return f"CAM method {name!r} is test-time only (it declares train_time = False)"
    return None
