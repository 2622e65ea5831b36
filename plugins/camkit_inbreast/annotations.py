"""INbreast's release folder -> one record per image: INbreast.csv, the DICOM names, the OsiriX XML contours.

``INbreast.csv`` is semicolon-separated and has no patient key (``Patient ID`` is ``removed`` on every row):
the patient is the 16-hex-digit hash in the DICOM file name ``<File Name>_<hash>_MG_<L|R>_<CC|ML|FB>_ANON.dcm``.
Cells are stripped (one ACR cell is ~190 spaces); ``File Name`` stays text. A mass is an XML ROI named ``Mass``
(stripped, any case); ``Spiculated Region`` and its spellings count as masses only with ``spiculated=True``,
and an image with one is never a negative. BI-RADS 1 images have no XML: "no XML" means "no annotation".
"""
from __future__ import annotations

import plistlib
import re
from pathlib import Path

from camkit.data.lesion_dataset import LesionRecord
from camkit.data.tables import read_rows
from camkit.errors import DataError

RELEASE = "INbreast Release 1.0"
CSV_NAME = "INbreast.csv"
COLUMNS = ("Laterality", "View", "File Name", "ACR", "Bi-Rads")
DICOM_NAME = re.compile(r"^(\d+)_([0-9a-fA-F]{16})_MG_([LR])_(CC|ML|MLO|FB)_ANON\.dcm$", re.IGNORECASE)
SPICULATED = {"spiculated region", "espiculated region"}
NEGATIVES = ("birads1", "any")


class InbreastError(DataError):
    """An INbreast file or row that cannot be used; the message names it and says what to do."""


def find_release(root: str | Path) -> Path:
    """The folder holding INbreast.csv: ``root`` itself, or its ``INbreast Release 1.0`` (or any one sub-folder
    that holds the CSV)."""
    root = Path(root)
    for candidate in (root, root / RELEASE, *sorted(p for p in root.glob("*") if p.is_dir())):
        if (candidate / CSV_NAME).is_file() and (candidate / "AllDICOMs").is_dir():
            return candidate
    raise InbreastError(f"no {CSV_NAME} with an AllDICOMs/ folder in {root} or {root / RELEASE}: pass the unpacked "
                        f"'{RELEASE}' folder (or its parent)")


def read_contours(path: Path, spiculated: bool) -> tuple[list[list[tuple[float, float]]], bool, int]:
    """``(mass contours as (x, y) vertex lists, has a spiculated region, masses without an outline)`` of one
    OsiriX plist (a Mass marked by one or two points has no area); InbreastError naming the file when it does
    not parse."""
    try:
        with open(path, "rb") as f:
            plist = plistlib.load(f)
        rois = plist["Images"][0].get("ROIs", [])
    except Exception as exc:  # noqa: BLE001 - plistlib raises several kinds on bad XML
        raise InbreastError(f"{path}: not an OsiriX ROI plist ({type(exc).__name__}: {exc}); restore it from the "
                            "release, or pass skip_bad=True (--skip-bad)") from None
    masses, spiculated_found, pointless = [], False, 0
    for k, roi in enumerate(rois):
        name = str(roi.get("Name", "")).strip().lower()
        is_spiculated = name in SPICULATED
        spiculated_found |= is_spiculated
        if name != "mass" and not (spiculated and is_spiculated):
            continue
        points = []
        for text in roi.get("Point_px", []):
            numbers = re.findall(r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?", str(text))
            if len(numbers) < 2:
                raise InbreastError(f"{path}: ROI {k} ({roi.get('Name')!r}) has a point {text!r} that is not "
                                    "'(x, y)'; pass skip_bad=True (--skip-bad) to leave the image out")
            points.append((float(numbers[0]), float(numbers[1])))
        if len(points) >= 3:
            masses.append(points)
        else:
            pointless += 1
    return masses, spiculated_found, pointless


def load_records(root: str | Path, *, negatives: str = "birads1", spiculated: bool = False,
                 skip_bad: bool = False, skipped: list[tuple[str, str]] | None = None) -> tuple[Path, list[LesionRecord]]:
    """``(release folder, records)``: one :class:`LesionRecord` per CSV row, sorted by File Name (the unlabelled
    ones too: the patient split is drawn over every patient, whatever the label options).

    Label 1: at least one mass contour; 0: BI-RADS 1 (``negatives="birads1"``) or any image without a mass or
    spiculated region (``"any"``); None otherwise. ``extra["contours"]`` holds the mass contours (x = column,
    y = row, the image's pixels), ``extra["xml"]`` the XML's path.
    """
    if negatives not in NEGATIVES:
        raise InbreastError(f"negatives must be one of {', '.join(NEGATIVES)}, got {negatives!r}")
    skipped = skipped if skipped is not None else []
    release = find_release(root)
    csv_path = release / CSV_NAME
    header, rows = read_rows(csv_path)
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise InbreastError(f"{csv_path}: missing column(s) {', '.join(missing)} (the release's header is "
                            "Patient ID;Patient age;Laterality;View;Acquisition date;File Name;ACR;Bi-Rads)")
    dicoms: dict[str, tuple[Path, str, str]] = {}
    for p in sorted((release / "AllDICOMs").iterdir()):
        m = DICOM_NAME.match(p.name)
        if m:
            dicoms.setdefault(m.group(1), (p, m.group(2).lower(), m.group(4).upper()))
    records = []
    for line, raw in rows:
        cell = {k: (v or "").strip() for k, v in raw.items() if k is not None}
        where = f"{CSV_NAME} line {line}"
        try:
            record = _record(release, cell, where, dicoms, negatives, spiculated)
        except InbreastError as exc:
            if not skip_bad:
                raise
            skipped.append((where, str(exc)))
            continue
        if record is not None:
            records.append(record)
    return release, sorted(records, key=lambda r: r.image_id)


def _record(release: Path, cell: dict[str, str], where: str, dicoms: dict, negatives: str,
            spiculated: bool) -> LesionRecord | None:
    name = cell["File Name"]
    laterality = cell["Laterality"].upper()
    view = {"CC": "CC", "MLO": "MLO", "ML": "MLO"}.get(cell["View"].upper())  # FB (and anything else): None
    birads = cell["Bi-Rads"].lower()
    if not name.isdigit() or laterality not in ("L", "R") or not re.fullmatch(r"[1-6][abc]?", birads):
        raise InbreastError(f"{where}: File Name {name!r}, Laterality {cell['Laterality']!r} and Bi-Rads "
                            f"{cell['Bi-Rads']!r} must be digits, L/R and 1-6 (4a/4b/4c); fix the row or pass "
                            "skip_bad=True (--skip-bad)")
    found = dicoms.get(name)
    if found is None:
        raise InbreastError(f"{where}: no AllDICOMs/{name}_<patient hash>_MG_..._ANON.dcm for File Name {name}; "
                            "restore it from the release, or pass skip_bad=True (--skip-bad)")
    path, patient, _ = found
    xml = release / "AllXML" / f"{name}.xml"
    contours, spiculated_found, pointless = read_contours(xml, spiculated) if xml.is_file() else ([], False, 0)
    if contours:
        label: int | None = 1
    elif pointless:  # a mass without an outline: neither a box to score nor ever a negative
        raise InbreastError(f"{where}: {xml} marks a Mass with fewer than 3 points (no outline to score); the image "
                            "is left out with skip_bad=True (--skip-bad)")
    elif negatives == "birads1":
        label = 0 if birads == "1" and not spiculated_found else None
    else:
        label = None if spiculated_found else 0
    acr = cell.get("ACR", "")
    rel = path.relative_to(release).as_posix()
    files = (rel, xml.relative_to(release).as_posix()) if xml.is_file() else (rel,)
    return LesionRecord(image_id=name, patient_id=patient, laterality=laterality, view=view, label=label,
                        files=files, density=f"DENSITY {'ABCD'[int(acr) - 1]}" if acr in ("1", "2", "3", "4") else None,
                        rows=where, extra={"contours": contours, "xml": files[1] if len(files) > 1 else None,
                                           "birads": birads})
