"""The command line. ``camkit.cli.main`` is the ``camkit`` console script; each command lives in its own module."""
from camkit.cli.app import main

__all__ = ["main"]
