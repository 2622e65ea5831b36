"""Helpers for tests: write small, valid DICOM and PNG mammogram files."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def write_dicom(path: str | Path, pixels: np.ndarray, *, photometric: str = "MONOCHROME2", bits_stored: int = 16,
                window: tuple | None = None, rescale: tuple[float, float] | None = None,
                laterality: str | None = None) -> Path:
    """Write a minimal uncompressed 16-bit DICOM (Digital Mammography, For Presentation) holding ``pixels``.

    ``window`` = (center, width), each a number or a list (multi-valued, like VinDr's); ``rescale`` =
    (slope, intercept).
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    sop_class = "1.2.840.10008.5.1.4.1.1.1.2"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "MG"
    if laterality:
        ds.ImageLaterality = laterality
    arr = np.ascontiguousarray(pixels, dtype=np.uint16)
    ds.Rows, ds.Columns = arr.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
    ds.PixelData = arr.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return Path(path)


def write_png(path: str | Path, pixels: np.ndarray, bits: int = 16) -> Path:
    """Write a greyscale PNG, 16-bit (Pillow mode ``I;16``) or 8-bit (mode ``L``)."""
    from PIL import Image

    im = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint16 if bits == 16 else np.uint8))
    assert im.mode == ("I;16" if bits == 16 else "L"), im.mode
    im.save(path)
    return Path(path)


def phantom(h: int = 120, w: int = 80, left: bool = True, marker: bool = True) -> np.ndarray:
    """A [0, 1] breast-like phantom: a bright half-disc on the chest-wall side, a bright square 'mass' at
    rows 40-60, columns 20-35 (of the left-facing layout), and optionally a small label far from it."""
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    img = (((xx / (0.8 * w)) ** 2 + ((yy - h / 2) / (0.45 * h)) ** 2) < 1).astype(np.float64) * 0.4
    img[40:60, 20:35] = 1.0
    if marker:
        img[4:8, w - 8:w - 4] = 0.9
    return img if left else img[:, ::-1].copy()
