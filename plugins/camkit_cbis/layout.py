"""Where a CBIS-DDSM download keeps its files: subject folders found at any depth, CSV paths resolved to series
folders whatever layout the NBIA Data Retriever wrote.

The four description CSVs name every file in the "classic" form ``<subject>/<StudyUID>/<SeriesUID>/000000.dcm``,
which a default ("descriptive") download does not have: its folders are ``<date>-DDSM[-NA]-<5 digits>`` and
``1.000000-<description>-<5 digits>`` with files ``1-1.dcm``, ``1-2.dcm``. A CSV path is therefore resolved to its
**series folder** (never to a file name), trying in turn: the UID folders themselves, NBIA's ``metadata.csv``
(Series UID -> File Location), the 5-digit UID suffixes of the folder names, and the SeriesInstanceUID in the
headers; a subject holding a single series needs none of them.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from camkit.data.tables import read_rows
from camkit.errors import DataError

SUBJECT = re.compile(r"^(Mass|Calc)-(Training|Test)_(P_\d{5})_(LEFT|RIGHT)_(CC|MLO)(?:_(\d+))?$")
CSV_FILES = {
    ("mass", "train"): "mass_case_description_train_set.csv",
    ("mass", "test"): "mass_case_description_test_set.csv",
    ("calc", "train"): "calc_case_description_train_set.csv",
    ("calc", "test"): "calc_case_description_test_set.csv",
}
METADATA = "metadata.csv"
# How deep below the root the CSVs and NBIA's metadata.csv may sit (root, manifest-*/, CBIS-DDSM/'s parent ...)
_TABLE_DEPTH = 3


class CbisError(DataError):
    """A CBIS-DDSM file or row that cannot be used; the message names it and says what to do."""


@dataclass
class Tree:
    """What was found under the root: subject folders by name, the CSVs, NBIA's series locations."""

    root: Path
    subjects: dict[str, Path] = field(default_factory=dict)
    csvs: dict[tuple[str, str], Path] = field(default_factory=dict)
    series_by_uid: dict[str, Path] = field(default_factory=dict)
    _series: dict[str, list[Path]] = field(default_factory=dict)

    def rel(self, path: Path) -> str:
        """``path`` relative to the root, with forward slashes (the cache keys and messages use it)."""
        return Path(os.path.relpath(path, self.root)).as_posix()

    def series_of(self, subject: str) -> list[Path]:
        """The series folders (folders holding .dcm files) of one subject folder, sorted."""
        if subject not in self._series:
            found = []
            for dirpath, _, filenames in os.walk(self.subjects[subject]):
                if any(f.lower().endswith(".dcm") for f in filenames):
                    found.append(Path(dirpath))
            self._series[subject] = sorted(found)
        return self._series[subject]

    def resolve(self, csv_path: str, where: str) -> Path:
        """The series folder a CSV path points into (see the module docstring); CbisError when there is none."""
        parts = [p for p in csv_path.strip().replace("\\", "/").split("/") if p]
        at = next((i for i, p in enumerate(parts) if SUBJECT.match(p)), None)
        if at is None:
            raise CbisError(f"{where}: {csv_path.strip()!r} does not name a CBIS-DDSM subject folder "
                            "(e.g. Mass-Training_P_00001_LEFT_CC/...); is this an official description CSV?")
        subject, uids = parts[at], parts[at + 1:at + 3]
        folder = self.subjects.get(subject)
        if folder is None:
            raise CbisError(f"{where}: the folder {subject} it names is not under {self.root} (a partial download? "
                            "download it with the NBIA Data Retriever, or pass skip_bad=True / --skip-bad)")
        study_uid, series_uid = (uids + ["", ""])[:2]
        classic = folder / study_uid / series_uid
        if series_uid and classic.is_dir():
            return classic
        listed = self.series_by_uid.get(series_uid)
        if listed is not None and listed.is_dir() and folder.resolve() in listed.parents:
            return listed
        candidates = self.series_of(subject)
        if len(candidates) == 1:
            return candidates[0]
        if series_uid:
            by_suffix = [c for c in candidates if c.name.endswith("-" + series_uid[-5:])]
            if len(by_suffix) > 1 and study_uid:
                by_suffix = [c for c in by_suffix if c.parent.name.endswith("-" + study_uid[-5:])] or by_suffix
            if len(by_suffix) == 1:
                return by_suffix[0]
            by_header = [c for c in candidates if _series_uid(c) == series_uid]
            if len(by_header) == 1:
                return by_header[0]
        if not candidates:
            raise CbisError(f"{where}: the folder {folder} holds no .dcm files (a partial download?); download it "
                            "again, or pass skip_bad=True / --skip-bad")
        raise CbisError(f"{where}: cannot tell which of the {len(candidates)} series in {folder} is Series UID "
                        f"{series_uid or '(none in the path)'}: keep NBIA's metadata.csv next to the CBIS-DDSM "
                        "folder, or pass skip_bad=True / --skip-bad")


def dicom_files(series: Path) -> list[Path]:
    """The DICOM files of a series folder, sorted by name (their names say nothing about what they hold)."""
    return sorted(p for p in series.iterdir() if p.is_file() and p.suffix.lower() == ".dcm")


def _series_uid(series: Path) -> str | None:
    import pydicom

    files = dicom_files(series)
    if not files:
        return None
    try:
        return str(pydicom.dcmread(files[0], stop_before_pixels=True, specific_tags=["SeriesInstanceUID"])
                   .get("SeriesInstanceUID", "")) or None
    except Exception:  # noqa: BLE001 - an unreadable header just does not match
        return None


def find_tree(root: str | Path) -> Tree:
    """Walk ``root`` once: subject folders at any depth (not entered), the four CSVs and NBIA's metadata.csv
    within a few levels (the shallowest copy wins)."""
    root = Path(root)
    if not root.is_dir():
        raise CbisError(f"{root} is not a folder: pass the folder holding CBIS-DDSM/ (or the manifest-* folder) "
                        "and the four *_case_description_*.csv files")
    tree = Tree(root)
    names = {v: k for k, v in CSV_FILES.items()}
    base_depth = len(root.parts)
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        depth = len(here.parts) - base_depth
        keep = []
        for d in sorted(dirnames):
            if SUBJECT.match(d):
                tree.subjects.setdefault(d, here / d)
            elif not d.startswith("."):
                keep.append(d)
        dirnames[:] = keep
        if depth <= _TABLE_DEPTH:
            for f in filenames:
                if f in names:
                    tree.csvs.setdefault(names[f], here / f)
                elif f == METADATA:
                    _read_metadata(here / f, tree.series_by_uid)
    return tree


def _read_metadata(path: Path, into: dict[str, Path]) -> None:
    """NBIA's per-series table: Series UID -> its folder (File Location is relative to the table's folder)."""
    try:
        header, rows = read_rows(path)
    except DataError:
        return  # an unreadable metadata.csv only loses a shortcut; resolution falls back to the folder names
    if "Series UID" not in header or "File Location" not in header:
        return
    for _, row in rows:
        uid, location = (row.get("Series UID") or "").strip(), (row.get("File Location") or "").strip()
        if uid and location:
            into.setdefault(uid, (path.parent / location.replace("\\", "/")).resolve())
