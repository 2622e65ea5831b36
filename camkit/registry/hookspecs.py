"""The hooks a camkit plugin may implement.

The registration hooks receive a ``register`` callback owned by the core: ``register(name, factory,
description=None, **fields)`` with the fields its kind declares (:mod:`camkit.registry.meta`; a recipe has no
factory). ``register_commands`` is the one way a plugin adds commands: to ``camkit`` itself and to
``camkit prepare``.
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
def register_recipes(register):
    """Register recipes (``--preset NAME``): ``register("cpu", model=..., dataset=..., model_options={...},
    train={...}, default=True)``; the fields are :class:`camkit.registry.meta.RecipeSpec`'s."""


@hookspec
def register_executors(register):
    """Register where a bench's cells run (``--executor NAME``): ``register("slurm", SlurmExecutor)``, a class
    called with the ``--executor-opt`` options whose ``run(cells, display, context)`` runs every
    :class:`camkit.bench.cell.CellSpec` (each through :func:`camkit.bench.cell.run_cell`, anywhere that sees the
    run folder) and returns the :class:`camkit.bench.executors.CellFailure` s."""


@hookspec
def register_detectors(register):
    """Register object detectors (``camkit distill``): ``register("fcos", create_fcos)``; called as
    ``factory(input_size=(H, W), **options)`` with the ``--detector-opt`` options, returning a
    :class:`camkit.protocols.Detector`."""


@hookspec
def register_commands(cli, prepare):
    """Add click commands: ``cli.add_command(cmd)`` (or ``@cli.command()``) makes ``camkit NAME``;
    ``prepare.add_command(cmd)`` makes ``camkit prepare NAME``, a dataset's cache builder. An implementation
    may take ``cli`` or ``prepare`` alone."""
