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
    try:
        return factory(*args, **options)
    except TypeError as exc:
        match = re.search(r"unexpected keyword argument '(\w+)'", str(exc))
        if match and match.group(1) in options and exc.__traceback__ is not None \
                and exc.__traceback__.tb_next is None:  # raised by the call itself, not deeper inside
            raise OptionError(_unknown(what, match.group(1), names)) from None
        raise


def _unknown(what: str, key: str, names: list[str]) -> str:
    valid = ", ".join(sorted(names)) or "(none)"
    return f"{what} has no option {key!r}.{did_you_mean(key, names)} Its options: {valid}"
