"""A tiny INbreast release (noise images, one Mass contour, one BI-RADS 1 normal) for contract checks."""
from __future__ import annotations

import plistlib
from pathlib import Path
from typing import Any

import numpy as np

from camkit.data.dicom import DicomTags, write_dicom
from camkit.storage.atomic import atomic_write, atomic_write_text

from .annotations import CSV_NAME, RELEASE


def write_example(folder: str | Path) -> dict[str, Any]:
    """Write two patients, each a mass image and a normal one; returns the ``inbreast`` options that read them."""
    release = Path(folder) / RELEASE
    rng = np.random.default_rng(0)
    rows = ["Patient ID;Patient age;Laterality;View;Acquisition date;File Name;ACR;Bi-Rads"]
    for i in range(4):
        name, patient, mass = str(22670000 + i), f"{i // 2:016x}", i % 2 == 0
        pixels = rng.integers(100, 3000, size=(96, 64)).astype(np.uint16)
        write_dicom(release / "AllDICOMs" / f"{name}_{patient}_MG_L_CC_ANON.dcm", pixels,
                    DicomTags(study_id=f"1.2.{i}", series_id=f"1.3.{i}", image_id=f"1.4.{i}", laterality="L",
                              view="CC", bits_stored=14))
        if mass:
            roi = {"Name": "Mass", "Point_px": ["(20.500000, 30.000000)", "(40.000000, 31.000000)",
                                                "(38.000000, 52.250000)", "(22.000000, 50.000000)"]}
            data = {"Images": [{"ImageIndex": 0, "NumberOfROIs": 1, "ROIs": [roi]}]}
            atomic_write(release / "AllXML" / f"{name}.xml", lambda f, d=data: plistlib.dump(d, f))
        rows.append(f"removed;removed;L;CC;200801;{name};2;{'4c' if mass else '1'}")
    atomic_write_text(release / CSV_NAME, "\r\n".join(rows) + "\r\n")
    return {"root": str(Path(folder)), "test_fraction": 0.0, "val_fraction": 0.0}
