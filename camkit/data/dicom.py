"""Reading and writing DICOM mammograms, with errors that say which file is at fault and what to do.

:func:`read_dicom` is the one DICOM reader of camkit (every dataset and ``camkit explain`` use it): header
checks first (missing, not DICOM, header truncated or incomplete, pixel data shorter than the header says,
compressed without a decoder), then the pixel pipeline in the order the DICOM standard defines: stored values
-> modality LUT -> VOI LUT or window (the first of several) -> [0, 1] -> MONOCHROME1 inverted. PALETTE COLOR
images are turned into their displayed colours and then luminance; multi-frame objects need a chosen frame.

A file without the DICOM file-meta header (no ``DICM`` marker; old exports do this) is read anyway when its
data set holds an image: its encoding is detected and used to decode the pixels.

VinDr's headers carry the literal file-meta SOP class UID ``1.2.3.4`` and hex-string UIDs, so pydicom warns
"Invalid value for VR UI" on every file; that one warning is expected and silenced here, locally.
Compressed transfer syntaxes (JPEG 2000, JPEG-LS, JPEG) decode when the ``jpeg`` extra is installed
(pylibjpeg + pylibjpeg-openjpeg / pylibjpeg-libjpeg); only then does an error suggest installing it.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from camkit.data.files import file_problem
from camkit.data.pixels import to_unit_range
from camkit.errors import ImageReadError

UI_WARNING = r"Invalid value for VR UI"
JPEG_EXTRA = "pip install 'camkit[jpeg]'"
_REQUIRED = ("Rows", "Columns", "BitsAllocated", "PixelData")

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
    """A DICOM file that is missing, not DICOM, truncated or needs a decoder that is not installed."""


@contextlib.contextmanager
def quiet_ui_warnings() -> Iterator[None]:
    """Silence pydicom's expected "Invalid value for VR UI" warning (and only it) inside the block."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=UI_WARNING)
        yield


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _skip_hint(where: str | None) -> str:
    """What a dataset user can do about a bad file (only when a dataset names the row that lists it)."""
    if not where:
        return ""
    return f" (listed in {where}); fix or replace the file, or pass skip_bad=True (--dataset-opt skip_bad=true) " \
           "to leave the image out"


def missing_message(path: str | Path, where: str | None = None) -> str:
    """The message for an image file that is not there, or is not a regular file (a folder, a FIFO, a symlink
    loop: each said as what it is, :func:`camkit.data.files.file_problem`)."""
    problem = file_problem(path) or "does not exist"
    if problem == "does not exist":
        return f"image file missing: {path}{_skip_hint(where)}."
    return f"image file {path} {problem}{_skip_hint(where)}."


def read_header(path: str | Path, where: str | None = None, check_size: bool = True) -> Any:
    """The DICOM header of ``path`` (pixel data located, not read); raises :class:`DicomReadError` for a missing
    or non-DICOM file, an incomplete or truncated header, or (``check_size``) truncated pixel data."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = Path(path)
    if file_problem(path):
        raise DicomReadError(missing_message(path, where))
    try:
        with quiet_ui_warnings():
            try:
                ds = pydicom.dcmread(path, defer_size=256)
            except InvalidDicomError:
                ds = _read_without_file_meta(path, where)
    except DicomReadError:
        raise
    except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds on damaged headers
        raise DicomReadError(f"unreadable DICOM header in {path} ({_one_line(exc)}): the file is damaged or cut "
                             f"short{_skip_hint(where)}.") from None
    missing = [tag for tag in _REQUIRED if tag not in ds]
    if missing:
        raise DicomReadError(f"{path}: the DICOM header lacks {', '.join(missing)} (a truncated file, or a DICOM "
                             f"object that is not an image){_skip_hint(where)}.")
    if check_size and _native(ds):
        _check_pixel_bytes(ds, path, where)
    return ds


def _native(ds: Any) -> bool:
    """Whether the pixel data is stored as plain values in the file, so its byte count can be checked.

    Encapsulated syntaxes (JPEG, JPEG 2000, RLE ...) hold fewer bytes than rows x columns by design, and a
    deflated file's offsets are those of the inflated stream, not of the file: neither can be measured so.
    """
    from pydicom.uid import UID

    uid = UID(_transfer_syntax(ds))
    if not uid or not uid.is_transfer_syntax:  # unknown: the decode attempt reports any real problem
        return False
    return not (uid.is_compressed or uid.is_encapsulated or uid.is_deflated)


def _check_pixel_bytes(ds: Any, path: Path, where: str | None) -> None:
    """Raise :class:`DicomReadError` when the native pixel data is shorter than the header promises."""
    raw = ds.get_item("PixelData", keep_deferred=True)
    expected = _expected_bytes(ds)
    if expected and getattr(raw, "value_tell", None):
        available = os.path.getsize(path) - raw.value_tell
        if raw.length < expected or available < expected:
            raise DicomReadError(f"truncated DICOM file: {path} holds {max(min(available, raw.length), 0)} "
                                 f"of the {expected} pixel-data bytes its header promises{_skip_hint(where)}.")


def _read_without_file_meta(path: Path, where: str | None) -> Any:
    """A DICOM data set stored without the file-meta header (no 'DICM' marker): read it, and record the
    encoding pydicom detected as its transfer syntax so the pixels decode; not DICOM at all -> an error."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    try:
        ds = pydicom.dcmread(path, defer_size=256, force=True)
    except Exception:  # noqa: BLE001
        ds = None
    if ds is None or "PixelData" not in ds or "Rows" not in ds:
        raise DicomReadError(f"not a DICOM file: {path} has no DICOM file header (no 'DICM' marker at byte 128) "
                             f"and no image data set either; is it another format with a .dcm name?"
                             f"{_skip_hint(where)}.")
    implicit, little = getattr(ds, "original_encoding", (True, True))
    meta = getattr(ds, "file_meta", None) or FileMetaDataset()
    if "TransferSyntaxUID" not in meta:
        meta.TransferSyntaxUID = (ImplicitVRLittleEndian if implicit else
                                  ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
    ds.file_meta = meta
    return ds


def _transfer_syntax(ds: Any) -> str:
    return str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", ""))


def _expected_bytes(ds: Any) -> int:
    try:
        frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
        return int(ds.Rows) * int(ds.Columns) * int(getattr(ds, "SamplesPerPixel", 1)) * frames * \
            ((int(ds.BitsAllocated) + 7) // 8)
    except (AttributeError, TypeError, ValueError):
        return 0


def read_dicom(path: str | Path, *, voi: bool = True, frame: int | None = None, where: str | None = None) -> np.ndarray:
    """Read a DICOM mammogram as an (H, W) float32 array in [0, 1], tissue bright.

    ``voi`` applies the VOI LUT / first window (a broken one can be skipped with ``voi=False``). A multi-frame
    object needs ``frame`` (0-based); camkit does not guess. ``where`` (e.g. ``"labels.csv row 7"``) is added to
    messages, with how to skip the image. Every failure is a :class:`DicomReadError` naming the file.
    """
    path = Path(path)
    ds = read_header(path, where)
    tsyntax = _transfer_syntax(ds)
    if tsyntax in _COMPRESSED:
        _check_decoder(path, tsyntax)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1 and frame is None:
        # no dataset or command has a frame option: name what exists (a file per frame, or the Python call)
        raise DicomReadError(f"{path} holds {frames} frames (a multi-frame object, e.g. tomosynthesis); camkit "
                             "reads one 2-D image per file: save the frame you want as a DICOM of its own, or "
                             f"read it from Python with camkit.data.dicom.read_dicom(path, frame=0..{frames - 1})"
                             f"{_skip_hint(where)}.")
    if frame is not None and not 0 <= frame < frames:
        raise DicomReadError(f"{path}: frame {frame} does not exist; it holds {frames} frame(s)")
    try:
        with quiet_ui_warnings():
            if frames > 1:
                ds.pixel_array_options(index=frame)   # pydicom 3 decodes only the chosen frame
            arr = ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - pydicom/decoders raise many types
        raise DicomReadError(_decode_message(path, tsyntax, exc, where)) from None
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        return _colour_to_grey(arr, ds, photometric, path)
    if arr.ndim != 2:
        raise DicomReadError(f"{path} has pixel data of shape {arr.shape}; expected a 2-D image")
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        arr = apply_modality_lut(arr, ds)
        if voi:
            arr = apply_voi_lut(arr, ds, index=0)
        out = to_unit_range(arr)
    except Exception as exc:  # noqa: BLE001 - bad LUT/window values
        raise DicomReadError(f"cannot convert the pixels of DICOM {path} ({_one_line(exc)}); a broken window or "
                             "VOI LUT can be skipped with voi=False") from None
    return 1.0 - out if photometric == "MONOCHROME1" else out


def _colour_to_grey(arr: np.ndarray, ds: Any, photometric: str, path: Path) -> np.ndarray:
    """PALETTE COLOR -> its displayed RGB (not the palette indices); RGB / YBR -> RGB; then luminance.

    pydicom 3's ``pixel_array`` already returns YBR pixels as RGB, so only the palette needs applying here.
    """
    from pydicom.pixels import apply_color_lut

    if photometric not in ("PALETTE COLOR", "RGB") and not photometric.startswith("YBR"):
        raise DicomReadError(f"{path} has PhotometricInterpretation {photometric!r}, which camkit does not "
                             "read; convert it to MONOCHROME2")
    try:
        if photometric == "PALETTE COLOR":
            arr = apply_color_lut(arr, ds)
    except Exception as exc:  # noqa: BLE001
        raise DicomReadError(f"cannot convert the {photometric} pixels of {path} ({_one_line(exc)})") from None
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise DicomReadError(f"{path}: {photometric} pixel data has shape {arr.shape}; expected (H, W, 3)")
    rgb = arr.astype(np.float32)
    return to_unit_range(rgb @ np.asarray([0.299, 0.587, 0.114], np.float32))  # ITU-R BT.601 luma


def load_unit_image(path: str | Path, where: str | None = None, voi: bool = True) -> np.ndarray:
    """:func:`read_dicom` with the dataset row ``where`` first (the VinDr plugin's spelling)."""
    return read_dicom(path, voi=voi, where=where)


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


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())  # pydicom lists its plugins on several lines


def _decode_message(path: Path, tsyntax: str, exc: Exception, where: str | None) -> str:
    cause = _one_line(exc)
    if tsyntax in _COMPRESSED:
        name, package, module = _COMPRESSED[tsyntax]
        if not (_installed(module) and _installed("pylibjpeg")):
            return (f"could not decode the {name} pixel data of {path} ({cause}). {package} is not installed; "
                    f"install the decoders with {JPEG_EXTRA} (pylibjpeg, {package}) and retry; if they are "
                    f"installed and this persists, the file is damaged{_skip_hint(where)}.")
        return f"could not decode the {name} pixel data of {path} ({cause}){_skip_hint(where)}."
    from pydicom.uid import UID

    uid = UID(tsyntax)
    if uid.is_transfer_syntax and (uid.is_encapsulated or uid.is_deflated):  # RLE, deflate: no length to blame
        return f"could not decode the {uid.name} pixel data of {path} ({cause}); the file is damaged" \
               f"{_skip_hint(where)}."
    return f"could not read the pixel data of {path}, probably truncated ({cause}){_skip_hint(where)}."


@dataclass(frozen=True)
class DicomTags:
    """The header :func:`write_dicom` writes: the image's UIDs, laterality and view, and how its pixels read.

    ``bits_stored`` applies to 16-bit pixels (8-bit ones store 8); ``window``: (centers, widths), multi-valued
    when the lists have several entries; ``patient_id``: default the study id's first 16 characters;
    ``sop_class``: the file-meta SOP class UID (VinDr's literal ``1.2.3.4`` by default).
    """

    study_id: str
    series_id: str
    image_id: str
    laterality: str
    view: str
    photometric: str = "MONOCHROME2"
    bits_stored: int = 12
    window: tuple[list[float], list[float]] | None = None
    patient_id: str | None = None
    sop_class: str = "1.2.3.4"


def write_dicom(path: str | Path, stored: np.ndarray, tags: DicomTags, *, transfer_syntax: str | None = None,
                encapsulated: bytes | None = None) -> Path:
    """Write a VinDr-style mammogram DICOM (16-bit, hex UIDs, file-meta SOP class ``1.2.3.4``) atomically.

    ``stored``: (H, W) unsigned integers exactly as they go on disk (invert for MONOCHROME1 beforehand); a
    uint8 array is written 8-bit (as CBIS-DDSM's ROI masks are), anything else 16-bit. ``tags``: the header.
    ``transfer_syntax`` + ``encapsulated``: write already-compressed fragment bytes instead (tests use this
    to produce a JPEG 2000 file without an encoder).
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import ExplicitVRLittleEndian

    from camkit.storage.atomic import atomic_write

    t = tags
    eight = np.asarray(stored).dtype == np.uint8
    stored = np.ascontiguousarray(stored, dtype=np.uint8 if eight else np.uint16)
    bits_stored = 8 if eight else t.bits_stored
    with quiet_ui_warnings():
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = t.sop_class
        meta.MediaStorageSOPInstanceUID = t.image_id
        meta.TransferSyntaxUID = transfer_syntax or ExplicitVRLittleEndian
        meta.ImplementationClassUID = "1.2.826.0.1.3680043.8.498.1"
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID = t.image_id, t.study_id, t.series_id
        ds.Modality, ds.PatientID = "MG", t.patient_id or t.study_id[:16]
        ds.ImageLaterality, ds.ViewPosition = t.laterality, t.view
        ds.Rows, ds.Columns = int(stored.shape[0]), int(stored.shape[1])
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, t.photometric
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = (8 if eight else 16), bits_stored, \
            bits_stored - 1, 0
        if t.window is not None:
            centers, widths = t.window
            ds.WindowCenter = centers if len(centers) > 1 else centers[0]
            ds.WindowWidth = widths if len(widths) > 1 else widths[0]
            ds.VOILUTFunction = "LINEAR"
        if encapsulated is not None:
            ds.PixelData = encapsulate([encapsulated])
            ds["PixelData"].VR = "OB"
        else:
            ds.PixelData = stored.tobytes() + (b"\0" if eight and stored.size % 2 else b"")
            ds["PixelData"].VR = "OB" if eight else "OW"
        ds.preamble = b"\0" * 128
        buf = io.BytesIO()
        # enforce_file_format=False keeps the file meta as given (VinDr's SOP class UID is the literal 1.2.3.4)
        ds.save_as(buf, enforce_file_format=False)
    return atomic_write(path, lambda f: f.write(buf.getvalue()))
