"""The plugin manager: every plugin, built-in or third-party, arrives through the ``camkit`` entry points.

A plugin that fails to import, implements a hook camkit does not know, or raises inside a hook is reported
once on stderr by name and left out; everything else keeps working. A name two plugins register stays with
the one that loaded first (built-ins load first) and the other is told how to rename it.
"""
from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any

import pluggy

from camkit.registry import hookspecs
from camkit.errors import RegistrationError
from camkit.registry.meta import MetadataError
from camkit.registry.table import KINDS, Registry

ENTRY_POINT_GROUP = "camkit"
BUILTIN_DIST = "camkit"
_HOOK_OF_KIND = {"cam": "register_cams", "model": "register_models", "dataset": "register_datasets",
                 "backbone": "register_backbones", "recipe": "register_recipes",
                 "executor": "register_executors", "detector": "register_detectors"}
COMMANDS_HOOK = "register_commands"


@dataclass
class PluginInfo:
    """What ``camkit plugins`` shows for one plugin."""

    name: str
    version: str
    distribution: str
    builtin: bool
    module: str
    hooks: list[str] = field(default_factory=list)
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None


class PluginHost:
    """A pluggy manager plus the registry it fills, and the status of every plugin it tried."""

    def __init__(self, strict: bool = False) -> None:
        self.pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.registry = Registry()
        self.plugins: dict[str, PluginInfo] = {}
        self.strict = strict  # raise instead of reporting (camkit.testing.register_strictly)
        self._filled = False

    # -- loading -------------------------------------------------------------------------------------
    def load_entry_points(self, allowed: set[str] | None = None) -> None:
        """Import and register every entry point (``allowed``: third-party names to keep; built-ins always)."""
        found = _entry_points()
        if allowed:
            unknown = sorted(allowed - {ep.name for ep in found})
            if unknown:
                names = ", ".join(sorted(ep.name for ep in found if not _is_builtin(ep))) or "(none installed)"
                print(f"camkit: warning: CAMKIT_PLUGINS names {', '.join(map(repr, unknown))}, which no installed "
                      f"plugin provides; third-party plugins installed: {names}", file=sys.stderr)
        for ep in found:
            dist = ep.dist.name if ep.dist is not None else "?"
            version = ep.dist.version if ep.dist is not None else "?"
            builtin = _is_builtin(ep)
            if not builtin and allowed is not None and ep.name not in allowed:
                continue
            info = PluginInfo(ep.name, version, dist, builtin, ep.value)
            self.plugins[ep.name] = info
            try:
                module = ep.load()
            # any import failure must not take camkit down: sys.exit() and KeyboardInterrupt raised by a
            # plugin's module too (they would end every command without a word)
            except (Exception, SystemExit, KeyboardInterrupt) as exc:  # noqa: BLE001
                self._fail(info, f"failed to import {ep.value!r}: {_described(exc)}")
                continue
            self.register(module, name=ep.name, info=info)

    def register(self, plugin: ModuleType | Any, name: str, info: PluginInfo | None = None) -> PluginInfo:
        """Register a plugin object in-process (tests, notebooks); returns its status."""
        info = info or PluginInfo(name, getattr(plugin, "__version__", "?"), "(in-process)", False,
                                  getattr(plugin, "__name__", repr(plugin)))
        self.plugins[name] = info
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:  # noqa: BLE001
            self._fail(info, f"could not be registered: {type(exc).__name__}: {exc}")
            return info
        unknown = [impl.function.__name__ for impl in _hookimpls_of(self.pm, plugin)
                   if not hasattr(self.pm.hook, impl.function.__name__)
                   or getattr(self.pm.hook, impl.function.__name__).spec is None]
        if unknown:
            self.pm.unregister(plugin)
            known = ", ".join([*_HOOK_OF_KIND.values(), COMMANDS_HOOK])
            self._fail(info, f"implements unknown hook(s) {', '.join(unknown)}; camkit's hooks are: {known}")
            return info
        info.hooks = sorted({impl.function.__name__ for impl in _hookimpls_of(self.pm, plugin)})
        if self._filled:
            self._fill_from(name)
        return info

    def unregister(self, name: str) -> None:
        plugin = self.pm.get_plugin(name)
        if plugin is not None:
            self.pm.unregister(plugin)
        self.registry.remove_plugin(name)
        self.plugins.pop(name, None)

    def fill(self) -> None:
        """Call every plugin's registration hooks once, each plugin isolated from the others' failures."""
        self.pm.check_pending()  # every hook implementation left must match a spec
        for name in [n for n, i in self.plugins.items() if i.ok]:
            self._fill_from(name)
        self._filled = True

    def _fill_from(self, name: str) -> None:
        info = self.plugins[name]
        collisions: list[str] = []
        for kind in KINDS:
            caller = getattr(self.pm.hook, _HOOK_OF_KIND[kind])
            for impl in caller.get_hookimpls():
                if impl.plugin_name != name:
                    continue
                register = self.registry.register_callback(kind, name, builtin=info.builtin, strict=self.strict,
                                                           collisions=collisions)
                try:
                    impl.function(register=register)
                except (Exception, SystemExit, KeyboardInterrupt) as exc:  # noqa: BLE001
                    self.registry.remove_plugin(name)
                    if self.strict:
                        raise
                    # a declared field misused is the plugin's own mistake: say which, not where it surfaced
                    self._fail(info, exc.detail if isinstance(exc, MetadataError) else
                               f"raised in {_HOOK_OF_KIND[kind]}: {_described(exc)}")
                    return
        for message in collisions:
            info.warnings.append(message)
            print(f"camkit: warning: {message}.", file=sys.stderr)

    def add_commands(self, cli: Any, reserved: set[str], prepare: Any = None) -> None:
        """Let every loaded plugin add click commands (its ``register_commands`` hook): to ``cli`` (the
        ``camkit`` group) and to ``prepare`` (the ``camkit prepare`` group, when given).

        A plugin command may not take a name in ``reserved`` (camkit's own commands) or one another plugin
        took; it is left out with a warning saying so. A plugin whose hook raises is reported, not fatal.
        """
        taken = {"cli": reserved, "prepare": set(prepare.commands) if prepare is not None else set()}
        groups = {"cli": (cli, "camkit"), "prepare": (prepare, "camkit prepare")}
        for impl in getattr(self.pm.hook, COMMANDS_HOOK).get_hookimpls():
            info = self.plugins.get(impl.plugin_name)
            if info is None or not info.ok:
                continue
            # pluggy lets an implementation take a subset of the hook's arguments: give it those it names
            guards = {arg: _CommandGuard(groups[arg][0], impl.plugin_name, taken[arg], groups[arg][1])
                      for arg in impl.argnames}
            try:
                impl.function(**guards)
            except (Exception, SystemExit, KeyboardInterrupt) as exc:  # noqa: BLE001
                if self.strict:
                    raise
                self._fail(info, f"raised in {COMMANDS_HOOK}: {_described(exc)}")
                continue
            for arg, guard in guards.items():
                for message in guard.refused:
                    info.warnings.append(message)
                    print(f"camkit: warning: {message}.", file=sys.stderr)
                taken[arg] |= guard.added

    def _fail(self, info: PluginInfo, message: str) -> None:
        if self.strict:
            raise RegistrationError(f"plugin {info.name!r} {message}")
        info.error = message
        print(f"camkit: warning: plugin {info.name!r} ({info.distribution} {info.version}) {message}. "
              f"It is left out; fix or uninstall it, or set CAMKIT_PLUGINS to skip it.", file=sys.stderr)


class _CommandGuard:
    """What ``register_commands(cli, prepare)`` receives for each group: ``command(...)`` and
    ``add_command(cmd)`` as on a click group, refusing names that are taken."""

    def __init__(self, group: Any, plugin: str, reserved: set[str], where: str = "camkit"):
        self._group, self._plugin, self._reserved, self._where = group, plugin, reserved, where
        self.added: set[str] = set()
        self.refused: list[str] = []

    def add_command(self, cmd: Any, name: str | None = None) -> None:
        import click

        name = name or cmd.name
        if name in self._reserved or name in self.added:
            owner = ("a camkit command" if self._where == "camkit" else f"a `{self._where}` command") \
                if name in self._reserved else "another command of this plugin"
            self.refused.append(f"plugin {self._plugin!r} adds the command {name!r}, which is already "
                                f"{owner}; it is left out. Rename it in the plugin's register_commands")
            return
        if not isinstance(cmd, click.Command):
            raise TypeError(f"add_command needs a click command, got {type(cmd).__name__}")
        if self._group is None:
            raise TypeError(f"there is no `{self._where}` command group to add {name!r} to")
        self._group.add_command(cmd, name)
        self.added.add(name)

    def command(self, *args: Any, **kwargs: Any):
        import click

        def decorator(fn):
            cmd = click.command(*args, **kwargs)(fn)
            self.add_command(cmd)
            return cmd

        return decorator


def _hookimpls_of(pm: pluggy.PluginManager, plugin: Any) -> list:
    return [impl for caller in pm.get_hookcallers(plugin) or [] for impl in caller.get_hookimpls()
            if impl.plugin is plugin] + _unspecified_impls(pm, plugin)


def _unspecified_impls(pm: pluggy.PluginManager, plugin: Any) -> list:
    # pluggy keeps implementations of unknown hooks on spec-less callers; find those for this plugin.
    out = []
    for hook_name in dir(pm.hook):
        caller = getattr(pm.hook, hook_name)
        if isinstance(caller, pluggy.HookCaller) and caller.spec is None:
            out.extend(i for i in caller.get_hookimpls() if i.plugin is plugin)
    return out


def _described(exc: BaseException) -> str:
    """An exception in a plugin, as one phrase (sys.exit and Ctrl-C named as such)."""
    if isinstance(exc, SystemExit):
        return f"called sys.exit({exc.code!r})"
    if isinstance(exc, KeyboardInterrupt):
        return "raised KeyboardInterrupt"
    return f"{type(exc).__name__}: {exc}"


def _entry_points() -> list[metadata.EntryPoint]:
    eps = metadata.entry_points(group=ENTRY_POINT_GROUP)
    seen: dict[str, metadata.EntryPoint] = {}
    for ep in eps:  # an editable + a regular install can list one plugin twice
        seen.setdefault(ep.name, ep)
    return sorted(seen.values(), key=lambda e: (_canonical(e.dist.name if e.dist else "") != BUILTIN_DIST,
                                                e.name))


def _is_builtin(ep: metadata.EntryPoint) -> bool:
    return _canonical(ep.dist.name if ep.dist is not None else "") == BUILTIN_DIST


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-")


def _allowed_from_env() -> set[str] | None:
    raw = os.environ.get("CAMKIT_PLUGINS")
    if raw is None:
        return None
    return {p.strip() for p in raw.split(",") if p.strip()}


_host: PluginHost | None = None
_lock = threading.Lock()


def get_host() -> PluginHost:
    """The process-wide plugin host, loaded on first use (never at import time)."""
    global _host
    with _lock:
        if _host is None:
            host = PluginHost()
            host.load_entry_points(_allowed_from_env())
            host.fill()
            _host = host
        return _host


def reset() -> None:
    """Forget the loaded plugins; the next call reloads them (tests, or after installing a plugin)."""
    global _host
    with _lock:
        _host = None
