"""``camkit report RUN... --out DIR``: a static web page of bench and distill runs (camkit.ui.report)."""
from __future__ import annotations

from pathlib import Path

import click


@click.command("report")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("camkit-report"),
              show_default=True, help="folder for index.html and its assets")
@click.option("--single-file", is_flag=True, help="inline the stylesheet, script and pictures into index.html")
@click.option("--baseline", default=None, metavar="ROW:TEST_CAM",
              help="the cell significance markers compare with [cam:cam when present]")
@click.option("--alpha", type=float, default=0.05, show_default=True, help="significance level (Holm-corrected)")
@click.option("--redraw/--no-redraw", default=False, show_default=True,
              help="draw a trained row's missing overlays from its checkpoint (runs the model on a few test images; "
                   "by default such rows are left out of the gallery and the report runs no model)")
@click.option("--gallery", type=click.IntRange(min=1), default=None, metavar="N",
              help="N test images per train-cam in the gallery (2/3 mass); beyond the 12 the bench stores they are "
                   "drawn from the checkpoints once and kept in the run; a distill run's gallery shows N test images "
                   "[default: the stored ones; 6 for a distill run]")
@click.option("--force", is_flag=True,
              help="write into a non-empty --out that camkit report did not create (its index.html and assets/ "
                   "are replaced)")
def report(run_dirs: tuple[Path, ...], out: Path, single_file: bool, baseline: str | None, alpha: float,
           redraw: bool, gallery: int | None, force: bool) -> None:
    """Write a browsable report of bench runs: leaderboards by metric, FROC curves, paired comparisons, a
    gallery of the stored test images, configuration and timings. Works offline, from file:// or a server.

    Several runs of one configuration (seeds) are combined, as by `camkit leaderboard`; different
    configurations get a section each. A `camkit distill` run folder (distill.json) gets a section of its own:
    its three rows' leaderboard, the weak-to-strong gain, the pseudo-boxes' quality, the rows' FROC curves and
    a gallery of test images with each row's best boxes (the test split rebuilt from its configuration).
    """
    from camkit.ui.report import ReportOptions, write_report

    options = ReportOptions(single_file, baseline, alpha, redraw, gallery, force)
    page = write_report(list(run_dirs), out, options, log=lambda text: click.echo(text, err=True))
    click.echo(f"report: {page} (open it in a browser; {'one file' if single_file else 'with ' + str(out / 'assets')})")


commands = [report]
