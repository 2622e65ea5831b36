"""``camkit synth``: write a synthetic data set to disk (VinDr-Mammo's layout, or PNGs + CSV for ``folder``)."""
from __future__ import annotations

from pathlib import Path

import click

from camkit.errors import CamkitError


@click.command("synth")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["vindr", "folder"]), default="vindr", show_default=True,
              help="vindr: DICOMs + VinDr's CSVs; folder: 16-bit PNGs + labels.csv for the folder dataset")
@click.option("--n", type=click.IntRange(min=1), default=8, show_default=True, help="studies (4 images each)")
@click.option("--size", nargs=2, type=int, default=None, metavar="H W",
              help="every image's size  [default: VinDr's sizes x --scale]")
@click.option("--scale", type=click.FloatRange(min=0.005, max=1.0), default=1 / 8, show_default=True,
              help="scale of VinDr's real sizes when --size is not given")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--difficulty", type=click.Choice(["easy", "default", "hard"]), default="default",
              show_default=True, help="synthetic mass contrast and size")
@click.option("--force", is_flag=True, help="write into a folder that already holds a data set")
def synth_cmd(directory: Path, fmt: str, n: int, size: tuple[int, int] | None, scale: float, seed: int,
              difficulty: str, force: bool) -> None:
    """Write a synthetic data set with planted masses to DIRECTORY (VinDr-Mammo's layout and quirks, or the
    folder dataset's PNG + labels.csv)."""
    from .export import FINDING_CSV, write_folder, write_vindr

    marker = FINDING_CSV if fmt == "vindr" else "labels.csv"
    if (directory / marker).exists() and not force:
        raise click.ClickException(f"{directory} already holds a data set ({marker}); choose another "
                                   "folder or pass --force to write over it.")
    writer = write_vindr if fmt == "vindr" else write_folder
    try:
        written = writer(directory, n=n, size=tuple(size) if size else None, seed=seed, scale=scale,
                         difficulty=difficulty)
    except (CamkitError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    splits = ("training", "test") if fmt == "vindr" else ("train", "val", "test")
    counts = ", ".join(f"{split}: {written.count(split, 1)} mass / {written.count(split, 0)} normal"
                       + (f" / {written.count(split, None)} other" if fmt == "vindr" else "") for split in splits)
    click.echo(f"wrote {len(written.images)} images in {n} studies to {directory} ({counts})")
