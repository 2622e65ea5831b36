"""VinDr loading speed at the paper's 2944x1920: DICOM decode + preprocess vs reading the prepare cache.

Run (about a minute, most of it writing four full-size synthetic DICOMs)::

    python -m pytest benchmarks/test_vindr_speed.py --benchmark-enable -s

Figures are per core (torch limited to one thread). The GMIC train step the loader feeds takes ~50-72 ms per
batch of 6 on an H200 (the released code's anchor, docs/performance.md), so a loader needs >= ~120 images/s from the 16 cores of a GPU machine.
"""
from __future__ import annotations

import io
import time

import pytest
import torch

from camkit_vindr.cache import prepare
from camkit_vindr.dataset import VinDrDataset, records_for_prepare
from camkit_vindr.preprocess import Settings, prepare_image
from camkit_synthetic.export import write_vindr

SIZE = (2944, 1920)
NEEDED = 120.0  # images/s: 6 images per ~50 ms train step


@pytest.fixture(scope="module")
def full_size(tmp_path_factory):
    root = tmp_path_factory.mktemp("vindr-full")
    written = write_vindr(root, n=2, size=(3518, 2800), seed=0)
    cache = tmp_path_factory.mktemp("cache")
    prepare(root, records_for_prepare(root, balanced=False, val_fraction=0.0), Settings(size=SIZE), cache=cache,
            workers=1, stream=io.StringIO())
    return written, cache


def _rate(fn, items, repeat=1):
    t0 = time.perf_counter()
    for _ in range(repeat):
        for item in items:
            fn(item)
    return repeat * len(items) / (time.perf_counter() - t0)


def _loader_rate(ds, workers: int, batches: int = 12) -> float:
    from camkit.data.sample import collate

    indices = [i % len(ds) for i in range(6 * batches)]
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(ds, indices), batch_size=6, num_workers=workers,
                                         collate_fn=collate)
    it = iter(loader)
    next(it)  # worker start-up is not part of the steady state
    t0 = time.perf_counter()
    n = sum(len(batch["label"]) for batch in it)
    return n / (time.perf_counter() - t0)


def test_decode_vs_cache_images_per_second(full_size, benchmark):
    written, cache = full_size
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        images = written.images[:4]
        settings = Settings(size=SIZE)
        decode = _rate(lambda im: prepare_image(written.root / im.relpath, im.laterality, settings), images)
        ds = VinDrDataset(written.root, split="train", size=SIZE, balanced=False, val_fraction=0.0, cache=cache)
        cached = _rate(lambda i: ds[i]["image"], range(len(ds)), repeat=3)
        benchmark.pedantic(lambda: ds[0]["image"], rounds=5, iterations=1)
    finally:
        torch.set_num_threads(threads)
    loader = _loader_rate(ds, workers=2)
    benchmark.extra_info.update({"decode_img_per_s_per_core": decode, "cache_img_per_s_per_core": cached,
                                 "ratio": cached / decode, "dataloader_2_workers_img_per_s": loader})
    print(f"\nVinDr at {SIZE[0]}x{SIZE[1]}, per core: DICOM decode+preprocess {decode:.2f} img/s "
          f"(x16 cores = {16 * decode:.0f}), cache read {cached:.1f} img/s (x16 cores = {16 * cached:.0f}); "
          f"cache/decode = {cached / decode:.1f}x; DataLoader(batch 6, 2 workers) over the cache {loader:.1f} img/s; "
          f"the GMIC step needs >= {NEEDED:.0f} img/s")
    assert cached > decode  # a ratio within one run, not a wall-clock threshold
