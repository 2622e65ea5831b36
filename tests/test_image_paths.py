"""Issue 29: what an image path really is, and DICOMs the size check used to call truncated.

Valid deflated and RLE DICOMs read (the pixel-byte check skips syntaxes whose bytes cannot be counted so);
FIFOs, folders and symlink loops are named as what they are, never "does not exist" (and a FIFO is never
opened, which would hang); the multi-frame advice names what exists.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

import camkit
from camkit.data import imaging
from camkit.data.dicom import DicomReadError, DicomTags, read_dicom, read_header, write_dicom

TAGS = DicomTags(study_id="1.2.3", series_id="1.2.4", image_id="1.2.5", laterality="L", view="CC")
HINT = "; fix or replace the file, or pass skip_bad=True (--dataset-opt skip_bad=true) to leave the image out."


@pytest.fixture
def plain(tmp_path):
    pixels = (np.arange(64 * 48).reshape(64, 48) % 4000).astype(np.uint16)
    return write_dicom(tmp_path / "plain.dcm", pixels, TAGS)


def _recoded(plain, path, how):
    import pydicom
    from pydicom.uid import DeflatedExplicitVRLittleEndian, RLELossless

    ds = pydicom.dcmread(plain)
    if how == "rle":
        ds.compress(RLELossless)  # pydicom 3's native RLE encoder
    else:
        ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=False)
    return path


@pytest.mark.parametrize("how", ["rle", "deflated"])
def test_valid_rle_and_deflated_dicoms_are_not_called_truncated(plain, tmp_path, how):
    path = _recoded(plain, tmp_path / f"{how}.dcm", how)
    assert path.stat().st_size < plain.stat().st_size  # fewer bytes than rows x columns x 2: by design
    read_header(path)  # the size check used to raise "truncated DICOM file" here
    np.testing.assert_array_equal(read_dicom(path), read_dicom(plain))


def test_a_truncated_native_dicom_is_still_truncated(plain, tmp_path):
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(plain.read_bytes()[:-1000])
    with pytest.raises(DicomReadError, match=r"^truncated DICOM file: .*cut.dcm holds 5144 of the 6144 "
                                             r"pixel-data bytes its header promises\.$"):
        read_header(cut)


@pytest.fixture
def odd_paths(tmp_path):
    """A folder, a FIFO, a symlink loop and a broken symlink, each where an image should be."""
    (tmp_path / "folder.png").mkdir()
    os.mkfifo(tmp_path / "fifo.png")
    os.symlink(tmp_path / "loop-b.png", tmp_path / "loop-a.png")
    os.symlink(tmp_path / "loop-a.png", tmp_path / "loop-b.png")
    os.symlink(tmp_path / "nowhere.png", tmp_path / "broken.png")
    return tmp_path


KINDS = [("folder.png", "is a folder"), ("fifo.png", "is not a regular file (a FIFO)"),
         ("loop-a.png", "is a symlink loop"),
         ("broken.png", "is a broken symlink (to '{root}/nowhere.png', which does not exist)")]


@pytest.mark.parametrize("name, said", KINDS)
def test_read_image_says_what_the_path_is(odd_paths, name, said):
    path = odd_paths / name
    expected = f"image file {str(path)!r} {said.format(root=odd_paths)}"
    for read in (imaging.read_image, imaging.image_size):
        with pytest.raises(camkit.errors.ImageReadError) as info:
            read(path)
        assert str(info.value) == expected


@pytest.mark.parametrize("name, said", KINDS)
def test_the_folder_dataset_names_the_row_and_what_the_path_is(odd_paths, name, said):
    csv = odd_paths / "labels.csv"
    csv.write_text(f"image,label\n{name},0\n")
    with pytest.raises(camkit.errors.DataError) as info:
        camkit.create_dataset("folder", csv=str(csv), split=None)
    path = odd_paths / name
    assert str(info.value) == (f"labels.csv row 2 ({path}): image file {str(path)!r} {said.format(root=odd_paths)}; "
                               "point the row at an image file, or pass skip_bad=True (--dataset-opt "
                               "skip_bad=true) to leave it out")
    assert len(camkit.create_dataset("folder", csv=str(csv), split=None, skip_bad=True)) == 0


def test_a_dicom_reader_with_a_row_names_the_kind_and_skip_bad(odd_paths):
    with pytest.raises(DicomReadError) as info:
        read_header(odd_paths / "fifo.png", "labels.csv row 2")
    assert str(info.value) == (f"image file {odd_paths / 'fifo.png'} is not a regular file (a FIFO) (listed in "
                               f"labels.csv row 2){HINT}")
    with pytest.raises(DicomReadError, match=r"^image file missing: .*nowhere.dcm \(listed in x.csv row 3\)"):
        read_header(odd_paths / "nowhere.dcm", "x.csv row 3")


def test_multi_frame_advice_names_what_exists(tmp_path):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.Rows, ds.Columns, ds.NumberOfFrames, ds.SamplesPerPixel = 4, 5, 3, 1
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = np.arange(60, dtype=np.uint16).tobytes()
    path = tmp_path / "tomo.dcm"
    ds.save_as(path, enforce_file_format=False)
    with pytest.raises(DicomReadError) as info:
        read_dicom(path, where="labels.csv row 4")
    assert str(info.value) == (
        f"{path} holds 3 frames (a multi-frame object, e.g. tomosynthesis); camkit reads one 2-D image per file: "
        "save the frame you want as a DICOM of its own, or read it from Python with "
        f"camkit.data.dicom.read_dicom(path, frame=0..2) (listed in labels.csv row 4){HINT}")
