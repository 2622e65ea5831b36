"""The contracts between camkit's parts, as code: what a model, a dataset and a sample must provide.

The training loop, the CAM engine and the bench rely on exactly these members and on nothing else; a plugin
that provides them works everywhere. :mod:`camkit.testing` checks an object against them with messages that
name the rule broken, and camkit checks every built-in against them in its own test suite.

Factories (what a plugin registers) are called in one documented way, by ``camkit bench``, ``camkit train``
and :mod:`camkit.registry.api` alike:

* a **model factory** as ``factory(train_cam=<CAM name>, **options)``;
* a **dataset factory** as ``factory(split=<"train"|"val"|"test">, size=<(H, W) = model.input_size>,
  seed=<int>, **options)`` (a deterministic dataset accepts ``seed`` and ignores it);
* a **CAM method factory** (usually the class) as ``factory(**options)``;
* a **detector factory** as ``factory(input_size=<(H, W)>, **options)`` (``camkit distill``'s detectors).

``options`` are the user's ``--model-opt`` / ``--dataset-opt`` values. A factory must refuse an option it does
not know (a keyword it lacks does that by itself) rather than silently ignore it.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NotRequired, Protocol, TypedDict, runtime_checkable

if TYPE_CHECKING:
    from camkit.data.sample import BoxTransform

SPLITS = ("train", "val", "test")
#: Keys the core sets when it calls a dataset factory; users set them through other options.
DATASET_CALL_KEYS = ("split", "size")


class Sample(TypedDict):
    """One image, as a dataset's ``__getitem__`` returns it (all keys required)::

        image       Tensor (1, H, W) float32, normalised as the model expects (the model frame)
        label       int, 1 = mass, 0 = normal
        boxes       Tensor (N, 4) float32, x1 y1 x2 y2 in the model frame (continuous pixel coordinates;
                    pixel (row i, column j) covers [j, j+1) x [i, i+1)); (0, 4) for a normal image
        image_id    str, unique within the dataset
        study_id    str, the unit the bootstrap resamples (one patient visit)
        laterality  "L" / "R" / None
        view        "CC" / "MLO" / None
        transform   BoxTransform from the original image's pixels to the model frame and back

    Optional (leaderboard strata use them where a dataset has them, ``camkit leaderboard --by``)::

        density     breast density as the dataset writes it (VinDr-Mammo: "DENSITY A" .. "DENSITY D")
        masks       Tensor (N, H, W) bool, each box's lesion pixels in the model frame (datasets with masks)
    """

    image: Any
    label: int
    boxes: Any
    image_id: str
    study_id: str
    laterality: str | None
    view: str | None
    transform: "BoxTransform"
    density: NotRequired[str | None]
    masks: NotRequired[Any]


# spelled out: with postponed annotations TypedDict cannot see NotRequired
OPTIONAL_SAMPLE_KEYS: tuple[str, ...] = ("density", "masks")
SAMPLE_KEYS: tuple[str, ...] = tuple(k for k in Sample.__annotations__ if k not in OPTIONAL_SAMPLE_KEYS)


@runtime_checkable
class Dataset(Protocol):
    """A map-style dataset of :class:`Sample` dicts.

    ``config`` is a JSON-able dict that identifies the data (the same data gives the same config, always): it
    enters the checkpoint fingerprint, so a checkpoint trained on other data is never reused. ``labels()``
    returns every sample's label, in order, without reading pixels (for balance checks and summaries).
    """

    @property
    def config(self) -> Mapping[str, Any]: ...

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Sample: ...

    def labels(self) -> list[int]: ...


@runtime_checkable
class Model(Protocol):
    """An ``nn.Module`` whose forward takes images (B, C, H, W) and returns a dict of tensors.

    ==================  =====================================================================================
    ``input_size``      (H, W) the model expects; datasets are created at this size
    ``cam_layers``      dotted module names test-time CAMs hook (their outputs are (B, K, h, w))
    ``score_outputs``   names of the forward's (B, C) score outputs a CAM may explain (GMIC: y_global, y_fusion)
    ``cam_output``      the default of those, the one test-time CAMs explain
    ``target_class``    index of the "mass" class in those scores
    ``config``          JSON-able options that rebuild it: ``create_model(name, **config)``; in the fingerprint
    ``native_cam``      ``native_cam(outputs)`` -> (B, C, h, w), the model's own CAM head, or None
    ``predict``         ``predict(outputs)`` -> (B,) probability of "mass"
    ``training_loss``   ``training_loss(images, labels, progress)`` -> (loss, {part: float}); ``progress`` in
                        [0, 1] is the fraction of training done (for ramps)
    ``train_state``     ``train_state()`` -> dict of Python-side state a checkpoint must hold (may be empty)
    ``load_train_state``  restores it on resume
    ==================  =====================================================================================

    Optional: ``score_from(layer, activations, output)`` -> (N, C) scores computed from a replaced output of
    cam layer ``layer`` by the part of the network after it, or ``NotImplemented``; Ablation-CAM then re-runs
    only that part (GMIC: the saliency head and top-t pooling after ``ds_net``) instead of the whole model.
    Optional: ``training_inputs``, the sample keys ``training_loss`` also takes, as keyword per-image lists
    (``("boxes",)``: a detector trained on boxes, camkit.distill); such a model trains without flips and crops.
    """

    input_size: tuple[int, int]
    cam_layers: Sequence[str]
    score_outputs: Sequence[str]
    cam_output: str
    target_class: int
    config: Mapping[str, Any]

    def __call__(self, images: Any) -> Mapping[str, Any]: ...

    def native_cam(self, outputs: Mapping[str, Any]) -> Any: ...

    def predict(self, outputs: Mapping[str, Any]) -> Any: ...

    def training_loss(self, images: Any, labels: Any, progress: float) -> tuple[Any, Mapping[str, float]]: ...

    def train_state(self) -> dict[str, Any]: ...

    def load_train_state(self, state: Mapping[str, Any]) -> None: ...


class ModelDefaults:
    """An optional mixin with the contract's defaults: no native CAM, no Python-side train state, class 0.

    ``class MyNet(ModelDefaults, nn.Module)``: then define ``input_size``, ``cam_layers``, ``score_outputs``,
    ``cam_output``, ``config``, ``forward``, ``predict`` and ``training_loss``.
    """

    target_class: int = 0

    def native_cam(self, outputs: Mapping[str, Any]) -> Any:
        return None

    def train_state(self) -> dict[str, Any]:
        return {}

    def load_train_state(self, state: Mapping[str, Any]) -> None:
        return None


@runtime_checkable
class Detector(Protocol):
    """An object detector (an ``nn.Module``) that ``camkit distill`` trains on boxes and scores with the FROC.

    ==================  =====================================================================================
    ``input_size``      (H, W) of the single-channel images it takes: (B, 1, H, W) float32, z-scored (the
                        model frame; it neither resizes nor renormalises them)
    ``config``          JSON-able options that rebuild it: ``create_detector(name, **config)``; stable (it
                        enters a fingerprint)
    ``detection_loss``  ``detection_loss(images, targets)`` -> (loss, {part: float}) in train mode;
                        ``targets[i] = {"boxes": (N, 4) float32}`` x1 y1 x2 y2 in the model frame (N may be
                        0: a normal image)
    ``detect``          ``detect(images)`` -> per image ``(boxes (N, 4) float32, scores (N,))``: boxes in the
                        model frame (continuous pixel coordinates, x in [0, W], y in [0, H]), scores in
                        [0, 1], best first, at most its ``detections``; camkit calls it in eval mode under
                        ``torch.no_grad()``
    ==================  =====================================================================================

    Plus ``nn.Module``'s ``parameters()``, ``state_dict()``, ``load_state_dict()``, ``train()`` and ``eval()``.
    """

    input_size: tuple[int, int]
    config: Mapping[str, Any]

    def detection_loss(self, images: Any,
                       targets: Sequence[Mapping[str, Any]]) -> tuple[Any, Mapping[str, float]]: ...

    def detect(self, images: Any) -> list[tuple[Any, Any]]: ...

    def parameters(self) -> Any: ...

    def state_dict(self) -> Any: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> Any: ...

    def train(self, mode: bool = True) -> Any: ...

    def eval(self) -> Any: ...


MODEL_MEMBERS: tuple[str, ...] = ("input_size", "cam_layers", "score_outputs", "cam_output", "target_class",
                                  "config", "native_cam", "predict", "training_loss", "train_state",
                                  "load_train_state", "parameters", "state_dict")
DATASET_MEMBERS: tuple[str, ...] = ("config", "__len__", "__getitem__", "labels")
DETECTOR_MEMBERS: tuple[str, ...] = ("input_size", "config", "detection_loss", "detect", "parameters",
                                     "state_dict", "load_state_dict", "train", "eval")


def missing_members(obj: Any, members: Sequence[str]) -> list[str]:
    """The members of ``members`` that ``obj`` lacks (a property that raises counts as missing)."""
    out = []
    for name in members:
        try:
            getattr(obj, name)
        except Exception:  # noqa: BLE001 - a broken property is as good as absent
            out.append(name)
    return out


def require_model(model: Any, where: str = "camkit") -> None:
    """Raise ContractError naming every model-contract member ``model`` lacks."""
    from camkit.errors import ContractError

    missing = missing_members(model, MODEL_MEMBERS)
    if missing:
        raise ContractError(f"{where}: {type(model).__name__} does not follow the model contract: it lacks "
                            f"{', '.join(missing)} (see camkit.protocols.Model; camkit.testing.check_model "
                            "checks a model in detail)")
    if model.cam_output not in model.score_outputs:
        raise ContractError(f"{where}: {type(model).__name__}.cam_output {model.cam_output!r} is not one of its "
                            f"score_outputs {list(model.score_outputs)}")


def require_dataset(dataset: Any, where: str = "camkit") -> None:
    """Raise ContractError naming every dataset-contract member ``dataset`` lacks, or a config that is not
    stable JSON (a checkpoint fingerprint built from it could match other data)."""
    from camkit.errors import ContractError

    missing = missing_members(dataset, DATASET_MEMBERS)
    if missing:
        raise ContractError(f"{where}: {type(dataset).__name__} does not follow the dataset contract: it lacks "
                            f"{', '.join(missing)} (see camkit.protocols.Dataset)")
    if not callable(dataset.labels):
        raise ContractError(f"{where}: {type(dataset).__name__}.labels must be a method, labels() -> list[int]")
    problem = config_problem(dataset.config)
    if problem:
        raise ContractError(f"{where}: {type(dataset).__name__}.config {problem}; camkit could not tell its data "
                            "from other data, and might reuse a checkpoint trained on something else")


def require_detector(detector: Any, where: str = "camkit") -> None:
    """Raise ContractError naming every detector-contract member ``detector`` lacks, an input size that is not
    (H, W), or a config that is not stable JSON (it enters the distilled run's fingerprint)."""
    from camkit.errors import ContractError

    name = type(detector).__name__
    missing = missing_members(detector, DETECTOR_MEMBERS)
    if missing:
        raise ContractError(f"{where}: {name} does not follow the detector contract: it lacks {', '.join(missing)} "
                            "(see camkit.protocols.Detector; camkit.testing.check_detector checks a detector in "
                            "detail)")
    size = detector.input_size
    if not isinstance(size, Sequence) or len(size) != 2 or not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size):
        raise ContractError(f"{where}: {name}.input_size must be (H, W) positive ints, got {size!r}")
    problem = config_problem(detector.config)
    if problem:
        raise ContractError(f"{where}: {name}.config {problem}; create_detector(name, **config) must rebuild it")


def config_problem(config: Any) -> str | None:
    """Why ``config`` cannot identify an object (not a dict, not JSON, an object's address in it), or None."""
    import json
    import re

    if not isinstance(config, Mapping) or not config:
        return f"is {config!r}: it must be a non-empty dict of JSON values"
    try:
        text = json.dumps(config, sort_keys=True)
    except (TypeError, ValueError) as exc:
        return f"is not JSON-able ({exc}); use str, numbers, bools, None, lists and dicts"
    if re.search(r" at 0x[0-9a-f]+", text):
        return "holds an object's memory address, which changes from run to run"
    return None
