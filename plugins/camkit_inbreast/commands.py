"""``camkit prepare inbreast ROOT``: the INbreast preprocessing cache (the plugin registers it with its dataset)."""
from __future__ import annotations

from pathlib import Path

import click

from camkit.cli.prepare import cache_options, run_prepare
from camkit.errors import CamkitError


@click.command("inbreast")
@click.argument("root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@cache_options(default_size=(2944, 1920))
@click.option("--negatives", type=click.Choice(["birads1", "any"]), default="birads1", show_default=True,
              help="the BI-RADS 1 normals, or every image without a mass")
@click.option("--spiculated", is_flag=True, help="count Spiculated Region contours as masses")
def prepare_cmd(root: Path, size, out, workers, crop, flip, voi, skip_bad, quiet, negatives, spiculated) -> None:
    """Preprocess INbreast at ROOT (images and Mass contours) once into a cache (resumable, parallel).

    Then create_dataset("inbreast", root=ROOT, size=(H, W), cache=OUT) with the same options.
    """
    from camkit.data.cache import Settings

    from .dataset import records_for_prepare
    from .preprocess import prepare_record

    skipped: list[tuple[str, str]] = []
    try:
        release, records_for = records_for_prepare(root, negatives=negatives, spiculated=spiculated,
                                                   skip_bad=skip_bad, skipped=skipped)
        settings = Settings(size=size, crop=crop, flip=flip, voi=voi)
    except (CamkitError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    run_prepare("inbreast", release, records_for, settings, prepare_record, out, workers, skip_bad, quiet, skipped)
