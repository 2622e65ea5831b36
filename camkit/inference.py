"""The one "predict, then maps, then boxes" step, used by the bench, ``camkit explain`` and the overlay figures.

:func:`localize` runs the model once through the CAM engine (all requested maps and the model's own
prediction come from that one forward), then turns every map into scored boxes; :meth:`Localization.original`
maps the boxes back to each original image. :func:`explain_image` is that step for one image file (its options:
:class:`ExplainOptions`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from camkit.errors import OptionError


@dataclass(frozen=True)
class LocalizeOptions:
    """How maps become boxes: which CAMs, which score they explain, how layers fuse, how boxes are cut.

    ``cam_output`` None means the model's own ``cam_output``; ``box_threshold`` in (0, 1] is relative to each
    map's maximum (``cam_thresholds`` overrides it per CAM: thresholds chosen on validation data);
    ``box_score`` is one of :data:`camkit.metrics.boxes.SCORES`; ``fuse`` is ``mean``/``max``.
    ``proposals``: one box per map peak instead, looked up on this threshold grid and cut at ``box_threshold``
    of the peak's own height, with box NMS at ``nms_iou`` (:func:`camkit.metrics.boxes.maps_to_proposals`).
    """

    cams: tuple[str, ...]
    box_threshold: float = 0.5
    box_score: str = "peak_x_prob"
    cam_output: str | None = None
    fuse: str = "mean"
    cam_options: dict[str, dict[str, Any]] = field(default_factory=dict)  # {method: constructor options}
    cam_thresholds: dict[str, float] = field(default_factory=dict)
    proposals: tuple[float, ...] | None = None
    nms_iou: float = 0.5

    def threshold(self, cam: str) -> float:
        """The box threshold of ``cam`` (its own where one was chosen for it)."""
        return float(self.cam_thresholds.get(cam, self.box_threshold))

    def cut(self, cam: str, maps: Any, probs: Any) -> list[tuple[np.ndarray, np.ndarray]]:
        """Scored boxes of ``cam``'s maps (B, H, W), per image, best first."""
        from camkit.metrics.boxes import maps_to_boxes, maps_to_proposals

        if self.proposals is not None:
            return maps_to_proposals(maps, self.proposals, probs, self.box_score, self.threshold(cam),
                                     self.nms_iou)
        return maps_to_boxes(maps, self.threshold(cam), probs, self.box_score)

    def methods(self) -> dict[str, Any]:
        """{requested name: method instance}, each created with its ``cam_options``."""
        from camkit.registry.api import get_cam

        return {cam: get_cam(cam, **self.cam_options.get(cam, {})) for cam in self.cams}

    def check(self, model: Any = None) -> LocalizeOptions:
        """Raise OptionError naming the bad option (``cam_output`` against ``model.score_outputs`` if given)."""
        from camkit.cams.pipeline import FUSIONS
        from camkit.metrics.boxes import SCORES

        if not self.cams:
            raise OptionError("no CAM method requested; pass --test-cam NAME (camkit list cams)")
        stray = sorted(set(self.cam_options) - set(self.cams))
        if stray:
            raise OptionError(f"--cam-opt for {', '.join(stray)}, which is not among the requested CAMs "
                              f"({', '.join(self.cams)})")
        self.methods()  # an option a method does not take fails here, naming the method and its options
        for t in [self.box_threshold, *self.cam_thresholds.values(), *(self.proposals or ())]:
            if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0.0 < float(t) <= 1.0:
                raise OptionError(f"--box-threshold must be in (0, 1] (a fraction of each map's maximum), got "
                                  f"{t!r}")
        if self.proposals is not None and not self.proposals:
            raise OptionError("box proposals need at least one threshold")
        if not 0.0 <= float(self.nms_iou) <= 1.0:
            raise OptionError(f"the proposals' NMS IoU must be in [0, 1], got {self.nms_iou!r}")
        if self.box_score not in SCORES:
            raise OptionError(f"box score {self.box_score!r} is not one of {', '.join(SCORES)}")
        if self.fuse not in FUSIONS:
            raise OptionError(f"layer fusion {self.fuse!r} is not one of {', '.join(FUSIONS)}")
        if model is not None and self.cam_output is not None and self.cam_output not in model.score_outputs:
            raise OptionError(f"--cam-output {self.cam_output!r}: {type(model).__name__} has the score outputs "
                              f"{', '.join(model.score_outputs)}")
        return self


@dataclass
class Localization:
    """What :func:`localize` found for a batch: maps (B, H, W) in the model frame, probabilities (B,), and per
    CAM one ``(boxes (N, 4) in map pixels, scores (N,))`` pair per image, best first. A requested CAM that
    does not apply to the model (FinerCAM on a one-class model) has no map and no boxes; ``not_applicable``
    says why."""

    maps: dict[str, Any]
    probs: np.ndarray
    boxes: dict[str, list[tuple[np.ndarray, np.ndarray]]] = field(default_factory=dict)
    not_applicable: dict[str, str] = field(default_factory=dict)

    @property
    def map_size(self) -> tuple[int, int]:
        return tuple(next(iter(self.maps.values())).shape[-2:])  # type: ignore[return-value]

    def original(self, transforms: list[Any]) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
        """The boxes in each original image's pixels (through its BoxTransform), per CAM."""
        from camkit.metrics.boxes import batch_to_original

        return {cam: batch_to_original(found, transforms, self.map_size) for cam, found in self.boxes.items()}


def localize(model: Any, images: Any, options: LocalizeOptions, device: Any = None,
             progress: Any = None) -> Localization:
    """All of ``options.cams``' maps and boxes for an image batch, and the model's predictions, from one pass.

    ``images`` (B, C, H, W) go to ``device`` (a :class:`camkit.training.device.DeviceSettings`; default: the
    model's device as is). The model is put in eval mode. ``progress(done, total)``: the perturbation methods'
    extra forwards (:func:`camkit.cams.engine.run_cams`).
    """
    import torch

    from camkit.cams.engine import CamOptions, not_applicable_reason, run_cams

    model.eval()
    if device is not None:
        x = device.prepare_images(images)
    else:
        x = images.to(next(model.parameters()).device)
    methods = options.methods()
    cam_options = CamOptions(output=options.cam_output or model.cam_output, fuse=options.fuse,
                             not_applicable="skip")
    found, output = run_cams(model, x, list(methods.values()), model.cam_layers, int(model.target_class),
                             options=cam_options, return_output=True, progress=progress)
    with torch.no_grad():
        probs = model.predict(output).detach().float().cpu().numpy().reshape(-1)
    # the engine names maps by each method's own name; everything downstream uses the requested names
    maps = {cam: found[_engine_name(m)] for cam, m in methods.items() if _engine_name(m) in found}
    boxes = {cam: options.cut(cam, maps[cam], probs) for cam in maps}
    skipped = {cam: not_applicable_reason(m) for cam, m in methods.items() if cam not in maps}
    return Localization(maps, probs, boxes, skipped)


def _engine_name(method: Any) -> str:
    return getattr(method, "name", "") or type(method).__name__.lower()


@dataclass(frozen=True)
class ExplainOptions:
    """What :func:`explain_image` draws and with which model: everything but the image and the checkpoint.

    ``model_name`` None is the default recipe's model (:func:`camkit.registry.api.default_model`); ``cams`` None
    is every registered method; ``laterality`` ``"L"``/``"R"`` mirrors right views like training did (None:
    detect the breast side); ``box_threshold``, ``box_score``, ``cam_output``, ``fuse`` and ``cam_options``
    ({method: constructor options}) as in :class:`LocalizeOptions`; ``model_options`` go to ``create_model``
    over the checkpoint's ``model_config``.
    """

    model_name: str | None = None
    cams: tuple[str, ...] | None = None
    laterality: str | None = None
    box_threshold: float = 0.5
    box_score: str = "peak_x_prob"
    cam_output: str | None = None
    fuse: str = "mean"
    model_options: dict[str, Any] = field(default_factory=dict)
    cam_options: dict[str, dict[str, Any]] = field(default_factory=dict)

    def with_overrides(self, overrides: dict[str, Any]) -> ExplainOptions:
        """These options with some fields given by name (an unknown name is a TypeError naming the fields)."""
        from camkit.registry.options import with_fields

        return with_fields(self, overrides, "the explain options")

    def localize_options(self, cams: tuple[str, ...], model: Any) -> LocalizeOptions:
        """The :class:`LocalizeOptions` of these options for ``cams``, checked against ``model``."""
        return LocalizeOptions(cams, self.box_threshold, self.box_score, self.cam_output, self.fuse,
                               dict(self.cam_options or {})).check(model)


def explain_image(image: str | Path, checkpoint: str | Path, options: ExplainOptions | None = None,
                  **overrides: Any) -> dict[str, Any]:
    """Maps and boxes of every method in ``options.cams`` (all registered when None) for one image file.

    ``options`` is an :class:`ExplainOptions`; ``**overrides`` give any of its fields by name
    (``cams=["gradcam"]`` is ``options=ExplainOptions(cams=("gradcam",))``). The model is rebuilt as
    ``create_model(model_name, **checkpoint["model_config"])`` for camkit checkpoints; a plain state dict (e.g.
    released weights) goes to the model factory's ``checkpoint`` option with ``model_options``. Returns the
    probability, per method the boxes (model frame and original image frame) and their scores, the methods
    that do not apply to the model with the reason (``"not_applicable"``), and under ``"arrays"`` the model
    input and maps (for a figure).
    """
    from camkit.data.imaging import preprocess, read_image
    from camkit.registry.api import list_cams

    opts = (options or ExplainOptions()).with_overrides(overrides)
    model = _explained_model(checkpoint, opts)
    found_opts = opts.localize_options(tuple(opts.cams or list_cams()), model)
    x, transform = preprocess(read_image(image), tuple(model.input_size), laterality=opts.laterality)
    found = localize(model, x.reshape(1, 1, *x.shape[-2:]), found_opts)
    original = found.original([transform])
    return {"image": str(image), "probability": float(found.probs[0]),
            "boxes": {m: {"model_frame": found.boxes[m][0][0].tolist(),
                          "original_frame": original[m][0][0].tolist(),
                          "scores": found.boxes[m][0][1].tolist()} for m in found.maps},
            "not_applicable": found.not_applicable,
            "arrays": {"image": x[0].numpy(), "maps": {m: found.maps[m][0].detach().cpu().numpy()
                                                       for m in found.maps}}}


def _check_model_kind(stored: dict[str, Any], model_name: str, checkpoint: str | Path) -> None:
    """An OptionError naming the model a camkit checkpoint was trained as, when ``model_name`` is another
    (its options would otherwise be refused one by one: "model 'glam' has no option 'attn_dim'")."""
    from camkit.errors import OptionError
    from camkit.registry.host import get_host

    held = (stored.get("fingerprint") or {}).get("model")  # the trained class, "package.module.Class"
    if not isinstance(held, str) or not held:
        return
    package = held.split(".")[0]
    registry = get_host().registry
    entry, _ = registry.get("model", model_name)
    if entry.factory.__module__.split(".")[0] == package:
        return
    owners = [e.name for e in registry.entries("model") if e.factory.__module__.split(".")[0] == package]
    what = f"model {owners[0]!r} ({held})" if owners else held
    fix = f"pass --model {owners[0]}" if owners else "pass the --model it was trained as"
    raise OptionError(f"{checkpoint} holds a {what}, not a {model_name!r} model: {fix}")


def _explained_model(checkpoint: str | Path, opts: ExplainOptions) -> Any:
    """The model ``checkpoint`` holds: a camkit checkpoint is read once (weights-only), its ``model_config``
    rebuilds the model and the same dict fills it; a plain state dict goes to the model factory's own loader."""
    from camkit.registry.api import create_model, default_model
    from camkit.storage.checkpoint import apply_checkpoint, is_camkit_checkpoint, read_checkpoint

    model_name = opts.model_name or default_model()
    stored = read_checkpoint(checkpoint)
    camkit_format = is_camkit_checkpoint(stored)
    config = dict(stored.get("model_config") or {}) if camkit_format else {}
    config.update(opts.model_options or {})
    config.pop("checkpoint", None)
    if camkit_format:
        _check_model_kind(stored, model_name, checkpoint)
        model = create_model(model_name, **config)
        apply_checkpoint(stored, model, checkpoint)
        return model
    # a plain state dict (e.g. released weights): the model's own loader knows its quirks (GMIC's unused
    # tensors, another class count) and takes a path, so drop this copy before it reads the file
    del stored
    return create_model(model_name, checkpoint=str(checkpoint), **config)
