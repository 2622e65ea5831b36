"""The preprocessing cache: resumable, atomic, keyed by source and settings, equal to the direct loader."""
from __future__ import annotations

import io
import json
import os
import shutil

import numpy as np
import pytest
import torch

import camkit
from camkit_vindr.cache import CacheError, prepare, settings_dir
from camkit_vindr.dataset import records_for_prepare
from camkit_vindr.preprocess import Settings
from camkit_synthetic.export import write_vindr

SIZE = (192, 128)
OPTS = {"val_fraction": 0.2, "seed": 0}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    return write_vindr(tmp_path_factory.mktemp("vindr"), n=6, scale=1 / 16, seed=1)


def _prepare(root, cache, workers=1, skip_bad=False, **kw):
    stream = io.StringIO()
    report = prepare(root, records_for_prepare(root, skip_bad=skip_bad, **OPTS, **kw), Settings(size=SIZE),
                     cache=cache, workers=workers, skip_bad=skip_bad, stream=stream)
    return report, stream.getvalue()


def _make(root, split, **kw):
    return camkit.create_dataset("vindr", root=root, split=split, size=SIZE, **{**OPTS, **kw})


def test_prepare_twice_resumes_and_matches_the_direct_loader(written, tmp_path):
    cache = tmp_path / "cache"
    first, log = _prepare(written.root, cache)
    expected = {r.image_id for s in ("train", "val", "test") for r in _make(written.root, s).records}
    assert first.written == len(expected) and first.reused == 0 and not first.skipped
    assert f"prepare: {len(expected)}/{len(expected)} images" in log  # plain progress when not a terminal
    second, _ = _prepare(written.root, cache)
    assert second.written == 0 and second.reused == len(expected)
    manifest = json.loads((settings_dir(cache, Settings(size=SIZE)) / "manifest.json").read_text())
    assert set(manifest["entries"]) == expected
    entry = next(iter(manifest["entries"].values()))
    assert set(entry["transform"]) == {"original_size", "model_size", "crop", "flipped"}
    for split in ("train", "test"):
        direct, cached = _make(written.root, split), _make(written.root, split, cache=cache)
        assert [r.image_id for r in cached.records] == [r.image_id for r in direct.records]
        for i in range(len(direct)):
            a, b = direct[i], cached[i]
            # uint16 quantisation: 0.5/65535 of the [0, 1] range, divided by the image's std (~0.1-0.3)
            torch.testing.assert_close(b["image"], a["image"], atol=2e-4, rtol=0)
            torch.testing.assert_close(b["boxes"], a["boxes"])
            assert b["transform"] == a["transform"]


def test_killed_run_leftovers_are_ignored(written, tmp_path):
    cache = tmp_path / "cache"
    first, _ = _prepare(written.root, cache)
    arrays = settings_dir(cache, Settings(size=SIZE)) / "arrays"
    victims = sorted(arrays.glob("*.npy"))[:2]
    # a killed writer leaves a temp file; a torn array (no rename) and a sidecar-less array look the same
    (arrays / f".{victims[0].name}.abc123.tmp").write_bytes(b"\x93NUMPY partial")
    victims[0].write_bytes(victims[0].read_bytes()[:200])
    os.remove(victims[1].with_suffix(".json"))
    second, _ = _prepare(written.root, cache)
    assert second.written == 2 and second.reused == first.written - 2
    assert not list(arrays.glob(".*.tmp"))
    assert np.load(victims[0], mmap_mode="r").shape == SIZE


def test_parallel_workers_write_the_same_arrays(written, tmp_path):
    _prepare(written.root, tmp_path / "one", workers=1)
    report, _ = _prepare(written.root, tmp_path / "two", workers=2)
    assert report.written > 0
    one = settings_dir(tmp_path / "one", Settings(size=SIZE)) / "arrays"
    two = settings_dir(tmp_path / "two", Settings(size=SIZE)) / "arrays"
    names = sorted(p.name for p in one.glob("*.npy"))
    assert names == sorted(p.name for p in two.glob("*.npy"))
    for name in names:
        np.testing.assert_array_equal(np.load(one / name), np.load(two / name))


def test_settings_and_sources_key_the_cache(written, tmp_path):
    root = shutil.copytree(written.root, tmp_path / "vindr")
    cache = tmp_path / "cache"
    _prepare(root, cache)
    with pytest.raises(CacheError, match=r"no prepared images .*`camkit prepare vindr .* --size 256 160"):
        camkit.create_dataset("vindr", root=root, split="train", size=(256, 160), cache=cache, **OPTS)
    with pytest.raises(CacheError, match=r"is not in the cache .*`camkit prepare vindr .* --val-fraction 0.2 "
                       r"--seed 5 --out"):
        _make(root, "train", cache=cache, seed=5)
    d = _make(root, "test", cache=cache)
    victim = root / d.records[0].relpath()
    os.utime(victim, ns=(1, 1))
    with pytest.raises(CacheError, match=f"{victim.name} changed .*`camkit prepare vindr .* --size 192 128"):
        _make(root, "test", cache=cache)
    again, _ = _prepare(root, cache)
    assert again.written == 1
    _make(root, "test", cache=cache)


def test_bad_image_fails_or_is_recorded(written, tmp_path):
    root = shutil.copytree(written.root, tmp_path / "vindr")
    d = _make(root, "test")
    victim = next(r for r in d.records if r.label == 0)
    (root / victim.relpath()).write_text("not a DICOM file")
    cache = tmp_path / "cache"
    with pytest.raises(CacheError, match=r"1 image\(s\) could not be prepared:\n  not a DICOM file: .*"
                       + victim.image_id + r".*skip_bad=True"):
        _prepare(root, cache)
    report, _ = _prepare(root, cache, skip_bad=True)
    assert [p for p, _ in report.skipped] == [str(root / victim.relpath())]
    with pytest.raises(CacheError, match="was skipped by camkit prepare .* skip_bad=True"):
        _make(root, "test", cache=cache)
    cached = _make(root, "test", cache=cache, skip_bad=True)
    assert victim.image_id not in {r.image_id for r in cached.records}
    assert len(cached.skipped) == 1 and "not a DICOM file" in cached.skipped[0][1]
    direct = _make(root, "test", skip_bad=True)  # the direct loader draws the same replacement
    assert [r.image_id for r in direct.records] == [r.image_id for r in cached.records]
