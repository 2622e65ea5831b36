"""``camkit prepare DATASET ROOT``: fill a dataset's preprocessing cache (:mod:`camkit.data.cache`).

A dataset plugin with a cache adds its own sub-command here through the one command hook,
``register_commands(prepare)`` -> ``prepare.add_command(cmd)``; this group lists and dispatches them, so
``camkit prepare --help`` shows every dataset that can be prepared.
"""
from __future__ import annotations

from typing import Any

import click


class PrepareGroup(click.Group):
    """The plugins' ``camkit prepare NAME`` commands, added on first use (plugins load lazily)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        _load_plugin_commands(ctx)
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            _load_plugin_commands(ctx)
        return super().get_command(ctx, cmd_name)

    def resolve_command(self, ctx: click.Context, args: list[str]):
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            known = ", ".join(self.list_commands(ctx)) or "none installed"
            raise click.UsageError(f"no dataset {name!r} with a cache to prepare (datasets that have one: {known}; "
                                   "the others read their files directly)", ctx)
        return super().resolve_command(ctx, args)


def _load_plugin_commands(ctx: click.Context) -> None:
    """The plugins add their commands through the top group (``camkit``), which loads them once."""
    root = ctx.find_root().command
    load = getattr(root, "add_plugin_commands", None)  # camkit's own group; a bare `prepare` has none
    if load is not None:
        load()


@click.group("prepare", cls=PrepareGroup)
def prepare() -> None:
    """Preprocess a dataset once into a cache of resized uint16 arrays (resumable, parallel).

    Then train with the same options and cache=OUT (e.g. --dataset-opt cache=OUT).
    """


commands = [prepare]


def cache_options(default_size: tuple[int, int]):
    """The options every dataset's prepare command shares: --size, --out, --workers, the preprocessing steps,
    --skip-bad and --quiet (a decorator for a plugin's click command)."""
    def decorate(f):
        for option in reversed([
            click.option("--size", nargs=2, type=int, default=default_size, show_default=True, metavar="H W",
                         help="the model's input size"),
            click.option("--out", type=click.Path(file_okay=False), default=None,
                         help="cache folder  [default: $CAMKIT_CACHE/<dataset> or ~/.cache/camkit/<dataset>]"),
            click.option("--workers", type=click.IntRange(min=1), default=None, help="processes  [default: all cores]"),
            click.option("--crop/--no-crop", default=True, show_default=True, help="crop to the breast"),
            click.option("--flip/--no-flip", default=True, show_default=True, help="orient every breast to face right"),
            click.option("--voi/--no-voi", default=True, show_default=True, help="apply the DICOM VOI LUT / window"),
            click.option("--skip-bad", is_flag=True, help="record unreadable images and bad rows, and go on"),
            click.option("--quiet", is_flag=True, help="no progress display"),
        ]):
            f = option(f)
        return f
    return decorate


def run_prepare(dataset: str, root: Any, records_for: Any, settings: Any, prepare_fn: Any, out: Any,
                workers: int | None, skip_bad: bool, quiet: bool, skipped_rows: list[tuple[str, str]]) -> None:
    """Fill the cache and print what was done and every file or row skipped, and why."""
    from camkit.data.cache import default_cache_dir, prepare as fill
    from camkit.errors import CamkitError
    from camkit.ui.progress import prepare_sink

    try:
        report = fill(root, records_for, settings, prepare_fn, out or default_cache_dir(dataset), workers=workers,
                      skip_bad=skip_bad, progress=prepare_sink(not quiet))
    except (CamkitError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    skipped = skipped_rows + report.skipped
    click.echo(f"{report.total} images in {report.cache_dir} ({report.written} written, {report.reused} already "
               f"there) in {report.seconds:.1f} s; {len(skipped)} skipped")
    for where, reason in skipped:  # reasons usually start with the file or row already
        click.echo(f"  skipped {reason}" if reason.startswith(where) else f"  skipped {where}: {reason}")
