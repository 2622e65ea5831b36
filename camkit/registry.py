"""Name -> factory tables, filled only through the ``register`` callbacks the core hands to plugins."""
from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .errors import RegistrationError, UnknownNameError

KINDS = ("cam", "model", "dataset", "backbone")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.+-]*$")


@dataclass(frozen=True)
class Entry:
    """One registered name: what creates it and which plugin owns it."""

    kind: str
    name: str
    factory: Callable[..., Any]
    plugin: str
    description: str = ""
    namespace: bool = False  # serves "name:<sub-name>", e.g. "timm:resnet18"
    names: Callable[[], Iterable[str]] | None = None  # lists the sub-names of a namespace
    meta: dict = field(default_factory=dict)


class Registry:
    """All registered entries, by kind. Plugins never touch it directly."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Entry]] = {k: {} for k in KINDS}

    def register_callback(self, kind: str, plugin: str) -> Callable[..., None]:
        """The ``register`` function given to ``plugin``'s hook for ``kind``."""

        def register(name: str, factory: Callable[..., Any], *, description: str | None = None,
                     namespace: bool = False, names: Callable[[], Iterable[str]] | None = None,
                     **meta: Any) -> None:
            self.add(Entry(kind, name, factory, plugin, description or _first_line(factory),
                           namespace, names, meta))

        register.__doc__ = f"Register a {kind}: register(name, factory, description=None, **meta)."
        return register

    def add(self, entry: Entry) -> None:
        if not isinstance(entry.name, str) or not _NAME.match(entry.name):
            raise RegistrationError(
                f"plugin {entry.plugin!r} registered the {entry.kind} name {entry.name!r}; names must be "
                "lowercase letters, digits and . _ + - (e.g. 'gradcampp')")
        if not callable(entry.factory):
            raise RegistrationError(
                f"plugin {entry.plugin!r} registered {entry.kind} {entry.name!r} with a non-callable factory "
                f"{entry.factory!r}")
        table = self._entries[entry.kind]
        if entry.name in table:
            other = table[entry.name].plugin
            raise RegistrationError(
                f"{entry.kind} {entry.name!r} is registered by both plugin {other!r} and plugin "
                f"{entry.plugin!r}; uninstall one of them or set CAMKIT_PLUGINS to choose")
        table[entry.name] = entry

    def remove_plugin(self, plugin: str) -> None:
        for table in self._entries.values():
            for name in [n for n, e in table.items() if e.plugin == plugin]:
                del table[name]

    def entries(self, kind: str, pattern: str | None = None) -> list[Entry]:
        """Entries of ``kind`` (namespaces expanded when they can list themselves), filtered by a glob."""
        out: list[Entry] = []
        for entry in self._entries[kind].values():
            out.append(entry)
            if entry.namespace and entry.names is not None and pattern and ":" in pattern:
                out.extend(Entry(kind, f"{entry.name}:{sub}", entry.factory, entry.plugin, entry.description)
                           for sub in entry.names())
        if pattern:
            out = [e for e in out if fnmatch.fnmatch(e.name, pattern)]
        return sorted(out, key=lambda e: e.name)

    def get(self, kind: str, name: str) -> tuple[Entry, str | None]:
        """The entry serving ``name`` and, for a namespace, the sub-name after the colon."""
        table = self._entries[kind]
        if name in table and not table[name].namespace:
            return table[name], None
        prefix, sep, sub = name.partition(":")
        if sep and prefix in table and table[prefix].namespace and sub:
            return table[prefix], sub
        shown = [n + (":<name>" if e.namespace else "") for n, e in table.items()]
        raise UnknownNameError(kind, name, shown)


def _first_line(obj: Any) -> str:
    doc = getattr(obj, "__doc__", None) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""
