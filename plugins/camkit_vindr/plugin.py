"""The VinDr-Mammo dataset plugin: registers ``vindr`` (heavy imports wait for the first use)."""
from __future__ import annotations

from typing import Any

from camkit import hookimpl


def create_vindr(**kwargs: Any):
    """VinDr-Mammo (PhysioNet layout): mass vs normal, official split + seeded val, balanced subsets."""
    from .dataset import VinDrDataset

    return VinDrDataset(**kwargs)


@hookimpl
def register_datasets(register):
    register("vindr", create_vindr,
             description="VinDr-Mammo (PhysioNet 1.0.0 DICOMs + CSVs): mass vs normal, balanced, cached")


@hookimpl
def register_commands(cli):
    from .commands import prepare_cmd

    cli.add_command(prepare_cmd)
