"""``camkit explain``: one image, one checkpoint, every requested CAM's map and boxes, and a figure; with
``--detector``, a detector's best boxes and their scores instead (camkit.ui.explain_detector)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from camkit.cli.options import format_option, parse_cam_options
from camkit.cli.options import parse_options as _parse_options
from camkit.errors import CamkitError, OptionError
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
@click.option("--detector", default=None,
              help="draw this registered detector's best boxes instead of CAMs; the checkpoint is its camkit distill "
                   "training (camkit list detectors)")
@click.option("--detector-opt", multiple=True,
              help="with --detector: detector option KEY=VALUE over the checkpoint's, e.g. score_threshold=0.01")
@click.option("--max-boxes", type=int, default=5, show_default=True, help="with --detector: the best boxes drawn")
@click.option("--min-score", type=float, default=0.0, show_default=True,
              help="with --detector: only boxes scoring at least this")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("explain.png"),
              show_default=True, help="the figure (.png, .pdf, .svg, .jpg ...)")
@format_option
@click.pass_context
def explain(ctx, image, checkpoint, model_name, cams, laterality, box_threshold, box_score, cam_output, fuse,
            model_opt, cam_opt, detector, detector_opt, max_boxes, min_score, out, fmt):
    """Draw every CAM's map and boxes for one image (DICOM or PNG) with a trained checkpoint.

    With --detector, the checkpoint is a detector's (best.pt / last.pt of camkit distill): its best boxes and
    their scores are drawn and printed instead, in the original image's pixels.
    """
    import numpy as np

    from camkit.bench.config import PAPER_TEST_CAMS
    from camkit.cams.resolve import expand_names
    from camkit.inference import ExplainOptions, explain_image
    from camkit.ui.figures import check_figure_path, overlay_grid

    check_figure_path(out, "--out")
    _check_option_mix(ctx, detector)
    if detector is not None:
        from camkit.ui.explain_detector import DetectorExplainOptions

        found = DetectorExplainOptions(detector, _parse_options(detector_opt, "--detector-opt"),
                                       max_boxes=max_boxes, min_score=min_score, laterality=laterality)
        _explain_detector(image, checkpoint, found, out, fmt)
        return
    methods = expand_names(cams, PAPER_TEST_CAMS)  # the paper's five first in a group
    options = ExplainOptions(model_name=model_name, cams=tuple(methods), laterality=laterality,
                             box_threshold=box_threshold, box_score=box_score, cam_output=cam_output, fuse=fuse,
                             model_options=_parse_options(model_opt, "--model-opt"),
                             cam_options=parse_cam_options(cam_opt))
    try:
        res = explain_image(image, checkpoint, options)
    except CamkitError as exc:  # a detector's checkpoint without --detector: say so, not "pass --model"
        raise _detector_hint(checkpoint) or exc from None
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


#: options that only the CAM path reads, and those only --detector reads (parameter names)
CAM_ONLY = ("cams", "model_name", "box_threshold", "box_score", "cam_output", "fuse", "model_opt", "cam_opt")
DETECTOR_ONLY = ("detector_opt", "max_boxes", "min_score")


def _check_option_mix(ctx: click.Context, detector: str | None) -> None:
    """An OptionError when a CAM option is given with --detector, or a detector option without it."""
    def given(names: tuple[str, ...]) -> list[str]:
        flags = {p.name: p.opts[0] for p in ctx.command.params}
        return [flags[n] for n in names if ctx.get_parameter_source(n) not in (None, ParameterSource.DEFAULT)]

    cam_flags, detector_flags = given(CAM_ONLY), given(DETECTOR_ONLY)
    if detector is not None and cam_flags:
        raise OptionError(f"--detector draws a detector's boxes, not CAMs: {', '.join(cam_flags)} "
                          f"{'is a CAM option' if len(cam_flags) == 1 else 'are CAM options'}; drop "
                          f"{'it' if len(cam_flags) == 1 else 'them'}, or drop --detector")
    if detector is None and detector_flags:
        raise OptionError(f"{', '.join(detector_flags)} {'is' if len(detector_flags) == 1 else 'are'} for a "
                          "detector's boxes: add --detector NAME (the detector the checkpoint trained; camkit list "
                          "detectors)")


def _detector_hint(checkpoint: Path) -> Any:
    """For a CAM explain that failed on its checkpoint: an OptionError saying to pass --detector when the file
    is a detector's training (read again only on this error path), else None."""
    from camkit.storage.checkpoint import read_checkpoint
    from camkit.ui.explain_detector import stored_detector

    try:
        held = stored_detector(read_checkpoint(checkpoint))
    except CamkitError:
        return None
    if held is None:
        return None
    return OptionError(f"{checkpoint} holds a {held!r} detector's training, not a CAM model: pass --detector {held} "
                       "to draw its boxes")


def _explain_detector(image: Path, checkpoint: Path, options: Any, out: Path, fmt: str) -> None:
    """``camkit explain --detector``: the detector's best boxes drawn on the image and printed."""
    from camkit.ui.explain_detector import COLUMNS, detector_figure, detector_rows, explain_detector

    res = explain_detector(image, checkpoint, options)
    arrays = res.pop("arrays")
    found = res["boxes"][res["detector"]]
    detector_figure(arrays["image"], found["original_frame"], found["scores"], out,
                    title=f"{Path(image).name}: {res['detector']}, best score {res['probability']:.2f}")
    res["figure"] = str(out)
    if not found["scores"]:
        click.echo(f"{res['detector']}: no box scores >= {res['min_score']:g} on this image "
                   "(lower --min-score, or the detector's own score threshold with --detector-opt)", err=True)
    if fmt == "json":
        import json

        click.echo(json.dumps(res, indent=2))
    else:
        render(detector_rows(res), COLUMNS, fmt,
               title=f"{image.name}: {res['detector']}, best score {res['probability']:.3f}; boxes in the original "
                     "image's pixels")
    click.echo(f"figure: {out}", err=True)


commands = [explain]
