"""Raises inside its hook."""
from camkit import hookimpl


@hookimpl
def register_datasets(register):
    raise RuntimeError("database password not set")
