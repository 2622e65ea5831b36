"""Option parsing shared by the CLI commands."""
from __future__ import annotations

import json
from typing import Any

import click

from camkit.errors import OptionError

from camkit.ui.output import FORMATS

format_option = click.option("--format", "fmt", type=click.Choice(FORMATS), default="auto", show_default=True,
                             help="table on a terminal, plain otherwise; json/csv/markdown for scripts")


class PresetChoice(click.Choice):
    """A registered recipe's name (``--preset``): the choices are read from the plugin registry when asked, so a
    recipe registered after this module was imported counts, and a bad value's error lists the registered ones.
    Nothing is loaded at import time."""

    name = "preset"

    def __init__(self) -> None:
        super().__init__(())

    @property
    def choices(self) -> tuple[str, ...]:  # type: ignore[override]
        from camkit.registry.api import list_recipes

        return tuple(list_recipes(sort=False))  # as the plugins list them: the default first

    @choices.setter
    def choices(self, value: Any) -> None:  # click's __init__ assigns them; the registry stays the source
        pass


def parse_options(pairs: tuple[str, ...], what: str) -> dict[str, Any]:
    """KEY=VALUE pairs; values parsed as JSON when they can be (numbers, lists, true/false).

    A key given twice is refused (which one was meant is a guess).
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise OptionError(f"{what} {pair!r} is not KEY=VALUE (e.g. {what} n=400)")
        if key in out:
            raise OptionError(f"{what} {key}= is given twice; keep one")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def parse_cam_options(pairs: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """``--cam-opt NAME.KEY=VALUE`` pairs -> {method name: {key: value}} (values as in :func:`parse_options`)."""
    grouped: dict[str, list[str]] = {}
    for pair in pairs:
        target, sep, rest = pair.partition(".")
        if not sep or not target or "=" not in rest:
            raise OptionError(f"--cam-opt {pair!r} is not METHOD.KEY=VALUE (e.g. --cam-opt scorecam.chunk=64)")
        grouped.setdefault(target, []).append(rest)
    return {name: parse_options(tuple(items), f"--cam-opt {name}.") for name, items in grouped.items()}


def check_val_split(value: str) -> str | None:
    """``camkit train --val-split``: a split camkit knows (:data:`camkit.protocols.SPLITS`), or None for
    ``none``; anything else is an OptionError now, before a model or dataset is built."""
    from camkit.protocols import SPLITS

    if value.lower() == "none":
        return None
    if value not in SPLITS:
        raise OptionError(f"--val-split {value}: choose one of {', '.join(SPLITS)}, or none (no validation)")
    return value
