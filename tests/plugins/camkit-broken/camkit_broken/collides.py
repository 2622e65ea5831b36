"""Registers a name a built-in plugin already owns."""
from camkit import hookimpl


@hookimpl
def register_backbones(register):
    register("timm", lambda name: None)
