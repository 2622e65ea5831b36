"""A tiny CBIS-DDSM download (classic UID folders, noise images, one mass) for contract checks."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from camkit.data.dicom import DicomTags, write_dicom
from camkit.storage.atomic import atomic_write_text

from .layout import CSV_FILES

_HEADER = ["patient_id", "breast_density", "left or right breast", "image view", "abnormality id", "abnormality type",
           "mass shape", "mass margins", "assessment", "pathology", "subtlety", "image file path",
           "cropped image file path", "ROI mask file path"]


def write_example(folder: str | Path) -> dict[str, Any]:
    """Write one patient's mass view (train) and one patient's calcification view (test); returns the options."""
    root = Path(folder)
    rng = np.random.default_rng(0)
    rows: dict[tuple[str, str], list[list[str]]] = {k: [] for k in CSV_FILES}
    for i, (kind, split, patient) in enumerate((("mass", "train", "P_00004"), ("calc", "test", "P_00011"))):
        subject = f"{kind.capitalize()}-{'Training' if split == 'train' else 'Test'}_{patient}_LEFT_CC"
        pixels = rng.integers(200, 60000, size=(96, 64)).astype(np.uint16)
        mask = np.zeros((96, 64), np.uint8)
        mask[30:50, 20:40] = 255
        uids = [f"1.3.6.1.4.1.9590.100.1.2.{i + 1}{j + 1}" for j in range(4)]
        write_dicom(root / "CBIS-DDSM" / subject / uids[0] / uids[1] / "000000.dcm", pixels,
                    DicomTags(study_id=uids[0], series_id=uids[1], image_id=uids[0] + ".9", laterality="L", view="CC"))
        roi = root / "CBIS-DDSM" / f"{subject}_1" / uids[2] / uids[3]
        write_dicom(roi / "000000.dcm", pixels[25:55, 15:45],
                    DicomTags(study_id=uids[2], series_id=uids[3], image_id=uids[2] + ".8", laterality="L", view="CC"))
        write_dicom(roi / "000001.dcm", mask,
                    DicomTags(study_id=uids[2], series_id=uids[3], image_id=uids[2] + ".7", laterality="L", view="CC"))
        rows[(kind, split)].append([patient, "2", "LEFT", "CC", "1", "mass" if kind == "mass" else "calcification",
                                    "OVAL", "NA", "4", "BENIGN", "3", f"{subject}/{uids[0]}/{uids[1]}/000000.dcm",
                                    f"{subject}_1/{uids[2]}/{uids[3]}/000000.dcm",
                                    f"{subject}_1/{uids[2]}/{uids[3]}/000001.dcm\n"])
    for key, name in CSV_FILES.items():
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\r\n")
        writer.writerow(_HEADER if key[0] == "mass" else [h.replace("breast_density", "breast density") for h in _HEADER])
        writer.writerows(rows[key])
        atomic_write_text(root / name, buf.getvalue())
    return {"root": str(root), "val_fraction": 0.0}
