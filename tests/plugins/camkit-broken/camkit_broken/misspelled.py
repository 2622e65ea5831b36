"""Implements a hook camkit does not have (register_cam instead of register_cams)."""
from camkit import hookimpl


@hookimpl
def register_cam(register):
    register("never-seen", object)
