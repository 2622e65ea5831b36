"""The distill sections of ``camkit report``: a ``camkit distill`` run folder (``distill.json`` and
``predictions.json``) as its three rows' leaderboard (cam-boxes, detector, oracle x TPR@0.5, TPR@1, TPR@2, CPM
with their 95% intervals), the weak-to-strong gain, the pseudo-boxes' quality (and each self-training round's),
the configuration, trainings and timings, the rows' FROC curves on one chart, and a gallery of test images with
the true boxes and each row's best boxes.

The numbers are the document's; nothing is re-scored. The gallery's pixels are not stored in the run: the test
split is rebuilt from the document's configuration (``DistillConfig(**config).bench_config()``, the recipe and
input size the distill used, as ``camkit report --redraw`` rebuilds a bench's) and its images are looked up by
id. The boxes, stored in each image's original pixels, are mapped into the model frame the bench's gallery draws
in (the model input, as ``overlays/*.npz`` hold it). Where the split cannot be rebuilt (data missing, a plugin
not installed) the section says so in one line and shows the rest.
"""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from camkit.errors import OptionError

DISTILL_FILE, PREDICTIONS_FILE = "distill.json", "predictions.json"
TRUTH = (0, 158, 115)  # bluish green, as the bench's gallery
# the rows' colours, in camkit.distill.run.ROWS order (Okabe-Ito: orange, blue, reddish purple), on the FROC
# chart and in the gallery alike
ROW_COLOURS = ((230, 159, 0), (0, 114, 178), (204, 121, 167))
TOP = 3  # boxes drawn per row and image, best scores first
DEFAULT_GALLERY = 6  # test images per distill run: two thirds with a mass
GALLERY_THUMB = 240  # the gallery's thumbnails (longer side): four colours of boxes need the room


class _NoGallery(Exception):
    """The gallery cannot be drawn; the text says why, in one line."""


# -- which folders are distill runs -------------------------------------------------------------------
def split_runs(paths: Sequence[str | Path]) -> tuple[list[Path], list[Path]]:
    """``(bench runs, distill runs)`` of the report's arguments, in their order: a folder holding a
    ``camkit.distill/1`` ``distill.json`` (and no ``results.json``) is a distill run; a folder without one whose
    ``seed-*/`` folders are distill runs (``camkit distill --seeds``) stands for them; anything else goes to the
    bench's loader (which names what is missing)."""
    bench: list[Path] = []
    distill: list[Path] = []
    for p in map(Path, paths):
        if (p / "results.json").is_file() or any(p.glob("seed-*/results.json")):
            bench.append(p)
        elif (p / DISTILL_FILE).is_file() and (_schema(p) == _schema_name() or not _seed_runs(p)):
            distill.append(p)
        elif _seed_runs(p):
            distill += _seed_runs(p)
        else:
            bench.append(p)
    return bench, distill


def _seed_runs(folder: Path) -> list[Path]:
    def order(p: Path) -> tuple[int, str]:
        tail = p.name.partition("-")[2]
        return (int(tail), "") if tail.isdigit() else (1 << 30, tail)

    return sorted((f.parent for f in folder.glob(f"seed-*/{DISTILL_FILE}") if _schema(f.parent) == _schema_name()),
                  key=order)


def _schema_name() -> str:
    from camkit.distill.run import SCHEMA

    return SCHEMA


def _schema(folder: Path) -> Any:
    try:
        doc = json.loads((folder / DISTILL_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return doc.get("schema") if isinstance(doc, dict) else None


def load_distill(folder: str | Path) -> dict[str, Any]:
    """The ``distill.json`` of a distill run folder; anything but a readable ``camkit.distill/1`` document is an
    :class:`OptionError` naming the file."""
    path = Path(folder) / DISTILL_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise OptionError(f"{path}: cannot read it ({type(exc).__name__}: {exc}); run camkit distill again into a "
                          "new --out") from None
    if not isinstance(doc, dict) or doc.get("schema") != _schema_name() or not isinstance(doc.get("rows"), dict):
        found = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise OptionError(f"{path} is not a camkit distill document (schema {found!r}, expected "
                          f"{_schema_name()!r}); give camkit report the --out folder of camkit distill")
    return doc


# -- the section ----------------------------------------------------------------------------------------
def distill_section(folder: str | Path, index: int, out: Path, options: Any, log: Any = print) -> dict[str, Any]:
    """Everything the page shows of one distill run: its numbers as text (the template escapes them), the FROC
    chart and the gallery (pictures under ``out/assets/d<index>/`` or inlined). ``options``: the report's
    :class:`camkit.ui.report.ReportOptions` (``single_file``; ``gallery``: images to draw, default
    :data:`DEFAULT_GALLERY`)."""
    folder = Path(folder)
    doc = load_distill(folder)
    config = doc.get("config") if isinstance(doc.get("config"), dict) else {}
    teacher = doc.get("teacher") if isinstance(doc.get("teacher"), dict) else {}
    title = (f"Distill: {teacher.get('model') or config.get('model') or 'teacher'} / "
             f"{config.get('train_cam', '?')} \u2192 {config.get('detector', '?')}, seed {config.get('seed', '?')}")
    bench_cfg, problem = _bench_config(config)
    from camkit.ui.report_pictures import IOU

    return {"index": index, "path": str(folder), "title": title,
            "metrics": [{"metric": m, "label": m.upper()} for m in _metrics()],
            "rows": _board(doc), "gain": _gain(doc), "quality": _quality(doc), "config": _config(config, teacher),
            "config_json": json.dumps(config, indent=2, sort_keys=True, default=str), "training": _training(doc),
            "timings": _timings(doc), "froc": _froc(doc, getattr(bench_cfg, "iou_threshold", IOU)),
            "gallery": _gallery(folder, doc, bench_cfg, problem, (index, out, options), log)}


def _metrics() -> tuple[str, ...]:
    from camkit.distill.run import METRICS

    return METRICS


def _roles(doc: dict[str, Any]) -> list[str]:
    """The document's rows, the distill's three first in their order."""
    from camkit.distill.run import ROWS

    rows = doc.get("rows") or {}
    return [r for r in ROWS if r in rows] + [r for r in rows if r not in ROWS]


def row_colour(role: str) -> tuple[int, int, int]:
    """The colour of a distill row on the chart and in the gallery."""
    from camkit.distill.run import ROWS

    return ROW_COLOURS[ROWS.index(role)] if role in ROWS else (86, 180, 233)


def _num(value: Any, digits: int = 2) -> str:
    """A number as text (``n/a`` for anything that is not a finite number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "n/a"
    return f"{value:.{digits}f}"


def _interval(ci: Any) -> str:
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and _num(ci[0]) != "n/a" and _num(ci[1]) != "n/a":
        return f" [{_num(ci[0])}, {_num(ci[1])}]"
    return ""


def _value(entry: Any) -> float | None:
    if not isinstance(entry, dict):
        return None
    v = entry.get("value", entry.get("tpr"))
    return float(v) if _num(v) != "n/a" else None


def _board(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The leaderboard: one row per distill row, one cell per metric (value and 95% interval, the best of each
    metric marked); an oracle the distill skipped is a row saying why."""
    from camkit.ui.report_pictures import hex_colour

    rows = doc["rows"]
    best = {m: max((v for v in (_value((rows.get(r) or {}).get(m)) for r in _roles(doc)) if v is not None),
                   default=None) for m in _metrics()}
    out = []
    for role in _roles(doc):
        entries = rows.get(role) if isinstance(rows.get(role), dict) else {}
        cells = []
        for m in _metrics():
            v = _value(entries.get(m))
            text = "n/a" if v is None else _num(v) + _interval(entries[m].get("ci"))
            cells.append({"metric": m, "value": v, "text": text, "best": v is not None and v == best[m]})
        out.append({"row": role, "colour": hex_colour(row_colour(role)), "cells": cells, "note": None})
    skipped = doc.get("oracle")
    if isinstance(skipped, str) and skipped and not any(r["row"] == "oracle" for r in out):
        out.append({"row": "oracle", "colour": hex_colour(row_colour("oracle")), "cells": [], "note": skipped})
    return out


def _gain(doc: dict[str, Any]) -> dict[str, Any]:
    """The weak-to-strong gain as text: value, interval, the three rows' values it comes from and its bootstrap;
    or why there is none (the oracle's skip reason)."""
    gain = doc.get("gain")
    if not isinstance(gain, dict):
        reason = doc.get("oracle") if isinstance(doc.get("oracle"), str) else "the document holds no gain"
        return {"value": None, "skipped": reason}
    boot = gain.get("bootstrap") if isinstance(gain.get("bootstrap"), dict) else {}
    undefined = boot.get("undefined")
    how = f"paired study bootstrap, {boot.get('n', '?')} resamples" if boot else "no bootstrap stored"
    if isinstance(undefined, int) and undefined:
        how += f"; undefined on {undefined} of them, where the oracle tied the teacher"
    return {"value": _num(gain.get("value")), "ci": _interval(gain.get("ci")),
            "metric": str(gain.get("metric", "tpr@1")).upper(), "how": how, "skipped": None,
            "parts": ", ".join(f"{k} {_num(gain.get(k))}" for k in ("teacher", "detector", "oracle"))}


def _quality(doc: dict[str, Any]) -> list[dict[str, str]]:
    """The pseudo-boxes' quality on the training split, then each self-training round's labels."""
    items = [("the teacher's CAM boxes (the detector's labels)", doc.get("pseudo_boxes"))]
    for entry in doc.get("rounds") or []:
        if isinstance(entry, dict):
            items.append((f"round {entry.get('round', '?')}: the detector's boxes", entry.get("pseudo_boxes")))
    out = []
    for what, q in items:
        if not isinstance(q, dict):
            continue
        out.append({"what": what, "corloc": _num(q.get("corloc")), "precision": _num(q.get("precision")),
                    "recall": _num(q.get("recall")), "iou": _num(q.get("iou"), 1),
                    "n_images": str(q.get("n_images", "n/a")), "left_out": str(q.get("left_out", "n/a"))})
    return out


def _text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str) if isinstance(value, (dict, list)) else str(value)


def _config(config: dict[str, Any], teacher: dict[str, Any]) -> list[tuple[str, str]]:
    """The configuration's facts, as ``(name, text)`` pairs."""
    get = config.get
    facts = [("teacher", f"{teacher.get('model') or get('model') or 'the recipe model'} trained with train-cam "
                         f"{get('train_cam')}" + (f" (config {teacher['config_hash']}, "
                                                  f"{'reused' if teacher.get('reused') else 'trained'})"
                                                  if teacher.get("config_hash") else "")),
             ("test-cam (pseudo-boxes)", f"{get('test_cam')}: threshold {_text(get('box_threshold'))}, "
                                         f"{get('boxes')} boxes, at most {get('max_boxes')} per image, "
                                         f"min score {get('min_score')}"),
             ("detector", f"{get('detector')}" + (f" {_text(get('detector_options'))}"
                                                   if get("detector_options") else "")),
             ("detector training", _text(get("train")) if get("train") else "the distill's defaults"),
             ("self-training rounds", _text(get("rounds", 0))),
             ("seed", _text(get("seed"))),
             ("dataset", f"{get('dataset') or 'the recipe dataset'}" + (f" {_text(get('dataset_options'))}"
                                                                         if get("dataset_options") else "")),
             ("preset", _text(get("preset"))), ("bootstrap", f"{_text(get('bootstrap'))} resamples, by study")]
    return facts


def _training(doc: dict[str, Any]) -> list[dict[str, str]]:
    """Each training of the run (the teacher first): epochs, best epoch and validation AUC, seconds, images."""
    teacher = doc.get("teacher") if isinstance(doc.get("teacher"), dict) else {}
    runs = [("teacher", teacher)] + [(str(k), v) for k, v in (doc.get("training") or {}).items()]
    out = []
    for role, t in runs:
        if not isinstance(t, dict) or not t:
            continue
        out.append({"role": role, "epochs": _text(t.get("epochs", "")), "best_epoch": _text(t.get("best_epoch", "")),
                    "best_val_auc": _num(t.get("best_val_auc"), 3) if "best_val_auc" in t else "",
                    "seconds": _num(t.get("seconds"), 1), "images": _text(t.get("images", "")),
                    "reused": "reused" if t.get("reused") else "trained"})
    return out


def _timings(doc: dict[str, Any]) -> list[tuple[str, str]]:
    timings = doc.get("timings") if isinstance(doc.get("timings"), dict) else {}
    return [(str(k).removesuffix("_s").replace("_", " "), f"{_num(v, 1)} s") for k, v in timings.items()]


def _froc(doc: dict[str, Any], iou: Any) -> dict[str, Any]:
    """The rows' FROC curves on one chart, in the rows' colours."""
    from camkit.ui.report_pictures import froc_svg, hex_colour

    rows = doc["rows"]
    return froc_svg([{"label": role, "froc": (rows.get(role) or {}).get("froc"), "colour": hex_colour(row_colour(role))}
                     for role in _roles(doc) if isinstance(rows.get(role), dict)], iou)


def _bench_config(config: dict[str, Any]) -> tuple[Any, str | None]:
    """The teacher's bench configuration rebuilt from the document's (``DistillConfig.bench_config``), or None and
    why not."""
    from camkit.distill.run import DistillConfig

    try:
        known = {k: v for k, v in config.items() if k in DistillConfig.__dataclass_fields__}
        return DistillConfig(**known).bench_config(), None
    except Exception as exc:  # noqa: BLE001 - a plugin missing, options from another camkit: the rest still shows
        return None, f"{type(exc).__name__}: {exc}"


# -- the gallery ----------------------------------------------------------------------------------------
def _gallery(folder: Path, doc: dict[str, Any], bench_cfg: Any, problem: str | None, where: tuple[int, Path, Any],
             log: Any) -> dict[str, Any]:
    """The gallery's images and legend, or a one-line note saying why there are none."""
    from camkit.ui.report_pictures import hex_colour

    legend = [{"name": "truth", "colour": hex_colour(TRUTH)}] + [
        {"name": role, "colour": hex_colour(row_colour(role))} for role in _roles(doc)]
    try:
        if bench_cfg is None:
            raise _NoGallery(f"the test split could not be rebuilt from distill.json's configuration ({problem})")
        images = _draw_gallery(folder, doc, bench_cfg, where)
        return {"images": images, "note": None, "legend": legend, "top": TOP}
    except _NoGallery as exc:
        note = str(exc)
    except Exception as exc:  # noqa: BLE001 - data missing or moved: the pictures go, the numbers stay
        note = f"the test split could not be rebuilt from distill.json's configuration ({type(exc).__name__}: {exc})"
    log(f"report: {folder}: no gallery: {note}")
    return {"images": [], "note": note, "legend": legend, "top": TOP}


def _predictions(folder: Path) -> dict[str, Any]:
    path = folder / PREDICTIONS_FILE
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _NoGallery(f"{PREDICTIONS_FILE} is missing from the run folder") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise _NoGallery(f"{PREDICTIONS_FILE} cannot be read ({type(exc).__name__}: {exc})") from None
    if not isinstance(records, dict) or not records:
        raise _NoGallery(f"{PREDICTIONS_FILE} holds no row")
    return records


def _images(records: dict[str, Any], role: str) -> list[dict[str, Any]]:
    found = records.get(role) if isinstance(records.get(role), dict) else {}
    return [r for r in found.get("images") or [] if isinstance(r, dict) and isinstance(r.get("image_id"), str)]


def choose_images(images: Sequence[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """The gallery's test images: the first two thirds of ``n`` (rounded up) with a mass and truth boxes, then
    normal ones, in the stored order (as the bench's gallery chooses its images)."""
    masses = [r for r in images if r.get("label") == 1 and r.get("gt")][: -(-2 * n // 3)]
    normals = [r for r in images if r.get("label") == 0][: max(0, n - len(masses))]
    return masses + normals


def rebuild_test_split(bench_cfg: Any) -> Any:
    """The test split a distill scored, rebuilt from its teacher's bench configuration (the recipe's dataset at
    the teacher's input size)."""
    from camkit.bench.cell import CellContext
    from camkit.bench.recipe import build_datasets

    row = bench_cfg.rows()[0]
    model = CellContext(bench_cfg, None, None, None).model(row)
    return build_datasets(bench_cfg.recipe(row.model), tuple(int(v) for v in model.input_size), ("test",))["test"]


def locate(dataset: Any, ids: Sequence[str], hints: dict[str, int] | None = None) -> dict[str, int]:
    """``{image_id: index}`` of ``ids`` in ``dataset``: by its ``image_ids()`` where it has one, else the
    ``hints`` (a guessed index per id) checked, then a scan of the samples until every id is found."""
    wanted = set(ids)
    if callable(getattr(dataset, "image_ids", None)):
        return {str(i): k for k, i in enumerate(dataset.image_ids()) if str(i) in wanted}
    found: dict[str, int] = {}
    guesses = [k for k in ((hints or {}).get(i) for i in ids) if k is not None and 0 <= k < len(dataset)]
    for k in guesses + list(range(len(dataset))):
        if len(found) == len(wanted):
            break
        sample = dataset[k]
        image_id = str(sample["image_id"]) if sample is not None else None
        if image_id in wanted and image_id not in found:
            found[image_id] = k
    return found


def _draw_gallery(folder: Path, doc: dict[str, Any], bench_cfg: Any, where: tuple[int, Path, Any]
                  ) -> list[dict[str, Any]]:
    index, out, options = where
    records = _predictions(folder)
    roles = [r for r in _roles(doc) if isinstance(records.get(r), dict)]
    if not roles:
        raise _NoGallery(f"{PREDICTIONS_FILE} holds none of the document's rows")
    chosen = choose_images(_images(records, roles[0]), int(getattr(options, "gallery", None) or DEFAULT_GALLERY))
    if not chosen:
        raise _NoGallery(f"{PREDICTIONS_FILE} lists no test image")
    dataset = rebuild_test_split(bench_cfg)
    order = [r["image_id"] for r in _images(records, roles[-1])]  # a detector row's images: the split's order
    at = locate(dataset, [r["image_id"] for r in chosen], {i: k for k, i in enumerate(order)})
    if not at:
        raise _NoGallery("none of its test images is in the rebuilt test split (the dataset changed since?)")
    target = _Target(out, bool(getattr(options, "single_file", False)))
    return [_image(dataset[at[r["image_id"]]], r, records, roles, target.at(f"assets/d{index}/{k:03d}"))
            for k, r in enumerate(chosen) if r["image_id"] in at]


@dataclass(frozen=True)
class _Target:
    """Where a picture goes: under ``out`` as ``<prefix>-<name>[-s].png``, or inlined (``single_file``)."""

    out: Path
    single_file: bool
    prefix: str = ""

    def at(self, prefix: str) -> _Target:
        return replace(self, prefix=prefix)

    def write(self, name: str, thumb: np.ndarray, full: np.ndarray) -> tuple[str, str]:
        from camkit.ui.report_pictures import picture_src, slug

        stem = f"{self.prefix}-{slug(name)}"
        # not optimised: four pictures a row at twice the bench's size took 10 s to squeeze 15% out of
        return (picture_src(self.out, f"{stem}-s.png", thumb, self.single_file, optimize=False),
                picture_src(self.out, f"{stem}.png", full, self.single_file, optimize=False))


def _top_boxes(records: dict[str, Any], role: str, image_id: str, transform: Any) -> tuple[np.ndarray, list[float]]:
    """The ``role`` row's :data:`TOP` best boxes of one image, in the model frame, and their scores."""
    pred = ((records.get(role) or {}).get("predictions") or {}).get(image_id) or {}
    boxes = np.asarray(pred.get("boxes") or [], dtype=float).reshape(-1, 4)
    scores = np.asarray(pred.get("scores") or [], dtype=float).ravel()
    if len(scores) != len(boxes):
        scores = np.zeros(len(boxes))
    keep = np.argsort(-np.nan_to_num(scores, nan=-np.inf), kind="stable")[:TOP]
    return (transform.to_model(boxes[keep]) if len(keep) else np.zeros((0, 4))), [float(s) for s in scores[keep]]


def _image(sample: dict[str, Any], record: dict[str, Any], records: dict[str, Any], roles: list[str],
           target: _Target) -> dict[str, Any]:
    """One gallery image: a panel with every row's boxes, then one per row (the truth and that row's boxes)."""
    from camkit.ui.report_pictures import blend_map, box_outcome, grey_picture, hex_colour

    image_id, transform = record["image_id"], sample["transform"]
    gt_boxes = np.asarray(record.get("gt") or [], dtype=float).reshape(-1, 4)
    gt = transform.to_model(gt_boxes) if len(gt_boxes) else np.zeros((0, 4))
    rgb = blend_map(grey_picture(np.asarray(sample["image"])[0]), None)
    found = {role: _top_boxes(records, role, image_id, transform) for role in roles}
    panels = [_panel(rgb, [(TRUTH, gt)] + [(row_colour(r), found[r][0]) for r in roles], "all rows", target,
                     f"{image_id}: the truth and every row's best boxes")]
    for role in roles:
        boxes, scores = found[role]
        panel = _panel(rgb, [(TRUTH, gt), (row_colour(role), boxes)], role, target,
                       f"{image_id}: the truth and the {role} row's best boxes")
        panel["colour"] = hex_colour(row_colour(role))
        panel["tags"] = box_outcome(gt, boxes) if len(gt) else []
        panel["scores"] = "scores " + ", ".join(f"{s:.2f}" for s in scores) if scores else "no box"
        panels.append(panel)
    label = record.get("label")
    return {"image_id": image_id, "label": "mass" if label == 1 else "normal" if label == 0 else str(label),
            "prob": _num(record.get("prob")), "panels": panels}


def _panel(rgb: np.ndarray, layers: list[tuple[Any, Any]], name: str, target: _Target, alt: str) -> dict[str, Any]:
    """One picture of an image with boxes drawn on it (a thumbnail and the full size)."""
    from camkit.ui.report_pictures import FULL, draw_boxes

    thumb, full = target.write(name, draw_boxes(rgb, layers, GALLERY_THUMB, enlarge=True),
                               draw_boxes(rgb, layers, FULL, enlarge=True))
    return {"name": name, "colour": None, "tags": [], "scores": "", "thumb": thumb, "full": full, "alt": alt}
