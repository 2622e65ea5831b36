"""Example camkit dataset plugin: the RSNA Screening Mammography Breast Cancer Detection layout.

A screening set labels whole images only (``cancer`` 0/1), so the dataset declares ``annotations = ()``:
``camkit bench`` then trains as usual and scores classification (accuracy, AUC, TPR, TNR with study
bootstrap intervals) plus the faithfulness metrics when asked, and says in one line what it cannot score.

The layout (Kaggle, 2022)::

    <root>/train.csv                      site_id, patient_id, image_id, laterality, view, age, cancer, ...,
                                          density, machine_id, ...
    <root>/train_images/<patient_id>/<image_id>.dcm

The DICOMs are MONOCHROME1 or MONOCHROME2, some JPEG 2000: :func:`camkit.data.dicom.read_dicom` reads both
photometric interpretations (MONOCHROME1 inverted) and names a missing decoder. There is no official labelled
test split: patients are held out, stratified by label (:func:`camkit.data.splits.hold_out`), and the split's
image ids are hashed into ``config``, because camkit reuses a stored model when ``config`` is unchanged.

Only ``train.csv``'s rows with ``view`` CC or MLO are kept (the set also holds ML, LM, AT views).
``write_example(folder)`` writes a small folder in this layout from camkit's synthetic mammograms (tests,
trying the plugin without the 300 GB download).
"""
from __future__ import annotations

import csv
import hashlib
from pathlib import Path
from typing import Annotated, Any, Literal

from camkit import hookimpl
from camkit.errors import DataError
from camkit.registry.options import ImageSize, Range

COLUMNS = ("patient_id", "image_id", "laterality", "view", "cancer")
VIEWS = ("CC", "MLO")


class RSNAScreening:
    """One split of an RSNA-layout folder, as camkit samples with empty boxes (image-level labels only)."""

    annotations = ()  # no lesion boxes: camkit scores classification (camkit.data.annotations)

    def __init__(self, root: str | Path, split: str = "train", size: tuple[int, int] = (256, 160), seed: int = 0,
                 val_fraction: float = 0.15, test_fraction: float = 0.2) -> None:
        from camkit.data.splits import check_split, group_labels, hold_out

        self.root = Path(root)
        self.split = check_split(split, "rsna")
        self.size = (int(size[0]), int(size[1]))
        self.seed = int(seed)
        rows = read_rows(self.root / "train.csv")
        labels = group_labels((r["patient_id"], int(r["cancer"])) for r in rows)
        test = hold_out(labels, test_fraction, seed, salt=21, what="test_fraction", labels=labels)
        rest = {p: v for p, v in labels.items() if p not in test}
        # the validation share of what the test split leaves, so val_fraction is of the whole set
        share = min(0.99, val_fraction / max(1e-9, 1.0 - test_fraction))
        val = hold_out(rest, share, seed, salt=22, what="val_fraction", labels=rest)
        held = {"test": test, "val": val, "train": set(labels) - test - val}[self.split]
        self.rows = [r for r in rows if r["patient_id"] in held]
        ids = "\n".join(r["image_id"] for r in self.rows).encode()
        self._config = {"name": "rsna", "root": str(self.root.resolve()), "split": self.split,
                        "size": list(self.size), "seed": self.seed, "val_fraction": val_fraction,
                        "test_fraction": test_fraction, "images": hashlib.sha256(ids).hexdigest()[:16]}

    @property
    def config(self) -> dict[str, Any]:
        return dict(self._config)

    def __len__(self) -> int:
        return len(self.rows)

    def labels(self) -> list[int]:
        return [int(r["cancer"]) for r in self.rows]

    def image_ids(self) -> list[str]:
        return [r["image_id"] for r in self.rows]

    def describe(self, index: int) -> str:
        r = self.rows[index]
        return f"train.csv row {r['row']} (train_images/{r['patient_id']}/{r['image_id']}.dcm)"

    def __getitem__(self, index: int) -> dict[str, Any]:
        import torch

        from camkit.data.dicom import read_dicom
        from camkit.data.imaging import preprocess

        r = self.rows[index]
        path = self.root / "train_images" / r["patient_id"] / f"{r['image_id']}.dcm"
        image, transform = preprocess(read_dicom(path, where=self.describe(index)), self.size,
                                      laterality=r["laterality"])
        density = r.get("density") or None
        return {"image": image, "label": int(r["cancer"]), "boxes": torch.zeros((0, 4), dtype=torch.float32),
                "image_id": r["image_id"], "study_id": r["patient_id"], "laterality": r["laterality"],
                "view": r["view"], "transform": transform,
                **({"density": f"DENSITY {density}"} if density else {})}


def read_rows(csv_path: Path) -> list[dict[str, str]]:
    """``train.csv``'s CC and MLO rows (with their 2-based row number as ``row``); a missing file, column or bad
    value is one DataError naming the file and row."""
    if not csv_path.is_file():
        raise DataError(f"{csv_path}: no such file; --data must be the RSNA folder that holds train.csv and "
                        "train_images/")
    with csv_path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{csv_path}: lacks the column(s) {', '.join(missing)} of the RSNA layout")
        rows = []
        for n, row in enumerate(reader, start=2):
            if row["view"] not in VIEWS:
                continue
            if row["cancer"] not in ("0", "1") or row["laterality"] not in ("L", "R"):
                raise DataError(f"{csv_path} row {n}: cancer {row['cancer']!r} / laterality {row['laterality']!r}, "
                                "not 0/1 and L/R")
            rows.append({**row, "row": str(n)})
    if not rows:
        raise DataError(f"{csv_path}: no CC or MLO row")
    return rows


def write_example(folder: str | Path, patients: int = 24, size: tuple[int, int] = (256, 160), seed: int = 0) -> Path:
    """An RSNA-layout folder of ``patients`` patients (a CC and an MLO of one breast each; every other patient
    has a cancer, drawn as a planted mass) from camkit's synthetic generator; half the files MONOCHROME1.
    Returns ``folder``."""
    import numpy as np

    from camkit.data.dicom import DicomTags, write_dicom
    from camkit_synthetic.generator import generate

    folder = Path(folder)
    rows = []
    for p in range(patients):
        patient = str(10000 + p)
        for k, view in enumerate(VIEWS):
            img = generate(2 * p + k, size, seed=seed, split="train")  # images 2p, 2p+1: one study
            image_id = str(700000 + 2 * p + k)
            stored = np.round(img.pixels * 4095).astype(np.uint16)
            photometric = "MONOCHROME1" if p % 3 == 1 else "MONOCHROME2"
            if photometric == "MONOCHROME1":  # stored inverted: tissue dark
                stored = 4095 - stored
            write_dicom(folder / "train_images" / patient / f"{image_id}.dcm", stored,
                        DicomTags(study_id=patient, series_id=f"{patient}.1", image_id=image_id,
                                  laterality=img.laterality, view=view, photometric=photometric, patient_id=patient))
            rows.append([1, patient, image_id, img.laterality, view, 60, img.label, img.label, 0, "", 0, "B", 49,
                         "False"])
    header = ["site_id", "patient_id", "image_id", "laterality", "view", "age", "cancer", "biopsy", "invasive",
              "BIRADS", "implant", "density", "machine_id", "difficult_negative_case"]
    with (folder / "train.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return folder


def create_rsna(root: str | None = None, split: Literal["train", "val", "test"] = "train",
                size: ImageSize = (256, 160), seed: int = 0,
                val_fraction: Annotated[float, Range(min=0, max=0.9)] = 0.15,
                test_fraction: Annotated[float, Range(min=0.05, max=0.9)] = 0.2) -> RSNAScreening:
    """RSNA Screening Mammography (train.csv + train_images/): cancer vs not, image-level labels only."""
    if root is None:
        raise DataError("dataset 'rsna' needs its folder: --data /path/to/rsna-breast-cancer-detection")
    return RSNAScreening(root, split, size, seed, val_fraction, test_fraction)


@hookimpl
def register_datasets(register):
    register("rsna", create_rsna, description="RSNA Screening Mammography layout: image-level cancer labels, no "
                                              "lesion boxes (classification-only leaderboards)")
