"""Forward hooks that capture the target layers' activations for one forward pass, and always go away."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from torch import Tensor, nn

from camkit.errors import CamkitError


_SUSPENDED: ContextVar[bool] = ContextVar("camkit_capture_suspended", default=False)


@contextmanager
def uncaptured() -> Iterator[None]:
    """Every :class:`LayerCapture` lets the forwards run inside this block pass unrecorded: the extra forwards
    of a perturbation map computed inside a model's own forward (GMIC's Score-CAM train-cam) are not part of
    the forward being explained, and must not count as the hooked layer running twice."""
    token = _SUSPENDED.set(True)
    try:
        yield
    finally:
        _SUSPENDED.reset(token)


class LayerCapture:
    """Context manager: hook ``layers`` ({name: module}), record each output ``A`` once, remove the hooks.

    With ``track_grad`` an output that is not yet in an autograd graph (the first hooked layer, when the
    caller froze the parameters) becomes a fresh leaf that requires grad, so ``autograd.grad`` of a score
    stops at ``A`` and nothing before it is recorded; a later hooked layer that descends from it stays in
    the graph. Every hook hands the model a clone of its output, so an in-place op downstream
    (``ReLU(inplace=True)``, ``x += shortcut``) cannot change the recorded ``A`` or its place in the graph.

    A module that runs twice in one forward raises: its two outputs would need two maps, and which one a
    caller means is ambiguous (hook the enclosing block, or a module that runs once, instead).
    """

    def __init__(self, layers: dict[str, nn.Module], track_grad: bool, what: str = "target layer") -> None:
        self.layers = layers
        self.track_grad = track_grad
        self.what = what
        self.activations: dict[str, Tensor] = {}
        self._handles: list[Any] = []

    def __enter__(self) -> LayerCapture:
        self.activations.clear()
        try:
            for name, module in self.layers.items():
                self._handles.append(module.register_forward_hook(self._hook(name)))
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove every hook (idempotent)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def missing(self) -> list[str]:
        """Names of hooked layers that did not run."""
        return [n for n in self.layers if n not in self.activations]

    def _hook(self, name: str):
        def hook(module: nn.Module, args: Any, out: Any) -> Tensor | None:
            if _SUSPENDED.get():
                return None
            if not isinstance(out, Tensor) or out.dim() != 4:
                shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
                raise CamkitError(f"{self.what} {name!r} ({type(module).__name__}) returned {shape}; the CAM "
                                  "engine needs a (B, K, h, w) feature map: hook a convolutional layer or block")
            if name in self.activations:
                raise CamkitError(f"{self.what} {name!r} ({type(module).__name__}) ran twice in one forward; "
                                  "hook a module that runs once (e.g. the enclosing block rather than a "
                                  "shared activation module)")
            if not self.track_grad:
                self.activations[name] = out.detach()
                return out.clone()
            a = out if out.requires_grad else out.detach().requires_grad_()
            self.activations[name] = a
            return a.clone()

        return hook
