"""Data speed (pytest-benchmark): synthetic generation and folder loading, in images per second.

Run::

    python -m pytest benchmarks/test_data_speed.py --benchmark-enable -s -q

Figures are per core (torch limited to one thread). The CPU bench trains at roughly 500 images/s at 256x160
(docs/training.md), so synthetic generation at a few hundred images/s costs a few seconds once per dataset
(samples are cached) and reading the cache is far faster than generating. Ratios printed at the end compare
figures from the same run, so the machine's load cancels.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from camkit_folder.dataset import FolderDataset
from camkit_synthetic.dataset import SyntheticDataset
from camkit_synthetic.generator import generate

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from dicom_fixtures import write_dicom, write_png  # noqa: E402

RATES: dict[str, float] = {}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _run(benchmark, key: str, fn, n_images: int, rounds: int = 3) -> None:
    benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=1)
    if benchmark.stats is not None:  # None under --benchmark-disable (the test suite's default)
        RATES[key] = n_images / benchmark.stats.stats.median
        benchmark.extra_info["images_per_s"] = round(RATES[key], 1)
    else:
        t = time.perf_counter()
        fn()
        RATES[key] = n_images / (time.perf_counter() - t)


@pytest.mark.parametrize("difficulty", ["easy", "default", "hard"])
def test_synthetic_generation_256x160(benchmark, difficulty):
    def gen():
        for i in range(64):
            generate(i, (256, 160), difficulty=difficulty)
    _run(benchmark, f"generate_{difficulty}", gen, 64)


def test_synthetic_generation_1024x640(benchmark):
    def gen():
        for i in range(8):
            generate(i, (1024, 640))
    _run(benchmark, "generate_1024x640", gen, 8)


def test_synthetic_dataset_cached(benchmark):
    ds = SyntheticDataset("train", n=64).materialize()

    def read():
        for i in range(len(ds)):
            ds[i]
    _run(benchmark, "cached_getitem", read, 64)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """8 x 16-bit PNG and 8 x 12-bit DICOM mammogram-sized images (2000 x 800, like the NYU sample)."""
    root = tmp_path_factory.mktemp("folder-speed")
    rows = ["image,label,laterality"]
    for i in range(8):
        im = generate(i, (2000, 800), split="test")
        write_png(root / f"p{i}.png", im.pixels * 4095, bits=16)
        write_dicom(root / f"d{i}.dcm", im.pixels * 4095, bits_stored=12)
        rows += [f"p{i}.png,{im.label},{im.laterality}", f"d{i}.dcm,{im.label},{im.laterality}"]
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.mark.parametrize("kind", ["png", "dcm"])
def test_folder_loading_2000x800_to_256x160(benchmark, folder, kind):
    ds = FolderDataset(folder, size=(256, 160))
    idx = [i for i, r in enumerate(ds.records) if r.path.suffix == f".{kind}"]
    assert len(idx) == 8

    def read():
        for i in idx:
            ds[i]
    _run(benchmark, f"folder_{kind}", read, len(idx))


def test_zz_ratios():
    """Print the figures; the cache must beat generation (a ratio from one run, immune to machine load)."""
    if not RATES:
        pytest.skip("run the whole file")
    print("\ndata speed, images/s (1 thread):")
    for key, rate in RATES.items():
        print(f"  {key:24s} {rate:10.1f}")
    if "cached_getitem" in RATES and "generate_default" in RATES:
        ratio = RATES["cached_getitem"] / RATES["generate_default"]
        print(f"  cache / generation      {ratio:10.1f}x")
        assert ratio > 5
    assert np.isfinite(list(RATES.values())).all()
