"""Registers a model with a misspelt metadata key (examples): reported by name, the other plugins load."""
from camkit import hookimpl


@hookimpl
def register_models(register):
    register("half-typed", lambda train_cam=None: None, exmaples=({},))
