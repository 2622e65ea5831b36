"""The ``camkit`` command line: thin wrappers that parse, call the API and print."""
from __future__ import annotations

import click

from . import __version__
from .output import FORMATS, render

_format_option = click.option("--format", "fmt", type=click.Choice(FORMATS), default="auto", show_default=True,
                              help="table on a terminal, plain otherwise; json/csv/markdown for scripts")


class _Group(click.Group):
    """Turns camkit's own errors into a one-line message and exit code 1 instead of a traceback."""

    def invoke(self, ctx: click.Context):
        from .errors import CamkitError

        try:
            return super().invoke(ctx)
        except CamkitError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="camkit")
def main() -> None:
    """camkit: benchmark class-activation-map methods for weakly supervised mass detection."""


@main.command()
@_format_option
def plugins(fmt: str) -> None:
    """Show every plugin camkit found, its version and what it provides."""
    from .plugins import get_host

    host = get_host()
    rows = []
    for info in host.plugins.values():
        provides = {k: [e.name for e in host.registry.entries(k) if e.plugin == info.name]
                    for k in ("cam", "model", "dataset", "backbone")}
        rows.append({"name": info.name, "version": info.version, "distribution": info.distribution,
                     "builtin": info.builtin, "status": "ok" if info.ok else "error",
                     "provides": ", ".join(f"{k}s: {' '.join(v)}" for k, v in provides.items() if v),
                     "error": info.error or ""})
    columns = ["name", "version", "distribution", "status", "provides"]
    if any(r["error"] for r in rows):
        columns.append("error")
    render(rows, columns, fmt, title="camkit plugins")


@main.command("list")
@click.argument("kind", type=click.Choice(["cams", "models", "datasets", "backbones"]))
@click.argument("pattern", required=False)
@_format_option
def list_cmd(kind: str, pattern: str | None, fmt: str) -> None:
    """List registered cams, models, datasets or backbones (PATTERN: a glob, e.g. 'timm:resnet*')."""
    from .api import describe

    rows = describe(kind[:-1], pattern)
    render(rows, ["name", "plugin", "description"], fmt, title=f"camkit {kind}")


def _register_subcommands() -> None:
    # Commands of later capabilities live in their own modules; each is added only where it exists.
    from importlib import import_module

    for module_name, attr in (("camkit.cli_data", "commands"), ("camkit.cli_train", "commands"),
                              ("camkit.cli_bench", "commands")):
        try:
            module = import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        for command in getattr(module, attr):
            main.add_command(command)


_register_subcommands()
