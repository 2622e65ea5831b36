"""The hooks a camkit plugin may implement. Each receives a ``register(name, factory, **meta)`` callback."""
import pluggy

hookspec = pluggy.HookspecMarker("camkit")
hookimpl = pluggy.HookimplMarker("camkit")


@hookspec
def register_cams(register):
    """Register activation-map methods: ``register("xgradcam", XGradCAM)`` (a CAMMethod subclass)."""


@hookspec
def register_models(register):
    """Register model factories: ``register("gmic", create_gmic)``; the factory takes keyword options."""


@hookspec
def register_datasets(register):
    """Register dataset factories: ``register("vindr", VinDrDataset)``; called with ``split=`` and options."""


@hookspec
def register_backbones(register):
    """Register backbone factories (``namespace=True`` serves every ``name:<sub-name>``)."""
