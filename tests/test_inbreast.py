"""The inbreast dataset on a generated release: labels and the negative sets, the patient split, boxes and masks
back in the original frame, the format's quirks (SPEC-datasets.md section 2), bad input, and the prepare cache."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import camkit
from camkit.cli.app import main
from camkit.data.cache import Settings, prepare
from camkit_inbreast.annotations import InbreastError, load_records
from camkit_inbreast.dataset import records_for_prepare
from camkit_inbreast.preprocess import prepare_record
from camkit_synthetic.export_inbreast import write_inbreast

SIZE = (160, 128)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    return write_inbreast(tmp_path_factory.mktemp("inbreast"), n=10, size=SIZE)


@pytest.fixture(scope="module")
def with_bad(tmp_path_factory):
    return write_inbreast(tmp_path_factory.mktemp("bad"), n=5, bad=True)


def _all(root, **kw):
    return {split: camkit.create_dataset("inbreast", root=str(root), split=split, size=SIZE, **kw)
            for split in ("train", "val", "test")}


@pytest.mark.parametrize("negatives,spiculated", [("birads1", False), ("any", False), ("birads1", True)])
def test_labels_and_negative_sets(written, negatives, spiculated):
    sets = _all(written.root, negatives=negatives, spiculated=spiculated)
    got = {r.image_id: r.label for ds in sets.values() for r in ds.records}
    want = {im.file_name: im.label(negatives, spiculated) for im in written.images}
    assert got == {k: v for k, v in want.items() if v is not None}
    assert 1 in got.values() and 0 in got.values()
    # an image with a spiculated region is never a negative; calcification-only images only with "any"
    spic = {im.file_name for im in written.images if "spic" in im.finding}
    assert not any(got.get(f) == 0 for f in spic)
    calc = {im.file_name for im in written.images if im.finding == "calc"}
    assert all((f in got) == (negatives == "any") for f in calc)


def test_split_by_patient_hash_keeps_exams_together(written):
    sets = _all(written.root, negatives="any", seed=5)
    patients = {s: {r.patient_id for r in ds.records} for s, ds in sets.items()}
    assert all(patients.values())
    assert not (patients["train"] & patients["val"] or patients["train"] & patients["test"]
                or patients["val"] & patients["test"])
    two_exams = {im.patient for im in written.images if sum(o.patient == im.patient for o in written.images) > 4}
    assert two_exams
    images = {im.file_name: im.patient for im in written.images}
    for ds in sets.values():
        for r in ds.records:
            assert r.patient_id == images[r.image_id]  # the hash in the DICOM name, not the CSV's 'removed'
    other = _all(written.root, negatives="any", seed=6)
    assert {r.image_id for r in other["test"].records} != {r.image_id for r in sets["test"].records}


def test_boxes_and_masks_back_in_the_original_frame(written):
    truth = {im.file_name: im for im in written.images}
    checked = 0
    for ds in _all(written.root, crop=False).values():
        for i in range(len(ds)):
            s = ds[i]
            im, t = truth[s["image_id"]], s["transform"]
            assert s["masks"].shape == (len(im.boxes), *SIZE)
            assert np.allclose(t.to_original(s["boxes"]), im.boxes, atol=1e-4)
            for k in range(len(im.boxes)):
                m = s["masks"][k].numpy()
                assert np.array_equal(m[:, ::-1] if t.flipped else m, im.masks[k])
                checked += 1
            assert t.flipped == (im.laterality == "R")  # INbreast's orientation is consistent by side
    assert checked >= 5


def test_format_quirks(written):
    release, recs = load_records(written.root)
    assert release.name == "INbreast Release 1.0"
    _, from_release = load_records(release)                     # root = the release folder itself
    assert [r.image_id for r in from_release] == [r.image_id for r in recs]
    by_name = {r.image_id: r for r in recs}
    truth = {im.file_name: im for im in written.images}
    assert {r.view for r in recs} <= {"CC", "MLO", None}
    fb = [im for im in written.images if im.view is None]
    assert fb and all(by_name[im.file_name].view is None for im in fb)          # FB -> None
    assert any(r.view == "MLO" and "_ML_" in r.files[0] for r in recs)           # ML in the name, MLO in the CSV
    assert any(r.density is None for r in recs) and any(r.density == "DENSITY B" for r in recs)  # padded ACR
    assert all(not (written.release / "AllXML" / f"{im.file_name}.xml").exists()
               for im in written.images if im.birads == "1")                     # BI-RADS 1: no XML, no error
    edge = next(im for im in written.images if im.finding == "mass-edge")
    assert edge.boxes[0][0] == 0.0                                               # the overhanging contour, clipped
    spelled = next(im for im in written.images if im.finding == "mass+spic")
    assert by_name[spelled.file_name].label == 1                                 # 'mass ' stripped, any case
    assert truth


def test_bad_input_is_named_and_skippable(with_bad):
    with pytest.raises(InbreastError, match=r"INbreast.csv line \d+: no AllDICOMs/\d+_<patient hash>"):
        load_records(with_bad.root)
    skipped = []
    _, recs = load_records(with_bad.root, skip_bad=True, skipped=skipped)
    reasons = " | ".join(r for _, r in skipped)
    assert "no AllDICOMs" in reasons and "not an OsiriX ROI plist" in reasons and ".xml" in reasons
    outside = next(im for im in with_bad.images if im.bad == "contour-outside")
    rec = next(r for r in recs if r.image_id == outside.file_name)
    with pytest.raises(InbreastError, match=rf"AllXML/{outside.file_name}.xml: a Mass contour .* mostly outside"):
        prepare_record(with_bad.release, rec, Settings(size=SIZE))


def test_bad_csv_is_explained(tmp_path, written):
    root = tmp_path / "copy"
    shutil.copytree(written.release, root)
    csv = root / "INbreast.csv"
    csv.write_text(csv.read_text().replace("Bi-Rads", "BIRADS", 1))
    with pytest.raises(InbreastError, match="missing column.*Bi-Rads"):
        load_records(root)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InbreastError, match="no INbreast.csv"):
        load_records(tmp_path / "empty")
    with pytest.raises(InbreastError, match="negatives must be one of birads1, any"):
        load_records(root, negatives="normal")


def test_a_mass_without_an_outline_is_never_a_negative(tmp_path, written):
    import plistlib

    root = tmp_path / "copy"
    shutil.copytree(written.release, root)
    im = next(i for i in written.images if i.finding == "mass")
    xml = root / "AllXML" / f"{im.file_name}.xml"
    data = plistlib.loads(xml.read_bytes())
    data["Images"][0]["ROIs"][0]["Point_px"] = ["(10.0, 12.0)", "(11.0, 13.0)"]
    xml.write_bytes(plistlib.dumps(data))
    with pytest.raises(InbreastError, match=rf"{im.file_name}.xml marks a Mass with fewer than 3 points"):
        load_records(root, negatives="any")
    skipped = []
    _, recs = load_records(root, negatives="any", skip_bad=True, skipped=skipped)
    assert im.file_name not in {r.image_id for r in recs} and len(skipped) == 1


def test_prepare_cache_matches_direct(with_bad, tmp_path):
    skipped = []
    release, rf = records_for_prepare(with_bad.root, skip_bad=True, skipped=skipped)
    report = prepare(release, rf, Settings(size=(96, 80)), prepare_record, tmp_path / "cache", workers=2,
                     skip_bad=True, progress=False)
    assert len(skipped) == 2 and len(report.skipped) == 1 and "mostly outside" in report.skipped[0][1]
    bad = next(im.file_name for im in with_bad.images if im.bad == "contour-outside")
    for split in ("train", "val", "test"):
        kw = dict(root=str(with_bad.root), split=split, size=(96, 80), skip_bad=True)
        cached = camkit.create_dataset("inbreast", cache=str(tmp_path / "cache"), **kw)
        direct = camkit.create_dataset("inbreast", **kw)
        assert [r.image_id for r in cached.records] == [r.image_id for r in direct.records if r.image_id != bad]
        for i, r in enumerate(cached.records):
            a, b = cached[i], direct[[x.image_id for x in direct.records].index(r.image_id)]
            assert torch.equal(a["masks"], b["masks"]) and torch.allclose(a["boxes"], b["boxes"])
            assert float((a["image"] - b["image"]).abs().max()) < 1e-3


def test_cli(tmp_path):
    runner = CliRunner()
    out = runner.invoke(main, ["synth", "--format", "inbreast", str(tmp_path / "i"), "--n", "3"])
    assert out.exit_code == 0 and "mass" in out.output and "BI-RADS 1" in out.output, out.output
    again = runner.invoke(main, ["synth", "--format", "inbreast", str(tmp_path / "i")])
    assert again.exit_code != 0 and "--force" in again.output
    res = runner.invoke(main, ["prepare", "inbreast", str(tmp_path / "i"), "--size", "64", "48", "--out",
                               str(tmp_path / "cache"), "--quiet"])
    assert res.exit_code == 0 and "0 skipped" in res.output, res.output
    other = runner.invoke(main, ["prepare", "nope", str(tmp_path)])
    assert other.exit_code == 2 and "cbis-ddsm, inbreast, vindr" in other.output
    # one cache folder holds one dataset's images
    clash = runner.invoke(main, ["prepare", "inbreast", str(tmp_path / "i" / "INbreast Release 1.0"), "--size", "64",
                                 "48", "--out", str(tmp_path / "cache"), "--quiet"])
    assert clash.exit_code == 0  # the same release, reached through its parent or itself, is the same root
    runner.invoke(main, ["synth", "--format", "inbreast", str(tmp_path / "j"), "--n", "2", "--seed", "1"])
    clash = runner.invoke(main, ["prepare", "inbreast", str(tmp_path / "j"), "--size", "64", "48", "--out",
                                 str(tmp_path / "cache"), "--quiet"])
    assert clash.exit_code == 1 and "holds the images of" in clash.output and "own --out" in clash.output
