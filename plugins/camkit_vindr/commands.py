"""``camkit prepare vindr ROOT``: the VinDr-Mammo preprocessing cache (the plugin registers it with its dataset)."""
from __future__ import annotations

from pathlib import Path

import click

from camkit.errors import CamkitError


def _fail(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


@click.command("vindr")
@click.argument("root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--size", nargs=2, type=int, default=(2944, 1920), show_default=True, metavar="H W",
              help="the model's input size")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="cache folder  [default: $CAMKIT_CACHE/vindr or ~/.cache/camkit/vindr]")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="processes  [default: all cores]")
@click.option("--balanced/--all", default=True, show_default=True,
              help="cache the paper's balanced subsets, or every mass and normal image")
@click.option("--balance-by", type=click.Choice(["image", "box"]), default="image", show_default=True,
              help="'box' reproduces the paper's 1,978 / 474 counts")
@click.option("--val-fraction", type=float, default=0.1, show_default=True,
              help="share of training studies held out as val")
@click.option("--seed", type=int, default=0, show_default=True, help="seed of the val carve-out and balancing")
@click.option("--crop/--no-crop", default=True, show_default=True, help="crop to the breast")
@click.option("--flip/--no-flip", default=True, show_default=True, help="mirror right views to face right")
@click.option("--voi/--no-voi", default=True, show_default=True, help="apply the DICOM VOI LUT / window")
@click.option("--skip-bad", is_flag=True, help="record unreadable images in the manifest and go on")
@click.option("--quiet", is_flag=True, help="no progress display")
def prepare_cmd(root: Path, size: tuple[int, int], out: Path | None, workers: int | None,
                balanced: bool, balance_by: str, val_fraction: float, seed: int, crop: bool, flip: bool,
                voi: bool, skip_bad: bool, quiet: bool) -> None:
    """Preprocess VinDr-Mammo at ROOT once into a cache of resized uint16 arrays (resumable, parallel).

    Train with the same options and cache=OUT, e.g.
    create_dataset("vindr", root=ROOT, size=(H, W), cache=OUT).
    """
    from camkit.ui.progress import prepare_sink
    from camkit_vindr.cache import prepare
    from camkit_vindr.dataset import records_for_prepare
    from camkit_vindr.preprocess import Settings

    try:
        settings = Settings(size=size, crop=crop, flip=flip, voi=voi)
        skipped_rows: list[tuple[str, str]] = []
        records_for = records_for_prepare(root, balanced=balanced, val_fraction=val_fraction, seed=seed,
                                          balance_by=balance_by, skip_bad=skip_bad, skipped=skipped_rows)
        report = prepare(root, records_for, settings, cache=out, workers=workers, skip_bad=skip_bad,
                         progress=prepare_sink(not quiet))
    except (CamkitError, ValueError) as exc:
        raise _fail(exc) from None
    skipped = skipped_rows + report.skipped
    click.echo(f"{report.total} images in {report.cache_dir} ({report.written} written, {report.reused} already "
               f"there) in {report.seconds:.1f} s; {len(skipped)} skipped")
    for where, reason in skipped:
        click.echo(f"  skipped {where}: {reason}")
