"""Turn the engine's flexible arguments (names, modules, ints, callables) into checked, concrete values."""
from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Union

import torch
from torch import Tensor, nn

from camkit.errors import CamkitError
from camkit.cams.base import CAMMethod

MethodSpec = Union[str, CAMMethod, Sequence[Union[str, CAMMethod]]]
LayerSpec = Union[str, nn.Module, Sequence[Union[str, nn.Module]], None]
TargetSpec = Union[int, Sequence[int], Tensor, Callable[[Any], Any], None]


def resolve_methods(methods: MethodSpec) -> dict[str, Any]:
    """``"all"``, one name/instance or a list of them -> {name: method instance} (registry look-ups)."""
    from camkit.registry.api import get_cam, list_cams

    from camkit.cams.base import COST_CLASSES

    if isinstance(methods, str):
        methods = list_cams() if methods == "all" else \
            expand_names([methods]) if methods in COST_CLASSES else [methods]
    elif not isinstance(methods, Sequence):
        methods = [methods]
    if len(methods) == 0:
        raise CamkitError("no CAM method requested; pass names such as ['gradcam', 'cam'] or 'all' "
                          "(camkit.list_cams() lists them)")
    out: dict[str, Any] = {}
    for m in methods:
        method = get_cam(m) if isinstance(m, str) else m
        name = m if isinstance(m, str) else (getattr(method, "name", "") or type(method).__name__.lower())
        if not callable(getattr(method, "raw_map", None)):
            raise CamkitError(f"CAM method {name!r} ({method!r}) has no raw_map(ctx); subclass "
                              "camkit.CAMMethod and define weights() or raw_map()")
        if name in out:
            raise CamkitError(f"CAM method {name!r} is requested twice")
        out[name] = method
    return out


def expand_names(names: Sequence[str], default: Sequence[str] = (), *, train_time: bool = False) -> list[str]:
    """Method names with groups expanded, checked, without repeats: ``"all"`` (``default`` first, then every
    other registered method) and the cost classes (:data:`camkit.cams.base.COST_CLASSES`)
    (every registered method of that class, ``default``'s first); no names means ``default``. Unknown names raise
    UnknownNameError with close matches. ``train_time``: the groups hold only methods that can be train-cams
    (:func:`camkit.cams.base.train_time_problem`); names given one by one are kept, for the caller to refuse."""
    from camkit.cams.base import COST_CLASSES, train_time_problem
    from camkit.registry.host import get_host
    from camkit.registry.api import get_cam

    entries = get_host().registry.entries("cam")
    usable = [e.name for e in entries if not (train_time and train_time_problem(e.factory))]
    out: list[str] = []
    for n in list(names) or list(default):
        if n == "all":
            out += [*default, *[m for m in usable if m not in default]]
        elif n in COST_CLASSES:
            every = [e.name for e in entries if getattr(e.factory, "cost", "one-pass") == n]
            group = [m for m in every if m in usable]
            if every and not group:
                from camkit.errors import OptionError

                raise OptionError(f"--train-cam {n}: its methods ({', '.join(every)}) are test-time only and "
                                  "cannot drive training; score them as test-time CAMs")
            out += [*[d for d in default if d in group], *[m for m in group if m not in default]]
        else:
            get_cam(n)  # raises UnknownNameError with close matches
            out.append(n)
    return list(dict.fromkeys(out))


def resolve_layers(model: nn.Module, target_layers: LayerSpec) -> dict[str, nn.Module]:
    """Modules or dotted names (default: ``model.cam_layers``) -> {dotted name: module}, in the given order."""
    if target_layers is None:
        target_layers = getattr(model, "cam_layers", None)
        if not target_layers:
            raise CamkitError(f"{type(model).__name__} declares no cam_layers; pass target_layers, e.g. "
                              "['layer4'] for a timm ResNet")
    if isinstance(target_layers, (str, nn.Module)):
        target_layers = [target_layers]
    names_of = {id(mod): name for name, mod in model.named_modules()}
    out: dict[str, nn.Module] = {}
    for layer in target_layers:
        if isinstance(layer, str):
            try:
                module = model.get_submodule(layer)
            except AttributeError:
                known = [n for n in names_of.values() if n]
                close = difflib.get_close_matches(layer, known, n=3, cutoff=0.5)
                hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
                raise CamkitError(f"{type(model).__name__} has no submodule {layer!r}.{hint} "
                                  "Names are dotted paths from model.named_modules()") from None
            name = layer
        elif isinstance(layer, nn.Module):
            module = layer
            if id(module) not in names_of:
                raise CamkitError(f"target layer {type(module).__name__} is not a submodule of "
                                  f"{type(model).__name__}")
            name = names_of[id(module)] or "<model>"
        else:
            raise CamkitError(f"target layers are modules or dotted names; got {layer!r}")
        if any(m is module for m in out.values()):
            raise CamkitError(f"target layer {name!r} is listed twice")
        out[name] = module
    return out


def select_scores(outputs: Any, output: str | int | None, model: nn.Module) -> Tensor:
    """The (B, C) class-score tensor from the model's output (a tensor, a dict key or an attribute)."""
    key = output if output is not None else (None if isinstance(outputs, Tensor)
                                             else getattr(model, "cam_output", None))
    if key is None:
        scores = outputs
    elif isinstance(outputs, Mapping):
        if key not in outputs:
            raise CamkitError(f"output {key!r} is not in the model's outputs; it returns keys "
                              f"{sorted(map(str, outputs))}")
        scores = outputs[key]
    elif isinstance(key, int) and isinstance(outputs, (tuple, list)):
        scores = outputs[key]
    elif isinstance(key, str) and hasattr(outputs, key):
        scores = getattr(outputs, key)
    else:
        raise CamkitError(f"cannot select output {key!r} from a {type(outputs).__name__}; pass output= a dict "
                          "key, an attribute name or a tuple index")
    if not isinstance(scores, Tensor):
        what = f"output {key!r}" if key is not None else "the model's output"
        raise CamkitError(f"{what} is a {type(scores).__name__}, not a score tensor; pass output= to choose "
                          "the class scores (e.g. output='y_global')")
    if scores.dim() == 1:
        scores = scores[:, None]
    if scores.dim() != 2:
        raise CamkitError(f"the target scores must be (B, C); got shape {tuple(scores.shape)}")
    return scores


def resolve_targets(targets: TargetSpec, outputs: Any, scores: Tensor) -> Tensor:
    """One class index per image as a (B,) long tensor on the scores' device.

    ``None``: each image's top-scoring class; an int: that class for every image; a sequence or tensor:
    one per image; a callable: called on the model's whole output, returning one of the above.
    """
    batch, classes = scores.shape
    if callable(targets) and not isinstance(targets, Tensor):
        targets = targets(outputs)
    if targets is None:
        t = scores.detach().argmax(dim=1)
    elif isinstance(targets, int) or (isinstance(targets, Tensor) and targets.dim() == 0):
        t = torch.full((batch,), int(targets), dtype=torch.long, device=scores.device)
    else:
        t = torch.as_tensor(targets).to(device=scores.device, dtype=torch.long).flatten()
        if t.numel() != batch:
            raise CamkitError(f"got {t.numel()} targets for a batch of {batch} images; give one class index "
                              "per image, or a single int for all")
    if batch and (int(t.min()) < 0 or int(t.max()) >= classes):
        raise CamkitError(f"target classes {t.tolist()} are out of range for scores with {classes} classes")
    return t


def classifier_weight(model: nn.Module) -> Tensor | None:
    """The (C, K) weight of a GAP + linear head (timm's ``get_classifier()``), or None."""
    get = getattr(model, "get_classifier", None)
    if not callable(get):
        return None
    head = get()
    if isinstance(head, nn.Linear):
        return head.weight.detach()
    if isinstance(head, nn.Conv2d) and head.kernel_size == (1, 1):
        return head.weight.detach().flatten(1)
    return None


def output_size(inputs: Tensor, size: int | Sequence[int] | None) -> tuple[int, int]:
    """The (H, W) of the returned maps: ``size`` or the input's spatial size."""
    if size is None:
        if not isinstance(inputs, Tensor) or inputs.dim() < 3:
            raise CamkitError("inputs must be an image tensor (B, C, H, W); pass size=(H, W) otherwise")
        return int(inputs.shape[-2]), int(inputs.shape[-1])
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)
