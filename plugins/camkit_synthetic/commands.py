"""``camkit synth``: write a synthetic data set to disk in a real dataset's layout (VinDr-Mammo, CBIS-DDSM,
INbreast) or as PNGs + CSV for ``folder``."""
from __future__ import annotations

from pathlib import Path

import click

from camkit.errors import CamkitError


@click.command("synth")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["vindr", "cbis-ddsm", "inbreast", "folder"]), default="vindr",
              show_default=True, help="vindr / cbis-ddsm / inbreast: that dataset's files, layout and quirks; "
              "folder: 16-bit PNGs + labels.csv for the folder dataset")
@click.option("--n", type=click.IntRange(min=1), default=None,
              help="studies (vindr, folder: 4 images each; default 8) or patients (cbis-ddsm: default 6, "
                   "inbreast: default 5)")
@click.option("--size", nargs=2, type=int, default=None, metavar="H W",
              help="every image's size  [default: the dataset's real sizes x --scale]")
@click.option("--scale", type=click.FloatRange(min=0.005, max=1.0), default=None,
              help="scale of the real sizes when --size is not given  [default: 1/8 for vindr and folder, 1/16 "
                   "for cbis-ddsm and inbreast]")
@click.option("--layout", type=click.Choice(["descriptive", "descriptive-no-na", "classic", "older"]),
              default="descriptive", show_default=True, help="cbis-ddsm: the folder layout the download has")
@click.option("--bad", is_flag=True, help="cbis-ddsm, inbreast: add the bad inputs a reader must report")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--difficulty", type=click.Choice(["easy", "default", "hard"]), default="default",
              show_default=True, help="synthetic mass contrast and size")
@click.option("--force", is_flag=True, help="write into a folder that already holds a data set")
def synth_cmd(directory: Path, fmt: str, n: int | None, size: tuple[int, int] | None, scale: float | None,
              layout: str, bad: bool, seed: int, difficulty: str, force: bool) -> None:
    """Write a synthetic data set with planted masses to DIRECTORY (VinDr-Mammo's, CBIS-DDSM's or INbreast's
    files, layout and quirks, or the folder dataset's PNG + labels.csv)."""
    from .export import FINDING_CSV, write_folder, write_vindr

    if fmt in ("cbis-ddsm", "inbreast"):
        _synth_lesion_set(directory, fmt, n, size, scale, layout, bad, seed, difficulty, force)
        return
    n, scale = n or 8, scale or 1 / 8
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


def _synth_lesion_set(directory: Path, fmt: str, n: int | None, size: tuple[int, int] | None, scale: float | None,
                      layout: str, bad: bool, seed: int, difficulty: str, force: bool) -> None:
    if directory.exists() and any(directory.iterdir()) and not force:
        raise click.ClickException(f"{directory} is not empty; choose another folder or pass --force to write "
                                   "into it.")
    options = {"size": tuple(size) if size else None, "seed": seed, "scale": scale or 1 / 16, "bad": bad,
               "difficulty": difficulty}
    try:
        if fmt == "cbis-ddsm":
            from .export_cbis import write_cbis

            written = write_cbis(directory, n=n or 6, layout=layout, **options)
            images = [im for im in written.images if im.bad is None]
            counts = ", ".join(f"{split}: {written.count(split, 1)} mass / {written.count(split, 0)} calc-only / "
                               f"{written.count(split, None)} calc copy of a mass view" for split in ("train", "test"))
        else:
            from .export_inbreast import write_inbreast

            written = write_inbreast(directory, n=n or 5, **options)
            images = [im for im in written.images if im.bad is None]
            labels = [im.label() for im in images]
            counts = f"{labels.count(1)} mass / {labels.count(0)} BI-RADS 1 / {labels.count(None)} other"
    except (CamkitError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    extra = f"; {len(written.images) - len(images)} bad inputs" if bad else ""
    click.echo(f"wrote {len(images)} images ({fmt}) to {directory} ({counts}{extra})")
