"""A tiny VinDr-Mammo layout (noise images, one mass box) for contract checks: camkit.testing.check_dataset."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from camkit.data.dicom import DicomTags, write_dicom
from camkit.storage.atomic import atomic_write_text

from .annotations import BREAST_COLUMNS, BREAST_CSV, FINDING_COLUMNS, FINDING_CSV


def example_options(folder: str | Path) -> dict[str, Any]:
    """Write two studies (one with a mass) to ``folder``; returns the ``vindr`` options that read them."""
    root = Path(folder)
    rng = np.random.default_rng(0)
    breast, finding = [], []
    for s, split in enumerate(("training", "test")):
        for i, (lat, view) in enumerate((("L", "CC"), ("L", "MLO"), ("R", "CC"), ("R", "MLO"))):
            study, series, image = f"{s:032x}", f"{s:031x}{i // 2}", f"{s:030x}{i:02d}"
            pixels = rng.integers(200, 3000, size=(96, 64)).astype(np.uint16)
            write_dicom(root / "images" / study / f"{image}.dicom", pixels,
                        DicomTags(study_id=study, series_id=series, image_id=image, laterality=lat, view=view))
            mass = i == 0
            base = [study, series, image, lat, view, 96, 64, "BI-RADS 4" if mass else "BI-RADS 1", "DENSITY B"]
            breast.append(base + [split])
            cats, box = (["Mass"], ["10.0", "20.0", "40.0", "50.0"]) if mass else (["No Finding"], [""] * 4)
            finding.append(base + [repr(cats), "BI-RADS 4" if mass else ""] + box + [split])
    for name, columns, rows in ((BREAST_CSV, BREAST_COLUMNS, breast), (FINDING_CSV, FINDING_COLUMNS, finding)):
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
        atomic_write_text(root / name, buf.getvalue())
    return {"root": str(root), "balanced": False, "val_fraction": 0.0}
