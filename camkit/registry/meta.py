"""What a plugin may say about each thing it registers: one frozen dataclass of declared, typed fields per kind.

``register(name, factory, description=None, **fields)`` accepts exactly the fields of its kind's class below
(a recipe has no factory: ``register(name, description=None, **fields)``). An unknown key, a missing required
one, or a value of the wrong type raises :class:`MetadataError`, one line naming the plugin, the entry and the
key with what is allowed; the plugin host reports it like any other failure inside a plugin's hook and leaves
that plugin out, so the other plugins keep working.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from camkit.errors import RegistrationError, did_you_mean
from camkit.protocols import SPLITS


class MetadataError(RegistrationError):
    """A registration's keyword that its kind does not declare, or a value of the wrong type."""

    def __init__(self, plugin: str, kind: str, name: str, detail: str):
        self.plugin, self.kind, self.name = plugin, kind, name
        # what the host prints after "plugin 'x' (distribution version)"
        self.detail = f"registers {KIND_WORDS.get(kind, kind)} {name!r} with {detail}"
        super().__init__(f"plugin {plugin!r} {self.detail}")


KIND_WORDS = {"cam": "the CAM method", "model": "the model", "dataset": "the dataset", "backbone": "the backbone",
              "recipe": "the recipe", "executor": "the executor", "detector": "the detector"}


# -- converters: each returns the stored (immutable where it can be) value or raises TypeError/ValueError ------
def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError
    return value


def _sequence(value: Any) -> tuple[Any, ...]:
    # a str is a sequence too, and presets="cpu" would silently become ('c', 'p', 'u')
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (list, tuple)):
        raise TypeError
    return tuple(value)


def _names(value: Any) -> tuple[str, ...]:
    out = _sequence(value)
    if not all(isinstance(v, str) for v in out):
        raise TypeError
    return out


def _option_declarations(value: Any) -> tuple[str, ...] | Mapping[str, Any] | None:
    """Option names, or {name: type annotation} (read-only), or None."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise TypeError
        return MappingProxyType(dict(value))  # the registration's own dict stays the plugin's
    return _names(value)


def _mapping(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise TypeError
    return dict(value)


def _option_dicts(value: Any) -> tuple[dict[str, Any], ...]:
    return tuple(_mapping(v) for v in _sequence(value))


def _split_options(value: Any) -> dict[str, dict[str, Any]]:
    out = {split: _mapping(v) for split, v in _mapping(value).items()}
    if set(out) - set(SPLITS):
        raise ValueError
    return out


DISTILL_KEYS = ("detector", "detector_options", "train")


def _distill_settings(value: Any) -> dict[str, Any]:
    out = _mapping(value)
    if set(out) - set(DISTILL_KEYS) or not isinstance(out.get("detector", ""), str) \
            or any(k in out and not isinstance(out[k], Mapping) for k in ("detector_options", "train")):
        raise ValueError
    return {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in out.items()}


def _callable_or_none(value: Any) -> Callable[..., Any] | None:
    if value is not None and not callable(value):
        raise TypeError
    return value


def _positive_int_or_none(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TypeError
    return value


_REQUIRED = dataclasses.MISSING


def _field(expects: str, convert: Callable[[Any], Any], default: Any = _REQUIRED, *,
           factory: Callable[[], Any] | None = None) -> Any:
    """A declared metadata field: ``expects`` says in words what it takes (error messages), ``convert`` checks
    and normalises a given value."""
    metadata = {"expects": expects, "convert": convert}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    if default is _REQUIRED:
        return dataclasses.field(metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


_OPTIONS_EXPECTS = "a sequence of option names, a mapping of option name -> type (e.g. {'n': int}), or None"


# -- one class per kind -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CamMeta:
    """A CAM method declares nothing besides its description (its cost, gradient needs and whether it can be a
    train-cam are class attributes of the method: ``cost``, ``needs_gradients``, ``train_time``)."""


@dataclass(frozen=True)
class ExecutorMeta:
    """An executor declares nothing besides its description (its options are its class's keywords)."""


@dataclass(frozen=True)
class DetectorMeta:
    """A detector declares nothing besides its description (its options are its factory's keywords)."""


@dataclass(frozen=True)
class BackboneMeta:
    """A backbone declares nothing besides its description (``namespace=`` and ``names=`` are arguments of
    ``register`` itself)."""


@dataclass(frozen=True)
class ModelMeta:
    """What a model's registration may say."""

    # small configurations that camkit's contract tests build (camkit.testing.check_model)
    examples: tuple[dict[str, Any], ...] = _field("a sequence of option dicts, e.g. ({'preset': 'cpu'},)",
                                                  _option_dicts, ())
    # the model's own presets: a recipe for another model maps onto the preset of its name, if listed here
    presets: tuple[str, ...] = _field("a sequence of preset names, e.g. ('official', 'cpu')", _names, ())
    # what `camkit list models` shows (None: the factory's keyword parameters); a mapping {name: type} also
    # declares each option's type and range, checked before the factory runs (camkit.registry.options)
    options: tuple[str, ...] | Mapping[str, Any] | None = _field(
        _OPTIONS_EXPECTS, _option_declarations, None)
    # False: the model picks no regions inside training, so the bench trains it once (one leaderboard row)
    train_cam: bool = _field("True or False", _bool, True)


@dataclass(frozen=True)
class DatasetMeta:
    """What a dataset's registration may say."""

    # example(folder) writes (or generates) a tiny instance and returns the factory options that read it
    example: Callable[[str], dict[str, Any]] | None = _field("a callable(folder) -> options dict, or None",
                                                             _callable_or_none, None)
    # {name: type} of options the factory takes through **options (its own annotations declare the rest)
    options: tuple[str, ...] | Mapping[str, Any] | None = _field(_OPTIONS_EXPECTS, _option_declarations, None)


@dataclass(frozen=True)
class RecipeSpec:
    """A recipe (``--preset NAME``): which model to train on which data, and how. Explicit options override
    every field; the recipe's model options apply to its own model, its data options to its own dataset
    (:mod:`camkit.bench.recipe` has the rules)."""

    model: str = _field("a registered model's name", _text)
    dataset: str = _field("a registered dataset's name", _text)
    model_options: dict[str, Any] = _field("a dict of model options", _mapping, factory=dict)
    dataset_options: dict[str, Any] = _field("a dict of dataset options (every split)", _mapping, factory=dict)
    split_options: dict[str, dict[str, Any]] = _field(
        f"a dict of split ({', '.join(SPLITS)}) -> dataset options", _split_options, factory=dict)
    train: dict[str, Any] = _field("a dict of TrainConfig fields", _mapping, factory=dict)
    eval_batch_size: int | None = _field("a positive int, or None (8)", _positive_int_or_none, None)
    # camkit distill's detector on this recipe's data: its name, options and training (TrainConfig fields)
    distill: dict[str, Any] = _field("a dict with keys among detector (a name), detector_options (a dict) and "
                                     "train (a dict of TrainConfig fields)", _distill_settings, factory=dict)
    # the recipe `camkit bench` runs without --preset; exactly one registered recipe may say so
    default: bool = _field("True or False", _bool, False)


META_OF_KIND: dict[str, type] = {"cam": CamMeta, "model": ModelMeta, "dataset": DatasetMeta,
                                 "backbone": BackboneMeta, "recipe": RecipeSpec, "executor": ExecutorMeta,
                                 "detector": DetectorMeta}


def allowed_keys(kind: str) -> list[str]:
    """The metadata keys ``kind``'s registration declares, in order."""
    return [f.name for f in dataclasses.fields(META_OF_KIND[kind])]


def build_meta(kind: str, given: Mapping[str, Any], *, plugin: str, name: str) -> Any:
    """``kind``'s metadata object from a registration's keywords, every key and value checked.

    Raises MetadataError (naming ``plugin``, the entry ``name`` and the key) for an unknown key, a value of the
    wrong type, or a required key left out.
    """
    cls = META_OF_KIND[kind]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in given.items():
        spec = fields.get(key)
        if spec is None:
            hint = _MOVED.get(key) or did_you_mean(key, list(fields))
            raise MetadataError(plugin, kind, name, f"the unknown key {key!r}.{hint} {_allowed(kind)}")
        try:
            values[key] = spec.metadata["convert"](value)
        except (TypeError, ValueError):
            raise MetadataError(plugin, kind, name, f"{key}={_short(value)}: {key} takes "
                                f"{spec.metadata['expects']}") from None
    missing = [f.name for f in fields.values() if f.name not in values
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise MetadataError(plugin, kind, name, f"no {', '.join(map(repr, missing))}: "
                            + "; ".join(f"{k} takes {fields[k].metadata['expects']}" for k in missing))
    return cls(**values)


# keys camkit once took that now live elsewhere: say where, not just "unknown"
_MOVED = {"prepare": " A `camkit prepare NAME` command is added by the plugin's register_commands(prepare) hook: "
                     "prepare.add_command(cmd)."}


def _allowed(kind: str) -> str:
    keys = allowed_keys(kind)
    word = KIND_WORDS.get(kind, kind).removeprefix("the ")
    if not keys:
        return f"A {word}'s registration takes no keys besides description."
    return f"A {word}'s registration takes: {', '.join(keys)} (and description)."


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
