"""Reading (and writing) VinDr-flavoured DICOM files with errors that say which file and what to do.

The pixel conversion itself (VOI LUT, MONOCHROME1 inversion, [0, 1]) is :func:`camkit.imaging.read_dicom`;
this module adds the checks in front of it that VinDr needs (missing decoders, truncation, the UI warning).

VinDr's headers carry the literal file-meta SOP class UID ``1.2.3.4`` and hex-string UIDs, so pydicom warns
"Invalid value for VR UI" on every file; that one warning is expected and silenced here, locally.
Compressed transfer syntaxes (JPEG 2000, JPEG-LS, JPEG) decode when the ``jpeg`` extra is installed
(pylibjpeg + pylibjpeg-openjpeg / pylibjpeg-libjpeg); otherwise the error names the missing package.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from camkit.errors import ImageReadError

UI_WARNING = r"Invalid value for VR UI"
JPEG_EXTRA = "pip install 'camkit[jpeg]'"

# transfer syntax UID -> (name, the pylibjpeg plugin package that decodes it, its import name)
_COMPRESSED = {
    "1.2.840.10008.1.2.4.90": ("JPEG 2000 (lossless)", "pylibjpeg-openjpeg", "openjpeg"),
    "1.2.840.10008.1.2.4.91": ("JPEG 2000", "pylibjpeg-openjpeg", "openjpeg"),
    "1.2.840.10008.1.2.4.201": ("HTJ2K (lossless)", "pylibjpeg-openjpeg", "openjpeg"),
    "1.2.840.10008.1.2.4.202": ("HTJ2K (lossless RPCL)", "pylibjpeg-openjpeg", "openjpeg"),
    "1.2.840.10008.1.2.4.203": ("HTJ2K", "pylibjpeg-openjpeg", "openjpeg"),
    "1.2.840.10008.1.2.4.80": ("JPEG-LS (lossless)", "pylibjpeg-libjpeg", "libjpeg"),
    "1.2.840.10008.1.2.4.81": ("JPEG-LS (near-lossless)", "pylibjpeg-libjpeg", "libjpeg"),
    "1.2.840.10008.1.2.4.50": ("JPEG baseline", "pylibjpeg-libjpeg", "libjpeg"),
    "1.2.840.10008.1.2.4.51": ("JPEG extended", "pylibjpeg-libjpeg", "libjpeg"),
    "1.2.840.10008.1.2.4.57": ("JPEG lossless", "pylibjpeg-libjpeg", "libjpeg"),
    "1.2.840.10008.1.2.4.70": ("JPEG lossless SV1", "pylibjpeg-libjpeg", "libjpeg"),
}


class DicomReadError(ImageReadError):
    """An image file that is missing, not DICOM, truncated or needs a decoder that is not installed."""


@contextlib.contextmanager
def quiet_ui_warnings() -> Iterator[None]:
    """Silence pydicom's expected "Invalid value for VR UI" warning (and only it) inside the block."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=UI_WARNING)
        yield


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _skip_hint(where: str | None) -> str:
    listed = f" (listed in {where})" if where else ""
    return f"{listed}; fix or re-download the file (PhysioNet ships SHA256SUMS.txt), or pass skip_bad=True " \
           "(--skip-bad) to leave the image out"


def missing_message(path: str | Path, where: str | None = None) -> str:
    """The message for an image file that is not there."""
    return f"image file missing: {path}{_skip_hint(where)}."


def read_header(path: str | Path, where: str | None = None, check_size: bool = True):
    """The DICOM header of ``path`` without pixel data; raises :class:`DicomReadError` for a missing,
    non-DICOM or (``check_size``) truncated file. Cheap: the pixel data is located, not read."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = Path(path)
    if not path.is_file():
        raise DicomReadError(missing_message(path, where))
    try:
        with quiet_ui_warnings():
            ds = pydicom.dcmread(path, defer_size=256)
    except InvalidDicomError as exc:
        raise DicomReadError(f"not a DICOM file: {path} ({exc}){_skip_hint(where)}.") from None
    except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds on damaged headers
        raise DicomReadError(f"unreadable DICOM header in {path} ({type(exc).__name__}: {exc})"
                             f"{_skip_hint(where)}.") from None
    if "PixelData" not in ds:
        raise DicomReadError(f"{path} has no pixel data (a truncated or non-image DICOM){_skip_hint(where)}.")
    if check_size:
        raw = ds.get_item("PixelData", keep_deferred=True)
        tsyntax = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", ""))
        expected = _expected_bytes(ds)
        if tsyntax not in _COMPRESSED and expected and getattr(raw, "value_tell", None):
            available = os.path.getsize(path) - raw.value_tell
            if raw.length < expected or available < expected:
                raise DicomReadError(f"truncated DICOM file: {path} holds {max(min(available, raw.length), 0)} "
                                     f"of the {expected} pixel-data bytes its header promises"
                                     f"{_skip_hint(where)}.")
    return ds


def _expected_bytes(ds: Any) -> int:
    try:
        frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
        return int(ds.Rows) * int(ds.Columns) * int(getattr(ds, "SamplesPerPixel", 1)) * frames * \
            ((int(ds.BitsAllocated) + 7) // 8)
    except (AttributeError, TypeError, ValueError):
        return 0


def load_unit_image(path: str | Path, where: str | None = None, voi: bool = True) -> np.ndarray:
    """The image of ``path`` as (H, W) float32 in [0, 1], tissue bright (VOI LUT/windowing when ``voi``,
    MONOCHROME1 inverted: :func:`camkit.imaging.read_dicom`), after checks that turn every failure into a
    :class:`DicomReadError` naming the file and the fix (missing decoder package, truncation ...)."""
    from camkit.data.imaging import ImageReadError, read_dicom

    path = Path(path)
    ds = read_header(path, where)
    tsyntax = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", ""))
    if tsyntax in _COMPRESSED:
        _check_decoder(path, tsyntax)
    try:
        with quiet_ui_warnings():
            return read_dicom(path, voi=voi)
    except ImageReadError as exc:
        raise DicomReadError(_decode_message(path, tsyntax, exc.__cause__ or exc, where)) from None


def _check_decoder(path: Path, tsyntax: str) -> None:
    from pydicom.pixels import get_decoder

    name, package, module = _COMPRESSED[tsyntax]
    try:
        available = get_decoder(tsyntax).is_available
    except Exception:  # noqa: BLE001 - an unknown syntax: let the decode attempt report it
        return
    if not available:
        missing = [p for p, m in (("pylibjpeg", "pylibjpeg"), (package, module)) if not _installed(m)]
        raise DicomReadError(f"{path} is {name}-compressed and no decoder is installed: needs "
                             f"{' and '.join(missing) or package}. Install the decoders with {JPEG_EXTRA} "
                             f"(pylibjpeg, {package}).")


def _decode_message(path: Path, tsyntax: str, exc: Exception, where: str | None) -> str:
    cause = " ".join(f"{type(exc).__name__}: {exc}".split())  # one line: pydicom lists plugins on several
    if tsyntax in _COMPRESSED:
        name, package, module = _COMPRESSED[tsyntax]
        if not (_installed(module) and _installed("pylibjpeg")):
            return (f"could not decode the {name} pixel data of {path} ({cause}). {package} is not installed; "
                    f"install the decoders with {JPEG_EXTRA} (pylibjpeg, {package}) and retry; if they are "
                    f"installed and this persists, the file is damaged{_skip_hint(where)}.")
        return f"could not decode the {name} pixel data of {path} ({cause}){_skip_hint(where)}."
    return f"could not read the pixel data of {path}, probably truncated ({cause}){_skip_hint(where)}."


def write_dicom(path: str | Path, stored: np.ndarray, *, study_id: str, series_id: str, image_id: str,
                laterality: str, view: str, photometric: str = "MONOCHROME2", bits_stored: int = 12,
                window: tuple[list[float], list[float]] | None = None,
                transfer_syntax: str | None = None, encapsulated: bytes | None = None) -> Path:
    """Write a VinDr-style mammogram DICOM (16-bit, hex UIDs, file-meta SOP class ``1.2.3.4``) atomically.

    ``stored``: (H, W) unsigned integers exactly as they go on disk (invert for MONOCHROME1 beforehand).
    ``window``: (centers, widths), multi-valued when the lists have several entries.
    ``transfer_syntax`` + ``encapsulated``: write already-compressed fragment bytes instead (tests use this
    to produce a JPEG 2000 file without an encoder).
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import ExplicitVRLittleEndian

    from camkit.storage.atomic import atomic_write

    stored = np.ascontiguousarray(stored, dtype=np.uint16)
    with quiet_ui_warnings():
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = "1.2.3.4"
        meta.MediaStorageSOPInstanceUID = image_id
        meta.TransferSyntaxUID = transfer_syntax or ExplicitVRLittleEndian
        meta.ImplementationClassUID = "1.2.826.0.1.3680043.8.498.1"
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID = image_id, study_id, series_id
        ds.Modality, ds.PatientID = "MG", study_id[:16]
        ds.ImageLaterality, ds.ViewPosition = laterality, view
        ds.Rows, ds.Columns = int(stored.shape[0]), int(stored.shape[1])
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits_stored, bits_stored - 1, 0
        if window is not None:
            centers, widths = window
            ds.WindowCenter = centers if len(centers) > 1 else centers[0]
            ds.WindowWidth = widths if len(widths) > 1 else widths[0]
            ds.VOILUTFunction = "LINEAR"
        if encapsulated is not None:
            ds.PixelData = encapsulate([encapsulated])
            ds["PixelData"].VR = "OB"
        else:
            ds.PixelData = stored.tobytes()
            ds["PixelData"].VR = "OW"
        ds.preamble = b"\0" * 128
        buf = io.BytesIO()
        # enforce_file_format=False keeps the file meta as given (VinDr's SOP class UID is the literal 1.2.3.4)
        ds.save_as(buf, enforce_file_format=False)
    return atomic_write(path, lambda f: f.write(buf.getvalue()))
