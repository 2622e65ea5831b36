"""The activation-map engine: one forward, one ``autograd.grad``, the maps of every requested method.

``run_cams`` hooks the target layer(s), runs the model once (parameters frozen for the call, so autograd records
only what depends on the hooked activations), takes ``torch.autograd.grad`` of the summed target scores with
respect to the hooked activations only (no parameter gradients), then hands each method its ``(A, G)`` and
applies the shared pipeline (ReLU, min-max, upsampling, layer fusion). ``train_time_map`` serves models that need
a raw map inside their own forward. Methods compute in float32, or in float64 for a float64 model.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn

from camkit.errors import CamkitError, ContractError
from camkit.cams.base import COST_CLASSES, RERUN_COSTS, CAMContext, CAMMethod, FullBackward, train_time_problem
from camkit.cams.capture import LayerCapture
from camkit.cams.pipeline import FUSIONS, fuse_layers, layer_maps
from camkit.cams.rerun import Rerun, frozen_parameters
from camkit.cams.resolve import (LayerSpec, MethodSpec, TargetSpec, output_size, resolve_layers, resolve_methods,
                                 resolve_targets, select_scores)
from camkit.cams.resolve import classifier_weight as model_classifier_weight


NOT_APPLICABLE = ("raise", "skip")


@dataclass(frozen=True)
class CamOptions:
    """How :func:`cam_maps` explains, beyond which methods, layers and targets.

    Attributes:
        output: which score tensor to explain when the model returns several (a dict key or attribute such as
            GMIC's ``"y_global"``; default ``model.cam_output``).
        fuse: ``"mean"`` (grad-cam) or ``"max"`` (LayerCAM's authors, torchcam) across layers.
        size: (H, W) of the maps; default the input's spatial size.
        not_applicable: what to do with a method that applies to none of the target layers (CAM without a
            classifier that fits, FinerCAM on a one-class model): ``"raise"`` a CamkitError naming it, or
            ``"skip"`` it (it is then missing from the result; :func:`not_applicable_reason` says why).
            Default: ``"skip"`` for ``"all"`` and the cost classes, ``"raise"`` for methods asked by name.
    """

    output: str | int | None = None
    fuse: str = "mean"
    size: int | Sequence[int] | None = None
    not_applicable: str | None = None


def cam_maps(model: nn.Module, inputs: Tensor, methods: MethodSpec, target_layers: LayerSpec = None,
             targets: TargetSpec = None, options: CamOptions | None = None, **overrides: Any) -> dict[str, Tensor]:
    """The maps of every requested method from one forward pass: {method name: (B, H, W) in [0, 1]}.

    Args:
        model: any ``nn.Module``, in eval or train mode (its mode is left alone; a train-mode forward updates
            BatchNorm statistics as any forward would).
        inputs: the image batch (B, C, H, W), on the model's device.
        methods: names (``["gradcam", "cam"]``), ``"all"`` (every registered method, plugins included), a cost
            class (``"one-pass"``, ``"second-order"``, ``"full-backward"``, ``"perturbation"``,
            ``"gradient-reruns"``) or ``CAMMethod`` instances.
        target_layers: modules or dotted names (``"layer4"``); default ``model.cam_layers``.
        targets: one class index per image, one int for all, a callable on the model's output returning
            either, or None for each image's top class.
        options: a :class:`CamOptions` (which output, layer fusion, map size, methods that do not apply).
        **overrides: any field of :class:`CamOptions` by name, over ``options``: ``output="y_global"`` is
            ``options=CamOptions(output="y_global")``.

    Example::

        >>> import timm, torch, camkit
        >>> model = timm.create_model("resnet18", num_classes=2, in_chans=1).eval()
        >>> maps = camkit.cam_maps(model, torch.randn(2, 1, 64, 64), "one-pass", ["layer4"], targets=[1, 0])
        >>> {"cam", "gradcam", "gradcampp", "xgradcam", "layercam"} <= set(maps), tuple(maps["gradcampp"].shape)
        (True, (2, 64, 64))
    """
    return run_cams(model, inputs, methods, target_layers, targets, options, **overrides)


def run_cams(model: nn.Module, inputs: Tensor, methods: MethodSpec, target_layers: LayerSpec = None,
             targets: TargetSpec = None, options: CamOptions | None = None, *, return_output: bool = False,
             progress: Callable[[int, int], None] | None = None, **overrides: Any):
    """``cam_maps``; with ``return_output=True`` returns ``(maps, model_output)`` from the same forward
    (the output's tensors detached), so a caller gets predictions without a second pass. ``progress(done,
    total)`` is called after every extra forward of the perturbation and gradient-reruns methods (counted in
    images or ablated copies, as each method's ``forwards`` declares), for a progress bar on long runs."""
    opts = _options(methods, options, overrides)
    chosen = resolve_methods(methods)
    layers = resolve_layers(model, target_layers)
    out_size = output_size(inputs, opts.size)
    needs_grad = any(getattr(m, "needs_gradients", True) for m in chosen.values())
    extra = _gradient_layers(model, chosen)  # None unless a full-backward method (FullGrad) is requested

    outputs, acts, scores, full_inputs = _forward(model, inputs, layers, opts.output, needs_grad, extra)
    if needs_grad and not scores.requires_grad:
        raise CamkitError(
            f"the target score ({opts.output or getattr(model, 'cam_output', None) or 'model output'}) is not "
            "differentiable with respect to the target layers: the model detaches it or computes it under "
            "torch.no_grad. Gradient methods need it in the autograd graph; choose a differentiable output= "
            "or use 'cam'")
    target_idx = resolve_targets(targets, outputs, scores)
    # one gradient (and, for second-order methods, one Hessian-vector product) per distinct target score:
    # the plain score for most methods, a method's own score (FinerCAM's contrast) for the others
    groups = _score_groups(chosen)
    derivatives = {key: _derivatives(chosen, names, scores, target_idx, acts, full_inputs if key is None else None)
                   for key, names in groups.items()}

    native = getattr(model, "native_cam", None)
    native_map = native(outputs) if callable(native) else None
    weight = model_classifier_weight(model)
    device_type = next(iter(acts.values())).device.type
    with torch.no_grad(), torch.autocast(device_type=device_type, enabled=False):
        shared = dict(targets=target_idx, scores=_precise(scores),
                      classifier_weight=_precise(weight) if weight is not None else None,
                      native_cam=_precise(native_map) if native_map is not None else None)
        reruns = _reruns(model, layers, acts, inputs, opts.output, chosen, progress)
        contexts = {key: [_context(a, d, n, shared, reruns.get(n), first=i == 0)
                          for i, (n, a) in enumerate(acts.items())]
                    for key, d in derivatives.items()}
        group_of = {name: key for key, names in groups.items() for name in names}
        raws = [{name: _checked_raw(method, name, contexts[group_of[name]][i]) for name, method in chosen.items()}
                for i in range(len(acts))]
        maps = _postprocess(raws, chosen, list(acts), out_size, opts.fuse, skip=opts.not_applicable == "skip")
    if return_output:
        return maps, _detach(outputs)
    return maps


def _options(methods: MethodSpec, options: CamOptions | None, overrides: dict[str, Any]) -> CamOptions:
    """``options`` with the keyword ``overrides`` applied (an unknown name is a TypeError, as for any
    keyword), checked, and ``not_applicable`` resolved for ``methods``."""
    if options is not None and not isinstance(options, CamOptions):
        raise TypeError(f"options must be a camkit.cams.engine.CamOptions, got {type(options).__name__} (output, "
                        "fuse, size and not_applicable are CamOptions fields, or keywords: output=...)")
    from camkit.registry.options import with_fields

    opts = with_fields(options or CamOptions(), overrides, "the options")
    if opts.fuse not in FUSIONS:
        raise CamkitError(f"fuse must be one of {FUSIONS}; got {opts.fuse!r}")
    if opts.not_applicable is None:
        skip = isinstance(methods, str) and methods in ("all", *COST_CLASSES)
        opts = replace(opts, not_applicable="skip" if skip else "raise")
    if opts.not_applicable not in NOT_APPLICABLE:
        raise CamkitError(f"not_applicable must be one of {NOT_APPLICABLE}; got {opts.not_applicable!r}")
    return opts


def train_time_map(method: str | CAMMethod, activations: Tensor, score: Tensor,
                   classes: int | Sequence[int] | None = None, *, native_cam: Tensor | None = None,
                   classifier_weight: Tensor | None = None, rerun: Any = None,
                   full_inputs: dict[str, Any] | None = None) -> Tensor:
    """A raw map per class from inside a model's own forward (GMIC's ROI selection), without a second forward.

    ``activations`` (B, K, h, w) must be part of the autograd graph of ``score`` (B, C): build both under
    ``torch.enable_grad()`` (also in eval / under an outer ``no_grad``). One ``autograd.grad`` per class with
    ``retain_graph=True`` gives ``G`` for that class; parameter gradients are never built and the caller's
    graph stays usable for its loss. Returns (B, len(classes), h, w) (the input's (H, W) for FullGrad),
    ReLU'd, not normalised, detached. ``"cam"`` needs ``native_cam`` (B, C, h, w) or ``classifier_weight``
    (C, K) instead of gradients. A perturbation method needs ``rerun``, an object with the
    :class:`camkit.cams.rerun.Rerun` interface (``inputs``, ``score_inputs``, ``score_activations``; see
    :class:`camkit.cams.rerun.ScoreRerun`); a full-backward method (FullGrad) needs ``full_inputs``,
    ``{"inputs": x, "layers": {name: (module, output)}}`` with x and the outputs in the score's graph.
    A test-time-only method (cost class ``"gradient-reruns"``, or ``train_time = False``) raises a CamkitError
    saying so (:func:`camkit.cams.base.train_time_problem`).
    """
    name, impl = _train_time_method(method, rerun, full_inputs)
    score, classes = _train_time_targets(name, impl, activations, score, classes)
    a32 = _precise(activations)
    out = []
    for c in classes:
        target = torch.full((score.shape[0],), c, dtype=torch.long, device=a32.device)
        d: dict[str, Any] = {"gradients": {}, "hessian_vector": {}, "full": None}
        if getattr(impl, "needs_gradients", True):
            d = _derivatives({name: impl}, [name], score, target, {"activations": activations}, full_inputs)
        with torch.no_grad(), torch.autocast(device_type=a32.device.type, enabled=False):
            shared = dict(targets=target, scores=_precise(score, a32),
                          classifier_weight=_precise(classifier_weight, a32) if classifier_weight is not None
                          else None,
                          native_cam=_precise(native_cam, a32) if native_cam is not None else None)
            ctx = _context(activations, d, "activations", shared, rerun, first=True)
            raw = _checked_raw(impl, name, ctx)
            if raw is None:
                raise CamkitError(f"train_time_map: {name!r} does not apply to these activations: "
                                  f"{getattr(impl, 'not_applicable', 'see its documentation')}")
            out.append(raw.clamp(min=0))
    return torch.stack(out, dim=1)


def _train_time_method(method: str | CAMMethod, rerun: Any, full_inputs: Any) -> tuple[str, Any]:
    """(name, method) of :func:`train_time_map`'s method, with what its cost class needs given."""
    name, impl = next(iter(resolve_methods([method]).items()))
    problem = train_time_problem(impl)
    if problem:  # a test-time-only method: say so, not fail somewhere inside it
        raise CamkitError(f"train_time_map({name!r}): {problem}; use it as a test-time CAM")
    cost = getattr(impl, "cost", "one-pass")
    if cost == "perturbation" and rerun is None:
        raise CamkitError(f"train_time_map({name!r}): a perturbation method needs extra forwards of the model; "
                          "pass rerun= (camkit.cams.rerun.ScoreRerun) or use a one-pass method")
    if cost == "full-backward" and full_inputs is None:
        raise CamkitError(f"train_time_map({name!r}): a full-backward method needs the input and its gradient "
                          "layers in the score's graph; pass full_inputs= or use a one-pass method")
    return name, impl


def _train_time_targets(name: str, impl: Any, activations: Tensor, score: Tensor,
                        classes: int | Sequence[int] | None) -> tuple[Tensor, list[int]]:
    """The (B, C) score and the classes :func:`train_time_map` explains, checked against the activations."""
    if score.dim() == 1:
        score = score[:, None]
    if score.dim() != 2 or score.shape[0] != activations.shape[0]:
        raise CamkitError(f"train_time_map: score must be (B, C) with B = {activations.shape[0]}; got "
                          f"{tuple(score.shape)}")
    n_classes = score.shape[1]
    chosen = list(range(n_classes)) if classes is None else [classes] if isinstance(classes, int) else list(classes)
    if getattr(impl, "needs_gradients", True) and not (activations.requires_grad and score.requires_grad):
        raise CamkitError(
            f"train_time_map({name!r}) needs activations that require grad and a score computed from them in "
            "the same graph; build both under torch.enable_grad() (e.g. h = h.detach().requires_grad_() is "
            "not enough if the score was computed under no_grad)")
    for c in chosen:
        if not 0 <= c < n_classes:
            raise CamkitError(f"train_time_map: class {c} is out of range for {n_classes} classes")
    return score, chosen


def _reruns(model: nn.Module, layers: dict[str, nn.Module], acts: dict[str, Tensor], inputs: Tensor,
            output: str | int | None, chosen: dict[str, Any],
            progress: Callable[[int, int], None] | None) -> dict[str, Rerun]:
    """A :class:`Rerun` per hooked layer when a perturbation or gradient-reruns method is requested, all
    counting into one total."""
    rerunning = [m for m in chosen.values() if getattr(m, "cost", "") in RERUN_COSTS]
    if not rerunning:
        return {}
    tick = None
    if progress is not None:
        total = sum(m.forwards(a.shape[0], a.shape[1]) for m in rerunning for a in acts.values())
        done = [0]

        def tick(rows: int) -> None:
            done[0] += rows
            progress(min(done[0], total), total)

    return {n: Rerun(model, n, layers[n], inputs.detach(), output, tick) for n in acts}


def _gradient_layers(model: nn.Module, chosen: dict[str, Any]) -> dict[str, nn.Module] | None:
    """The modules whose output gradients the requested full-backward methods read; None when none is asked."""
    wanted = [m for m in chosen.values() if getattr(m, "cost", "") == "full-backward"]
    if not wanted:
        return None
    out: dict[str, nn.Module] = {}
    for m in wanted:
        out.update(m.gradient_layers(model))
    return out


def _forward(model: nn.Module, inputs: Tensor, layers: dict[str, nn.Module], output: str | int | None,
             needs_grad: bool, extra: dict[str, nn.Module] | None = None
             ) -> tuple[Any, dict[str, Tensor], Tensor, dict[str, Any] | None]:
    # Parameters are frozen for the forward, so autograd records only what depends on the hooked
    # activations: the network before the first hooked layer (and any branch that does not read it, such as
    # GMIC's local network) costs what an inference forward costs, and no parameter gradient can be built.
    # A full-backward method (``extra`` not None) needs the graph from the input: x then requires grad and the
    # extra modules' outputs are recorded too (one backward still serves every method).
    x = inputs.detach() if isinstance(inputs, Tensor) else inputs
    if extra is not None:
        x = x.clone().requires_grad_(True)
    with frozen_parameters(model) if needs_grad else nullcontext(), \
            LayerCapture(layers, track_grad=needs_grad) as capture, \
            LayerCapture(extra or {}, track_grad=True, what="gradient layer") as extra_capture, \
            torch.set_grad_enabled(needs_grad):
        outputs = model(x)
    missing = capture.missing()
    if missing:
        raise CamkitError(f"target layer(s) {missing} never ran in the forward of {type(model).__name__}; "
                          "hook a module on the path from the input to the scores")
    scores = select_scores(outputs, output, model)
    if scores.shape[0] != next(iter(capture.activations.values())).shape[0]:
        raise CamkitError(f"the scores have batch size {scores.shape[0]} but the hooked activations "
                          f"{next(iter(capture.activations.values())).shape[0]}")
    full = None if extra is None else {"inputs": x, "layers": {n: (extra[n], a) for n, a in
                                                                extra_capture.activations.items()}}
    return outputs, dict(capture.activations), scores, full


def _score_groups(chosen: dict[str, Any]) -> dict[str | None, list[str]]:
    """Methods by the score their gradient is of: None = the plain target score (and every method without
    gradients), a method's name = its own ``target_score``."""
    groups: dict[str | None, list[str]] = {}
    for name, method in chosen.items():
        own = getattr(method, "needs_gradients", True) and _has_own_score(method)
        groups.setdefault(name if own else None, []).append(name)
    return groups


def _has_own_score(method: Any) -> bool:
    fn = getattr(type(method), "target_score", None)
    return fn is not None and fn is not CAMMethod.target_score


def _derivatives(chosen: dict[str, Any], names: list[str], scores: Tensor, targets: Tensor,
                 acts: dict[str, Tensor], full_inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    """{"gradients": {layer: G}, "hessian_vector": {layer: H A}, "full": FullBackward or None} of one score
    group (empty when not needed). ``full_inputs`` (from :func:`_forward`): the same backward also reaches the
    input and the gradient layers."""
    methods = [chosen[n] for n in names]
    if not any(getattr(m, "needs_gradients", True) for m in methods):
        return {"gradients": {}, "hessian_vector": {}, "full": None}
    second = any(getattr(m, "needs_hessian_vector", False) for m in methods)
    layer_names = list(acts)
    extra = list(full_inputs["layers"].items()) if full_inputs is not None else []
    with torch.enable_grad():  # the caller may hold an outer no_grad; the score's graph exists regardless
        s = _precise(scores, grad=True)
        own = methods[0] if len(methods) == 1 and _has_own_score(methods[0]) else None
        per_image = own.target_score(s, targets) if own is not None else s.gather(1, targets[:, None])[:, 0]
        wrt = [acts[n] for n in layer_names] + ([full_inputs["inputs"]] + [a for _, (_, a) in extra]
                                                if full_inputs is not None else [])
        # one backward for the whole batch: images are independent in eval mode
        every = torch.autograd.grad(per_image.sum(), wrt, retain_graph=True, create_graph=second,
                                    allow_unused=True)
        grads, rest = every[:len(layer_names)], every[len(layer_names):]
        unused = [n for n, g in zip(layer_names, grads) if g is None]
        if unused:
            raise CamkitError(f"the target score does not depend on target layer(s) {unused}; hook a layer on the "
                              "path to the chosen output")
        hvp = {}
        if second:
            # H A for each layer: the derivative of <G, A> with A held fixed, i.e. grad(G, A, grad_outputs=A)
            for n, g in zip(layer_names, grads):
                if not g.requires_grad:  # a score linear in A (a linear head on pooled A): G is constant, H = 0
                    hvp[n] = torch.zeros_like(acts[n])
                    continue
                (h,) = torch.autograd.grad(g, acts[n], grad_outputs=acts[n].detach(), retain_graph=True,
                                           allow_unused=True)
                hvp[n] = h.detach() if h is not None else torch.zeros_like(acts[n])  # piecewise-linear: H = 0
    full = None
    if full_inputs is not None:
        x, gx = full_inputs["inputs"], rest[0]
        full = FullBackward(x.detach(), gx.detach() if gx is not None else torch.zeros_like(x),
                            [(n, module, g.detach()) for (n, (module, _)), g in zip(extra, rest[1:])
                             if g is not None])
    return {"gradients": {n: g.detach() for n, g in zip(layer_names, grads)}, "hessian_vector": hvp, "full": full}


def _context(a: Tensor, derivatives: dict[str, Any], layer: str, shared: dict[str, Any],
             rerun: Rerun | None, first: bool = False) -> CAMContext:
    g = derivatives["gradients"].get(layer)
    h = derivatives["hessian_vector"].get(layer)
    full = derivatives.get("full") if first else None
    if full is not None:
        full = FullBackward(_precise(full.inputs, a), _precise(full.input_gradient, a),
                            [(n, m, _precise(t, a)) for n, m, t in full.layers])
    return CAMContext(_precise(a), _precise(g, a) if g is not None else None,
                      hessian_vector=_precise(h, a) if h is not None else None, rerun=rerun, full=full,
                      **{k: (v.to(_precise(a).dtype) if isinstance(v, Tensor) and v.is_floating_point() else v)
                         for k, v in shared.items()})


def _postprocess(raws: list[dict[str, Tensor | None]], methods: dict[str, Any], layer_names: list[str],
                 size: tuple[int, int], fuse: str, skip: bool = False) -> dict[str, Tensor]:
    """Per layer, every method's raw map -> the shared pipeline -> one fused (B, H, W) map per method."""
    per_method: dict[str, list[Tensor]] = {name: [] for name in methods}
    for layer in raws:
        by_shape: dict[tuple, list[str]] = {}
        for name, raw in layer.items():
            if raw is not None:
                by_shape.setdefault(tuple(raw.shape), []).append(name)
        for shape, names in by_shape.items():
            # all methods of one layer upsampled in one call, as (M*B, h, w); up[i] is method i's (B, H, W)
            up = layer_maps(torch.cat([layer[n] for n in names]), size).unflatten(0, (len(names), shape[0]))
            for i, name in enumerate(names):
                per_method[name].append(up[i])
    out = {}
    for name, layers in per_method.items():
        if not layers:
            if skip:
                continue
            raise CamkitError(f"CAM method {name!r} applies to none of the target layers {layer_names}: "
                              f"{not_applicable_reason(methods[name])}")
        out[name] = fuse_layers(layers, fuse, owned=True)
    return out


def not_applicable_reason(method: Any) -> str:
    """Why ``method`` gave no map (its ``not_applicable`` text, or a pointer to its documentation)."""
    return str(getattr(method, "not_applicable", "") or "the method returned no map for any target layer; see "
               "its documentation")


def _checked_raw(method: Any, name: str, ctx: CAMContext) -> Tensor | None:
    """``method.raw_map(ctx)``, checked: (B, h, w) at the layer's resolution (or at the native CAM head's), finite;
    named when it is not."""
    raw = method.raw_map(ctx)
    if raw is None:  # the method does not apply to this layer (CAM on a layer that does not feed the head)
        return None
    b, _, h, w = ctx.activations.shape
    at_input = getattr(method, "resolution", "layer") == "input" and ctx.full is not None
    if at_input:
        h, w = ctx.full.inputs.shape[-2:]
    allowed = {(b, h, w)}
    if ctx.native_cam is not None:  # a map read off the model's own CAM head may keep its resolution (GLAM's)
        allowed.add((b, *ctx.native_cam.shape[-2:]))
    if not isinstance(raw, Tensor) or tuple(raw.shape) not in allowed:
        shape = tuple(raw.shape) if isinstance(raw, Tensor) else type(raw).__name__
        where = "the input's" if at_input else "the hooked layer's"
        raise ContractError(f"CAM method {name!r} returned {shape} from raw_map; it must return (B, h, w) = "
                            f"({b}, {h}, {w}): one map per image at {where} resolution")
    if not bool(torch.isfinite(raw).all()):
        bad = (~torch.isfinite(raw)).flatten(1).any(1).nonzero().flatten().tolist()
        raise ContractError(f"CAM method {name!r} returned NaN or infinite values for batch item(s) {bad[:10]}")
    return raw.to(ctx.activations.dtype)


def _precise(t: Tensor, like: Tensor | None = None, grad: bool = False) -> Tensor:
    """``t`` (detached unless ``grad``) in the precision methods compute in: float64 when the model runs in
    float64 (a reference computation), float32 otherwise (half and bfloat16 included). ``like``: that of
    another tensor."""
    dtype = torch.float64 if (like if like is not None else t).dtype == torch.float64 else torch.float32
    return (t if grad else t.detach()).to(dtype)


def _detach(obj: Any) -> Any:
    if isinstance(obj, Tensor):
        return obj.detach()
    if isinstance(obj, Mapping):
        return {k: _detach(v) for k, v in obj.items()}
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(_detach(v) for v in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(_detach(v) for v in obj)
    return obj
