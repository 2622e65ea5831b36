"""Name -> factory tables, filled only through the ``register`` callbacks the core hands to plugins."""
from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from camkit.errors import RegistrationError, UnknownNameError
from camkit.registry.meta import META_OF_KIND, MetadataError, build_meta

KINDS = ("cam", "model", "dataset", "backbone", "recipe", "executor", "detector")
FACTORYLESS = ("recipe",)  # a recipe creates nothing: its entry is its typed metadata (a RecipeSpec)
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.+-]*$")


@dataclass(frozen=True)
class Entry:
    """One registered name: what creates it, which plugin owns it, and what the registration declared about it
    (``meta``: the kind's typed metadata, :mod:`camkit.registry.meta`; its defaults when None is given)."""

    kind: str
    name: str
    factory: Callable[..., Any] | None  # None for a recipe
    plugin: str
    description: str = ""
    namespace: bool = False  # serves "name:<sub-name>", e.g. "timm:resnet18"
    names: Callable[[], Iterable[str]] | None = None  # lists the sub-names of a namespace
    meta: Any = field(default=None)

    def __post_init__(self) -> None:
        if self.meta is None and self.kind not in FACTORYLESS:
            object.__setattr__(self, "meta", META_OF_KIND[self.kind]())


class Registry:
    """All registered entries, by kind. Plugins never touch it directly."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Entry]] = {k: {} for k in KINDS}
        self._builtin: set[str] = set()

    def register_callback(self, kind: str, plugin: str, *, builtin: bool = False, strict: bool = True,
                          collisions: list[str] | None = None) -> Callable[..., None]:
        """The ``register`` function given to ``plugin``'s hook for ``kind``.

        A name another plugin already owns raises RegistrationError when ``strict``; otherwise the earlier
        registration keeps the name and a message saying so (and how to rename) is appended to ``collisions``.
        """

        def claim(entry: Entry) -> None:
            owner = self.add(entry, builtin=builtin)
            if owner is None:
                return
            if owner.plugin == plugin:
                raise RegistrationError(f"plugin {plugin!r} registered the {kind} {entry.name!r} twice")
            who = "camkit's built-in plugin" if self.is_builtin(owner.plugin) else "plugin"
            message = (f"{kind} {entry.name!r} is registered by both {who} {owner.plugin!r} and plugin "
                       f"{plugin!r}; {owner.plugin!r} keeps the name (it loaded first). Rename it in {plugin!r}'s "
                       f"register call (e.g. '{plugin}-{entry.name}'), or set CAMKIT_PLUGINS to choose")
            if strict:
                raise RegistrationError(message)
            if collisions is not None:
                collisions.append(message)

        if kind in FACTORYLESS:
            def register_recipe(name: str, *, description: str | None = None, **fields: Any) -> None:
                _check_description(plugin, kind, name, description)
                meta = build_meta(kind, fields, plugin=plugin, name=str(name))
                claim(Entry(kind, name, None, plugin, description or "", meta=meta))

            register_recipe.__doc__ = (f"Register a {kind}: register(name, description=None, model=..., "
                                       f"dataset=..., **fields of camkit.registry.meta.RecipeSpec).")
            return register_recipe

        def register(name: str, factory: Callable[..., Any], *, description: str | None = None,
                     namespace: bool = False, names: Callable[[], Iterable[str]] | None = None,
                     **fields: Any) -> None:
            _check_description(plugin, kind, name, description)
            meta = build_meta(kind, fields, plugin=plugin, name=str(name))
            claim(Entry(kind, name, factory, plugin, description or first_sentence(factory), namespace, names,
                        meta))

        register.__doc__ = (f"Register a {kind}: register(name, factory, description=None, **fields of "
                            f"camkit.registry.meta.{META_OF_KIND[kind].__name__}).")
        return register

    def add(self, entry: Entry, builtin: bool = False) -> Entry | None:
        """Add ``entry``; returns the entry that already owns its name (which keeps it), or None.

        Raises RegistrationError for an invalid name or factory. A taken name is not an error here: the first
        registration wins (built-ins register first), and the caller reports the loser.
        """
        if not isinstance(entry.name, str) or not _NAME.match(entry.name):
            raise RegistrationError(
                f"plugin {entry.plugin!r} registered the {entry.kind} name {entry.name!r}; names must be "
                "lowercase letters, digits and . _ + - (e.g. 'gradcampp')")
        if entry.kind not in FACTORYLESS and not callable(entry.factory):
            raise RegistrationError(
                f"plugin {entry.plugin!r} registered {entry.kind} {entry.name!r} with a non-callable factory "
                f"{entry.factory!r}")
        table = self._entries[entry.kind]
        if entry.name in table:
            return table[entry.name]
        table[entry.name] = entry
        if builtin:
            self._builtin.add(entry.plugin)
        return None

    def is_builtin(self, plugin: str) -> bool:
        """Whether ``plugin`` is one of camkit's own (registered with ``builtin=True``)."""
        return plugin in self._builtin

    def remove_plugin(self, plugin: str) -> None:
        for table in self._entries.values():
            for name in [n for n, e in table.items() if e.plugin == plugin]:
                del table[name]

    def entries(self, kind: str, pattern: str | None = None, *, sort: bool = True) -> list[Entry]:
        """Entries of ``kind`` (namespaces expanded when they can list themselves), filtered by a glob; sorted by
        name, or in registration order (plugins load in a fixed order) with ``sort=False``."""
        out: list[Entry] = []
        for entry in self._entries[kind].values():
            out.append(entry)
            if entry.namespace and entry.names is not None and pattern and ":" in pattern:
                out.extend(Entry(kind, f"{entry.name}:{sub}", entry.factory, entry.plugin, entry.description,
                                 meta=entry.meta) for sub in entry.names())
        if pattern:
            out = [e for e in out if fnmatch.fnmatch(e.name, pattern)]
        return sorted(out, key=lambda e: e.name) if sort else out

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


def _check_description(plugin: str, kind: str, name: Any, description: Any) -> None:
    if description is not None and not isinstance(description, str):
        raise MetadataError(plugin, kind, str(name), f"description={description!r}: description takes a str "
                            "(or None: the factory docstring's first sentence)")


_ABBREVIATIONS = ("e.g.", "i.e.", "al.", "etc.", "vs.", "cf.", "approx.", "fig.", "eq.")


def first_sentence(obj: Any) -> str:
    """The whole first sentence of ``obj``'s docstring (it may span several lines), as one line."""
    doc = " ".join((getattr(obj, "__doc__", None) or "").split())
    for match in re.finditer(r"[.](?=\s|$)", doc):
        head = doc[: match.end()]
        if head.rsplit(" ", 1)[-1].lower().lstrip("(") not in _ABBREVIATIONS:
            return head
    return doc
