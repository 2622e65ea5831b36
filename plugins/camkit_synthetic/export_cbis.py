"""Write a small synthetic CBIS-DDSM download, in the layouts the NBIA Data Retriever writes and with the quirks
of the real one (SPEC-datasets.md section 1), from camkit's synthetic generator.

What it reproduces: subject folders ``<Mass|Calc>-<Training|Test>_P_xxxxx_<LEFT|RIGHT>_<CC|MLO>[_<id>]``; the
descriptive layout (``manifest-*/CBIS-DDSM/<subject>/<date>-DDSM[-NA]-<5>/1.000000-<description>-<5>/1-1.dcm``
with NBIA's metadata.csv), the classic UID folders and the older per-subset tree; the four description CSVs with
CRLF rows, classic ``000000.dcm`` paths and a quoted trailing line feed (Q1, Q2); ROI series holding mask and
crop in either order, a pair inside a ``cropped images`` series, a mask and crop in two studies with the CSV
columns crossed (Q3, Q4); masks within 1% of the image's size (Q5); several masses per image with ids not 1..n
(Q6, Q7); a calcification copy of a mass view (Q8); ``NA`` cells and both density column names (Q9);
breasts facing either way (Q10). With ``bad=True`` also a mask 15% smaller than its image, a CSV row whose image
is missing and a row that does not parse, each of which a reader must report.
"""
from __future__ import annotations

import csv
import io
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from camkit.data.dicom import DicomTags, write_dicom
from camkit.storage.atomic import atomic_write_text

from .generator import generate

# the published CSVs' names and exact headers (camkit_cbis reads them; tests check both sides agree)
CSV_NAMES = {("mass", "train"): "mass_case_description_train_set.csv",
             ("mass", "test"): "mass_case_description_test_set.csv",
             ("calc", "train"): "calc_case_description_train_set.csv",
             ("calc", "test"): "calc_case_description_test_set.csv"}
MASS_HEADER = ("patient_id", "breast_density", "left or right breast", "image view", "abnormality id",
               "abnormality type", "mass shape", "mass margins", "assessment", "pathology", "subtlety",
               "image file path", "cropped image file path", "ROI mask file path")
CALC_HEADER = ("patient_id", "breast density", "left or right breast", "image view", "abnormality id",
               "abnormality type", "calc type", "calc distribution", "assessment", "pathology", "subtlety",
               "image file path", "cropped image file path", "ROI mask file path")
LAYOUTS = ("descriptive", "descriptive-no-na", "classic", "older")
REAL_SIZES = ((4624, 3056), (5041, 2056), (4248, 2536))
DEFAULT_SCALE = 1 / 16
UID_ROOT = "1.3.6.1.4.1.9590.100.1.2."
DATES = {("mass", "train", False): "07-20-2016", ("mass", "train", True): "07-21-2016",
         ("mass", "test", False): "10-04-2016", ("mass", "test", True): "10-04-2016",
         ("calc", "train", False): "08-07-2016", ("calc", "train", True): "09-06-2017",
         ("calc", "test", False): "08-29-2017", ("calc", "test", True): "08-29-2017"}
# (split, mass side/view, mass ids, ROI storage, mask ~1% too large, mass shape, negative side/view, Q8 copy)
SCENARIOS = (
    ("train", ("LEFT", "CC"), (1,), "pair-mask-second", False, "IRREGULAR", ("RIGHT", "MLO"), False),
    ("train", ("RIGHT", "MLO"), (2, 3), "pair-mask-first", False, "OVAL-LOBULATED", ("LEFT", "CC"), True),
    ("test", ("LEFT", "MLO"), (1,), "two-series-crossed", False, "ROUND", ("RIGHT", "CC"), False),
    ("train", ("RIGHT", "CC"), (1,), "pair-in-cropped-series", True, "IRREGULAR-ARCHITECTURAL_DISTORTION", None, False),
    ("test", ("LEFT", "CC"), (1,), "pair-mask-first", False, "LOBULATED", ("LEFT", "MLO"), True),
    ("train", ("RIGHT", "MLO"), (1,), "pair-mask-second", False, "ARCHITECTURAL_DISTORTION", ("RIGHT", "CC"), False),
)


@dataclass
class CbisImage:
    """One full mammogram written, and what a faithful reader must make of it."""

    subject: str
    patient: str
    split: str                  # train / test
    side: str                   # L / R
    view: str
    label: int | None           # 1 mass, 0 calc-only negative, None: Q8 copy or bad input
    size: tuple[int, int]
    masks: list[np.ndarray] = field(default_factory=list)   # per mass row, the image's size
    shapes: list[str] = field(default_factory=list)
    bad: str | None = None      # why a reader must report it (bad=True only)
    grown: bool = False         # its mask files are ~1% larger than the image (Q5's small case)
    file: str = ""              # the image's path under the root


@dataclass
class CbisSet:
    root: Path
    layout: str
    images: list[CbisImage]

    def count(self, split: str, label: int | None) -> int:
        return sum(1 for im in self.images if im.split == split and im.label == label and im.bad is None)


class _Writer:
    def __init__(self, root: Path, layout: str, rng: np.random.Generator):
        self.root, self.layout, self.rng = root, layout, rng
        self.base = {"descriptive": root / "manifest-1657064287305" / "CBIS-DDSM",
                     "descriptive-no-na": root / "CBIS-DDSM", "classic": root / "CBIS-DDSM"}.get(layout)
        self.metadata: list[list[str]] = []

    def uid(self) -> str:
        return UID_ROOT + "".join(str(int(d)) for d in self.rng.integers(0, 10, size=36)).lstrip("0")

    def series(self, subject: str, kind: str, split: str, roi: bool, description: str,
               arrays: list[np.ndarray], study_uid: str | None = None) -> tuple[str, str, list[str]]:
        """Write one series; returns (StudyUID, SeriesUID, written paths under the root)."""
        study_uid, series_uid = study_uid or self.uid(), self.uid()
        date = DATES[(kind, split, roi)]
        if self.layout == "classic":
            folder = self.base / subject / study_uid / series_uid
            names = [f"{i:06d}.dcm" for i in range(len(arrays))]
        elif self.layout == "older":
            subset = f"{subject.split('_')[0]} {'ROI and Cropped Images' if roi else 'Full Mammogram Images'}"
            folder = (self.root / subset / subject / f"{date}-DDSM-{study_uid[-5:]}"
                      / f"1-{description}-{series_uid[-5:]}")
            names = [f"{i:06d}.dcm" for i in range(len(arrays))]
        else:
            na = "-NA" if self.layout == "descriptive" else ""
            folder = (self.base / subject / f"{date}-DDSM{na}-{study_uid[-5:]}"
                      / f"1.000000-{description}-{series_uid[-5:]}")
            names = [f"1-{i + 1}.dcm" for i in range(len(arrays))]
        out = []
        for name, arr in zip(names, arrays):
            write_dicom(folder / name, arr, DicomTags(study_id=study_uid, series_id=series_uid, image_id=self.uid(),
                                                      laterality=subject.split("_")[3][0], view=subject.split("_")[4],
                                                      patient_id=subject, sop_class="1.2.840.10008.5.1.4.1.1.7"))
            out.append(folder / name)
        if self.layout == "descriptive":
            self.metadata.append([series_uid, "CBIS-DDSM", subject, study_uid, description, str(len(arrays)),
                                  "./" + folder.relative_to(self.base.parent).as_posix()])
        return study_uid, series_uid, [p.relative_to(self.root).as_posix() for p in out]


def _classic(subject: str, study: str, series: str, index: int) -> str:
    return f"{subject}/{study}/{series}/{index:06d}.dcm"


def _image_size(k: int, size: tuple[int, int] | None, scale: float) -> tuple[int, int]:
    if size:
        return int(size[0]), int(size[1])
    h, w = REAL_SIZES[k % len(REAL_SIZES)]
    return max(64, int(round(h * scale))), max(48, int(round(w * scale)))


def _mass_image(k: int, hw: tuple[int, int], seed: int, count: int, difficulty: str):
    """(pixels [0, 1], one mask per mass): the generator's mass, plus shifted copies for extra masses."""
    im = generate(4 * k + 2, hw, seed=seed, split="train", difficulty=difficulty)
    pixels, masks = im.pixels.copy(), [im.masks[0]]
    lesion = im.pixels - im.mass_free
    for j in range(1, count):
        dy = (hw[0] // 4) * (1 if im.boxes[0][1] < hw[0] / 2 else -1) * j
        shifted = np.roll(lesion, dy, axis=0)
        pixels = np.clip(pixels + shifted, 0, 1)
        masks.append(np.roll(im.masks[0], dy, axis=0))
    return pixels, masks


def _u16(pixels: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(pixels, 0, 1) * 65535).astype(np.uint16)


def _crop_of(pixels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    y0, y1 = max(0, rows[0] - 4), rows[-1] + 5
    x0, x1 = max(0, cols[0] - 4), cols[-1] + 5
    return _u16(pixels[y0:y1, x0:x1])


def _mask_file(mask: np.ndarray, grow: bool) -> np.ndarray:
    """The mask as CBIS stores it (uint8 0/255); ``grow`` pads it ~1% taller and ~0.5% wider (Q5's small case)."""
    out = mask.astype(np.uint8) * 255
    if grow:
        h, w = mask.shape
        grown = np.zeros((h + max(1, round(0.01 * h)), w + max(1, round(0.005 * w))), np.uint8)
        grown[:h, :w] = out
        out = grown
    return out


def write_cbis(out: str | Path, n: int = 6, size: tuple[int, int] | None = None, seed: int = 0,
               scale: float = DEFAULT_SCALE, layout: str = "descriptive", bad: bool = False,
               difficulty: str = "default") -> CbisSet:
    """Write ``n`` patients (each a mass image and, for most, a calcification view) under ``out`` in ``layout``
    (one of :data:`LAYOUTS`); returns the ground truth. ``size``: every image's (H, W), else CBIS's real sizes
    times ``scale``."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    root = Path(out)
    rng = np.random.default_rng([seed, 17])
    w = _Writer(root, layout, rng)
    rows: dict[tuple[str, str], list[list[str]]] = {k: [] for k in CSV_NAMES}
    images: list[CbisImage] = []
    for k in range(n):
        split, (side, view), ids, storage, grow, shape, negative, q8 = SCENARIOS[k % len(SCENARIOS)]
        patient = f"P_{7 + 13 * k:05d}"
        hw = _image_size(k, size, scale)
        pixels, masks = _mass_image(k, hw, seed, len(ids), difficulty)
        subset = "Training" if split == "train" else "Test"
        subject = f"Mass-{subset}_{patient}_{side}_{view}"
        study, series, files = w.series(subject, "mass", split, False, "full mammogram images", [_u16(pixels)])
        image = CbisImage(subject, patient, split, side[0], view, 1, hw, masks=list(masks),
                          shapes=[shape] * len(ids), file=files[0], grown=grow)
        density = str(1 + k % 4)
        for j, (abn, mask) in enumerate(zip(ids, masks)):
            roi_subject = f"{subject}_{abn}"
            mask_arr, crop_arr = _mask_file(mask, grow), _crop_of(pixels, mask)
            if storage == "two-series-crossed":
                rs, rser, _ = w.series(roi_subject, "mass", split, True, "ROI mask images", [mask_arr])
                cs, cser, _ = w.series(roi_subject, "mass", split, True, "cropped images", [crop_arr])
                # Q3: the crop column points at the mask's series and the mask column at the crop's
                crop_path, mask_path = _classic(roi_subject, rs, rser, 0), _classic(roi_subject, cs, cser, 0)
            else:
                first = storage == "pair-mask-first" if j == 0 else storage != "pair-mask-first"
                pair = [mask_arr, crop_arr] if first else [crop_arr, mask_arr]
                desc = "cropped images" if storage == "pair-in-cropped-series" else "ROI mask images"
                rs, rser, _ = w.series(roi_subject, "mass", split, True, desc, pair)
                crop_path, mask_path = _classic(roi_subject, rs, rser, 0), _classic(roi_subject, rs, rser, 1)
            rows[("mass", split)].append([
                patient, density, side, view, str(abn), "mass", shape, "NA" if k % 3 == 0 else "CIRCUMSCRIBED",
                "4", "MALIGNANT" if k % 2 else "BENIGN", "3", _classic(subject, study, series, 0), crop_path,
                mask_path + "\n"])
        images.append(image)
        calc_views = ([negative] if negative else []) + ([(side, view)] if q8 else [])
        for c_side, c_view in calc_views:
            c_subject = f"Calc-{subset}_{patient}_{c_side}_{c_view}"
            copy = (c_side, c_view) == (side, view)
            c_pixels = pixels if copy else generate(4 * k, hw, seed=seed, split="train", difficulty=difficulty).pixels
            c_study, c_series, c_files = w.series(c_subject, "calc", split, False, "full mammogram images",
                                                  [_u16(c_pixels)])
            calc = np.zeros(hw, bool)
            calc[hw[0] // 2:hw[0] // 2 + 6, hw[1] // 3:hw[1] // 3 + 6] = True
            rs, rser, _ = w.series(f"{c_subject}_1", "calc", split, True, "ROI mask images",
                                   [_crop_of(c_pixels, calc), _mask_file(calc, False)])
            # the calc CSVs name the mask 000000 and the crop 000001 (here the crop is the first file: Q3)
            rows[("calc", split)].append([
                patient, density, c_side, c_view, "1", "calcification", "PLEOMORPHIC", "NA" if k % 2 else "CLUSTERED",
                "4", "BENIGN_WITHOUT_CALLBACK", "2", _classic(c_subject, c_study, c_series, 0),
                _classic(f"{c_subject}_1", rs, rser, 1) + "\n", _classic(f"{c_subject}_1", rs, rser, 0)])
            images.append(CbisImage(c_subject, patient, split, c_side[0], c_view, None if copy else 0, hw,
                                    file=c_files[0]))
    if bad:
        images += _write_bad(w, rows, n, seed, scale, size, difficulty)
    for (kind, split), name in CSV_NAMES.items():
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\r\n")
        writer.writerow(MASS_HEADER if kind == "mass" else CALC_HEADER)
        writer.writerows(rows[(kind, split)])
        atomic_write_text(root / name, buf.getvalue())
    if w.metadata:
        _write_metadata(w)
    return CbisSet(root, layout, images)


def _write_bad(w: _Writer, rows: dict, n: int, seed: int, scale: float, size, difficulty: str) -> list[CbisImage]:
    """Three images a reader must report: a mask 15% smaller than its image, a missing image, a bad row."""
    out = []
    for j, why in enumerate(("mask-size", "missing-image", "bad-row")):
        k = n + j
        patient, hw = f"P_{7 + 13 * k:05d}", _image_size(k, size, scale)
        pixels, masks = _mass_image(k, hw, seed, 1, difficulty)
        subject = f"Mass-Training_{patient}_LEFT_CC"
        study, series, files = w.series(subject, "mass", "train", False, "full mammogram images", [_u16(pixels)])
        mask = masks[0]
        if why == "mask-size":
            small = np.zeros((int(hw[0] * 0.85), int(hw[1] * 0.85)), bool)
            small[: mask.shape[0], : mask.shape[1]] = mask[: small.shape[0], : small.shape[1]]
            mask = small
        rs, rser, _ = w.series(f"{subject}_1", "mass", "train", True, "ROI mask images",
                               [_mask_file(mask, False), _crop_of(pixels, masks[0])])
        if why == "missing-image":
            shutil.rmtree((w.root / files[0]).parent)
        side = "UP" if why == "bad-row" else "LEFT"
        rows[("mass", "train")].append([
            patient, "2", side, "CC", "1", "mass", "OVAL", "NA", "4", "BENIGN", "3",
            _classic(subject, study, series, 0), _classic(f"{subject}_1", rs, rser, 1),
            _classic(f"{subject}_1", rs, rser, 0) + "\n"])
        out.append(CbisImage(subject, patient, "train", "L", "CC", None, hw, masks=masks, bad=why, file=files[0]))
    return out


def _write_metadata(w: _Writer) -> None:
    """NBIA's metadata.csv (the columns camkit reads, in NBIA's order, among others) in the manifest folder."""
    header = ["Series UID", "Collection", "3rd Party Analysis", "Data Description URI", "Subject ID", "Study UID",
              "Study Description", "Study Date", "Series Description", "Manufacturer", "Modality",
              "SOP Class Name", "SOP Class UID", "Number of Images", "File Size", "File Location",
              "Download Timestamp"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(header)
    for uid, coll, subject, study, desc, count, location in w.metadata:
        writer.writerow([uid, coll, "NO", "", subject, study, "", "", desc, "", "MG", "Secondary Capture Image Storage",
                         "1.2.840.10008.5.1.4.1.1.7", count, "1 MB", location, "2022-07-05T23:38:07"])
    atomic_write_text(w.base.parent / "metadata.csv", buf.getvalue())
