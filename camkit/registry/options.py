"""Calling a registered factory with the user's options: every option checked against its declaration first.

A factory with explicit keyword parameters is checked before it is called, so a mistyped ``--model-opt`` or
``--dataset-opt`` key costs nothing and names the close matches; a factory with ``**options`` checks its own
(and a ``TypeError`` about an unexpected keyword at the call becomes the same message).

**Types and ranges.** Every option a factory declares with a type is checked before the factory runs: the
factory's own annotations (``n: int``, ``flip: Literal["auto", "none"]``, ``size: tuple[int, int]``,
``k: float | None``), narrowed by a :class:`Range` in ``typing.Annotated`` (``Annotated[int, Range(min=1)]``),
plus the ``options={name: type}`` mapping of a registration for the options a factory takes through
``**options`` (a model's config fields). A value of the wrong type or out of range raises one OptionError line
naming the option, the plugin and what it takes::

    --dataset-opt n=-5: dataset 'synthetic' takes n as an integer >= 1 (got -5)

Understood: ``int``, ``float``, ``bool``, ``str``, paths, ``None``, ``Literal[...]``, unions (``X | None``),
``tuple[X, Y]``, ``tuple[X, ...]``, ``list[X]``, ``Sequence[X]``, ``dict``/``Mapping``; anything else (``Any``,
a class of the plugin's own) is left to the factory.
"""
from __future__ import annotations

import collections.abc
import inspect
import json
import numbers
import os
import pathlib
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from camkit.errors import OptionError, did_you_mean


@dataclass(frozen=True)
class Range:
    """An inclusive bound on a numeric option, declared as ``Annotated[int, Range(min=1)]``; on a list type
    (``Annotated[tuple[int, int], Range(1, 16384)]``) it bounds every element. ``why`` follows the refusal."""

    min: float | None = None
    max: float | None = None
    why: str = ""


#: the largest image side camkit accepts for a model's input (or crop): one 16384 x 16384 float32 image is 1 GiB,
#: and a network's activations are tens of times that
MAX_IMAGE_SIDE = 16384
#: ``(H, W)`` of a model's input: integers from 1 to :data:`MAX_IMAGE_SIDE`
ImageSize = Annotated[tuple[int, int], Range(1, MAX_IMAGE_SIDE, why=f"{MAX_IMAGE_SIDE} pixels per side is camkit's "
                                                                    "limit: larger tensors cannot be allocated")]


def factory_options(factory: Callable[..., Any]) -> tuple[list[str], bool]:
    """The keyword parameters of ``factory`` and whether it also takes ``**options``."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return [], True
    names = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return names, any(p.kind is p.VAR_KEYWORD for p in params)


def option_types(factory: Callable[..., Any], declared: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """{option: type annotation}: ``factory``'s annotated keyword parameters (a class's ``__init__``'s), with the
    registration's ``declared`` types over them."""
    names = set(factory_options(factory)[0])
    target = factory.__init__ if inspect.isclass(factory) else factory  # type: ignore[misc]
    out = {k: v for k, v in _hints(target).items() if k in names}
    out.update(declared or {})
    return out


def config_options(cls: type, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """{field: its annotation, or None} of a config dataclass, for a registration's ``options=``: a model whose
    factory takes its config's fields through ``**options`` declares them this way (None: the preset's value)."""
    import dataclasses

    hints = _hints(cls)
    return {f.name: typing.Optional[hints[f.name]] if f.name in hints else Any  # noqa: UP007 - Annotated inside
            for f in dataclasses.fields(cls) if f.name not in exclude}


def _hints(target: Any) -> dict[str, Any]:
    """The evaluated annotations of ``target``; one that cannot be evaluated (a name imported only for type
    checkers) is left out rather than failing the call."""
    try:
        return typing.get_type_hints(target, include_extras=True)
    except Exception:  # noqa: BLE001 - any failure to evaluate: fall back to one annotation at a time
        pass
    out: dict[str, Any] = {}
    namespace = getattr(target, "__globals__", {})
    for name, ann in getattr(target, "__annotations__", {}).items():
        try:
            out[name] = eval(ann, namespace) if isinstance(ann, str) else ann  # noqa: S307 - the plugin's own code
        except Exception:  # noqa: BLE001
            continue
    return out


def describe_type(annotation: Any, plural: bool = False) -> str | None:
    """What ``annotation`` takes, in words ("an integer >= 1"), or None where camkit does not check it."""
    base, ranges = _split(annotation)
    origin, args = typing.get_origin(base), typing.get_args(base)
    if origin in (Union, types.UnionType):
        parts = [describe_type(a, plural) for a in args if a is not type(None)]
        return None if None in parts else " or ".join(dict.fromkeys(parts))  # type: ignore[arg-type]
    if origin is Literal:
        return ("one of " if not plural else "values among ") + ", ".join(map(_show, args))
    if base in _WORDS:
        return _WORDS[base][plural] + _range_text(ranges)
    element = _elements(base, ranges)
    if element is not None:
        inner, count = element
        words = [describe_type(a, True) for a in inner]
        if None in words:
            return None
        if count is None:
            return "a list of " + words[0]  # type: ignore[operator]
        same = len(set(words)) == 1
        return f"a list of {count} " + (words[0] if same else f"values ({', '.join(words)})")  # type: ignore[arg-type]
    if base in (dict, Mapping, collections.abc.Mapping) or origin in (dict, collections.abc.Mapping):
        return "mappings (JSON objects)" if plural else "a mapping (a JSON object)"
    return None


def matches(annotation: Any, value: Any, bounded: bool = True) -> bool:
    """Whether ``value`` is of ``annotation``'s type and (``bounded``) within its ranges (True where it is not
    checked)."""
    base, ranges = _split(annotation)
    origin, args = typing.get_origin(base), typing.get_args(base)
    if origin in (Union, types.UnionType):
        return any(matches(a, value, bounded) for a in args)
    if origin is Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if base is type(None):
        return value is None
    if base in _WORDS:
        return _IS[base](value) and (not bounded or _in_range(value, ranges))
    element = _elements(base, ranges)
    if element is not None:
        inner, count = element
        if not isinstance(value, (list, tuple)) or (count is not None and len(value) != count):
            return False
        return all(matches(inner[0] if count is None else inner[i], v, bounded) for i, v in enumerate(value))
    if base in (dict, Mapping, collections.abc.Mapping) or origin in (dict, collections.abc.Mapping):
        return isinstance(value, Mapping)
    return True


def _split(annotation: Any) -> tuple[Any, tuple[Range, ...]]:
    """``Annotated[T, Range(...), ...]`` -> (T, its ranges); anything else -> (it, ())."""
    if typing.get_origin(annotation) is Annotated:
        base, *extras = typing.get_args(annotation)
        return base, tuple(e for e in extras if isinstance(e, Range))
    return annotation, ()


def _elements(base: Any, ranges: tuple[Range, ...]) -> tuple[list[Any], int | None] | None:
    """A list type's element annotations (the ranges passed on to each) and its fixed length (None: any)."""
    origin, args = typing.get_origin(base), typing.get_args(base)
    if base in (tuple, list) or origin in (tuple, list, collections.abc.Sequence):
        inner = list(args) or [Any]
        count = None if origin is not tuple or not args or args[-1] is Ellipsis else len(args)
        inner = inner[:1] if count is None else inner
        return [Annotated[(a, *ranges)] if ranges else a for a in inner], count
    return None


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and v == v  # NaN is no number


def _is_path(v: Any) -> bool:
    return isinstance(v, (str, os.PathLike))  # a path where a str is declared too: roots given as Path objects


_WORDS = {int: ("an integer", "integers"), float: ("a number", "numbers"), bool: ("true or false", "booleans"),
          str: ("a string", "strings"), os.PathLike: ("a path", "paths"), pathlib.Path: ("a path", "paths")}
_IS: dict[Any, Callable[[Any], bool]] = {int: _is_int, float: _is_number, bool: lambda v: isinstance(v, bool),
                                         str: _is_path, os.PathLike: _is_path, pathlib.Path: _is_path}


def _in_range(value: Any, ranges: tuple[Range, ...]) -> bool:
    if not isinstance(value, numbers.Real):
        return True
    return all((r.min is None or value >= r.min) and (r.max is None or value <= r.max) for r in ranges)


def _range_text(ranges: tuple[Range, ...]) -> str:
    texts = []
    for r in ranges:
        if r.min is not None and r.max is not None:
            texts.append(f" from {r.min:g} to {r.max:g}")
        elif r.min is not None or r.max is not None:
            texts.append(f" >= {r.min:g}" if r.min is not None else f" <= {r.max:g}")
    return "".join(texts)


def _show(value: Any) -> str:
    """A value as the user typed it on the command line: text bare, everything else as JSON."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def check_options(what: str, options: Mapping[str, Any], types_: Mapping[str, Any]) -> None:
    """Raise OptionError for the first of ``options`` that its declared type in ``types_`` refuses, naming
    the command-line option that gives it, ``what`` (e.g. ``"dataset 'synthetic'"``) and what it takes."""
    for key, value in options.items():
        annotation = types_.get(key)
        if annotation is None or matches(annotation, value):
            continue
        takes = describe_type(annotation)
        if takes is None:
            continue
        flag, fixed = next(((f, k) for kind, f, k in _GIVEN_BY if what.startswith(kind)), ("", ()))
        name = re.search(r"'([^']*)'", what)
        flag = "" if key in fixed else flag.format(name=name.group(1) if name else "")
        # a bound's reason, where the value is of the right type but out of range
        why = "; ".join(r.why for r in _split_all(annotation) if r.why) if matches(annotation, value, False) else ""
        raise OptionError(f"{flag}{key}={_show(value)}: {what} takes {key} as {takes} (got {_show(value)})"
                          + (f"; {why}" if why else ""))


def _split_all(annotation: Any) -> list[Range]:
    """Every Range anywhere in ``annotation`` (under unions and list types too)."""
    base, ranges = _split(annotation)
    return [*ranges, *(r for a in typing.get_args(base) for r in _split_all(a))]


# the command-line option that gives a kind's options (with the name of the CAM method), and the keywords camkit
# itself passes (a bad one is camkit's or the plugin's doing, not an option the user gave)
_GIVEN_BY = (("dataset", "--dataset-opt ", ("split", "size", "seed")), ("model", "--model-opt ", ("train_cam",)),
             ("backbone", "--model-opt ", ()), ("CAM method", "--cam-opt {name}.", ()),
             ("executor", "--executor-opt ", ()), ("detector", "--detector-opt ", ("input_size",)))


def call_factory(factory: Callable[..., Any], what: str, options: dict[str, Any], *args: Any,
                 declared: Mapping[str, Any] | None = None) -> Any:
    """``factory(*args, **options)``; an option ``factory`` does not take raises OptionError naming ``what``
    (e.g. ``"dataset 'synthetic'"``), the option and the valid ones, and so does a value its declared type or
    range refuses (:func:`check_options`; ``declared``: the registration's ``options={name: type}``)."""
    names, open_ended = factory_options(factory)
    if not open_ended:
        for key in options:
            if key not in names:
                raise OptionError(_unknown(what, key, names))
    missing = [name for name in _required(factory)[len(args):] if name not in options]
    if missing:  # a TypeError from deep inside the call would name neither the plugin nor the option to give
        flag = next((f for kind, f in _OPTION_FLAGS if what.startswith(kind)), "an option")
        how = ("give the dataset's folder with --data PATH" if what.startswith("dataset") and missing == ["root"]
               else f"give {'it' if len(missing) == 1 else 'them'} with {flag}")
        raise OptionError(f"{what} needs {', '.join(map(repr, missing))}, which no option gave: {how}")
    check_options(what, options, option_types(factory, declared))
    try:
        return factory(*args, **options)
    except TypeError as exc:
        match = re.search(r"unexpected keyword argument '(\w+)'", str(exc))
        if match and match.group(1) in options and exc.__traceback__ is not None \
                and exc.__traceback__.tb_next is None:  # raised by the call itself, not deeper inside
            raise OptionError(_unknown(what, match.group(1), names)) from None
        raise


# which command-line option gives a registered factory its keyword options
_OPTION_FLAGS = (("dataset", "--dataset-opt KEY=VALUE"), ("model", "--model-opt KEY=VALUE"),
                 ("backbone", "--model-opt KEY=VALUE"), ("CAM method", "--cam-opt METHOD.KEY=VALUE"),
                 ("detector", "--detector-opt KEY=VALUE"))


def _required(factory: Callable[..., Any]) -> list[str]:
    """The parameters of ``factory`` without a default, in order (none where its signature is unknown)."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in params if p.default is p.empty
            and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _unknown(what: str, key: str, names: list[str]) -> str:
    valid = ", ".join(sorted(names)) or "(none)"
    return f"{what} has no option {key!r}.{did_you_mean(key, names)} Its options: {valid}"


def with_fields(options: Any, overrides: Mapping[str, Any], what: str) -> Any:
    """The frozen dataclass ``options`` with ``overrides`` given by field name, the keyword shorthand of camkit's
    options objects (``run_cams(..., output="y_global")``); an unknown name is the TypeError a keyword would
    give, naming ``what`` (e.g. "the FROC options") and its fields."""
    import dataclasses

    fields = [f.name for f in dataclasses.fields(options)]
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise TypeError(f"unexpected keyword argument(s) {', '.join(map(repr, unknown))}; {what} are "
                        f"{', '.join(fields)}")
    return dataclasses.replace(options, **overrides)
