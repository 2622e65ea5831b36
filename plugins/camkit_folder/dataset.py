"""The ``folder`` dataset: your own mammograms (PNG/TIFF/DICOM, 8/16-bit) listed in a CSV.

CSV columns (header names are case-insensitive; see docs/datasets.md for examples):

    image       path, relative to the CSV's folder or absolute                         (required)
    label       1 / 0, or mass / normal                                                 (required)
    study_id    groups images for the bootstrap (default: the image id)                 (optional)
    image_id    (default: the image path relative to the CSV, without its extension)    (optional)
    laterality  L / R (left / right); right views are mirrored to face right            (optional)
    view        CC / MLO / ...                                                          (optional)
    split       train / val / test; ``split=`` keeps the matching rows                  (optional)
    x1 y1 x2 y2 one mass box per row (xmin ymin xmax ymax also accepted); rows naming the same image are
                merged; leave the four cells empty on rows without a box                (optional)
    boxes       a JSON list of boxes, e.g. ``[[10, 20, 110, 140]]``                       (optional)

Boxes are in the stored image's pixels (x = column, continuous: a box over the whole image is
``0 0 W H``), before any mirroring. Rule for boxes reaching outside the image: they are clipped to the
image and counted in :attr:`FolderDataset.clipped` (one warning per dataset); a box with no area inside
the image is an error.
"""
from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from camkit.data.checks import MIN_SIDE, SKIP_HINT, tiny_message
from camkit.data.files import file_problem
from camkit.data.sample import clip_boxes, skip_unreadable
from camkit.data.tables import read_rows
from camkit.errors import DataError
from camkit.data.imaging import FLIP_POLICIES, ImageReadError, image_size, preprocess, read_image

REQUIRED = ("image", "label")
BOX_COLUMNS = ("x1", "y1", "x2", "y2")
_BOX_ALIASES = {"xmin": "x1", "ymin": "y1", "xmax": "x2", "ymax": "y2"}
_LABELS = {"1": 1, "0": 0, "mass": 1, "normal": 0, "1.0": 1, "0.0": 0}
_LATERALITY = {"l": "L", "left": "L", "r": "R", "right": "R"}
_SPLITS = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
           "test": "test", "testing": "test"}


class FolderDataError(DataError):
    """A problem with the folder dataset's CSV or one of the images it lists."""


@dataclass
class _Record:
    path: Path
    label: int
    rows: list[int]
    image_id: str | None
    study_id: str | None
    laterality: str | None
    view: str | None
    boxes: list[list[float]] = field(default_factory=list)
    box_rows: list[int] = field(default_factory=list)  # the CSV row each box came from
    size: tuple[int, int] | None = None


class FolderDataset(Dataset):
    """Mammograms listed in a CSV, as camkit samples (see :mod:`camkit.data` and the module docstring).

    Args:
        csv: the CSV file, or a folder holding ``labels.csv``.
        split: keep only rows whose ``split`` column matches (``None``: every row).
        size: model input (H, W).
        crop: crop to the breast (:func:`camkit.imaging.breast_bbox`) before resizing.
        flip: when to mirror (:func:`camkit.imaging.needs_flip`): ``"auto"`` (laterality when given, else
            from the pixels), ``"laterality"``, ``"detect"`` or ``"none"``.
        keep_aspect: grow the crop to the model's aspect ratio instead of stretching the image.
        skip_bad: collect bad rows/images in :attr:`skipped` as ``(where, reason)`` instead of raising.

    Every image file is checked when the dataset is built (exists, header readable, boxes inside);
    pixels are decoded in ``__getitem__``.
    """

    def __init__(self, csv: str | Path, split: str | None = None, size: tuple[int, int] = (256, 160),
                 crop: bool = True, flip: str = "auto", keep_aspect: bool = True, skip_bad: bool = False):
        path = Path(csv).expanduser()
        if path.is_dir():
            if not (path / "labels.csv").is_file():
                raise FolderDataError(f"folder {str(path)!r} has no labels.csv; pass the CSV file itself")
            path = path / "labels.csv"
        if not path.is_file():
            raise FolderDataError(f"CSV file {str(path)!r} does not exist")
        if flip not in FLIP_POLICIES:
            raise ValueError(f"flip={flip!r} is not one of {', '.join(FLIP_POLICIES)}")
        self.csv = path.resolve()
        self.split = _SPLITS.get(split.strip().lower(), split) if isinstance(split, str) else split
        self.size = (int(size[0]), int(size[1]))
        self.crop, self.flip, self.keep_aspect, self.skip_bad = bool(crop), flip, bool(keep_aspect), skip_bad
        self.skipped: list[tuple[str, str]] = []
        self.clipped: list[tuple[str, list[float]]] = []
        self.records: list[_Record] = self._check_images(self._parse())
        if self.clipped:
            where, box = self.clipped[0]
            warnings.warn(f"{len(self.clipped)} box(es) in {self.csv.name} reach outside their image and were "
                          f"clipped (first: {where}, box {box})", stacklevel=2)

    # -- the CSV ------------------------------------------------------------------------------------
    def _problem(self, where: str, reason: str, bad: set[str] | None = None, key: str | None = None) -> None:
        if not self.skip_bad:
            raise FolderDataError(f"{where}: {reason}")
        self.skipped.append((where, reason))
        if bad is not None and key is not None:
            bad.add(key)

    def _parse(self) -> list[_Record]:
        try:
            fieldnames, rows = read_rows(self.csv)
        except DataError as exc:
            raise FolderDataError(str(exc)) from None
        if not fieldnames:
            raise FolderDataError(f"CSV {str(self.csv)!r} is empty; it needs a header row with image,label")
        cols = {name.strip().lower(): name for name in fieldnames if name is not None}
        for alias, canon in _BOX_ALIASES.items():
            if alias in cols and canon not in cols:
                cols[canon] = cols.pop(alias)
        missing = [c for c in REQUIRED if c not in cols]
        if missing:
            raise FolderDataError(
                f"CSV {str(self.csv)!r} has no column {', '.join(repr(m) for m in missing)} (columns: "
                f"{', '.join(fieldnames)}); required: image, label")
        have_box = [c for c in BOX_COLUMNS if c in cols]
        if have_box and len(have_box) != 4:
            raise FolderDataError(f"CSV {str(self.csv)!r} has box column(s) {', '.join(have_box)} but not all "
                                  "of x1, y1, x2, y2")
        if self.split is not None and "split" not in cols:
            raise FolderDataError(f"split={self.split!r} was asked for but CSV {str(self.csv)!r} has no split "
                                  "column; add one (train/val/test) or leave split unset")
        records: dict[str, _Record] = {}
        bad: set[str] = set()
        for line, row in rows:
            get = lambda c: (row.get(cols[c]) or "").strip() if c in cols else ""  # noqa: E731
            if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
                continue  # blank line
            if self.split is not None and _SPLITS.get(get("split").lower(), get("split")) != self.split:
                continue
            where = f"{self.csv.name} row {line}"
            raw = get("image")
            if not raw:
                self._problem(where, "the image cell is empty")
                continue
            path = Path(raw).expanduser()
            path = path if path.is_absolute() else self.csv.parent / path
            key = str(path)
            where = f"{where} ({raw})"
            if key in bad:
                continue
            rec = self._parse_row(get, path, line, where, bad, key)
            if rec is None:
                continue
            old = records.get(key)
            if old is None:
                records[key] = rec
                continue
            for attr in ("label", "laterality", "view", "study_id", "image_id"):
                new, have = getattr(rec, attr), getattr(old, attr)
                if new is not None and have is not None and new != have:
                    self._problem(where, f"{attr} {new!r} disagrees with row {old.rows[0]}'s {have!r} for "
                                         "the same image", bad, key)
                    break
            else:
                for attr in ("laterality", "view", "study_id", "image_id"):
                    if getattr(old, attr) is None:
                        setattr(old, attr, getattr(rec, attr))
                old.rows.append(line)
                old.boxes.extend(rec.boxes)
                old.box_rows.extend(rec.box_rows)
        kept = [r for k, r in records.items() if k not in bad]
        for rec in kept:  # defaults once every row is in
            if rec.image_id is None:
                try:
                    rel = rec.path.relative_to(self.csv.parent)
                except ValueError:
                    rel = Path(rec.path.name)
                rec.image_id = rel.with_suffix("").as_posix()
            rec.study_id = rec.study_id or rec.image_id
        return kept

    def _parse_row(self, get: Any, path: Path, line: int, where: str, bad: set[str], key: str) -> _Record | None:
        label = _LABELS.get(get("label").lower())
        if label is None:
            self._problem(where, f"label {get('label')!r} is not one of 1, 0, mass, normal", bad, key)
            return None
        lat_raw = get("laterality")
        lat = _LATERALITY.get(lat_raw.lower()) if lat_raw else None
        if lat_raw and lat is None:
            self._problem(where, f"laterality {lat_raw!r} is not L or R", bad, key)
            return None
        boxes: list[list[float]] = []
        try:
            cells = [get(c) for c in BOX_COLUMNS]
            if any(cells):
                if not all(cells):
                    raise ValueError(f"x1,y1,x2,y2 are partly empty ({', '.join(cells)}); fill all four or none")
                boxes.append([float(c) for c in cells])
            if get("boxes"):
                boxes.extend(_parse_json_boxes(get("boxes")))
            for b in boxes:
                if not all(math.isfinite(v) for v in b):
                    raise ValueError(f"box {b} is not finite")
                if b[2] <= b[0] or b[3] <= b[1]:
                    raise ValueError(f"box {b} is empty or inverted; boxes are x1 y1 x2 y2 with x2 > x1, y2 > y1")
        except ValueError as exc:
            self._problem(where, f"bad box: {exc}", bad, key)
            return None
        if boxes and label == 0:
            self._problem(where, "label is 0 (normal) but the row has a box; boxes mark masses", bad, key)
            return None
        return _Record(path=path, label=label, rows=[line], image_id=get("image_id") or None,
                       study_id=get("study_id") or None, laterality=lat, view=get("view").upper() or None,
                       boxes=boxes, box_rows=[line] * len(boxes))

    # -- the files ----------------------------------------------------------------------------------
    def _check_images(self, records: list[_Record]) -> list[_Record]:
        kept = []
        for rec in records:
            where = f"{self.csv.name} row {rec.rows[0]} ({rec.path})"
            problem = file_problem(rec.path)
            if problem:
                self._problem(where, f"image file {str(rec.path)!r} {problem}; point the row at an image file, "
                                     f"or {SKIP_HINT}")
                continue
            try:
                rec.size = image_size(rec.path)
            except ImageReadError as exc:
                self._problem(where, str(exc))
                continue
            if min(rec.size) < MIN_SIDE:
                self._problem(where, tiny_message(rec.size, SKIP_HINT))
                continue
            ok = True
            clipped_boxes = []
            for b, row in zip(rec.boxes, rec.box_rows):
                at = f"{self.csv.name} row {row} ({rec.path})"
                c = clip_boxes(np.asarray(b), rec.size)[0].tolist()
                if c[2] <= c[0] or c[3] <= c[1]:
                    self._problem(at, f"box {b} lies outside the {rec.size[1]}x{rec.size[0]} (WxH) image")
                    ok = False
                    break
                if c != [float(v) for v in b]:
                    self.clipped.append((at, b))
                clipped_boxes.append(c)
            if ok:
                rec.boxes = clipped_boxes
                kept.append(rec)
        return kept

    # -- samples ------------------------------------------------------------------------------------
    @property
    def config(self) -> dict[str, Any]:
        """JSON-able options that identify this dataset."""
        return {"name": "folder", "csv": str(self.csv), "split": self.split, "size": list(self.size),
                "crop": self.crop, "flip": self.flip, "keep_aspect": self.keep_aspect, "n": len(self.records)}

    def __len__(self) -> int:
        return len(self.records)

    def labels(self) -> list[int]:
        """Every image's label without reading pixels."""
        return [r.label for r in self.records]

    def image_ids(self) -> list[str]:
        """Every image's ``image_id`` without reading pixels (camkit checks them across splits)."""
        return [str(r.image_id) for r in self.records]

    def describe(self, index: int) -> str:
        """The CSV row and file of sample ``index``, for messages."""
        rec = self.records[index]
        try:
            shown = rec.path.relative_to(self.csv.parent).as_posix()
        except ValueError:
            shown = str(rec.path)
        return f"{self.csv.name} row {rec.rows[0]} ({shown})"

    def __getitem__(self, index: int) -> dict[str, Any]:
        rec = self.records[index]
        try:
            pixels = read_image(rec.path)
        except ImageReadError as exc:
            if self.skip_bad:
                skip_unreadable(self.skipped, f"{self.csv.name} row {rec.rows[0]} ({rec.path})", exc)
                return None
            raise FolderDataError(f"{self.csv.name} row {rec.rows[0]}: {exc}") from exc
        image, transform = preprocess(pixels, self.size, laterality=rec.laterality, flip=self.flip,
                                      crop_breast=self.crop, keep_aspect=self.keep_aspect)
        boxes = torch.as_tensor(transform.to_model(np.asarray(rec.boxes, dtype=np.float64).reshape(-1, 4)),
                                dtype=torch.float32).reshape(-1, 4)
        return {"image": image, "label": rec.label, "boxes": boxes, "image_id": rec.image_id,
                "study_id": rec.study_id, "laterality": rec.laterality, "view": rec.view, "transform": transform}


def _parse_json_boxes(text: str) -> list[list[float]]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"boxes cell {text!r} is not JSON ({exc.msg}); write e.g. [[10, 20, 110, 140]]") from None
    if isinstance(value, list) and len(value) == 4 and all(isinstance(v, (int, float)) for v in value):
        value = [value]
    if not isinstance(value, list) or not all(
            isinstance(b, list) and len(b) == 4 and all(isinstance(v, (int, float)) for v in b) for b in value):
        raise ValueError(f"boxes cell {text!r} must be a JSON list of [x1, y1, x2, y2] lists")
    return [[float(v) for v in b] for b in value]
