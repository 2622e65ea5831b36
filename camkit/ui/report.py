"""``camkit report``: a static, offline web page of one or more bench runs (camkit.bench's run directories).

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
import io
import json
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from dataclasses import dataclass
from typing import Any

import numpy as np

from camkit.errors import OptionError

ASSETS = Path(__file__).with_name("report_assets")
# Okabe & Ito's colour-blind-safe palette (black last, for the ninth curve on); dash patterns tell curves
# apart beyond the colours.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
DASHES = ("", "6 3", "2 2", "8 3 2 3")
GT_COLOUR, BOX_COLOUR = (0, 158, 115), (230, 159, 0)  # bluish green truth, orange predictions
IOU = 0.3  # the bench's match rule for the gallery's outcomes (camkit.metrics.detection)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text)).strip("-") or "x"


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


def _froc(run: Any, max_fppi: float = 8.0) -> dict[str, Any]:
    """The FROC curves of every pairing of one run, as SVG polylines (log FPPI 1/16 .. 8, TPR 0 .. 1)."""
    width, height, left, bottom, top, right = 640, 360, 56, 40, 14, 16
    lo, hi = np.log10(1 / 16), np.log10(max_fppi)

    def x(f: float) -> float:
        return left + (np.log10(min(max(f, 1 / 16), max_fppi)) - lo) / (hi - lo) * (width - left - right)

    def y(t: float) -> float:
        return top + (1 - t) * (height - top - bottom)

    curves = []
    for row, per_test in run.results.get("detection", {}).items():
        for col, entry in per_test.items():
            fr = entry.get("froc") or {}
            fppi, tpr = list(fr.get("fppi", [])), list(fr.get("tpr", []))
            if not fppi:
                continue
            pts, prev = [], 0.0
            for f, t in zip(fppi, tpr):  # a step curve: TPR holds until the next operating point
                if f > max_fppi:
                    break
                pts += [(x(f), y(prev)), (x(f), y(t))]
                prev = t
            pts.append((x(max_fppi), y(prev)))
            k = len(curves)
            curves.append({"id": f"froc-{k}", "label": f"{row} / {col}", "row": row, "col": col,
                           "colour": PALETTE[k % len(PALETTE)], "dash": DASHES[(k // len(PALETTE)) % len(DASHES)],
                           "points": " ".join(f"{a:.1f},{b:.1f}" for a, b in pts)})
    ticks_x = [(x(f), label) for f, label in ((1 / 16, "1/16"), (1 / 8, "1/8"), (0.25, "1/4"), (0.5, "1/2"),
                                              (1, "1"), (2, "2"), (4, "4"), (8, "8"))]
    ticks_y = [(y(t), f"{t:.1f}") for t in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)]
    return {"width": width, "height": height, "left": left, "bottom": height - bottom, "top": top,
            "right": width - right, "curves": curves, "ticks_x": ticks_x, "ticks_y": ticks_y,
            "iou": run.results.get("config", {}).get("iou_threshold", IOU)}


def _png(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _grey(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) float: the image's 1st-99th percentile range as grey."""
    img = np.asarray(image, dtype=np.float32)
    lo, hi = np.percentile(img, [1, 99]) if img.size else (0.0, 1.0)
    return np.repeat(np.clip((img - lo) / max(hi - lo, 1e-6), 0, 1)[..., None], 3, axis=2)


def _blend(grey: np.ndarray, heat: np.ndarray | None) -> np.ndarray:
    """The grey picture with the map over it (viridis, colour-blind-safe), as uint8 RGB."""
    from matplotlib import colormaps

    rgb = grey
    if heat is not None:
        rgb = 0.55 * grey + 0.45 * colormaps["viridis"](np.clip(np.asarray(heat, dtype=np.float32), 0, 1))[..., :3]
    return (rgb * 255).astype(np.uint8)


def _draw(rgb: np.ndarray, gt: np.ndarray, boxes: np.ndarray, max_side: int) -> np.ndarray:
    """``rgb`` shrunk to at most ``max_side`` (never enlarged) with the truth and predicted boxes drawn on it."""
    from PIL import Image, ImageDraw

    h, w = rgb.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    pic = Image.fromarray(rgb).resize((max(1, round(w * scale)), max(1, round(h * scale))))
    draw = ImageDraw.Draw(pic)
    for colour, bxs in ((GT_COLOUR, gt), (BOX_COLOUR, boxes)):
        for x1, y1, x2, y2 in np.asarray(bxs, dtype=float).reshape(-1, 4) * scale:
            draw.rectangle([x1, y1, max(x1, x2 - 1), max(y1, y2 - 1)], outline=colour, width=2 if max_side > 200 else 1)
    return np.asarray(pic)


THUMB, FULL = 160, 640  # the gallery's picture sizes (longer side)


def _outcome(gt: np.ndarray, boxes: np.ndarray) -> list[str]:
    """The gallery's tags of one pairing on one image: hit (a lesion matched at IoU > 0.3), miss (a lesion no
    box matched), false positive (a box matching no lesion)."""
    from camkit.metrics.detection import iou_matrix

    gt, boxes = np.asarray(gt, float).reshape(-1, 4), np.asarray(boxes, float).reshape(-1, 4)
    iou = iou_matrix(boxes, gt) if len(gt) and len(boxes) else np.zeros((len(boxes), len(gt)))
    tags = []
    if len(gt) and (iou > IOU).any(axis=0).any():
        tags.append("hit")
    if len(gt) and not (iou > IOU).any(axis=0).all():
        tags.append("miss")
    if len(boxes) and not (iou > IOU).any(axis=1).all():
        tags.append("false-positive")
    return tags


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
            grey = _grey(a["image"][i])
            panels = [{"cam": "image", "tags": []}]
            layers = [(_blend(grey, None), np.zeros((0, 4)))]
            for c in row_cams:
                b = a[f"boxes_{c}"]
                b = b[b[:, 0] == i, 1:]
                panels.append({"cam": c, "tags": _outcome(gt, b) if boxes else []})
                layers.append((_blend(grey, a[f"map_{c}"][i]), b))
            pics = [(_draw(rgb, gt, b, THUMB), _draw(rgb, gt, b, FULL)) for rgb, b in layers]
            base = f"assets/g{group}/{_slug(row)}/{_slug(a['image_id'][i])}"
            for panel, (thumb, full) in zip(panels, pics):
                panel["thumb"] = _write_png(out, f"{base}-{_slug(panel['cam'])}-s.png", thumb, single_file)
                panel["full"] = _write_png(out, f"{base}-{_slug(panel['cam'])}.png", full, single_file)
                panel["alt"] = (f"{a['image_id'][i]}: " + ("the image with its ground truth" if panel["cam"] == "image"
                                else f"{panel['cam']} map and boxes (train-cam {row})"))
            images.append({"image_id": str(a["image_id"][i]), "label": int(labels[i]), "prob": float(a["prob"][i]),
                           "panels": panels})
        rows.append({"row": row, "cams": row_cams, "images": images})
    return {"rows": rows, "cams": cams, "outcomes": boxes}


def _write_png(out: Path, rel: str, rgb: np.ndarray, single_file: bool) -> str:
    data = _png(rgb)
    if single_file:
        return "data:image/png;base64," + base64.b64encode(data).decode()
    target = out / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return rel


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
    stored fewer): the only times the report runs a model; ``force``: write into a non-empty folder camkit report
    did not create."""

    single_file: bool = False
    baseline: str | None = None
    alpha: float = 0.05
    redraw: bool = False
    gallery: int | None = None
    force: bool = False


def report_data(paths: Sequence[str | Path], out: Path, options: ReportOptions | None = None,
                log: Any = print) -> dict[str, Any]:
    """Everything the page shows, for the runs at ``paths`` (grouped as ``camkit leaderboard --group`` groups
    them: runs that differ by their seed alone are one group, combined)."""
    from camkit.bench.leaderboard import config_differences, group_runs, load_runs

    o = options or ReportOptions()
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
    return {"groups": out_groups, "n_runs": len(runs)}


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
        raise OptionError("camkit report needs at least one run directory (the --out of camkit bench)")
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
