"""The cbis-ddsm dataset on generated downloads in every layout the NBIA Data Retriever writes: labels, the official
split and the val carve-out by patient, boxes and masks back in the original frame, each quirk of
SPEC-datasets.md section 1 (Q1-Q10), bad input, and the prepare cache."""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import camkit
from camkit.cli.app import main
from camkit.data.cache import Settings, prepare
from camkit.data.dicom import read_dicom
from camkit.data.imaging import faces_left
from camkit.data.masks import boxes_from_mask, tight_box
from camkit_cbis.annotations import load_records
from camkit_cbis.dataset import records_for_prepare
from camkit_cbis.layout import CbisError
from camkit_cbis.preprocess import prepare_record
from camkit_synthetic.export_cbis import CSV_NAMES, LAYOUTS, write_cbis

SIZE = (160, 96)  # every generated image's size, so that the model frame can equal the original one


@pytest.fixture(scope="module", params=LAYOUTS)
def written(request, tmp_path_factory):
    return write_cbis(tmp_path_factory.mktemp(request.param), n=8, size=SIZE, layout=request.param)


@pytest.fixture(scope="module")
def with_bad(tmp_path_factory):
    return write_cbis(tmp_path_factory.mktemp("bad"), n=6, layout="descriptive", bad=True)


def _all(root, **kw):
    out = {}
    for split in ("train", "val", "test"):
        out[split] = camkit.create_dataset("cbis-ddsm", root=str(root), split=split, size=SIZE, **kw)
    return out


def test_labels_and_splits(written):
    sets = _all(written.root, val_fraction=0.25, seed=3)
    truth = {im.subject: im for im in written.images}
    got = {r.image_id: (split, r) for split, ds in sets.items() for r in ds.records}
    # every mass image and calcification-only view, nothing else (the calc copies of mass views are left out)
    assert set(got) == {s for s, im in truth.items() if im.label is not None}
    for subject, (split, r) in got.items():
        im = truth[subject]
        assert r.label == im.label and r.laterality == im.side and r.view == im.view
        assert (split == "test") == (im.split == "test")        # the official split, as published
    patients = {s: {r.patient_id for r in ds.records} for s, ds in sets.items()}
    assert patients["val"] and not patients["val"] & patients["train"]  # val carved by patient
    assert sum(len(ds) for ds in sets.values()) == sum(1 for im in written.images if im.label is not None)


def test_boxes_and_masks_back_in_the_original_frame(written):
    truth = {im.subject: im for im in written.images}
    for split, ds in _all(written.root, crop=False, val_fraction=0.0).items():
        for i in range(len(ds)):
            s = ds[i]
            im = truth[s["image_id"]]
            t = s["transform"]
            want = np.concatenate([boxes_from_mask(m) for m in im.masks]) if im.masks else np.zeros((0, 4))
            assert s["boxes"].shape == (len(want), 4) and s["masks"].shape == (len(want), *SIZE)
            back = t.to_original(s["boxes"])
            union = s["masks"].any(0).numpy() if len(want) else np.zeros(SIZE, bool)
            original = union[:, ::-1] if t.flipped else union
            expected = np.any(im.masks, axis=0) if im.masks else np.zeros(SIZE, bool)
            order = np.lexsort(back.T[::-1]), np.lexsort(want.T[::-1])
            if not im.grown:  # exact: same boxes, same pixels
                assert np.array_equal(back[order[0]], want[order[1]]) and np.array_equal(original, expected)
            else:  # Q5: a mask 1% too large, stretched to the image, may move an edge by ~1% of the side
                assert np.abs(back[order[0]] - want[order[1]]).max() <= 0.01 * max(SIZE) + 1
                assert (original & expected).sum() >= 0.5 * (original | expected).sum()
            for k in range(len(want)):  # each mask's own box is its box
                assert np.abs(t.to_original(tight_box(s["masks"][k].numpy())[None])[0] - back[k]).max() <= 1.0


def test_downscaled_samples_map_back_within_a_model_pixel(written):
    ds = camkit.create_dataset("cbis-ddsm", root=str(written.root), split="train", size=(64, 40), val_fraction=0.0)
    checked = 0
    for i in range(len(ds)):
        s = ds[i]
        t = s["transform"]
        sy, sx = t.scale()
        for k in range(len(s["boxes"])):
            if s["masks"][k].any():
                back = t.to_original(tight_box(s["masks"][k].numpy())[None])[0]
                assert np.abs(back - t.to_original(s["boxes"][k:k + 1])[0]).max() <= 1 / min(sy, sx) + 1e-6
                checked += 1
    assert checked >= 3


def test_quirks(written):
    recs = {r.image_id: r for r in load_records(written.root)}
    mass = [im for im in written.images if im.label == 1]
    # Q6/Q7: one image with two masses whose abnormality ids are 2 and 3 is one sample with two ROI series
    multi = next(im for im in mass if len(im.masks) == 2)
    assert len(recs[multi.subject].extra["rois"]) == 2
    # Q8: a calcification copy of a mass view is never a negative (it is not selected at all)
    copies = [im for im in written.images if im.label is None and im.bad is None]
    assert copies and not any(c.subject in recs for c in copies)
    # Q2/Q9: cells are stripped (trailing line feed, NA), both density column spellings give a density
    assert all(r.density and r.density.startswith("DENSITY ") for r in recs.values())
    text = (written.root / CSV_NAMES[("mass", "train")]).read_bytes()
    assert b'.dcm\n"\r\n' in text and b"breast_density" in text
    assert b"breast density" in (written.root / CSV_NAMES[("calc", "train")]).read_bytes()
    # Q1: the CSV paths (classic UIDs, 000000.dcm) resolve whatever the layout on disk
    for r in recs.values():
        assert all((written.root / f).is_file() for f in r.files)
    # Q3/Q4: the mask is found by content, whichever file, column or series description holds it
    for im in mass:
        s = prepare_record(written.root, recs[im.subject], Settings(size=SIZE, crop=False))[2]
        assert len(s.boxes) == sum(len(boxes_from_mask(m)) for m in im.masks)
    # Q10: the flip follows the pixels (breasts face right in the model frame), not the laterality
    by_laterality = []
    for r in list(recs.values())[:8]:
        pixels = read_dicom(written.root / r.files[0])
        _, t, _ = prepare_record(written.root, r, Settings(size=SIZE, crop=False))
        assert t.flipped == faces_left(pixels)
        by_laterality.append(t.flipped == (r.laterality == "R"))
    assert not all(by_laterality)  # the generated films face either way whatever the side, as real ones may


def test_descriptive_layout_without_metadata_csv_resolves_by_uid_suffix(tmp_path):
    w = write_cbis(tmp_path / "d", n=6, size=SIZE, layout="descriptive")
    metadata = next(w.root.glob("manifest-*/metadata.csv"))
    with_table = {r.image_id: r.files for r in load_records(w.root)}
    metadata.unlink()
    assert {r.image_id: r.files for r in load_records(w.root)} == with_table


def test_negatives_option_and_shape_filter(written):
    only_pos = _all(written.root, negatives="none", val_fraction=0.0)
    assert all(ds.labels() and set(ds.labels()) == {1} for ds in only_pos.values() if len(ds))
    shapes = {im.subject: im.shapes for im in written.images if im.label == 1}
    kept = {r.image_id for r in load_records(written.root, exclude_shapes=("ARCHITECTURAL_DISTORTION",))
            if r.label == 1}
    dropped = {s for s, sh in shapes.items() if all(set(x.split("-")) <= {"ARCHITECTURAL_DISTORTION"} for x in sh)}
    assert dropped and kept == set(shapes) - dropped
    with pytest.raises(CbisError, match="negatives must be one of calc-only, none"):
        load_records(written.root, negatives="normal")


def test_bad_input_is_named_and_skippable(with_bad):
    root = with_bad.root
    with pytest.raises(CbisError, match=r"mass_case_description_train_set.csv line \d+: 'left or right breast' "
                                        r"is 'UP'"):
        load_records(root)
    skipped = []
    recs = load_records(root, skip_bad=True, skipped=skipped)
    reasons = " | ".join(r for _, r in skipped)
    assert "is 'UP'" in reasons and "holds no .dcm files" in reasons   # the bad row and the missing image
    missing = next(im for im in with_bad.images if im.bad == "missing-image")
    assert missing.subject in reasons and missing.subject not in {r.image_id for r in recs}
    # the 15% smaller mask: an error naming the mask file and the CSV row; skipped under skip_bad
    small = next(im for im in with_bad.images if im.bad == "mask-size")
    rec = next(r for r in recs if r.image_id == small.subject)
    with pytest.raises(CbisError, match=r"line \d+: the ROI mask .*_1/.*\.dcm: mask is \d+x\d+ \(HxW\) but its image"):
        prepare_record(root, rec, Settings(size=SIZE))
    ds = camkit.create_dataset("cbis-ddsm", root=str(root), split="train", size=SIZE, skip_bad=True, val_fraction=0.0)
    i = [r.image_id for r in ds.records].index(small.subject)
    with pytest.warns(UserWarning, match="mask is"):
        assert ds[i] is None
    with pytest.raises(CbisError, match="line"):
        camkit.create_dataset("cbis-ddsm", root=str(root), split="train", size=SIZE)


def test_missing_csv_and_missing_columns_are_explained(tmp_path, written):
    root = tmp_path / "copy"
    shutil.copytree(written.root, root)
    (root / CSV_NAMES[("calc", "test")]).unlink()
    with pytest.raises(CbisError, match="calc_case_description_test_set.csv not found.*negatives='none'"):
        load_records(root)
    assert load_records(root, negatives="none")
    mass = root / CSV_NAMES[("mass", "train")]
    mass.write_text(mass.read_text().replace("image file path", "od_img_path", 1))
    with pytest.raises(CbisError, match="missing column.*image file path"):
        load_records(root, negatives="none")


def test_prepare_cache_matches_direct_resumes_and_reports(with_bad, tmp_path):
    root, cache = with_bad.root, tmp_path / "cache"
    skipped = []
    settings = Settings(size=(96, 64))
    rf = records_for_prepare(root, skip_bad=True, skipped=skipped)
    first = prepare(root, rf, settings, prepare_record, cache, workers=2, skip_bad=True, progress=False)
    assert first.written >= 8 and len(first.skipped) == 1 and "mask is" in first.skipped[0][1]
    again = prepare(root, rf, settings, prepare_record, cache, workers=1, skip_bad=True, progress=False)
    assert again.written == 0 and again.reused == first.written
    for split in ("train", "val", "test"):
        kw = dict(root=str(root), split=split, size=(96, 64), skip_bad=True)
        cached = camkit.create_dataset("cbis-ddsm", cache=str(cache), **kw)
        direct = camkit.create_dataset("cbis-ddsm", **kw)
        assert [r.image_id for r in cached.records] == [r.image_id for r in direct.records if r.image_id !=
                                                        next(im.subject for im in with_bad.images if im.bad == "mask-size")]
        for i, r in enumerate(cached.records):
            a, b = cached[i], direct[[x.image_id for x in direct.records].index(r.image_id)]
            assert torch.equal(a["masks"], b["masks"]) and torch.allclose(a["boxes"], b["boxes"])
            assert float((a["image"] - b["image"]).abs().max()) < 1e-3
    # a changed mask file invalidates its entry
    r = next(r for r in rf(set()) if r.label == 1 and r.image_id in {x.image_id for x in cached_train(root)})
    os.utime(root / r.files[-1], ns=(1, 1))
    with pytest.raises(Exception, match="changed or vanished"):
        camkit.create_dataset("cbis-ddsm", root=str(root), split="train", size=(96, 64), skip_bad=True,
                              cache=str(cache))


def cached_train(root):
    return camkit.create_dataset("cbis-ddsm", root=str(root), split="train", size=(96, 64), skip_bad=True).records


def test_cli_prepare_and_synth(tmp_path):
    runner = CliRunner()
    out = runner.invoke(main, ["synth", "--format", "cbis-ddsm", str(tmp_path / "c"), "--n", "4", "--layout",
                               "classic", "--bad"])
    assert out.exit_code == 0, out.output
    assert "mass" in out.output and "3 bad inputs" in out.output
    res = runner.invoke(main, ["prepare", "cbis-ddsm", str(tmp_path / "c"), "--size", "64", "40", "--out",
                               str(tmp_path / "cache"), "--quiet", "--workers", "1"])
    assert res.exit_code == 1 and "line" in res.output and "--skip-bad" in res.output
    res = runner.invoke(main, ["prepare", "cbis-ddsm", str(tmp_path / "c"), "--size", "64", "40", "--out",
                               str(tmp_path / "cache"), "--quiet", "--workers", "1", "--skip-bad"])
    assert res.exit_code == 0, res.output
    assert "3 skipped" in res.output and res.output.count("  skipped ") == 3
    again = runner.invoke(main, ["prepare", "cbis-ddsm", str(tmp_path / "c"), "--size", "64", "40", "--out",
                                 str(tmp_path / "cache"), "--quiet", "--skip-bad"])
    assert "0 written" in again.output


@pytest.mark.slow  # a bench
def test_bench_preset_and_a_short_bench_with_pxap(tmp_path):
    import json

    from camkit.bench.recipe import default_preset, resolve_recipe

    assert default_preset("cbis-ddsm") == "cbis-ddsm" and default_preset("inbreast") == "inbreast"
    assert default_preset("folder") == "cpu" and default_preset(None) == "cpu"
    r = resolve_recipe("cbis-ddsm")
    assert r.dataset == "cbis-ddsm" and r.dataset_options["cache"] is True and r.model_options["preset"] == "official"
    write_cbis(tmp_path / "c", n=12)
    runner = CliRunner()
    res = runner.invoke(main, ["bench", "--dataset", "cbis-ddsm", "--data", str(tmp_path / "c"), "--model-opt",
                               "preset=cpu", "--dataset-opt", "cache=null", "--epochs", "1", "--batch-size", "4",
                               "--train-cam", "cam", "--test-cam", "cam", "--out", str(tmp_path / "run"),
                               "--format", "json", "--quiet"])
    assert res.exit_code == 0, res.output
    board = runner.invoke(main, ["leaderboard", str(tmp_path / "run"), "--metric", "pxap", "--format", "json"])
    cell = json.loads(board.stdout)["detection"][0]
    assert cell["metric"] == "pxap" and 0.0 <= cell["value"] <= 1.0   # scored against the CBIS lesion masks
    # without --dataset-opt cache=..., the preset reads the prepare cache and says how to fill it
    res = runner.invoke(main, ["bench", "--dataset", "cbis-ddsm", "--data", str(tmp_path / "c"), "--model-opt",
                               "preset=cpu", "--epochs", "1", "--train-cam", "cam", "--test-cam", "cam", "--out",
                               str(tmp_path / "run2"), "--quiet"], env={"CAMKIT_CACHE": str(tmp_path / "nocache")})
    assert res.exit_code == 1 and "camkit prepare cbis-ddsm" in res.output, res.output
