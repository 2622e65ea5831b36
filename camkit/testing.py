"""Contract checks for plugin authors' own test suites (installed with camkit; pytest-friendly).

::

    from camkit.testing import check_cam, check_dataset, check_model, register_strictly

    def test_my_cam():
        check_cam(MyCAM())

    def test_my_dataset(tmp_path):
        check_dataset(MyDataset(split="test", size=(256, 160), seed=0))

    def test_my_plugin_registers_cleanly():
        with register_strictly(my_plugin_module, name="mine"):
            assert "mine" in camkit.list_models()

Each ``check_*`` raises ``AssertionError`` whose message names the rule broken (and the sample or output
at fault); it returns nothing when the object follows the contract of :mod:`camkit.protocols`. camkit's own
test suite runs them over every registered CAM, model and dataset.
"""
from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

from camkit.protocols import (DATASET_MEMBERS, MODEL_MEMBERS, SAMPLE_KEYS, config_problem, missing_members)

__all__ = ["check_cam", "check_dataset", "check_detector", "check_model", "register_strictly"]


def _fail(what: str, rule: str) -> None:
    raise AssertionError(f"{what}: {rule}")


# -- CAM methods -------------------------------------------------------------------------------------------
def check_cam(method: Any, *, batch: int = 2, channels: int = 6, size: tuple[int, int] = (5, 4)) -> None:
    """Check a CAM method: its ``raw_map`` on a synthetic layer (shape, batch, finiteness; ``weights`` (B, K)
    when it defines them; not for perturbation, full-backward or gradient-reruns methods, which need the model),
    then the whole engine path on a tiny model (maps (B, H, W) in [0, 1]; a method with extra forwards must run
    as many as its ``forwards()`` declares, the progress total), then, unless the method is test-time only
    (:func:`camkit.cams.base.train_time_problem`), the same method as a train-cam through
    :func:`camkit.cams.engine.train_time_map`."""
    import torch

    from camkit.cams.base import COST_CLASSES
    from camkit.errors import CamkitError

    name = getattr(method, "name", "") or type(method).__name__
    what = f"CAM method {name!r}"
    if not callable(getattr(method, "raw_map", None)):
        _fail(what, "has no raw_map(ctx); subclass camkit.CAMMethod and define weights() or raw_map()")
    if not isinstance(getattr(method, "needs_gradients", None), bool):
        _fail(what, "needs_gradients must be a bool class attribute (does the method read ctx.gradients?)")
    cost = getattr(method, "cost", "one-pass")
    if cost not in COST_CLASSES:
        _fail(what, f"cost is {getattr(method, 'cost')!r}; declare one of {', '.join(COST_CLASSES)}")
    if cost == "gradient-reruns" and not method.needs_gradients:
        _fail(what, "a gradient-reruns method differentiates the model: needs_gradients must be True (the engine "
                    "then checks the score is differentiable before any copy runs)")
    if not isinstance(getattr(method, "train_time", True), bool):
        _fail(what, "train_time must be a bool class attribute (False: test-time only, never a train-cam)")
    gen = torch.Generator().manual_seed(0)
    # perturbation, full-backward and gradient-reruns methods need the model again (or its input): engine only
    if cost in ("one-pass", "second-order"):
        _check_raw_on_plain_layer(method, what, gen, batch, channels, size)
    model = _TinyCAMNet()
    x = torch.randn(batch, 1, 16, 12, generator=gen)
    ticks: list[tuple[int, int]] = []
    try:
        maps = _engine().run_cams(model, x, [method], ["features"], targets=[i % 2 for i in range(batch)],
                                  progress=lambda done, total: ticks.append((done, total)))
    except CamkitError as exc:  # a ContractError names the method and the rule; keep the one message
        _fail(what, f"the engine refused it on a tiny model: {exc}")
    out = maps[name] if name in maps else next(iter(maps.values()))
    if tuple(out.shape) != (batch, 16, 12):
        _fail(what, f"the engine's maps are {tuple(out.shape)}, expected (B, H, W) = ({batch}, 16, 12)")
    if not bool(torch.isfinite(out).all()) or float(out.min()) < 0 or float(out.max()) > 1:
        _fail(what, "the engine's maps must be finite and in [0, 1]")
    from camkit.cams.base import RERUN_COSTS

    if cost in RERUN_COSTS:
        _check_forwards(method, what, ticks, batch, channels)
    _check_train_time(method, what, model, x)


def _engine() -> Any:
    from camkit.cams import engine

    return engine


def _check_forwards(method: Any, what: str, ticks: list[tuple[int, int]], batch: int, channels: int) -> None:
    """The extra forwards a method ran (the engine's progress ticks) against what its ``forwards()`` declares."""
    declared = method.forwards(batch, channels)
    how = ("ctx.rerun.activation_gradients(copies, targets)" if method.cost == "gradient-reruns" else
           "ctx.rerun.score_inputs / score_activations")
    if not declared:
        _fail(what, f"forwards({batch}, {channels}) returns {declared!r}: declare how many images it runs through "
                    f"{how} for a batch (the progress total), e.g. num_samples * batch")
    done = ticks[-1][0] if ticks else 0
    # the engine caps its count at the total, so a count that reached it before the last tick ran over
    over = any(d >= t for d, t in ticks[:-1])
    if done < declared or over:
        _fail(what, f"forwards({batch}, {channels}) declares {declared} extra forwards but it ran "
                    f"{'more' if over else done} through {how}; the two must agree (the progress total), and "
                    "extra forwards must go through ctx.rerun, not ctx.rerun.model")


def _check_train_time(method: Any, what: str, model: Any, x: Any) -> None:
    """Unless test-time only, ``method`` as a train-cam: :func:`camkit.cams.engine.train_time_map` on the tiny
    model's features (B, C, h, w) maps, finite and >= 0 (at the input's size for a full-backward method)."""
    import torch

    from camkit.cams.base import train_time_problem
    from camkit.cams.capture import LayerCapture
    from camkit.cams.rerun import ScoreRerun

    if train_time_problem(method) is not None:
        return  # test-time only: the bench refuses it as a train-cam before training

    def head(h: Any) -> Any:
        return model.fc(h.mean((2, 3)))

    cost = getattr(method, "cost", "one-pass")
    try:
        with torch.enable_grad():
            full = None
            if cost == "full-backward":
                layers = method.gradient_layers(model.features)
                with LayerCapture(layers, track_grad=True, what="gradient layer") as capture:
                    leaf = x.clone().requires_grad_(True)
                    h = model.features(leaf)
                full = {"inputs": leaf, "layers": {n: (layers[n], a) for n, a in capture.activations.items()}}
            else:
                h = model.features(x).detach().requires_grad_(True)
            rerun = ScoreRerun(x, model, head) if cost == "perturbation" else None
            maps = _engine().train_time_map(method, h, head(h), classifier_weight=model.fc.weight.detach(),
                                            rerun=rerun, full_inputs=full)
    except Exception as exc:  # noqa: BLE001 - whatever it raised, the author needs its message
        _fail(what, f"as a train-cam (camkit.cams.engine.train_time_map) it raised {type(exc).__name__}: {exc}; a "
                    "method that cannot drive training declares train_time = False (test-time only)")
    hw = tuple(x.shape[-2:]) if getattr(method, "resolution", "layer") == "input" and cost == "full-backward" \
        else tuple(h.shape[-2:])
    if tuple(maps.shape) != (x.shape[0], 2, *hw):
        _fail(what, f"as a train-cam its maps are {tuple(maps.shape)}, expected (B, C, h, w) = "
                    f"{(x.shape[0], 2, *hw)}")
    if not bool(torch.isfinite(maps).all()) or float(maps.min()) < 0:
        _fail(what, "as a train-cam its maps must be finite and >= 0")


def _check_raw_on_plain_layer(method: Any, what: str, gen: Any, batch: int, channels: int,
                              size: tuple[int, int]) -> None:
    """``raw_map`` (and ``weights``) of ``method`` on a synthetic layer: shape, batch, resolution, finiteness."""
    import torch

    from camkit.cams.base import CAMContext, CAMMethod
    from camkit.errors import CamkitError

    h, w = size
    acts = torch.rand(batch, channels, h, w, generator=gen)
    ctx = CAMContext(acts, torch.randn(batch, channels, h, w, generator=gen) if method.needs_gradients else None,
                     torch.arange(batch) % 2, torch.randn(2, channels, generator=gen),
                     torch.rand(batch, 2, h, w, generator=gen), scores=torch.randn(batch, 2, generator=gen),
                     hessian_vector=torch.randn(batch, channels, h, w, generator=gen)
                     if getattr(method, "needs_hessian_vector", False) else None)
    if isinstance(method, CAMMethod) and type(method).weights is not CAMMethod.weights:
        weights = method.weights(ctx)
        if not isinstance(weights, torch.Tensor) or tuple(weights.shape) != (batch, channels):
            shape = tuple(weights.shape) if isinstance(weights, torch.Tensor) else type(weights).__name__
            _fail(what, f"weights() returned {shape}; it must be (B, K) = ({batch}, {channels})")
    try:
        raw = method.raw_map(ctx)
    except CamkitError as exc:
        _fail(what, f"raw_map raised on a plain layer: {exc}")
    if raw is None:
        _fail(what, "raw_map returned None for a layer whose channels match the classifier; None means "
                    "'does not apply to this layer' and must be the exception")
    if not isinstance(raw, torch.Tensor) or raw.dim() != 3 or raw.shape[0] != batch:
        shape = tuple(raw.shape) if isinstance(raw, torch.Tensor) else type(raw).__name__
        _fail(what, f"raw_map returned {shape}; it must be (B, h, w) with B = {batch}")
    if tuple(raw.shape[1:]) != (h, w):
        _fail(what, f"raw_map returned maps of {tuple(raw.shape[1:])}; it must keep the layer's resolution {(h, w)}")
    if not bool(torch.isfinite(raw).all()):
        _fail(what, "raw_map returned NaN or infinite values")


def _TinyCAMNet() -> Any:
    """conv -> ReLU features, global average pool, linear classifier: every CAM method applies to it."""
    import torch
    from torch import nn

    class Tiny(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            gen = torch.Generator().manual_seed(1)
            self.features = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU())
            self.fc = nn.Linear(6, 2)
            with torch.no_grad():
                for p in self.parameters():
                    p.copy_(torch.randn(p.shape, generator=gen) * 0.5)

        def forward(self, x: Any) -> Any:
            return self.fc(self.features(x).mean((2, 3)))

        def get_classifier(self) -> Any:
            return self.fc

    return Tiny().eval()


# -- datasets ------------------------------------------------------------------------------------------------
def check_dataset(dataset: Any, n: int = 4) -> None:
    """Check a dataset: its members, ``labels()``, a stable ``config``, and up to ``n`` samples (one with a
    mass when there is one): every key, shapes and types, boxes inside the image and round-tripping through
    their transform."""
    what = f"dataset {type(dataset).__name__}"
    labels = _check_dataset_members(dataset, what)
    picks = list(range(min(n, len(labels))))
    positives = [i for i, v in enumerate(labels) if v == 1]
    if positives and not any(labels[i] == 1 for i in picks):
        picks.append(positives[0])
    ids: set[str] = set()
    boxed: list[tuple[int, int]] = []  # (label, lesion boxes) of each sample read
    for i in picks:
        sample = dataset[i]
        _check_sample(sample, f"{what} sample {i}", labels[i], i, ids)
        boxed.append((labels[i], len(sample["boxes"])))
    _check_annotations(dataset, what, boxed)


def _check_annotations(dataset: Any, what: str, boxed: list[tuple[int, int]]) -> None:
    """The dataset's declared annotations (camkit.data.annotations) against the samples read: one that
    declares boxes gives some on its mass samples; one that declares none gives none."""
    from camkit.data.annotations import annotations_of
    from camkit.errors import CamkitError

    try:
        declared = annotations_of(dataset, what)
    except CamkitError as exc:
        _fail(what, str(exc).removeprefix(what + " "))
    masses = [n for label, n in boxed if label == 1]
    if "boxes" in declared and masses and not any(masses):
        _fail(what, f"none of its {len(masses)} mass sample(s) read has a lesion box; a dataset that labels whole "
                    "images only declares annotations = () (docs/plugins.md, 'A dataset without lesion boxes')")
    if "boxes" not in declared and any(n for _, n in boxed):
        _fail(what, "declares no lesion boxes (annotations without 'boxes') but its samples carry some: declare "
                    "('boxes',), or give empty (0, 4) boxes")


def _check_dataset_members(dataset: Any, what: str) -> list[Any]:
    """The dataset's members, config and size; returns ``labels()`` once checked."""
    missing = missing_members(dataset, DATASET_MEMBERS)
    if missing:
        _fail(what, f"lacks {', '.join(missing)} (see camkit.protocols.Dataset)")
    if not callable(dataset.labels):
        _fail(what, "labels must be a method: labels() -> list[int]")
    problem = config_problem(dataset.config)
    if problem:
        _fail(what, f"config {problem}")
    if json.dumps(dataset.config, sort_keys=True) != json.dumps(dataset.config, sort_keys=True):
        _fail(what, "config changes between two reads; it must identify the data, always the same way")
    size = len(dataset)
    if size == 0:
        _fail(what, "is empty; create it with options that select some images to check it")
    labels = dataset.labels()
    if len(labels) != size or any(int(v) not in (0, 1) or int(v) != v for v in labels):
        _fail(what, f"labels() must return {size} values, each 0 (normal) or 1 (mass)")
    return labels


def _check_sample(s: Any, where: str, label: Any, i: int, ids: set[str]) -> None:
    """One sample: its keys, image, label (``labels()[i]`` is ``label``), boxes, ids (not in ``ids``, then
    added), view and transform."""
    import torch

    if not isinstance(s, Mapping):
        _fail(where, f"is a {type(s).__name__}, not a dict (see camkit.protocols.Sample)")
    for key in SAMPLE_KEYS:
        if key not in s:
            _fail(where, f"lacks the key {key!r}; a sample has {', '.join(SAMPLE_KEYS)}")
    image = s["image"]
    if not isinstance(image, torch.Tensor) or image.dim() != 3 or image.shape[0] != 1:
        _fail(where, f"image must be a (1, H, W) tensor, got {getattr(image, 'shape', type(image).__name__)}")
    if image.dtype != torch.float32 or not bool(torch.isfinite(image).all()):
        _fail(where, "image must be float32 and finite")
    if int(s["label"]) != label or s["label"] not in (0, 1):
        _fail(where, f"label {s['label']!r} must be 0 or 1 and equal labels()[{i}] = {label}")
    b = _check_sample_boxes(s, where, tuple(image.shape[-2:]))
    for key in ("image_id", "study_id"):
        if not isinstance(s[key], str) or not s[key]:
            _fail(where, f"{key} must be a non-empty str, got {s[key]!r}")
    if s["image_id"] in ids:
        _fail(where, f"image_id {s['image_id']!r} is used by another sample")
    ids.add(s["image_id"])
    if s["laterality"] not in ("L", "R", None) or s["view"] not in ("CC", "MLO", None):
        _fail(where, f"laterality must be 'L', 'R' or None and view 'CC', 'MLO' or None, got "
                     f"{s['laterality']!r}, {s['view']!r}")
    _check_sample_transform(s["transform"], where, tuple(image.shape[-2:]), b)


def _check_sample_boxes(s: Mapping[str, Any], where: str, hw: tuple[int, int]) -> Any:
    """A sample's boxes: (N, 4), none on a normal image, well-formed, inside the (H, W) frame; as float64."""
    import torch

    boxes = s["boxes"]
    if not isinstance(boxes, torch.Tensor) or boxes.dim() != 2 or boxes.shape[1] != 4:
        _fail(where, f"boxes must be an (N, 4) tensor, got {getattr(boxes, 'shape', type(boxes).__name__)}")
    b = boxes.double().numpy()
    h, w = hw
    if s["label"] == 0 and len(b):
        _fail(where, "a normal image (label 0) has mass boxes")
    if len(b) and ((b[:, 2] <= b[:, 0]).any() or (b[:, 3] <= b[:, 1]).any()):
        _fail(where, "boxes must be x1 y1 x2 y2 with x2 > x1 and y2 > y1")
    if len(b) and ((b < -1e-3).any() or (b[:, [0, 2]] > w + 1e-3).any() or (b[:, [1, 3]] > h + 1e-3).any()):
        _fail(where, f"boxes {b.tolist()} reach outside the {h}x{w} model frame (clip them)")
    return b


def _check_sample_transform(t: Any, where: str, hw: tuple[int, int], b: Any) -> None:
    """A sample's BoxTransform: its model size is the image's, and the boxes ``b`` round-trip through it."""
    import numpy as np

    from camkit.data.sample import BoxTransform

    if not isinstance(t, BoxTransform):
        _fail(where, f"transform must be a camkit.data.BoxTransform, got {type(t).__name__}")
    if tuple(t.model_size) != hw:
        _fail(where, f"transform.model_size {tuple(t.model_size)} is not the image's size {hw}")
    if len(b) and not np.allclose(t.to_model(t.to_original(b)), b, atol=1e-3):
        _fail(where, "boxes do not round-trip through their transform (to_model(to_original(b)) != b)")


# -- models --------------------------------------------------------------------------------------------------
def check_model(model: Any, batch: int = 2) -> None:
    """Check a model: its contract members, a forward at ``input_size`` (every score output (B, C), a
    prediction (B,) in [0, 1], the native CAM), a test-time CAM on its ``cam_layers``, one training loss with
    a backward, and the train state round trip."""
    import torch

    what = f"model {type(model).__name__}"
    size = _check_model_members(model, what)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 1, *size, generator=gen)
    _check_model_forward(model, what, x)
    _check_model_training(model, what, x)
    model.eval()


def _check_model_members(model: Any, what: str) -> tuple[int, ...]:
    """The model's contract members, input size, score outputs, config and CAM layers; returns the size."""
    missing = missing_members(model, MODEL_MEMBERS)
    if missing:
        _fail(what, f"lacks {', '.join(missing)} (see camkit.protocols.Model)")
    size = tuple(model.input_size)
    if len(size) != 2 or not all(isinstance(v, int) and v > 0 for v in size):
        _fail(what, f"input_size must be (H, W) positive ints, got {model.input_size!r}")
    if not model.score_outputs or model.cam_output not in model.score_outputs:
        _fail(what, f"cam_output {model.cam_output!r} must be one of score_outputs {list(model.score_outputs)}")
    problem = config_problem(model.config)
    if problem:
        _fail(what, f"config {problem}")
    for layer in model.cam_layers:
        try:
            model.get_submodule(layer)
        except AttributeError:
            _fail(what, f"cam_layers names {layer!r}, which is not a submodule")
    return size


def _check_model_forward(model: Any, what: str, x: Any) -> None:
    """An eval forward of ``x``: every score output, the prediction, the native CAM, a test-time CAM of each
    score output."""
    import torch

    from camkit.cams.engine import cam_maps

    batch = x.shape[0]
    model.eval()
    with torch.no_grad():
        out = model(x)
    if not isinstance(out, Mapping):
        _fail(what, f"forward must return a dict of tensors, got {type(out).__name__}")
    for key in model.score_outputs:
        score = out.get(key)
        if not isinstance(score, torch.Tensor) or score.dim() != 2 or score.shape[0] != batch:
            _fail(what, f"output {key!r} must be a (B, C) score tensor, got "
                        f"{getattr(score, 'shape', type(score).__name__)}")
        if not 0 <= model.target_class < score.shape[1]:
            _fail(what, f"target_class {model.target_class} is outside output {key!r}'s {score.shape[1]} classes")
    prob = model.predict(out)
    if not isinstance(prob, torch.Tensor) or tuple(prob.shape) != (batch,):
        _fail(what, f"predict must return (B,) = ({batch},), got {getattr(prob, 'shape', type(prob).__name__)}")
    if not bool(((prob >= 0) & (prob <= 1)).all()):
        _fail(what, "predict must return probabilities in [0, 1]")
    native = model.native_cam(out)
    if native is not None and (not isinstance(native, torch.Tensor) or native.dim() != 4
                               or native.shape[0] != batch):
        _fail(what, f"native_cam must return (B, C, h, w) or None, got {getattr(native, 'shape', type(native))}")
    for key in model.score_outputs:
        maps = cam_maps(model, x, ["gradcam"], list(model.cam_layers), targets=model.target_class, output=key)
        if tuple(maps["gradcam"].shape) != (batch, *x.shape[-2:]):
            _fail(what, f"a test-time CAM of output {key!r} came out {tuple(maps['gradcam'].shape)}")


def _check_model_training(model: Any, what: str, x: Any) -> None:
    """One training loss of ``x`` with a backward (gradients dropped after), and the train state round trip."""
    import torch

    model.train()
    loss, parts = model.training_loss(x, torch.tensor([i % 2 for i in range(x.shape[0])]), 0.5)
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0 or not loss.requires_grad:
        _fail(what, "training_loss must return a 0-dim loss tensor that requires grad")
    if not bool(torch.isfinite(loss)):
        _fail(what, f"training_loss returned {float(loss)}")
    if not isinstance(parts, Mapping) or not all(isinstance(float(v), float) for v in parts.values()):
        _fail(what, "training_loss must return (loss, {name: number})")
    loss.backward()
    model.zero_grad(set_to_none=True)
    state = model.train_state()
    if not isinstance(state, dict):
        _fail(what, f"train_state() must return a dict, got {type(state).__name__}")
    try:
        json.dumps(state)
    except (TypeError, ValueError):
        _fail(what, "train_state() must be JSON-able (it is stored in checkpoints)")
    model.load_train_state(state)
    if model.train_state() != state:
        _fail(what, "load_train_state(train_state()) must restore the same state")


# -- detectors -----------------------------------------------------------------------------------------------
def check_detector(detector: Any, batch: int = 2) -> None:
    """Check a detector (:class:`camkit.protocols.Detector`): its members, input size and config (JSON, the same
    after use), a training loss on a batch with one normal image and one boxed image (finite, with a gradient),
    and ``detect`` in eval mode: per image (N, 4) float32 boxes inside the frame and (N,) scores in [0, 1],
    best first, at most ``detections`` (its attribute or config entry, where it has one)."""
    import torch

    from camkit.protocols import DETECTOR_MEMBERS

    what = f"detector {type(detector).__name__}"
    missing = missing_members(detector, DETECTOR_MEMBERS)
    if missing:
        _fail(what, f"lacks {', '.join(missing)} (see camkit.protocols.Detector)")
    size = tuple(detector.input_size)
    if len(size) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size):
        _fail(what, f"input_size must be (H, W) positive ints, got {detector.input_size!r}")
    problem = config_problem(detector.config)
    if problem:
        _fail(what, f"config {problem}")
    config = json.dumps(detector.config, sort_keys=True)
    h, w = size
    x = torch.randn(max(batch, 2), 1, h, w, generator=torch.Generator().manual_seed(0))
    _check_detector_loss(detector, what, x)
    _check_detect(detector, what, x)
    if json.dumps(detector.config, sort_keys=True) != config:
        _fail(what, "config changed while it trained and detected; it must stay what rebuilds the detector")


def _check_detector_loss(detector: Any, what: str, x: Any) -> None:
    """One loss on ``x``: the first image normal (no boxes), the others with one box; then a backward."""
    import torch

    h, w = x.shape[-2:]
    box = torch.tensor([[0.25 * w, 0.25 * h, 0.6 * w, 0.55 * h]], dtype=torch.float32)
    targets = [{"boxes": torch.zeros(0, 4) if i == 0 else box.clone()} for i in range(x.shape[0])]
    detector.train()
    loss, parts = detector.detection_loss(x, targets)
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0 or not loss.requires_grad:
        _fail(what, "detection_loss must return a 0-dim loss tensor that requires grad")
    if not bool(torch.isfinite(loss)):
        _fail(what, f"detection_loss returned {float(loss)} on a batch with a normal image (no boxes) and boxed "
                    "ones")
    if not isinstance(parts, Mapping) or not all(isinstance(float(v), float) for v in parts.values()):
        _fail(what, "detection_loss must return (loss, {part: float})")
    loss.backward()
    grads = [p.grad for p in detector.parameters() if p.grad is not None]
    if not grads or not any(bool(g.abs().sum() > 0) for g in grads):
        _fail(what, "detection_loss's backward reached no parameter")
    if not all(bool(torch.isfinite(g).all()) for g in grads):
        _fail(what, "detection_loss's gradient is not finite")
    detector.zero_grad(set_to_none=True)


def _check_detect(detector: Any, what: str, x: Any) -> None:
    """``detect`` in eval mode under no_grad: one (boxes, scores) per image, in the frame, best first."""
    import torch

    h, w = x.shape[-2:]
    cap = getattr(detector, "detections", None)
    cap = cap if isinstance(cap, int) else detector.config.get("detections")
    detector.eval()
    with torch.no_grad():
        out = detector.detect(x)
    if not isinstance(out, (list, tuple)) or len(out) != x.shape[0]:
        _fail(what, f"detect must return one (boxes, scores) per image ({x.shape[0]}), got "
                    f"{len(out) if isinstance(out, (list, tuple)) else type(out).__name__}")
    for i, pair in enumerate(out):
        where = f"{what}: detect, image {i}"
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            _fail(where, "each image's result must be a (boxes, scores) pair")
        boxes, scores = pair
        if not isinstance(boxes, torch.Tensor) or boxes.dim() != 2 or boxes.shape[1] != 4 \
                or boxes.dtype != torch.float32:
            _fail(where, f"boxes must be an (N, 4) float32 tensor, got {getattr(boxes, 'shape', type(boxes))} "
                         f"{getattr(boxes, 'dtype', '')}")
        if not isinstance(scores, torch.Tensor) or tuple(scores.shape) != (len(boxes),):
            _fail(where, f"scores must be ({len(boxes)},), got {getattr(scores, 'shape', type(scores))}")
        if isinstance(cap, int) and len(boxes) > cap:
            _fail(where, f"returned {len(boxes)} boxes, more than its detections = {cap}")
        if not bool(torch.isfinite(boxes).all() & torch.isfinite(scores).all()):
            _fail(where, "boxes and scores must be finite")
        if bool(((scores < 0) | (scores > 1)).any()):
            _fail(where, "scores must be in [0, 1]")
        if bool((scores[1:] > scores[:-1]).any()):
            _fail(where, "scores must be sorted best first")
        eps = 1e-3
        if bool(((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])).any()):
            _fail(where, "boxes must be x1 y1 x2 y2 with x2 >= x1 and y2 >= y1")
        outside = (boxes < -eps).any() | (boxes[:, 0::2] > w + eps).any() | (boxes[:, 1::2] > h + eps).any()
        if bool(outside):
            _fail(where, f"boxes must lie in the model frame, x in [0, {w}] and y in [0, {h}]")


# -- registration --------------------------------------------------------------------------------------------
@contextlib.contextmanager
def register_strictly(plugin: Any, name: str) -> Iterator[Any]:
    """Register ``plugin`` (a module or object with hook implementations) in this process for the block,
    raising :class:`camkit.errors.RegistrationError` where camkit would only warn (an unknown hook, a hook that
    raises, a name another plugin owns); it is unregistered afterwards."""
    from camkit.registry.host import get_host

    host = get_host()
    # an installed plugin is already loaded from its entry point (under its entry-point name): take it out for
    # the block and put it back after, instead of failing with pluggy's "already registered"
    held = host.pm.get_name(plugin) if host.pm.is_registered(plugin) else None
    held = held or (name if name in host.plugins else None)
    saved = (held, host.pm.get_plugin(held), host.plugins.get(held)) if held else None
    if held:
        host.unregister(held)
    host.strict = True
    try:
        host.register(plugin, name=name)
    except BaseException:
        host.unregister(name)
        _restore(host, saved)
        raise
    finally:
        host.strict = False
    try:
        yield host.plugins[name]
    finally:
        host.unregister(name)
        _restore(host, saved)


def _restore(host: Any, saved: tuple[str, Any, Any] | None) -> None:
    """Register again the plugin :func:`register_strictly` took out, under its own name and status."""
    if saved is not None and saved[1] is not None:
        held, plugin, info = saved
        host.register(plugin, name=held, info=info)
