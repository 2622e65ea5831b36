"""camkit.data.dicom: the one DICOM reader, on the awkward files real archives hold."""
from __future__ import annotations

import numpy as np
import pytest
from dicom_fixtures import write_dicom

from camkit.data import imaging
from camkit.data.dicom import DicomReadError, read_dicom
from camkit.errors import ImageReadError


def _image_dataset(pixels: np.ndarray, photometric: str = "MONOCHROME2"):
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.Rows, ds.Columns = pixels.shape[:2]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = np.ascontiguousarray(pixels, dtype=np.uint16).tobytes()
    return ds


def test_a_dicom_without_file_meta_is_read_not_refused(tmp_path):
    ramp = np.arange(48, dtype=np.uint16).reshape(8, 6) * 100
    for implicit in (True, False):
        path = tmp_path / f"nometa-{implicit}.dcm"
        _image_dataset(ramp).save_as(path, implicit_vr=implicit, little_endian=True, enforce_file_format=False)
        assert b"DICM" not in path.read_bytes()[:200]
        np.testing.assert_allclose(imaging.read_image(path), ramp / ramp.max(), atol=1e-6)


def test_a_non_dicom_file_with_a_dicom_name_says_so_without_mentioning_force(tmp_path):
    path = tmp_path / "photo.dcm"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    with pytest.raises(ImageReadError) as err:
        imaging.read_image(path)
    message = str(err.value)
    assert "photo.dcm" in message and "not a DICOM file" in message and "force" not in message


def test_a_header_truncated_dicom_names_what_is_missing(tmp_path):
    path = write_dicom(tmp_path / "cut.dcm", np.ones((32, 32), np.uint16))
    path.write_bytes(path.read_bytes()[:300])  # inside the header: no Rows, no pixel data
    with pytest.raises(DicomReadError, match=r"cut.dcm: the DICOM header lacks .*(Rows|PixelData)"):
        imaging.read_image(path)
    with pytest.raises(DicomReadError, match="cut.dcm"):
        imaging.image_size(path)


def test_truncated_pixel_data_is_named_and_no_decoder_is_blamed(tmp_path):
    path = write_dicom(tmp_path / "short.dcm", np.ones((64, 64), np.uint16))
    path.write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(DicomReadError, match="truncated DICOM file: .*short.dcm") as err:
        read_dicom(path)
    assert "camkit[jpeg]" not in str(err.value)


def test_palette_colour_is_read_as_displayed_grey_not_as_indices(tmp_path):
    from pydicom.uid import ExplicitVRLittleEndian

    indices = np.array([[0, 1], [2, 3]], np.uint16)
    ds = _image_dataset(indices, "PALETTE COLOR")
    ds.BitsAllocated = ds.BitsStored = 16
    # a palette that maps index i to grey level (3 - i): the displayed image is the indices inverted
    for colour in ("Red", "Green", "Blue"):
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [4, 0, 16])
        setattr(ds, f"{colour}PaletteColorLookupTableData",
                np.array([65535, 43690, 21845, 0], np.uint16).tobytes())
    from pydicom.dataset import FileMetaDataset

    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    path = tmp_path / "palette.dcm"
    ds.save_as(path, enforce_file_format=False)
    out = read_dicom(path)
    np.testing.assert_allclose(out, [[1.0, 2 / 3], [1 / 3, 0.0]], atol=1e-3)


def test_ybr_colour_is_converted_to_rgb_once(tmp_path):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.pixels import convert_color_space
    from pydicom.uid import ExplicitVRLittleEndian

    rgb = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [255, 255, 255]]], np.uint8)
    ds = Dataset()
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PlanarConfiguration = 2, 2, 3, 0
    ds.PhotometricInterpretation = "YBR_FULL"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = convert_color_space(rgb, "RGB", "YBR_FULL").tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    path = tmp_path / "ybr.dcm"
    ds.save_as(path, enforce_file_format=False)
    luma = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    expected = (luma - luma.min()) / (luma.max() - luma.min())
    np.testing.assert_allclose(read_dicom(path), expected, atol=0.02)  # YBR rounding: a level or two of 255


def test_multi_frame_needs_a_chosen_frame(tmp_path):
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    frames = np.stack([np.full((4, 5), v, np.uint16) for v in (0, 10, 20)])
    for k in range(3):
        frames[k, k, k] = 100  # each frame has a range, and its bright pixel says which frame was read
    ds = _image_dataset(frames.reshape(12, 5))
    ds.Rows, ds.Columns, ds.NumberOfFrames = 4, 5, 3
    ds.PixelData = frames.tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    path = tmp_path / "tomo.dcm"
    ds.save_as(path, enforce_file_format=False)
    with pytest.raises(DicomReadError, match=r"tomo.dcm holds 3 frames .*frame=0..2"):
        imaging.read_image(path)
    for k in range(3):
        got = read_dicom(path, frame=k)
        assert got.shape == (4, 5) and got[k, k] == 1.0 and np.count_nonzero(got) == 1
    with pytest.raises(DicomReadError, match="frame 3 does not exist"):
        read_dicom(path, frame=3)
