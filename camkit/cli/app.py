"""The ``camkit`` command group: camkit's own commands, plus the ones plugins add through ``register_commands``.

Every command is thin: parse, validate, call the API, print. A :class:`camkit.errors.CamkitError` becomes one
line on stderr and exit status 1, never a traceback.
"""
from __future__ import annotations

import click

from camkit import __version__


class CamkitGroup(click.Group):
    """Turns camkit's errors into one-line messages and loads plugin commands on first use (not at import)."""

    _plugin_commands_loaded = False

    def _load_plugin_commands(self) -> None:
        if self._plugin_commands_loaded:
            return
        self._plugin_commands_loaded = True
        from camkit.registry.host import get_host

        get_host().add_commands(self, reserved=set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str):
        if cmd_name not in self.commands:
            self._load_plugin_commands()
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugin_commands()
        return super().list_commands(ctx)

    def invoke(self, ctx: click.Context):
        from camkit.errors import CamkitError

        try:
            return super().invoke(ctx)
        except CamkitError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=CamkitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="camkit")
def main() -> None:
    """camkit: benchmark class-activation-map methods for weakly supervised mass detection."""
    from camkit.training.allocator import keep_freed_memory

    keep_freed_memory()  # ~20% faster CPU steps, same numbers (camkit.training.allocator)


def _add_core_commands() -> None:
    from camkit.cli import bench, explain, inspect, prepare, report, train

    for module in (inspect, train, bench, explain, prepare, report):
        for command in module.commands:
            main.add_command(command)


_add_core_commands()
