"""``camkit report``: a static, offline web page of one or more bench runs (camkit.bench's run directories) and
``camkit distill`` runs (each a section of its own: camkit.ui.report_distill).

Built from what the runs store (``results.json``, ``predictions/``, ``overlays/``), nothing re-run: the
configuration, versions and timings; every leaderboard metric the runs hold, switchable in the page (the cells
are the ones ``camkit leaderboard --format json`` prints, markers included); the FROC curves of every pairing on
one chart; the paired comparisons with the baseline; a gallery of the stored test images (image with its
ground truth, then each test-cam's map and boxes for one train-cam), filterable by outcome and by test-cam.

The page is rendered with jinja2 templates (``camkit/ui/report_assets/``), its data embedded as JSON; no
request leaves the page (no CDN, no web fonts), so it works from ``file://`` and from any static server.
``single_file=True`` inlines the stylesheet, the script and every image (as data URIs).
"""
from __future__ import annotations

import base64
import hashlib
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from dataclasses import dataclass
from typing import Any

import numpy as np

from camkit.errors import OptionError

ASSETS = Path(__file__).with_name("report_assets")
GT_COLOUR, BOX_COLOUR = (0, 158, 115), (230, 159, 0)  # bluish green truth, orange predictions


# -- data model ---------------------------------------------------------------------------------------
def _leaderboards(runs: Sequence[Any], baseline: str | None, alpha: float) -> dict[str, Any]:
    """Every leaderboard metric of the metric table these runs hold values for, in the leaderboard's order, as
    the page's records (the page's metric menu)."""
    from camkit.bench.leaderboard import DamagedPredictions, detection_table, missing_metric_message
    from camkit.ui.leaderboard import detection_records
    from camkit.bench.metric_table import pairing_metrics
    from camkit.bench.significance import significance_for

    boards = {}
    for spec in pairing_metrics():
        metric = spec.name
        try:
            table = detection_table(runs, metric)
        except DamagedPredictions:
            raise  # one line naming the file and the way out, not a metric quietly missing
        except Exception:  # noqa: BLE001 - a metric the stored results cannot give is just not offered
            continue
        if not table["cells"] or missing_metric_message(table) or all(
                c.value is None for c in table["cells"].values()):
            continue
        table["significance"] = significance_for(runs, table, baseline, alpha)
        sig = table["significance"] or {}
        records = detection_records(table)
        for rec, (key, cell) in zip(records, table["cells"].items()):
            rec["text"] = cell.text()
            rec["direction"] = (sig.get("cells", {}).get(key, {}) or {}).get("direction", 0)
        boards[metric] = {"metric": metric, "title": spec.description, "lower_is_better": spec.lower_is_better,
                          "rows": table["rows"], "cols": table["cols"], "header": table["header"],
                          "baseline": list(sig["baseline"]) if sig.get("baseline") else None,
                          "method": sig.get("method"), "alpha": sig.get("alpha"), "records": records}
    return boards


def _opening_metric(boards: dict[str, Any]) -> str | None:
    """The metric the page opens on: ``camkit leaderboard``'s default where the runs hold it, else the first."""
    from camkit.bench.metric_table import DEFAULT_METRIC

    return DEFAULT_METRIC if DEFAULT_METRIC in boards else next(iter(boards), None)


def _classification(runs: Sequence[Any]) -> list[dict[str, Any]]:
    from camkit.bench.leaderboard import classification_table
    from camkit.ui.leaderboard import classification_records

    return classification_records(classification_table(runs), runs[0].results)


def _classification_columns() -> list[dict[str, str]]:
    """The classification table's columns: the metric table's classification metrics, by display label."""
    from camkit.bench.metric_table import metrics

    return [{"metric": s.name, "label": s.label} for s in metrics("classification")]


def _froc(run: Any) -> dict[str, Any]:
    """The FROC chart of every pairing of one run (train-cam / test-cam)."""
    from camkit.ui.report_pictures import IOU, froc_svg

    curves = [{"label": f"{row} / {col}", "row": row, "col": col, "froc": entry.get("froc")}
              for row, per_test in run.results.get("detection", {}).items() for col, entry in per_test.items()
              if isinstance(entry, dict)]
    return froc_svg(curves, run.results.get("config", {}).get("iou_threshold", IOU))


def _overlay_files(run: Any, redraw: bool, log: Any, gallery: int | None = None) -> list[tuple[str, Path]]:
    """``(row, overlays file)`` of the run in row order. A trained row without ``overlays/<row>.npz`` is re-drawn
    from its checkpoint when asked (``redraw``); so is a ``gallery`` of more images than the bench stored (asking
    for it is asking to draw them), into ``overlays/<row>-gallery-<N>.npz`` (reused next time): the only cases in
    which the report runs a model."""
    if run.path is None:
        return []
    from camkit.bench.runner import redraw_overlays

    files = []
    for label in run.results.get("training", {}):
        path = run.path / "overlays" / f"{label}.npz"
        if not path.is_file() and redraw:
            log(f"report: {run.path}: no overlays for row {label!r}; drawing them from its checkpoint")
            path = redraw_overlays(run.path, label) or path
        if gallery and path.is_file() and _count(path) < gallery:
            bigger = run.path / "overlays" / f"{label}-gallery-{gallery}.npz"
            if not bigger.is_file():
                log(f"report: {run.path}: drawing {gallery} test images of row {label!r} from its checkpoint")
                masses = -(-2 * gallery // 3)
                redraw_overlays(run.path, label, n=masses, n_negative=gallery - masses, path=bigger)
            path = bigger if bigger.is_file() else path
        if path.is_file():
            files.append((label, path))
    return files


def _count(path: Path) -> int:
    """How many images an overlays file holds (0 when it is damaged: the gallery then draws them anew)."""
    from camkit.errors import CamkitError
    from camkit.ui.figures import read_overlays

    try:
        return int(read_overlays(path)["image"].shape[0])
    except CamkitError:
        return 0


def _gallery(run: Any, group: int, out: Path, single_file: bool, redraw: bool = False,
             log: Any = print, gallery: int | None = None, boxes: bool = True) -> dict[str, Any]:
    """Pictures of the stored overlay images of every train-cam of one run (written under ``out/assets``);
    ``boxes`` False (a test set without lesion boxes): no hit / miss / false-positive outcomes."""
    from camkit.errors import CamkitError
    from camkit.ui.figures import read_overlays
    from camkit.ui.report_pictures import (FULL, THUMB, blend_map, box_outcome, draw_boxes, grey_picture,
                                          picture_src, slug)

    rows = []
    cams: list[str] = []
    for row, path in _overlay_files(run, redraw, log, gallery):
        try:
            a = read_overlays(path)
        except CamkitError as exc:  # one damaged file costs its row's pictures, not the report
            log(f"report: {exc}")
            continue
        row_cams = [str(c) for c in a["cams"]]
        cams += [c for c in row_cams if c not in cams]
        labels = a["label"] if "label" in a else np.ones(len(a["image"]), np.int8)
        images = []
        for i in range(len(a["image"])):
            gt = a["gt"][a["gt"][:, 0] == i, 1:]
            grey = grey_picture(a["image"][i])
            panels = [{"cam": "image", "tags": []}]
            layers = [(blend_map(grey, None), np.zeros((0, 4)))]
            for c in row_cams:
                b = a[f"boxes_{c}"]
                b = b[b[:, 0] == i, 1:]
                panels.append({"cam": c, "tags": box_outcome(gt, b) if boxes else []})
                layers.append((blend_map(grey, a[f"map_{c}"][i]), b))
            pics = [tuple(draw_boxes(rgb, ((GT_COLOUR, gt), (BOX_COLOUR, b)), side) for side in (THUMB, FULL))
                    for rgb, b in layers]
            base = f"assets/g{group}/{slug(row)}/{slug(a['image_id'][i])}"
            for panel, (thumb, full) in zip(panels, pics):
                panel["thumb"] = picture_src(out, f"{base}-{slug(panel['cam'])}-s.png", thumb, single_file)
                panel["full"] = picture_src(out, f"{base}-{slug(panel['cam'])}.png", full, single_file)
                panel["alt"] = (f"{a['image_id'][i]}: " + ("the image with its ground truth" if panel["cam"] == "image"
                                else f"{panel['cam']} map and boxes (train-cam {row})"))
            images.append({"image_id": str(a["image_id"][i]), "label": int(labels[i]), "prob": float(a["prob"][i]),
                           "panels": panels})
        rows.append({"row": row, "cams": row_cams, "images": images})
    return {"rows": rows, "cams": cams, "outcomes": boxes}


def _facts(run: Any) -> dict[str, Any]:
    r = run.results
    timings = [{"row": row, **{k: round(float(v), 2) for k, v in t.items() if isinstance(v, (int, float))}}
               for row, t in r.get("timings", {}).items() if isinstance(t, dict)]
    training = [{"row": row, **{k: v for k, v in t.items() if isinstance(v, (int, float, str))}}
                for row, t in r.get("training", {}).items() if isinstance(t, dict)]
    return {"path": str(run.path) if run.path else "", "created": r.get("created"), "status": r.get("status"),
            "version": r.get("camkit_version"), "git": r.get("git"), "environment": r.get("environment", {}),
            "config_hash": r.get("config_hash"), "config": json.dumps(r.get("config", {}), indent=2, sort_keys=True),
            "dataset": r.get("dataset", {}), "timings": timings, "total_s": r.get("timings", {}).get("total_s"),
            "training": training, "warnings": r.get("warnings", []), "seed": run.seed}


@dataclass(frozen=True)
class ReportOptions:
    """How the report is written: inlined into one file (``single_file``); the significance markers against
    ``baseline`` (ROW:TEST_CAM; None: cam:cam when present) at ``alpha``; ``redraw`` a trained row's missing
    overlays from its checkpoint and ``gallery`` test images per row (drawn from the checkpoints when the bench
    stored fewer): the only times the report runs a model (a distill run's gallery shows ``gallery`` test images,
    default 6, from its rebuilt test split); ``force``: write into a non-empty folder camkit report did not
    create."""

    single_file: bool = False
    baseline: str | None = None
    alpha: float = 0.05
    redraw: bool = False
    gallery: int | None = None
    force: bool = False


def report_data(paths: Sequence[str | Path], out: Path, options: ReportOptions | None = None,
                log: Any = print) -> dict[str, Any]:
    """Everything the page shows, for the runs at ``paths``: bench runs grouped as ``camkit leaderboard --group``
    groups them (runs that differ by their seed alone are one group, combined), and a section per ``camkit
    distill`` run folder (camkit.ui.report_distill)."""
    from camkit.ui.report_distill import distill_section, split_runs

    o = options or ReportOptions()
    bench, distill = split_runs(paths)
    groups, n_runs = _bench_groups(bench, out, o, log) if bench or not distill else ([], 0)
    sections = [distill_section(p, k, out, o, log) for k, p in enumerate(distill)]
    return {"groups": groups, "n_runs": n_runs, "distill": sections}


def _bench_groups(paths: Sequence[Path], out: Path, o: ReportOptions, log: Any) -> tuple[list[dict[str, Any]], int]:
    """The page's sections of the bench runs at ``paths``, and how many runs they hold."""
    from camkit.bench.leaderboard import config_differences, group_runs, load_runs

    single_file, baseline, alpha, redraw, gallery = o.single_file, o.baseline, o.alpha, o.redraw, o.gallery
    runs = load_runs(paths)
    groups = group_runs(runs)
    diff = config_differences([g[0] for g in groups]) if len(groups) > 1 else {}
    out_groups = []
    for k, members in enumerate(groups):
        what = ", ".join(f"{f}={json.dumps(members[0].results['config'].get(f))}" for f in diff)
        boards = _leaderboards(members, baseline, alpha)
        out_groups.append({
            "index": k, "title": f"Configuration {k + 1}" + (f": {what}" if what else ""),
            "seeds": [m.seed for m in members], "runs": [_facts(m) for m in members],
            "leaderboards": boards,
            "default_metric": _opening_metric(boards),
            "not_scored": members[0].results.get("dataset", {}).get("not_scored"),
            "classification": _classification(members), "classification_columns": _classification_columns(),
            "froc": _froc(members[0]),
            "gallery": _gallery(members[0], k, out, single_file, redraw, log, gallery,
                                boxes=not members[0].results.get("dataset", {}).get("not_scored"))})
    return out_groups, len(runs)


def write_report(paths: Sequence[str | Path], out: str | Path, options: ReportOptions | None = None,
                 log: Any = print, **fields: Any) -> Path:
    """Write the report of the runs at ``paths`` to ``out/index.html`` (and ``out/assets/``); returns the page.

    ``out`` must be new, empty or an earlier report (it is rewritten: its ``assets/`` go); another non-empty
    folder is refused unless ``options.force``. ``options``: a :class:`ReportOptions`, whose fields may also be
    given as keywords (``write_report(runs, out, redraw=True)``); ``log(text)`` says when a model runs."""
    import jinja2
    from dataclasses import replace

    from camkit.storage.atomic import atomic_write_text

    if not paths:
        raise OptionError("camkit report needs at least one run directory (the --out of camkit bench or camkit "
                          "distill)")
    options = replace(options or ReportOptions(), **fields)
    single_file = options.single_file
    out = Path(out)
    check_report_folder(out, options.force)
    if (out / "assets").is_dir():
        shutil.rmtree(out / "assets")  # pictures of an earlier report of other runs must not linger
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by camkit report; camkit report may replace this folder's index.html "
                              "and assets/\n")
    data = report_data(paths, out, options, log)
    # autoescape on for every template: select_autoescape() only escapes templates named .html/.htm/.xml, and
    # ours is .html.j2, so every value (run names, warnings, a third party's image ids) went in raw
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(ASSETS)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    css, js = (ASSETS / "report.css").read_text(), (ASSETS / "report.js").read_text()
    if not single_file:
        (out / "assets").mkdir(exist_ok=True)
        (out / "assets" / "report.css").write_text(css)
        (out / "assets" / "report.js").write_text(js)
    page = env.get_template("report.html.j2").render(
        data=data, data_json=_script_json({"groups": [{"index": g["index"], "leaderboards": g["leaderboards"]}
                                                       for g in data["groups"]]}),
        single_file=single_file, css=css, js=js, csp=content_security_policy(single_file, css, js))
    return atomic_write_text(out / "index.html", page)


MARKER = ".camkit-report"  # a folder camkit report wrote (and so may rewrite)


def check_report_folder(out: Path, force: bool = False) -> None:
    """Refuse to write a report into a non-empty folder camkit report did not write (its ``assets/`` would be
    deleted and ``index.html`` replaced), unless ``force``. A folder holding only ``index.html`` and
    ``assets/`` of a report from before the marker counts as a report."""
    if force or not out.exists():
        return
    if not out.is_dir():
        raise OptionError(f"--out {out} is a file; give a folder for the report")
    entries = {p.name for p in out.iterdir()}
    if not entries or MARKER in entries:
        return
    page = out / "index.html"
    if entries <= {"index.html", "assets"} and page.is_file() and "camkit benchmark report" in page.read_text(
            errors="replace")[:4000]:
        return
    shown = ", ".join(sorted(entries)[:5]) + (", ..." if len(entries) > 5 else "")
    raise OptionError(f"--out {out} is a folder camkit report did not write ({shown}); its index.html and assets/ "
                      "would be replaced: choose a new or empty folder, or pass --force to write into it")


def content_security_policy(single_file: bool, css: str, js: str) -> str:
    """The page's Content-Security-Policy: nothing may load or run but the report's own script and style
    (by hash when inlined, from ``assets/`` otherwise) and its pictures; no network, no inline script or event
    handler, so a value that slipped through escaping still could not run."""
    def digest(text: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"

    script, style, img = (digest(js), digest(css), "data:") if single_file else ("'self'", "'self'", "'self'")
    return (f"default-src 'none'; script-src {script}; style-src {style}; img-src {img}; base-uri 'none'; "
            "form-action 'none'; object-src 'none'")


def _script_json(obj: Any) -> str:
    """JSON safe inside a <script> element (no '</' can close it early)."""
    return json.dumps(_finite(obj), allow_nan=False, default=_plain).replace("</", "<\\/")


def _finite(obj: Any) -> Any:
    """NaN and infinities as null (JSON has neither)."""
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _plain(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")
