"""Exceptions with messages that say what went wrong and what to do."""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class CamkitError(Exception):
    """Base class of every error camkit raises on purpose."""


class UnknownNameError(CamkitError, KeyError):
    """A name that no plugin registered; the message lists close matches and what is available."""

    def __init__(self, kind: str, name: str, available: Iterable[str]):
        available = sorted(available)
        close = difflib.get_close_matches(name, available, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        shown = ", ".join(available[:40]) + (" ..." if len(available) > 40 else "")
        self.kind, self.name, self.close, self.available = kind, name, close, available
        super().__init__(f"unknown {kind} {name!r}.{hint} Available: {shown or '(none)'}")

    def __str__(self) -> str:  # KeyError would quote the whole message
        return self.args[0]


class RegistrationError(CamkitError):
    """A plugin registered something invalid or a name another plugin already owns."""


class PluginError(CamkitError):
    """A plugin failed to import or raised inside a hook."""
