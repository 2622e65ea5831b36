"""``camkit prepare cbis-ddsm ROOT``: the CBIS-DDSM preprocessing cache (the plugin registers it with its dataset)."""
from __future__ import annotations

from pathlib import Path

import click

from camkit.cli.prepare import cache_options, run_prepare
from camkit.errors import CamkitError


@click.command("cbis-ddsm")
@click.argument("root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@cache_options(default_size=(2944, 1920))
@click.option("--negatives", type=click.Choice(["calc-only", "none"]), default="calc-only", show_default=True,
              help="calcification images of views without a mass, or no negatives")
@click.option("--exclude-shape", "exclude_shapes", multiple=True, metavar="SHAPE",
              help="a mass shape not counted as a mass (repeatable), e.g. ARCHITECTURAL_DISTORTION")
def prepare_cmd(root: Path, size, out, workers, crop, flip, voi, skip_bad, quiet, negatives, exclude_shapes) -> None:
    """Preprocess CBIS-DDSM at ROOT (images and ROI masks) once into a cache (resumable, parallel).

    Then create_dataset("cbis-ddsm", root=ROOT, size=(H, W), cache=OUT) with the same options.
    """
    from camkit.data.cache import Settings

    from .dataset import records_for_prepare
    from .preprocess import prepare_record

    skipped: list[tuple[str, str]] = []
    try:
        records_for = records_for_prepare(root, negatives=negatives, exclude_shapes=tuple(exclude_shapes),
                                          skip_bad=skip_bad, skipped=skipped)
        settings = Settings(size=size, crop=crop, flip=flip, voi=voi)
    except (CamkitError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    run_prepare("cbis-ddsm", root, records_for, settings, prepare_record, out, workers, skip_bad, quiet, skipped)
