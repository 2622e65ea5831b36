"""Write a small synthetic INbreast release (SPEC-datasets.md section 2) from camkit's synthetic generator.

What it reproduces: ``INbreast Release 1.0/`` with ``AllDICOMs/<File Name>_<hash>_MG_<L|R>_<CC|ML|FB>_ANON.dcm``
(14-bit data in 16-bit storage, no window), ``AllXML/<File Name>.xml`` OsiriX plists (``Images[0].ROIs``, the 13
keys in order, ``Point_px`` strings ``"(x, y)"``) for every image but the BI-RADS 1 ones, ``INbreast.csv``
(semicolons, CRLF, ``removed`` patient ids, one ACR cell of spaces, BI-RADS strings such as ``4a``), reports
and stray files to ignore; patients with two exams and mastectomies (2 images); ``ML`` in the file names for the
CSV's ``MLO`` and one ``FB`` view; left breasts facing right, right ones left; ROI names in several spellings
(``Mass``, ``mass ``, ``Calcification``, ``Cluster``, ``Spiculated Region``, ``Espiculated Region``); one mass
contour overhanging the image edge (to clip). With ``bad=True`` also a contour wholly outside the image, a row
whose DICOM is missing and an XML that does not parse.

The masses are the generator's; each contour is its mask's outline sampled on 48 rays from the centre, and the
truth a reader must match is that polygon filled at pixel centres, its box the vertices' extent, clipped.
"""
from __future__ import annotations

import csv
import io
import plistlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from camkit.data.dicom import DicomTags, write_dicom
from camkit.data.masks import rasterize_polygon
from camkit.storage.atomic import atomic_write, atomic_write_text

from .generator import generate

RELEASE = "INbreast Release 1.0"
HEADER = ("Patient ID", "Patient age", "Laterality", "View", "Acquisition date", "File Name", "ACR", "Bi-Rads")
REAL_SIZES = ((4084, 3328), (3328, 2560))
DEFAULT_SCALE = 1 / 16
# per patient: the findings of its images in order (L CC, L MLO, R CC, R MLO): mass, normal, calc, spic, mass+spic
PATIENTS = (
    ("mass", "normal", "normal", "normal"),
    ("normal", "mass", "calc", "normal"),
    ("mass-edge", "mass", "normal", "spic"),
    ("mass+spic", "normal"),            # a mastectomy: one breast, two views
    ("normal", "normal", "calc", "mass"),
)


@dataclass
class InbreastImage:
    """One image written, and what a faithful reader must make of it."""

    file_name: str
    patient: str
    laterality: str
    view: str | None            # the CSV's, MLO for ML; None for FB
    birads: str
    finding: str                # mass / mass-edge / mass+spic / normal / calc / spic
    size: tuple[int, int]
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))   # per Mass contour, clipped extent
    masks: np.ndarray = field(default_factory=lambda: np.zeros((0, 1, 1), bool))
    spiculated_boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    bad: str | None = None
    path: str = ""

    def label(self, negatives: str = "birads1", spiculated: bool = False) -> int | None:
        """What a reader with these options must label the image."""
        if self.bad:
            return None
        if len(self.boxes) or (spiculated and len(self.spiculated_boxes)):
            return 1
        if "spic" in self.finding:
            return None
        if negatives == "any":
            return 0
        return 0 if self.birads == "1" else None


@dataclass
class InbreastSet:
    root: Path
    release: Path
    images: list[InbreastImage]


def _contour(mask: np.ndarray, rays: int = 48) -> np.ndarray:
    """(K, 2) x, y vertices on the outline of a star-shaped mask, from its centroid."""
    ys, xs = np.nonzero(mask)
    cy, cx = ys.mean() + 0.5, xs.mean() + 0.5
    h, w = mask.shape
    out = []
    for a in np.linspace(0, 2 * np.pi, rays, endpoint=False):
        dy, dx = np.sin(a), np.cos(a)
        r = 0.0
        while True:
            y, x = cy + (r + 0.5) * dy, cx + (r + 0.5) * dx
            if not (0 <= y < h and 0 <= x < w) or not mask[int(y), int(x)]:
                break
            r += 0.5
        out.append((cx + r * dx, cy + r * dy))
    return np.asarray(out)


def _roi(name: str, points: np.ndarray, index: int) -> dict:
    pts = [f"({x:.6f}, {y:.6f})" for x, y in points]
    kind = 19 if len(points) == 1 else 15
    return {"Area": 0.5, "Center": "(0.000000, 0.000000, 0.000000)", "Dev": 10.0, "IndexInImage": index,
            "Max": 3000.0, "Mean": 1761.0, "Min": 900.0, "Name": name, "NumberOfPoints": len(pts),
            "Point_mm": ["(0.000000, 0.000000, 0.000000)"] * len(pts), "Point_px": pts, "Total": 1e6, "Type": kind}


def _write_xml(path: Path, rois: list[dict]) -> None:
    data = {"Images": [{"ImageIndex": 0, "NumberOfROIs": len(rois), "ROIs": rois}]}
    atomic_write(path, lambda f: plistlib.dump(data, f, fmt=plistlib.FMT_XML))


def write_inbreast(out: str | Path, n: int = 5, size: tuple[int, int] | None = None, seed: int = 0,
                   scale: float = DEFAULT_SCALE, bad: bool = False, parent: bool = True,
                   difficulty: str = "default") -> InbreastSet:
    """Write ``n`` patients (:data:`PATIENTS` in turn; the second has two exams) under ``out``, in
    ``out/INbreast Release 1.0`` when ``parent`` (as the archive unpacks); returns the ground truth."""
    root = Path(out)
    release = root / RELEASE if parent else root
    rng = np.random.default_rng([seed, 23])
    images: list[InbreastImage] = []
    rows: list[list[str]] = []
    number = 20586908
    for k in range(n):
        patient = rng.bytes(8).hex()
        findings = PATIENTS[k % len(PATIENTS)]
        exams = (200801, 200902) if k % len(PATIENTS) == 1 else (200801 + k % 3,)
        hw = (REAL_SIZES[k % 2] if size is None else size)
        hw = (max(64, int(round(hw[0] * (scale if size is None else 1)))),
              max(48, int(round(hw[1] * (scale if size is None else 1)))))
        views = (("L", "CC"), ("L", "MLO"), ("R", "CC"), ("R", "MLO"))[: len(findings)]
        for e, date in enumerate(exams):
            for j, ((lat, view), finding) in enumerate(zip(views, findings)):
                number += 37 + 11 * j
                fb = k == 0 and j == 3 and e == 0
                images.append(_write_image(release, str(number), patient, lat, None if fb else view, finding, hw,
                                           seed, 16 * k + 4 * e + j, difficulty, rows, date, k == 2 and j == 0))
        atomic_write_text(release / "MedicalReports" / (f"{patient}_{exams[-1] // 100}_{exams[-1] % 100:02d}.txt"
                                                        if len(exams) > 1 else f"{patient}.txt"), "Relatório\n")
    if bad:
        images += _write_bad(release, rng, seed, hw, difficulty, rows, number)
    rows[len(rows) // 2][6] = " " * 190  # one ACR left blank, padded (53582540 in the release)
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=";", lineterminator="\r\n")
    writer.writerow(HEADER)
    writer.writerows(rows)
    atomic_write_text(release / "INbreast.csv", buf.getvalue())
    for stray in ("AllDICOMs/.DS_Store", "AllROI/.keep", "PectoralMuscle/Pectoral Muscle XML/.keep", "Thumbs.db"):
        atomic_write_text(release / stray, "")
    return InbreastSet(root, release, images)


def _write_image(release: Path, name: str, patient: str, lat: str, view: str | None, finding: str,
                 hw: tuple[int, int], seed: int, index: int, difficulty: str, rows: list, date: int,
                 edge: bool) -> InbreastImage:
    has_mass = finding.startswith("mass") or finding == "spic"
    im = generate(4 * index + (2 if has_mass else 0), hw, seed=seed, split="train", difficulty=difficulty)
    pixels, masks = im.pixels, im.masks
    if im.laterality != lat:  # INbreast: left breasts face right, right ones face left (as the generator's)
        pixels, masks = pixels[:, ::-1], masks[:, :, ::-1]
    stored = np.rint(50 + np.clip(pixels, 0, 1) * 3300).astype(np.uint16)  # 14-bit data, well below 4096
    file_view = {"CC": "CC", "MLO": "ML", None: "FB"}[view]
    path = release / "AllDICOMs" / f"{name}_{patient}_MG_{lat}_{file_view}_ANON.dcm"
    write_dicom(path, stored, DicomTags(study_id=f"1.2.826.0.1.{index + 1}", series_id=f"1.2.826.0.2.{index + 1}",
                                        image_id=f"1.2.826.0.3.{index + 1}", laterality=lat, view=file_view,
                                        bits_stored=14, patient_id=patient))
    birads = {"mass": "4c", "mass-edge": "5", "mass+spic": "5", "normal": "1", "calc": "2", "spic": "4a"}[finding]
    image = InbreastImage(name, patient, lat, view, birads, finding, hw, path=path.relative_to(release).as_posix())
    rois: list[dict] = []
    if has_mass:
        contour = _contour(masks[0])
        if edge:  # move the contour so that it overhangs the left edge by 4 px
            contour = contour - np.array([contour[:, 0].min() + 4.0, 0.0])
        if finding == "spic":
            rois.append(_roi("Spiculated Region", contour, 0))
            image.spiculated_boxes = _extent(contour, hw)[None]
        else:
            rois.append(_roi("Mass" if finding != "mass+spic" else "mass ", contour, 0))
            image.boxes = _extent(contour, hw)[None]
            image.masks = rasterize_polygon(contour, hw)[None]
            if finding == "mass+spic":
                rois.append(_roi("Espiculated Region", contour * 0.98 + 0.01 * contour.mean(0), 1))
                image.spiculated_boxes = image.boxes.copy()
    if finding == "calc" or finding == "mass":
        c = np.array([[hw[1] * 0.4, hw[0] * 0.5]])
        rois.append(_roi("Calcification", c, len(rois)))
        rois.append(_roi("Cluster", np.concatenate([c, c + [6, 0], c + [3, 5]]), len(rois)))
    if birads != "1":
        _write_xml(release / "AllXML" / f"{name}.xml", rois)
    rows.append(["removed", "removed", lat, view or "FB", str(date), name, str(1 + int(name) % 4), birads])
    return image


def _extent(contour: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    x1, y1 = contour.min(0)
    x2, y2 = contour.max(0)
    return np.array([max(x1, 0), max(y1, 0), min(x2, hw[1]), min(y2, hw[0])], dtype=np.float64)


def _write_bad(release: Path, rng: np.random.Generator, seed: int, hw: tuple[int, int], difficulty: str,
               rows: list, number: int) -> list[InbreastImage]:
    """Three images a reader must report: a contour outside the image, a missing DICOM, an XML that does not parse."""
    out = []
    patient = rng.bytes(8).hex()
    for j, why in enumerate(("contour-outside", "missing-dicom", "bad-xml")):
        name = str(number + 101 + j)
        image = _write_image(release, name, patient, "L", "CC", "mass", hw, seed, 900 + j, difficulty, rows,
                             201001, False)
        image.bad = why
        xml = release / "AllXML" / f"{name}.xml"
        if why == "contour-outside":
            data = plistlib.loads(xml.read_bytes())
            data["Images"][0]["ROIs"][0]["Point_px"] = [f"({-50 - i:.6f}, {10 + i:.6f})" for i in range(5)]
            atomic_write(xml, lambda f: plistlib.dump(data, f, fmt=plistlib.FMT_XML))
        elif why == "missing-dicom":
            (release / image.path).unlink()
        else:
            atomic_write_text(xml, "<?xml version='1.0'?><plist><dict><key>Images</key><array>")
        out.append(image)
    return out
