"""The hooks a camkit plugin may implement.

The four registration hooks receive a ``register(name, factory, **meta)`` callback owned by the core;
``register_commands`` receives the ``camkit`` command group and adds click commands to it.
"""
import pluggy

hookspec = pluggy.HookspecMarker("camkit")
hookimpl = pluggy.HookimplMarker("camkit")


@hookspec
def register_cams(register):
    """Register activation-map methods: ``register("xgradcam", XGradCAM)`` (a CAMMethod subclass)."""


@hookspec
def register_models(register):
    """Register model factories: ``register("gmic", create_gmic)``; called as ``factory(train_cam=..., **options)``."""


@hookspec
def register_datasets(register):
    """Register dataset factories: ``register("vindr", create_vindr)``; called as
    ``factory(split=..., size=(H, W), seed=..., **options)``."""


@hookspec
def register_backbones(register):
    """Register backbone factories (``namespace=True`` serves every ``name:<sub-name>``)."""


@hookspec
def register_commands(cli):
    """Add click commands to the ``camkit`` command line: ``@cli.command() def prepare(...)``."""
