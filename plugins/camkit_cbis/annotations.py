"""CBIS-DDSM's four description CSVs -> one record per full mammogram, labelled for mass vs negative.

One CSV row is one abnormality; rows sharing an ``image file path`` are one image (Q6), each with its own ROI
series (never inferred from the abnormality ids, which are not 1..n: Q7). Every cell is stripped (the quoted
trailing line feed of Q2, the ``NA`` strings of Q9 become empty). Which file of a ROI series is the mask is
decided later, from the pixels (:mod:`camkit_cbis.preprocess`).

Labels: a mass-CSV image is 1. CBIS-DDSM has no normal images; ``negatives="calc-only"`` (default) labels 0 the
calcification images whose (patient, side, view) has no row in either mass CSV, ``"none"`` keeps positives only.
A calcification copy of a mass view (Q8: the same mammogram in both CSV families) is never a negative.
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from camkit.data.lesion_dataset import LesionRecord
from camkit.data.tables import read_rows

from .layout import CSV_FILES, SUBJECT, CbisError, Tree, dicom_files, find_tree

NEGATIVES = ("calc-only", "none")
COMMON = ("patient_id", "left or right breast", "image view", "abnormality id", "image file path",
          "cropped image file path", "ROI mask file path")
DENSITY = ("breast_density", "breast density")  # the mass CSVs' and the calc CSVs' spelling
_PATIENT = re.compile(r"^P_\d{5}$")


@dataclass
class Row:
    """One abnormality as its CSV row gives it (cells stripped)."""

    kind: str          # mass / calc
    split: str         # train / test (the CSV's)
    csv: Path
    line: int
    patient: str
    side: str          # L / R
    view: str          # CC / MLO
    abnormality: int
    density: str
    shape: str
    image_path: str
    crop_path: str
    mask_path: str

    @property
    def where(self) -> str:
        return f"{self.csv.name} line {self.line}"

    @property
    def image_subject(self) -> str:
        """The full image's subject folder name, e.g. ``Mass-Training_P_00001_LEFT_CC``."""
        parts = [p for p in self.image_path.replace("\\", "/").split("/") if p]
        return next((p for p in parts if SUBJECT.match(p)), parts[0] if parts else "")


def read_csv(path: Path, kind: str, split: str, skip_bad: bool, skipped: list[tuple[str, str]]) -> list[Row]:
    """The rows of one description CSV; a missing column is an error naming them, a bad row is an error
    naming its line (or, with ``skip_bad``, listed in ``skipped``)."""
    header, rows = read_rows(path)
    density = next((d for d in DENSITY if d in header), None)
    missing = [c for c in COMMON if c not in header] + ([] if density else ["breast_density / breast density"])
    if missing:
        raise CbisError(f"{path}: missing column(s) {', '.join(missing)}; camkit reads the official TCIA description "
                        f"CSVs (header: {', '.join(header[:14])}). A renamed copy needs its columns named back.")
    out = []
    for line, raw in rows:
        cell = {k: (v or "").strip() for k, v in raw.items() if k is not None}
        try:
            out.append(_row(cell, kind, split, path, line, density))
        except CbisError as exc:
            if not skip_bad:
                raise
            skipped.append((f"{path.name} line {line}", str(exc)))
    return out


def _row(cell: dict[str, str], kind: str, split: str, path: Path, line: int, density: str) -> Row:
    where = f"{path.name} line {line}"
    side = {"LEFT": "L", "RIGHT": "R"}.get(cell["left or right breast"].upper())
    view = cell["image view"].upper()
    problems = []
    if not _PATIENT.match(cell["patient_id"]):
        problems.append(f"patient_id {cell['patient_id']!r} is not P_ + 5 digits")
    if side is None:
        problems.append(f"'left or right breast' is {cell['left or right breast']!r} (LEFT or RIGHT)")
    if view not in ("CC", "MLO"):
        problems.append(f"'image view' is {cell['image view']!r} (CC or MLO)")
    if not cell["abnormality id"].isdigit():
        problems.append(f"'abnormality id' is {cell['abnormality id']!r} (a number)")
    if not cell["image file path"]:
        problems.append("'image file path' is empty")
    if not (cell["ROI mask file path"] or cell["cropped image file path"]):
        problems.append("both ROI path columns are empty")
    if problems:
        raise CbisError(f"{where}: {'; '.join(problems)}; fix the row or pass skip_bad=True (--skip-bad)")
    dens = cell.get(density, "")
    return Row(kind=kind, split=split, csv=path, line=line, patient=cell["patient_id"], side=side, view=view,
               abnormality=int(cell["abnormality id"]),
               density=f"DENSITY {'ABCD'[int(dens) - 1]}" if dens in ("1", "2", "3", "4") else "",
               shape="" if cell.get("mass shape", "") == "NA" else cell.get("mass shape", ""),
               image_path=cell["image file path"], crop_path=cell["cropped image file path"],
               mask_path=cell["ROI mask file path"])


def _image_file(tree: Tree, row: Row) -> str:
    series = tree.resolve(row.image_path, f"{row.where} ('image file path')")
    files = dicom_files(series)
    if len(files) != 1:
        raise CbisError(f"{row.where}: the full-mammogram series {series} holds {len(files)} DICOM files, expected "
                        "one; download it again, or pass skip_bad=True (--skip-bad)")
    return tree.rel(files[0])


def _roi_files(tree: Tree, row: Row) -> tuple[str, ...]:
    """Every DICOM file of the series the row's two ROI columns point into (mask and crop, in one series or
    two: Q3/Q4 say neither column nor series name tells which is which)."""
    series: list[Path] = []
    for column, value in (("ROI mask file path", row.mask_path), ("cropped image file path", row.crop_path)):
        if value:
            s = tree.resolve(value, f"{row.where} ({column!r})")
            if s not in series:
                series.append(s)
    files = tuple(tree.rel(f) for s in series for f in dicom_files(s))
    if not files:
        raise CbisError(f"{row.where}: its ROI series ({', '.join(map(str, series))}) hold no DICOM files")
    return files


def load_records(root: str | Path, *, negatives: str = "calc-only", exclude_shapes: tuple[str, ...] = (),
                 skip_bad: bool = False, skipped: list[tuple[str, str]] | None = None) -> list[LesionRecord]:
    """One :class:`LesionRecord` per labelled full mammogram (see the module docstring), sorted by image id.

    ``exclude_shapes``: mass shapes (e.g. ``ARCHITECTURAL_DISTORTION``) whose rows do not count as masses; an
    image left with no mass row is then left out (it is still abnormal: never a negative). ``extra["rois"]``
    holds each mass's ROI files and CSV row.
    """
    if negatives not in NEGATIVES:
        raise CbisError(f"negatives must be one of {', '.join(NEGATIVES)}, got {negatives!r}")
    skipped = skipped if skipped is not None else []
    tree = find_tree(root)
    needed = [k for k in CSV_FILES if k[0] == "mass" or negatives == "calc-only"]
    missing = [CSV_FILES[k] for k in needed if k not in tree.csvs]
    if missing:
        raise CbisError(f"{', '.join(missing)} not found in {tree.root} (nor a few levels below it): download the "
                        "description CSVs from the CBIS-DDSM page and put them next to the CBIS-DDSM folder"
                        + ("; or pass negatives='none' to use the mass CSVs only" if all(
                            m.startswith("calc") for m in missing) else ""))
    if not tree.subjects:
        raise CbisError(f"no CBIS-DDSM subject folders (Mass-Training_P_00001_LEFT_CC, ...) under {tree.root}: pass "
                        "the folder that holds CBIS-DDSM/ (or the manifest-* folder the NBIA Data Retriever wrote)")
    # all four CSVs are read when present: the calc CSVs also tell which mass views have a calc copy (Q8)
    rows = {k: read_csv(tree.csvs[k], k[0], k[1], skip_bad, skipped) for k in CSV_FILES if k in tree.csvs}
    excluded = {s.strip().upper() for s in exclude_shapes}
    records: list[LesionRecord] = []

    def add(build, where: str) -> None:
        try:
            records.append(build())
        except CbisError as exc:
            if not skip_bad:
                raise
            skipped.append((where, str(exc)))

    for split in ("train", "test"):
        for group in _by_image(rows.get(("mass", split), [])).values():
            add(lambda g=group: _mass_record(tree, g, excluded), group[0].where)
    mass_views = {(r.patient, r.side, r.view) for k, rs in rows.items() if k[0] == "mass" for r in rs}
    if negatives == "calc-only":
        for split in ("train", "test"):
            for group in _by_image(rows.get(("calc", split), [])).values():
                if (group[0].patient, group[0].side, group[0].view) in mass_views:
                    continue  # Q8: a copy of a mass view shows the mass
                add(lambda g=group: _negative_record(tree, g), group[0].where)
    return sorted(records, key=lambda r: r.image_id)


def _by_image(rows: list[Row]) -> dict[str, list[Row]]:
    groups: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        groups[r.image_subject].append(r)
    return dict(groups)


def _base(group: list[Row], label: int | None, files: tuple[str, ...], rois: list) -> LesionRecord:
    first = group[0]
    densities = sorted({r.density for r in group if r.density})
    return LesionRecord(image_id=first.image_subject, patient_id=first.patient, laterality=first.side,
                        view=first.view, label=label, files=files, split=first.split,
                        density=densities[0] if len(densities) == 1 else None,
                        rows=", ".join(r.where for r in group), extra={"rois": rois, "kind": first.kind})


def _mass_record(tree: Tree, group: list[Row], excluded: set[str]) -> LesionRecord:
    image = _image_file(tree, group[0])
    kept = [r for r in group if not (excluded and set(r.shape.upper().split("-")) <= excluded and r.shape)]
    rois = [(_roi_files(tree, r), r.where) for r in kept]
    files = (image, *dict.fromkeys(f for fs, _ in rois for f in fs))
    return _base(group, 1 if kept else None, files, rois)


def _negative_record(tree: Tree, group: list[Row]) -> LesionRecord:
    return _base(group, 0, (_image_file(tree, group[0]),), [])
