"""``camkit plugins`` and ``camkit list``: what is installed and registered."""
from __future__ import annotations

import click

from camkit.cli.options import format_option
from camkit.ui.output import render


@click.command()
@format_option
def plugins(fmt: str) -> None:
    """Show every plugin camkit found, its version and what it provides."""
    from camkit.registry.host import get_host

    host = get_host()
    rows = []
    for info in host.plugins.values():
        provides = {k: [e.name for e in host.registry.entries(k) if e.plugin == info.name]
                    for k in ("cam", "model", "dataset", "backbone", "recipe", "executor", "detector")}
        rows.append({"name": info.name, "version": info.version, "distribution": info.distribution,
                     "builtin": info.builtin, "status": "ok" if info.ok else "error",
                     "provides": ", ".join(f"{k}s: {' '.join(v)}" for k, v in provides.items() if v),
                     "error": info.error or "", "warnings": info.warnings})
    columns = ["name", "version", "distribution", "status", "provides"]
    if any(r["error"] for r in rows):
        columns.append("error")
    render(rows, columns, fmt, title="camkit plugins")


@click.command("list")
@click.argument("kind", type=click.Choice(["cams", "models", "datasets", "backbones", "recipes", "executors",
                                          "detectors", "metrics"]))
@click.argument("pattern", required=False)
@format_option
def list_cmd(kind: str, pattern: str | None, fmt: str) -> None:
    """List registered cams, models, datasets, backbones, recipes (--preset), executors (--executor) or
    detectors (camkit distill), or the metric table (PATTERN: a glob, e.g. 'timm:resnet*')."""
    if kind == "metrics":
        from camkit.bench.metric_table import describe as describe_metrics

        rows = describe_metrics(pattern)
    else:
        from camkit.registry.api import describe

        rows = describe(kind[:-1], pattern)
    columns = {"cams": ["name", "plugin", "cost", "gradients", "train_cam", "description"],
               "models": ["name", "plugin", "presets", "options", "description"],
               "recipes": ["name", "plugin", "model", "dataset", "default", "description"],
               "detectors": ["name", "plugin", "options", "description"],
               "metrics": ["name", "family", "direction", "needs", "record", "bootstrap", "description"]}.get(
        kind, ["name", "plugin", "description"])
    render(rows, columns, fmt, title=f"camkit {kind}")


commands = [plugins, list_cmd]
