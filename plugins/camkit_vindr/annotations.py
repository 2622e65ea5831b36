"""VinDr-Mammo's two CSVs: column checks, list-literal categories, per-image records with mass boxes.

One row of ``finding_annotations.csv`` is one box (or one ``['No Finding']`` row with empty coordinates).
Rows are grouped into one :class:`ImageRecord` per image: ``label`` 1 when any row's category list contains
``Mass``, 0 when every row is ``['No Finding']``, ``None`` otherwise (other findings: not part of the task).
Line numbers in messages are the file's own (the header is line 1).
"""
from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from camkit.data.tables import read_rows
from camkit.errors import DataError

BREAST_CSV = "breast-level_annotations.csv"
FINDING_CSV = "finding_annotations.csv"
BREAST_COLUMNS = ("study_id", "series_id", "image_id", "laterality", "view_position", "height", "width",
                  "breast_birads", "breast_density", "split")
FINDING_COLUMNS = BREAST_COLUMNS[:-1] + ("finding_categories", "finding_birads", "xmin", "ymin", "xmax",
                                         "ymax", "split")
SPLITS = ("training", "test")
# A box may overshoot the image a little (it happens in the real data) and is clipped; one that keeps less
# than this share of its area inside the image is an annotation error.
MIN_INSIDE_FRACTION = 0.5


class AnnotationError(DataError):
    """A VinDr CSV that cannot be used as is; the message names the file, the line and what to do."""


@dataclass
class ImageRecord:
    """Everything the loader needs about one image, boxes in the stored (original) image's pixels."""

    study_id: str
    series_id: str
    image_id: str
    laterality: str
    view: str
    height: int
    width: int
    split: str
    breast_birads: str
    breast_density: str
    categories: list[str] = field(default_factory=list)
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    rows: list[int] = field(default_factory=list)

    @property
    def label(self) -> int | None:
        """1 mass, 0 normal (no finding), None: other findings only (left out of the task)."""
        if "Mass" in self.categories:
            return 1
        if self.categories and all(c == "No Finding" for c in self.categories):
            return 0
        return None

    def relpath(self) -> str:
        """The image's path under the dataset root."""
        return f"images/{self.study_id}/{self.image_id}.dicom"

    def sources(self) -> tuple[str, ...]:
        """The files this image's sample is made from (the cache keys its entry on them)."""
        return (self.relpath(),)

    def where(self, csv_name: str = FINDING_CSV) -> str:
        """``finding_annotations.csv line 7`` (the image's first row), for messages."""
        return f"{csv_name} line {self.rows[0]}" if self.rows else csv_name


def parse_categories(text: str) -> list[str]:
    """``"['Nipple Retraction', 'Mass']"`` -> ``['Nipple Retraction', 'Mass']``.

    Parsed with ``ast.literal_eval``; a cell that is not a valid literal (unbalanced quotes, a bare name)
    falls back to splitting the bracketed text on commas, so one odd cell does not sink a 20,000-row file.
    """
    text = (text or "").strip()
    if not text:
        return []
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        value = None
    if isinstance(value, str):
        return [value.strip()] if value.strip() else []
    if isinstance(value, (list, tuple, set)):
        return [str(v).strip() for v in value if str(v).strip()]
    inner = text.strip("[]() ")
    return [p.strip().strip("'\"").strip() for p in inner.split(",") if p.strip().strip("'\"").strip()]


def read_csv(path: Path, columns: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    """Rows of ``path`` as ``(line number, {column: value})``; a missing column is an error naming it."""
    if not path.is_file():
        raise AnnotationError(f"{path} not found: a VinDr-Mammo root holds {BREAST_CSV} and {FINDING_CSV} "
                              "next to images/ (download PhysioNet's vindr-mammo 1.0.0, or write a synthetic "
                              "set with `camkit synth DIR --format vindr`).")
    try:
        header, rows = read_rows(path)
    except DataError as exc:
        raise AnnotationError(str(exc)) from None
    missing = [c for c in columns if c not in header]
    if missing:
        raise AnnotationError(
            f"{path}: missing column(s) {', '.join(missing)} (found: {', '.join(header) or 'no header'}). "
            f"Expected the PhysioNet v1.0.0 header: {','.join(columns)}; use the file as downloaded.")
    return [(line, {k: (v or "").strip() for k, v in row.items() if k is not None}) for line, row in rows]


def _int(value: str, name: str) -> int:
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{name} {value!r} is not a number") from None
    if not math.isfinite(number) or number <= 0 or number != int(number):
        raise ValueError(f"{name} {value!r} is not a positive whole number")
    return int(number)


def _box(row: dict[str, str], height: int, width: int) -> np.ndarray:
    coords = []
    for key in ("xmin", "ymin", "xmax", "ymax"):
        try:
            value = float(row[key])
        except ValueError:
            raise ValueError(f"a Mass row needs numeric xmin/ymin/xmax/ymax, {key} is {row[key]!r}") from None
        if not math.isfinite(value):
            raise ValueError(f"{key} is {row[key]!r}")
        coords.append(value)
    x1, y1, x2, y2 = coords
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"box ({x1:g}, {y1:g}, {x2:g}, {y2:g}) has xmax <= xmin or ymax <= ymin")
    cx1, cy1 = min(max(x1, 0.0), width), min(max(y1, 0.0), height)
    cx2, cy2 = min(max(x2, 0.0), width), min(max(y2, 0.0), height)
    inside = max(cx2 - cx1, 0.0) * max(cy2 - cy1, 0.0)
    if inside < MIN_INSIDE_FRACTION * (x2 - x1) * (y2 - y1):
        raise ValueError(f"box ({x1:g}, {y1:g}, {x2:g}, {y2:g}) lies outside the {height}x{width} (HxW) image "
                         f"(less than {MIN_INSIDE_FRACTION:.0%} of it inside)")
    return np.array([cx1, cy1, cx2, cy2], dtype=np.float64)


_SAFE_ID = re.compile(r"^[0-9A-Za-z._-]+$")


def _check_row(row: dict[str, str]) -> None:
    for key in ("study_id", "image_id"):
        if not _SAFE_ID.match(row[key]):
            raise ValueError(f"{key} {row[key]!r} is not a usable file name")
    if row["split"] not in SPLITS:
        raise ValueError(f"split {row['split']!r} is not one of {', '.join(SPLITS)}")
    if row["laterality"] not in ("L", "R"):
        raise ValueError(f"laterality {row['laterality']!r} is not L or R")


def load_records(root: str | Path, skip_bad: bool = False,
                 skipped: list[tuple[str, str]] | None = None) -> list[ImageRecord]:
    """One record per image listed in ``finding_annotations.csv`` under ``root``, sorted by (study, image).

    A bad row (unknown split, non-numeric size, a box outside the image ...) raises :class:`AnnotationError`
    naming the file and line; with ``skip_bad=True`` the whole image is left out instead and
    ``(f"{csv} line N", reason)`` is appended to ``skipped``. ``breast-level_annotations.csv``, when present,
    must have its columns and agree on the image list (an image missing from the findings is reported).
    """
    root = Path(root)
    skipped = skipped if skipped is not None else []
    records: dict[str, ImageRecord] = {}
    bad: dict[str, str] = {}

    def reject(where: str, image_id: str, reason: str) -> None:
        if not skip_bad:
            raise AnnotationError(f"{where}: {reason}. Fix the row, or pass skip_bad=True (--skip-bad) "
                                  "to leave this image out.")
        if image_id not in bad:
            bad[image_id] = where
            skipped.append((where, reason))
        records.pop(image_id, None)

    path = root / FINDING_CSV
    for line, row in read_csv(path, FINDING_COLUMNS):
        image_id = row["image_id"]
        where = f"{path} line {line}"
        if image_id in bad:
            continue
        try:
            _check_row(row)
            height, width = _int(row["height"], "height"), _int(row["width"], "width")
            categories = parse_categories(row["finding_categories"])
            box = _box(row, height, width) if "Mass" in categories else None
        except ValueError as exc:
            reject(where, image_id, str(exc))
            continue
        rec = records.get(image_id)
        if rec is None:
            rec = records[image_id] = ImageRecord(
                row["study_id"], row["series_id"], image_id, row["laterality"], row["view_position"], height,
                width, row["split"], row["breast_birads"], row["breast_density"])
        elif (rec.study_id, rec.height, rec.width, rec.split, rec.laterality) != (
                row["study_id"], height, width, row["split"], row["laterality"]):
            reject(where, image_id, f"image {image_id} is listed with a different study, size, split or "
                                    f"laterality than on line {rec.rows[0]}")
            continue
        rec.rows.append(line)
        rec.categories.extend(c for c in categories if c not in rec.categories)
        if box is not None:
            rec.boxes = np.vstack([rec.boxes, box[None]])

    breast = root / BREAST_CSV
    if breast.is_file():
        for line, row in read_csv(breast, BREAST_COLUMNS):
            image_id = row["image_id"]
            if image_id not in records and image_id not in bad:
                reject(f"{breast} line {line}", image_id,
                       f"image {image_id} has no row in {FINDING_CSV} (every image has at least one)")
    return sorted(records.values(), key=lambda r: (r.study_id, r.image_id))
