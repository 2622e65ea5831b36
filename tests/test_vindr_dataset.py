"""The ``vindr`` dataset on a tiny synthetic set in VinDr's layout: counts, boxes, pixels, bad input."""
from __future__ import annotations

import csv
import os
import shutil
import warnings

import numpy as np
import pytest
import torch

import camkit
from camkit.data import imaging
from camkit_vindr.annotations import AnnotationError
from camkit.data.dicom import DicomReadError, DicomTags, write_dicom
from camkit_vindr.splits import SplitError
from camkit_synthetic.export import write_vindr

SIZE = (256, 160)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    # 10 studies x 4 images, real VinDr sizes / 14 (about 251x200, 201x144, 256x190)
    return write_vindr(tmp_path_factory.mktemp("vindr"), n=10, scale=1 / 14, seed=0)


@pytest.fixture
def copy(written, tmp_path):
    """A private copy of the written set, for tests that damage it."""
    return shutil.copytree(written.root, tmp_path / "vindr")


def _make(root, split="train", **kw):
    kw = {"size": SIZE, "val_fraction": 0.2, **kw}
    return camkit.create_dataset("vindr", root=root, split=split, **kw)


def test_the_writer_reproduces_vindrs_quirks(written):
    images = written.images
    assert {im.photometric for im in images} == {"MONOCHROME1", "MONOCHROME2"}
    assert {im.laterality for im in images} == {"L", "R"}
    assert len({im.size for im in images}) > 1
    assert {im.split for im in images} == {"training", "test"}
    assert any(None is im.label for im in images)
    with open(written.root / "finding_annotations.csv") as f:
        rows = list(csv.DictReader(f))
    assert any(r["finding_categories"] == "['Mass', 'Architectural Distortion']" for r in rows)
    nf = [r for r in rows if r["finding_categories"] == "['No Finding']"]
    assert nf and all(r["xmin"] == r["ymax"] == "" for r in nf)
    # splits are whole studies
    split_of = {}
    for r in rows:
        assert split_of.setdefault(r["study_id"], r["split"]) == r["split"]
    import pydicom

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = pydicom.dcmread(written.root / images[0].relpath)
        str(ds.SOPInstanceUID)
    assert ds.file_meta.MediaStorageSOPClassUID == "1.2.3.4" and ds.BitsAllocated == 16
    assert any("Invalid value for VR UI" in str(w.message) for w in caught)


@pytest.mark.parametrize("balanced", [True, False])
def test_counts_per_split_and_class_match_what_was_written(written, balanced):
    got = {s: _make(written.root, s, balanced=balanced) for s in ("train", "val", "test")}
    for split, official in (("test", "test"), ("train+val", "training")):
        parts = [got[s] for s in split.split("+")]
        masses = sum(sum(d.labels()) for d in parts)
        normals = sum(len(d) - sum(d.labels()) for d in parts)
        assert masses == written.count(official, 1)
        if balanced:  # as many normals as masses, or all of them when there are fewer
            for d, s in zip(parts, split.split("+")):
                available = len(_make(written.root, s, balanced=False)) - sum(d.labels())
                assert len(d) - sum(d.labels()) == min(sum(d.labels()), available)
        else:
            assert normals == written.count(official, 0)
    assert not {r.study_id for r in got["train"].records} & {r.study_id for r in got["val"].records}
    # seeded: the same options give the same images
    assert [r.image_id for r in _make(written.root, "train", balanced=balanced).records] == \
        [r.image_id for r in got["train"].records]


def test_balance_by_box_counts_mass_boxes(written):
    d = _make(written.root, "test", balance_by="box")
    boxes = sum(len(im.boxes) for im in written.images if im.split == "test" and im.label == 1)
    assert sum(d.labels()) == boxes and len(d) == 2 * boxes


def test_boxes_map_to_the_model_frame_and_back_within_a_pixel(written):
    truth = {im.image_id: im for im in written.images}
    seen = set()
    for split in ("train", "val", "test"):
        d = _make(written.root, split)
        for i, r in enumerate(d.records):
            if r.label != 1:
                continue
            s = d[i]
            assert s["image"].shape == (1, *SIZE) and s["image"].dtype == torch.float32
            assert s["transform"].flipped == (r.laterality == "R")
            back = s["transform"].to_original(s["boxes"])
            np.testing.assert_allclose(back, truth[r.image_id].boxes, atol=1.0)
            seen.add(r.laterality)
    assert seen == {"L", "R"}


def test_pixels_are_the_generators_image_facing_right_and_mass_bright(written):
    """Loaded images equal the generator's (MONOCHROME1 inverted, right views mirrored) and masses are bright."""
    from camkit_synthetic.generator import generate

    d = _make(written.root, "test", balanced=False)
    truth = {im.image_id: im for im in written.images}
    checked = set()
    for i, r in enumerate(d.records):
        im = truth[r.image_id]
        g = generate(im.source_index, im.size, seed=0, split="train")
        loaded, t = d.load(i)
        expected = imaging.to_unit_range(g.pixels)
        if t.flipped:
            expected = imaging.mirror(expected)
        expected = imaging.resize(imaging.crop(expected, tuple(int(v) for v in t.crop)), SIZE)
        assert float((loaded - expected).abs().max()) < 0.01, (im.photometric, im.laterality)
        if r.label == 1:
            x1, y1, x2, y2 = (int(round(v)) for v in d[i]["boxes"][0].tolist())
            z = d[i]["image"][0]
            assert float(z[y1:y2, x1:x2].max()) > float(torch.quantile(z.flatten(), 0.95))
            checked.add(im.photometric)
    assert checked == {"MONOCHROME1", "MONOCHROME2"}


def test_the_ui_warning_is_silenced_only_inside_the_loader(written):
    import pydicom

    d = _make(written.root, "test")
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # any warning while loading fails the test
        d[0]
    with warnings.catch_warnings(record=True) as caught:  # outside the loader pydicom still warns
        warnings.simplefilter("always")
        str(pydicom.dcmread(written.root / written.images[0].relpath).SOPInstanceUID)
    assert any("Invalid value for VR UI" in str(w.message) for w in caught)


def test_unknown_split(written):
    with pytest.raises(SplitError, match=r"unknown split 'valid' for dataset 'vindr'\. Did you mean 'val'"):
        _make(written.root, "valid")


def _first(written, label, split="training"):
    return next(im for im in written.images if im.label == label and im.split == split)


def test_missing_image(written, copy):
    victim = _first(written, 1)
    os.remove(copy / victim.relpath)
    with pytest.raises(DicomReadError, match=r"image file missing: .*" + victim.image_id +
                       r".*finding_annotations.csv line \d+.*skip_bad=True"):
        _make(copy, "train", val_fraction=0.0)
    d = _make(copy, "train", val_fraction=0.0, skip_bad=True)
    assert victim.image_id not in {r.image_id for r in d.records}
    assert [p for p, _ in d.skipped] == [str(copy / victim.relpath)]
    assert "missing" in d.skipped[0][1]


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.write_bytes(p.read_bytes()[:-3000]), "truncated"),
    (lambda p: p.write_text("this is not a DICOM file\n" * 20), "not a DICOM file"),
])
def test_truncated_or_non_dicom_file(written, copy, damage, message):
    victim = _first(written, 0)
    damage(copy / victim.relpath)
    d = _make(copy, "train", balanced=False, val_fraction=0.0)
    index = [r.image_id for r in d.records].index(victim.image_id)
    with pytest.raises(DicomReadError, match=message + ".*" + victim.image_id + ".*skip_bad=True"):
        d[index]
    d = _make(copy, "train", balanced=False, val_fraction=0.0, skip_bad=True)
    assert victim.image_id not in {r.image_id for r in d.records}
    assert len(d.skipped) == 1 and message in d.skipped[0][1]
    # balanced: the skipped normal image is replaced, so the subset stays balanced
    d = _make(copy, "train", val_fraction=0.0, skip_bad=True)
    assert sum(d.labels()) * 2 == len(d)


def test_csv_with_missing_columns(copy):
    path = copy / "finding_annotations.csv"
    rows = list(csv.reader(open(path)))
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([r[:-1] for r in rows])  # drop `split`
    with pytest.raises(AnnotationError, match=r"finding_annotations.csv: missing column\(s\) split"):
        _make(copy)


def test_box_outside_the_image(written, copy):
    path = copy / "finding_annotations.csv"
    rows = list(csv.reader(open(path)))
    line = next(i for i, r in enumerate(rows) if r[9] == "['Mass']" and r[-1] == "training")
    rows[line][11:15] = ["5000", "10", "5100", "40"]
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    with pytest.raises(AnnotationError, match=rf"line {line + 1}: box \(5000, 10, 5100, 40\) lies outside"):
        _make(copy)
    d = _make(copy, skip_bad=True)
    assert d.skipped[0][0].endswith(f"finding_annotations.csv line {line + 1}")
    assert rows[line][2] not in {r.image_id for r in d.records}


@pytest.mark.parametrize("syntax, module, package", [
    ("1.2.840.10008.1.2.4.90", "openjpeg", "pylibjpeg-openjpeg"),   # JPEG 2000 lossless
    ("1.2.840.10008.1.2.4.80", "libjpeg", "pylibjpeg-libjpeg"),     # JPEG-LS lossless
])
def test_compressed_without_decoder_names_the_package(tmp_path, syntax, module, package):
    import importlib.util

    from camkit.data.dicom import load_unit_image

    # a valid-looking codestream start followed by garbage: no encoder needed to make the file
    path = write_dicom(tmp_path / "c.dicom", np.zeros((64, 48), np.uint16),
                       DicomTags(study_id="a" * 32, series_id="b" * 32, image_id="c" * 32, laterality="L", view="CC"),
                       transfer_syntax=syntax, encapsulated=b"\xff\x4f\xff\x51" + bytes(range(256)) * 2)
    if importlib.util.find_spec(module) is not None:
        with pytest.raises(DicomReadError, match="c.dicom"):  # installed: garbage data is still an error
            load_unit_image(path)
    else:
        with pytest.raises(DicomReadError, match=rf"c\.dicom .*{package}.*camkit\[jpeg\]"):
            load_unit_image(path)


def test_config_tells_preprocessing_and_subsets_apart(written):
    a = _make(written.root)
    assert a.config == _make(written.root).config
    assert a.config != _make(written.root, crop=False).config
    assert a.config != _make(written.root, balance_by="box").config
    assert a.config["split"] == "train"
