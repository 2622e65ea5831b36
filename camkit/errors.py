"""camkit's one error hierarchy: every error raised on purpose says what went wrong and what to do.

::

    CamkitError                      the CLI prints these as one line and exits 1
    ├── UnknownNameError             a name no plugin registered (also a KeyError); lists close matches
    ├── RegistrationError            a plugin registered something invalid
    ├── OptionError                  an option with a bad name or value (also a ValueError)
    ├── CheckpointError              a checkpoint that is missing, unsafe to unpickle, damaged or does not fit
    ├── ContractError                a plugin object that breaks the model / dataset / CAM contract
    └── DataError                    a dataset, annotation file or image that cannot be used
        └── ImageReadError           one image file that cannot be read
"""
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
    """A plugin registered something invalid (a bad name, a non-callable factory, a taken name)."""


class OptionError(CamkitError, ValueError):
    """An option whose name is unknown or whose value is invalid; the message names the option."""


class CheckpointError(CamkitError):
    """A checkpoint file that is missing, unsafe to unpickle, damaged, or does not fit the model."""


class ContractError(CamkitError):
    """A model, dataset or CAM method that does not follow camkit's contract (see camkit.protocols)."""


class DataError(CamkitError):
    """A dataset, annotation file or image that cannot be used as given."""


class ImageReadError(DataError):
    """An image file that is missing, unreadable or not a greyscale picture camkit understands."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """`` Did you mean 'x'?`` for the closest of ``choices``, or an empty string."""
    close = difflib.get_close_matches(name, sorted(choices), n=3, cutoff=0.5)
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
