"""Calling a registered factory with the user's options, refusing an option it does not take by name.

A factory with explicit keyword parameters is checked before it is called, so a mistyped ``--model-opt`` or
``--dataset-opt`` key costs nothing and names the close matches; a factory with ``**options`` checks its own
(and a ``TypeError`` about an unexpected keyword at the call becomes the same message).
"""
from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

from camkit.errors import OptionError, did_you_mean


def factory_options(factory: Callable[..., Any]) -> tuple[list[str], bool]:
    """The keyword parameters of ``factory`` and whether it also takes ``**options``."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return [], True
    names = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return names, any(p.kind is p.VAR_KEYWORD for p in params)


def call_factory(factory: Callable[..., Any], what: str, options: dict[str, Any], *args: Any) -> Any:
    """``factory(*args, **options)``; an option ``factory`` does not take raises OptionError naming ``what``
    (e.g. ``"dataset 'synthetic'"``), the option and the valid ones."""
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
                 ("backbone", "--model-opt KEY=VALUE"), ("CAM method", "--cam-opt METHOD.KEY=VALUE"))


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
