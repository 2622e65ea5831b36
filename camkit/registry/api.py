"""The Python API over the plugin registry: list, look up and create things by name."""
from __future__ import annotations

from typing import Any

from camkit.errors import RegistrationError, UnknownNameError
from camkit.registry.host import get_host
from camkit.registry.meta import RecipeSpec
from camkit.registry.options import call_factory
from camkit.registry.table import Entry


def _entries(kind: str, pattern: str | None, sort: bool = True) -> list[Entry]:
    return get_host().registry.entries(kind, pattern, sort=sort)


def list_cams(pattern: str | None = None) -> list[str]:
    """Names of the registered activation-map methods, optionally filtered by a glob."""
    return [e.name for e in _entries("cam", pattern)]


def list_models(pattern: str | None = None) -> list[str]:
    """Names of the registered models, optionally filtered by a glob."""
    return [e.name for e in _entries("model", pattern)]


def list_datasets(pattern: str | None = None) -> list[str]:
    """Names of the registered datasets, optionally filtered by a glob."""
    return [e.name for e in _entries("dataset", pattern)]


def list_backbones(pattern: str | None = None) -> list[str]:
    """Names of the registered backbones; ``"timm:resnet*"`` expands timm's zoo."""
    return [e.name for e in _entries("backbone", pattern)]


def list_recipes(pattern: str | None = None, *, sort: bool = True) -> list[str]:
    """Names of the registered recipes (``--preset NAME``), optionally filtered by a glob; in registration order
    with ``sort=False`` (the order a plugin lists them in)."""
    return [e.name for e in _entries("recipe", pattern, sort)]


def get_recipe(name: str) -> RecipeSpec:
    """The recipe registered as ``name``; an unknown one raises UnknownNameError listing the registered."""
    try:
        entry, _ = get_host().registry.get("recipe", name)
    except UnknownNameError:
        raise UnknownNameError("preset", name, list_recipes()) from None
    return entry.meta


def default_recipe() -> str:
    """The name of the one registered recipe that declares itself the default (``default=True``).

    None, or more than one, raises RegistrationError naming the recipes and the plugins that registered them.
    """
    claims = [e for e in _entries("recipe", None) if e.meta.default]
    if len(claims) == 1:
        return claims[0].name
    if not claims:
        known = ", ".join(list_recipes()) or "none"
        raise RegistrationError(f"no registered recipe declares itself the default (registered: {known}); give "
                                "--preset NAME (camkit list recipes), or install a plugin that registers one with "
                                "default=True")
    who = " and ".join(f"{e.name!r} (plugin {e.plugin!r})" for e in claims)
    raise RegistrationError(f"recipes {who} each declare themselves the default recipe, and only one may; give "
                            "--preset NAME, or leave one plugin out with CAMKIT_PLUGINS (camkit plugins)")


def default_model() -> str:
    """The model of the default recipe: what every command trains or loads when no model is named."""
    return get_recipe(default_recipe()).model


def describe(kind: str, pattern: str | None = None) -> list[dict[str, str]]:
    """Rows of name / plugin / description for ``camkit list``; CAM methods add their cost class, whether
    they need gradients and whether they can be a train-cam (``train_cam``: "no" for a test-time-only method;
    class attributes of the registered factory, when it declares them), models their
    presets and options (the ``presets=`` and ``options=`` of their registration, else the factory's keywords),
    recipes their model, dataset and whether they are the default."""
    rows = []
    for e in _entries(kind, pattern):
        row = {"name": e.name + (":<name>" if e.namespace else ""), "plugin": e.plugin,
               "description": e.description}
        if kind == "model":
            row["presets"] = ", ".join(e.meta.presets)
            row["options"] = ", ".join(model_options(e))
        if kind == "recipe":
            row.update(model=e.meta.model, dataset=e.meta.dataset, default="yes" if e.meta.default else "")
        if kind == "cam":
            row.update(_cam_columns(e.factory))
        if kind == "detector":
            row["options"] = ", ".join(detector_options(e))
        rows.append(row)
    return rows


def _cam_columns(factory: Any) -> dict[str, str]:
    """A CAM method's cost class, whether it needs gradients (a gradient-reruns method always does, on every
    copy) and whether it can be a train-cam, from its factory's class attributes ("" where it declares none)."""
    cost = getattr(factory, "cost", None)
    grads = getattr(factory, "needs_gradients", None)
    if cost == "gradient-reruns":
        grads = True
    declared = cost is not None or hasattr(factory, "train_time")
    return {"cost": "" if cost is None else str(cost),
            "gradients": "" if grads is None else ("yes" if grads else "no"),
            "train_cam": ("no" if _test_time_only(factory, cost) else "yes") if declared else ""}


def _test_time_only(factory: Any, cost: Any) -> bool:
    """Whether a CAM factory cannot be a train-cam: a CAMMethod says why (its ``test_time_only()``; the registry
    sits below the CAM layer and asks the class); any other factory by its declarations."""
    ask = getattr(factory, "test_time_only", None)
    if callable(ask):
        return bool(ask())
    return getattr(factory, "train_time", True) is False or cost == "gradient-reruns"


def model_options(entry: Entry) -> list[str]:
    """The option names a registered model takes: its registration's ``options=``, else its factory's keywords
    (without ``train_cam``, which the bench sets)."""
    from camkit.registry.options import factory_options

    names = list(entry.meta.options or factory_options(entry.factory)[0])
    return [n for n in names if n != "train_cam"]


def detector_options(entry: Entry) -> list[str]:
    """The option names a registered detector takes: its factory's keywords, without ``input_size`` (which
    camkit sets from the teacher model)."""
    from camkit.registry.options import factory_options

    return [n for n in factory_options(entry.factory)[0] if n != "input_size"]


def _declared(entry: Entry) -> Any:
    """The option types a registration declares (``options={name: type}``), or None."""
    from collections.abc import Mapping

    declared = getattr(entry.meta, "options", None)
    return declared if isinstance(declared, Mapping) else None


def get_cam(name: str, **options: Any):
    """An instance of the activation-map method registered as ``name``."""
    entry, _ = get_host().registry.get("cam", name)
    return call_factory(entry.factory, f"CAM method {name!r}", options)


def create_model(name: str, train_cam: str | None = None, **options: Any):
    """Create the model registered as ``name``: ``factory(train_cam=..., **options)`` (see camkit.protocols).

    ``train_cam`` None leaves the factory's own default. An option the factory does not take raises OptionError.
    """
    entry, _ = get_host().registry.get("model", name)
    if train_cam is not None:
        options["train_cam"] = train_cam
    return call_factory(entry.factory, f"model {name!r}", options, declared=_declared(entry))


def create_dataset(name: str, split: str = "train", **options: Any):
    """Create the dataset registered as ``name``: ``factory(split=..., size=(H, W), seed=..., **options)``.

    ``size`` and ``seed`` are passed when given (``camkit bench`` and ``camkit train`` always give them).
    An option the factory does not take raises OptionError.
    """
    entry, _ = get_host().registry.get("dataset", name)
    return call_factory(entry.factory, f"dataset {name!r}", {"split": split, **options}, declared=_declared(entry))


def create_backbone(name: str, **options: Any):
    """Create a backbone; ``"timm:<model>"`` builds any timm model offline (no weight download)."""
    entry, sub = get_host().registry.get("backbone", name)
    if entry.namespace:
        return call_factory(entry.factory, f"backbone {name!r}", options, sub)
    return call_factory(entry.factory, f"backbone {name!r}", options)


def list_executors(pattern: str | None = None) -> list[str]:
    """Registered executors (``camkit bench --executor NAME``): where a bench's cells run."""
    return [e.name for e in _entries("executor", pattern, sort=False)]


def create_executor(name: str, **options: Any):
    """The executor registered as ``name``, made with its ``--executor-opt`` options (an option its class does
    not take, or a value of the wrong type, is an OptionError naming the executor and the option)."""
    entry, _ = get_host().registry.get("executor", name)
    return call_factory(entry.factory, f"executor {name!r}", options)


def list_detectors(pattern: str | None = None) -> list[str]:
    """Names of the registered object detectors (``camkit distill``), optionally filtered by a glob."""
    return [e.name for e in _entries("detector", pattern)]


def create_detector(name: str, **options: Any):
    """Create the detector registered as ``name``: ``factory(input_size=(H, W), **options)`` (see
    camkit.protocols.Detector); ``input_size`` is passed when given. An option the factory does not take, or a
    value of the wrong type, raises OptionError naming the detector and the option (and its close matches)."""
    entry, _ = get_host().registry.get("detector", name)
    return call_factory(entry.factory, f"detector {name!r}", options)
