"""``camkit explain``: one image, one checkpoint, every requested CAM's map and boxes, and a figure."""
from __future__ import annotations

from pathlib import Path

import click

from camkit.cli.options import format_option, parse_cam_options
from camkit.cli.options import parse_options as _parse_options
from camkit.ui.output import render


@click.command()
@click.argument("image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--checkpoint", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="best.pt / last.pt of a camkit run, or a plain state dict with --model-opt")
@click.option("--model", "model_name", default=None,
              help="registered model the checkpoint was trained as [the default recipe's model]")
@click.option("--cam", "cams", multiple=True, default=("one-pass",), show_default=True,
              help="method(s) to draw (repeat); 'all', or a cost class: one-pass, second-order, full-backward, "
                   "perturbation (one extra forward per channel)")
@click.option("--laterality", type=click.Choice(["L", "R"]), default=None,
              help="mirror right views like training did (default: detect the breast side)")
@click.option("--box-threshold", type=float, default=0.5, show_default=True,
              help="foreground = map >= threshold x the image's map maximum, in (0, 1]")
@click.option("--box-score", type=click.Choice(["peak_x_prob", "peak", "mean", "mean_x_prob"]),
              default="peak_x_prob", show_default=True, help="how boxes are scored (as camkit bench)")
@click.option("--cam-output", default=None, help="model output the CAMs explain [the model's own]")
@click.option("--fuse", type=click.Choice(["mean", "max"]), default="mean", show_default=True,
              help="how maps of several hooked layers combine")
@click.option("--model-opt", multiple=True, help="model option KEY=VALUE (for plain state dicts)")
@click.option("--cam-opt", multiple=True,
              help="CAM option METHOD.KEY=VALUE (repeatable), e.g. scorecam.chunk=64 or fem.k=3")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("explain.png"),
              show_default=True, help="the figure (.png, .pdf, .svg, .jpg ...)")
@format_option
def explain(image, checkpoint, model_name, cams, laterality, box_threshold, box_score, cam_output, fuse, model_opt,
            cam_opt, out, fmt):
    """Draw every CAM's map and boxes for one image (DICOM or PNG) with a trained checkpoint."""
    import numpy as np

    from camkit.bench.config import PAPER_TEST_CAMS
    from camkit.cams.resolve import expand_names
    from camkit.inference import ExplainOptions, explain_image
    from camkit.ui.figures import check_figure_path, overlay_grid

    check_figure_path(out, "--out")
    methods = expand_names(cams, PAPER_TEST_CAMS)  # the paper's five first in a group
    options = ExplainOptions(model_name=model_name, cams=tuple(methods), laterality=laterality,
                             box_threshold=box_threshold, box_score=box_score, cam_output=cam_output, fuse=fuse,
                             model_options=_parse_options(model_opt, "--model-opt"),
                             cam_options=parse_cam_options(cam_opt))
    res = explain_image(image, checkpoint, options)
    arrays = res.pop("arrays")
    methods = [m for m in methods if m in res["boxes"]]  # a method that does not apply has no map
    for m, why in res["not_applicable"].items():
        click.echo(f"{m}: not applicable to this model ({why})", err=True)
    overlay_grid([arrays["image"]], [np.zeros((0, 4))], {m: [arrays["maps"][m]] for m in methods},
                 {m: [np.asarray(res["boxes"][m]["model_frame"]).reshape(-1, 4)] for m in methods}, out,
                 titles=[f"{Path(image).name} p={res['probability']:.2f}"])
    res["figure"] = str(out)
    rows = [{"cam": m, "boxes": len(b["scores"]), "top_score": round(b["scores"][0], 4) if b["scores"] else None,
             "top_box": [round(v) for v in b["original_frame"][0]] if b["scores"] else None}
            for m, b in res["boxes"].items()]
    if fmt == "json":
        import json

        click.echo(json.dumps(res, indent=2))
    else:
        render(rows, ["cam", "boxes", "top_score", "top_box"], fmt,
               title=f"{image.name}: p(mass) = {res['probability']:.3f}; boxes in the original image's pixels")
    click.echo(f"figure: {out}", err=True)


commands = [explain]
