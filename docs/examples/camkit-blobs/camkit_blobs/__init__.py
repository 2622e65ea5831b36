"""An example dataset plugin, written from docs/plugins.md alone: noise images, half of them with a bright blob.

Every sample follows camkit's sample contract; ``camkit.testing.check_dataset`` checks it (see
``tests/test_blobs.py``). Use it with any model: ``camkit bench --dataset blobs --dataset-opt n=64 ...``.
"""
from __future__ import annotations

import numpy as np
import torch

from camkit import hookimpl
from camkit.data import BoxTransform
from camkit.data.imaging import zscore


class Blobs(torch.utils.data.Dataset):
    """``n`` images of ``size`` (H, W): noise, plus a bright Gaussian blob on odd indices (label 1).

    Images are stored as they are used (no flip, crop or resize), so the transform is the identity; the
    z-score uses the blob-free image's statistics, so the blob cannot leak the label through them.
    """

    def __init__(self, split: str, size: tuple[int, int], seed: int, n: int = 64, contrast: float = 3.0):
        self.split, self.size, self.seed, self.n, self.contrast = split, tuple(int(v) for v in size), seed, n, contrast

    @property
    def config(self) -> dict:
        return {"name": "blobs", "split": self.split, "size": list(self.size), "seed": self.seed, "n": self.n,
                "contrast": self.contrast}

    def __len__(self) -> int:
        return self.n

    def labels(self) -> list[int]:
        return [i % 2 for i in range(self.n)]

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < self.n:
            raise IndexError(i)
        h, w = self.size
        rng = np.random.default_rng([self.seed, ("train", "val", "test").index(self.split), i])
        background = rng.normal(0.0, 1.0, (h, w)).astype(np.float32)
        image = zscore(background)
        boxes = np.zeros((0, 4), np.float32)
        if i % 2:
            r = 0.08 * h
            cy, cx = rng.uniform(2 * r, h - 2 * r), rng.uniform(2 * r, w - 2 * r)
            yy, xx = np.mgrid[:h, :w] + 0.5
            blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (r / 2) ** 2)).astype(np.float32)
            image = (background - background.mean()) / background.std() + self.contrast * blob
            boxes = np.array([[cx - r, cy - r, cx + r, cy + r]], np.float32)
        return {"image": torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None],
                "label": i % 2, "boxes": torch.from_numpy(boxes), "image_id": f"blobs-{self.split}-{i}",
                "study_id": f"blobs-{self.split}-{i // 2}", "laterality": None, "view": None,
                "transform": BoxTransform(original_size=self.size, model_size=self.size)}


def create_blobs(split: str = "train", size: tuple[int, int] = (64, 48), seed: int = 0, n: int = 64,
                 contrast: float = 3.0) -> Blobs:
    """Noise images, half with a bright blob and its exact box."""
    return Blobs(split, size, seed, n, contrast)


@hookimpl
def register_datasets(register):
    register("blobs", create_blobs, example=lambda folder: {"n": 8})
