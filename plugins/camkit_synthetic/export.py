"""Write a synthetic data set in VinDr-Mammo's layout, quirks included, from camkit's synthetic generator
(and, with :func:`write_folder`, the same images as PNGs + ``labels.csv`` for the ``folder`` dataset).

Each VinDr study holds four generator images (two generator studies, each a CC + MLO pair of one breast):
the first breast normal, the second with a mass in two studies out of three. On top of the
generator's pixels and boxes the writer reproduces what makes real VinDr files awkward:

* 16-bit uncompressed DICOMs, 12/14/16 bits stored, hex UIDs and the file-meta SOP class UID ``1.2.3.4``
  (pydicom warns "Invalid value for VR UI" on them);
* MONOCHROME1 (stored inverted) and MONOCHROME2; WindowCenter/Width present, sometimes multi-valued
  (the first window covers the data), sometimes absent;
* real-like sizes (3518x2800, 2812x2012, 3580xW), scaled down by ``scale`` unless ``size`` is given;
* right views stored facing left (as the generator returns them), boxes in the stored frame;
* the two CSVs with VinDr's exact column order, category list literals (``['Mass']``,
  ``"['Mass', 'Architectural Distortion']"``), ``['No Finding']`` rows with empty coordinates, some
  normal-looking images carrying another finding (excluded from the mass-vs-normal task), split by study.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from camkit.storage.atomic import atomic_write_text

from camkit.data.dicom import DicomTags, write_dicom

from .generator import generate

# VinDr-Mammo's published file format (PhysioNet v1.0.0): file names and exact column order. The VinDr plugin
# reads the same format; tests/test_vindr_dataset.py checks that what this writes, it reads.
BREAST_CSV = "breast-level_annotations.csv"
FINDING_CSV = "finding_annotations.csv"
BREAST_COLUMNS = ("study_id", "series_id", "image_id", "laterality", "view_position", "height", "width",
                  "breast_birads", "breast_density", "split")
FINDING_COLUMNS = BREAST_COLUMNS[:-1] + ("finding_categories", "finding_birads", "xmin", "ymin", "xmax",
                                         "ymax", "split")

# (height, width or (min, max) width, share) of VinDr's image sizes
REAL_SIZES = (((3518, 2800), 0.6), ((2812, 2012), 0.25), ((3580, (2531, 2812)), 0.15))
DEFAULT_SCALE = 1 / 8
OTHER_FINDINGS = ("Suspicious Calcification", "Focal Asymmetry", "Architectural Distortion")


@dataclass
class WrittenImage:
    """What the writer put on disk for one image (the ground truth tests compare the loader with)."""

    study_id: str
    series_id: str
    image_id: str
    split: str               # "training" / "test" (folder layout: "train" / "val" / "test")
    label: int | None        # 1 mass, 0 normal, None another finding (not part of the task)
    laterality: str
    view: str
    photometric: str
    size: tuple[int, int]    # stored (H, W)
    boxes: np.ndarray        # mass boxes (N, 4) x1 y1 x2 y2 in the stored frame
    source_index: int = 0    # the generator's image index (generate(source_index, size, seed=seed))
    categories: list[list[str]] = field(default_factory=list)

    @property
    def relpath(self) -> str:
        return f"images/{self.study_id}/{self.image_id}.dicom"


@dataclass
class WrittenSet:
    """The images written, and counts per (split, label)."""

    root: Path
    images: list[WrittenImage]

    def count(self, split: str, label: int | None) -> int:
        return sum(1 for im in self.images if im.split == split and im.label == label)


def _hex(rng: np.random.Generator) -> str:
    return rng.bytes(16).hex()


def _study_size(rng: np.random.Generator, scale: float) -> tuple[int, int]:
    shares = np.array([s for _, s in REAL_SIZES])
    (h, w), _ = REAL_SIZES[int(rng.choice(len(REAL_SIZES), p=shares / shares.sum()))]
    if isinstance(w, tuple):
        w = int(rng.integers(w[0], w[1] + 1))
    return max(32, int(round(h * scale))), max(32, int(round(w * scale)))


def _encode(pixels: np.ndarray, photometric: str, bits: int, rng: np.random.Generator, multi: bool,
            windowed: bool) -> tuple[np.ndarray, tuple[list[float], list[float]] | None]:
    """[0, 1] tissue-bright pixels -> stored integers and a window that maps them back linearly."""
    top = 2 ** bits - 1
    lo, hi = rng.uniform(0.02, 0.1) * top, rng.uniform(0.85, 0.98) * top
    values = np.rint(lo + pixels.astype(np.float64) * (hi - lo))
    if photometric == "MONOCHROME1":
        values = top - values
        lo, hi = top - hi, top - lo
    window = None
    if windowed:
        # LINEAR windows map [c - 0.5 - (w-1)/2, c - 0.5 + (w-1)/2] linearly; widen so nothing clips.
        width = float(np.ceil((hi - lo) * 1.1 + 4))
        centre = float(np.round((lo + hi) / 2 + 0.5))
        window = ([centre, round(centre * 0.9, 1)], [width, round(width * 0.6, 1)]) if multi else \
            ([centre], [width])
    return values.astype(np.uint16), window


def write_vindr(out: str | Path, n: int = 8, size: tuple[int, int] | None = None, seed: int = 0,
                scale: float = DEFAULT_SCALE, test_fraction: float = 0.25,
                difficulty: str = "default") -> WrittenSet:
    """Write ``n`` studies (4 images each) under ``out`` in VinDr-Mammo's layout; returns what was written.

    ``size``: (H, W) of every image; by default real VinDr sizes times ``scale`` (1/8: about 440x350).
    ``test_fraction`` of the studies (at least one when ``n >= 2``) form the ``test`` split.
    """
    if n < 1:
        raise ValueError(f"n (studies) must be >= 1, got {n}")
    out = Path(out)
    rng = np.random.default_rng([int(seed), 11])
    n_test = min(n - 1, max(1, int(round(test_fraction * n)))) if n >= 2 else 0
    test_studies = set(rng.choice(n, size=n_test, replace=False).tolist()) if n_test else set()
    images: list[WrittenImage] = []
    breast_rows, finding_rows = [], []
    for s in range(n):
        study_id = _hex(rng)
        split = "test" if s in test_studies else "training"
        shape = tuple(int(v) for v in size) if size is not None else _study_size(rng, scale)
        bits = int(rng.choice([12, 14, 16]))
        series = {}
        for index in _generator_indices(s):
            g = generate(index, shape, seed=seed, split="train", difficulty=difficulty)
            series_id = series.setdefault(g.laterality, _hex(rng))
            image_id = _hex(rng)
            photometric = "MONOCHROME1" if rng.random() < 0.4 else "MONOCHROME2"
            stored, window = _encode(g.pixels, photometric, bits, rng, multi=rng.random() < 0.5,
                                     windowed=rng.random() < 0.85)
            write_dicom(out / "images" / study_id / f"{image_id}.dicom", stored,
                        DicomTags(study_id=study_id, series_id=series_id, image_id=image_id, laterality=g.laterality,
                                  view=g.view, photometric=photometric, bits_stored=bits, window=window))
            boxes = np.asarray(g.boxes, dtype=np.float64).reshape(-1, 4)
            label: int | None = int(g.label)
            if g.label:
                cats = [["Mass", "Architectural Distortion"] if rng.random() < 0.3 else ["Mass"] for _ in boxes]
                findings = [(c, "BI-RADS 4", b) for c, b in zip(cats, boxes)]
                if rng.random() < 0.3:  # a second, non-mass finding on a mass image
                    findings.append(([str(rng.choice(OTHER_FINDINGS))], "BI-RADS 3", _other_box(rng, shape)))
                birads = "BI-RADS 4"
            elif rng.random() < 0.2:  # another finding only: not normal, not mass
                label = None
                findings = [([str(rng.choice(OTHER_FINDINGS))], "BI-RADS 3", _other_box(rng, shape))]
                birads = "BI-RADS 3"
            else:
                findings = [(["No Finding"], "", None)]
                birads = "BI-RADS 1"
            density = f"DENSITY {'ABCD'[int(rng.integers(0, 4))]}"
            base = [study_id, series_id, image_id, g.laterality, g.view, shape[0], shape[1], birads, density]
            breast_rows.append(base + [split])
            for cats, fbirads, box in findings:
                coords = ["", "", "", ""] if box is None else [f"{v:.2f}" for v in box]
                finding_rows.append(base + [repr(cats), fbirads] + coords + [split])
            images.append(WrittenImage(study_id, series_id, image_id, split, label, g.laterality, g.view,
                                       photometric, shape, boxes if g.label else np.zeros((0, 4)), index,
                                       [c for c, _, _ in findings]))
    _write_csv(out / BREAST_CSV, BREAST_COLUMNS, breast_rows)
    _write_csv(out / FINDING_CSV, FINDING_COLUMNS, finding_rows)
    return WrittenSet(out, images)


def _generator_indices(study: int) -> list[int]:
    """Generator image indices of VinDr study ``study``: two generator studies (CC + MLO of one breast each);
    the generator's study ``g`` holds a mass when ``g`` is odd. The first breast is normal, the second holds a
    mass in two studies out of three, so normal images outnumber mass images, as in VinDr."""
    breasts = (4 * study, 4 * study + (1 if study % 3 != 2 else 2))
    return [2 * g + view for g in breasts for view in (0, 1)]


def write_folder(out: str | Path, n: int = 8, size: tuple[int, int] | None = None, seed: int = 0,
                 scale: float = DEFAULT_SCALE, difficulty: str = "default") -> WrittenSet:
    """Write ``n`` studies (4 images each, same generator images as :func:`write_vindr`) as 16-bit PNGs plus
    ``labels.csv`` for the ``folder`` dataset: columns image,label,study_id,image_id,laterality,view,split,
    x1,y1,x2,y2 (one row per mass box; right views stored facing left, boxes in the stored frame).
    Studies are split train / val / test (about 5:1:2, each non-empty when ``n >= 3``)."""
    from PIL import Image

    from camkit.storage.atomic import atomic_write
    if n < 1:
        raise ValueError(f"n (studies) must be >= 1, got {n}")
    out = Path(out)
    rng = np.random.default_rng([int(seed), 13])
    order = rng.permutation(n)
    n_test, n_val = (max(1, round(n / 4)), max(1, round(n / 8))) if n >= 3 else (0, 0)
    split_of = {int(s): ("test" if k < n_test else "val" if k < n_test + n_val else "train")
                for k, s in enumerate(order)}
    images, rows = [], []
    for s in range(n):
        study_id = f"study{s:04d}"
        shape = tuple(int(v) for v in size) if size is not None else _study_size(rng, scale)
        for index in _generator_indices(s):
            g = generate(index, shape, seed=seed, split="train", difficulty=difficulty)
            image_id = f"{study_id}-{g.laterality}{g.view}-{index}"
            rel = f"images/{image_id}.png"
            buf = io.BytesIO()
            Image.fromarray(np.rint(g.pixels * 65535).astype(np.uint16)).save(buf, format="PNG")
            atomic_write(out / rel, lambda f, data=buf.getvalue(): f.write(data))
            boxes = np.asarray(g.boxes, dtype=np.float64).reshape(-1, 4)
            base = [rel, int(g.label), study_id, image_id, g.laterality, g.view, split_of[s]]
            rows += [base + [f"{v:.2f}" for v in b] for b in boxes] or [base + ["", "", "", ""]]
            images.append(WrittenImage(study_id, "", image_id, split_of[s], int(g.label), g.laterality, g.view,
                                       "PNG", shape, boxes, index))
    _write_csv(out / "labels.csv", ("image", "label", "study_id", "image_id", "laterality", "view", "split",
                                    "x1", "y1", "x2", "y2"), rows)
    return WrittenSet(out, images)


def _other_box(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    y, x = rng.uniform(0.3, 0.6) * h, rng.uniform(0.2, 0.5) * w
    return np.array([x, y, x + 0.05 * w, y + 0.05 * h])


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[list[Any]]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())
