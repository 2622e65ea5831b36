"""A plugin whose registration hook calls sys.exit."""
import sys

from camkit import hookimpl


@hookimpl
def register_models(register):
    sys.exit("plugin gave up")
