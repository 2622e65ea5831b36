"""The ``synthetic`` dataset: generated mammograms as camkit samples (the embedded default for ``camkit bench``)."""
from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset

from camkit.data.sample import BoxTransform
from camkit.data.imaging import mirror, resize, resize_masks

from .generator import SPLITS, Difficulty, SyntheticImage, density_category, generate, resolve_difficulty

#: Default sizes per split, sized for a one-minute-per-model CPU bench at 256 x 160.
DEFAULT_N = {"train": 2000, "val": 200, "test": 400}
#: Cache generated samples in memory when they take at most this many bytes.
CACHE_BUDGET = 1 << 30


class SyntheticDataset(Dataset):
    """Seeded synthetic mammograms with planted masses, as camkit samples (see :mod:`camkit.data`).

    Args:
        split: ``"train"``, ``"val"`` or ``"test"`` (disjoint random streams).
        size: model input (H, W).
        n: number of images (default: :data:`DEFAULT_N` of the split). Studies are pairs of images (CC and
            MLO of one breast) and alternate normal / mass, so ``n`` divisible by 4 is exactly balanced.
        seed: dataset seed; the same (seed, split, index, size, difficulty) always gives the same image.
        difficulty: ``"easy"``, ``"default"``, ``"hard"`` or a :class:`~.generator.Difficulty`.
        original_size: generate at this (H0, W0) and resize to ``size`` (default: ``size``).
        cache: keep generated samples in memory (default: when they fit in :data:`CACHE_BUDGET`). Call
            :meth:`materialize` before forking DataLoader workers to share one cache.
        **overrides: fields of :class:`~.generator.Difficulty`, e.g. ``contrast=(3, 4)``.

    Samples follow the contract: ``image`` (1, H, W) float32 z-scored with the *mass-free* image's
    statistics, ``boxes`` in the model frame, ``transform`` back to the stored image (right views mirrored).
    """

    def __init__(self, split: str = "train", size: tuple[int, int] = (256, 160), n: int | None = None,
                 seed: int = 0, difficulty: str | Difficulty = "default",
                 original_size: tuple[int, int] | None = None, cache: bool | None = None, **overrides: Any):
        if split not in SPLITS:
            raise ValueError(f"synthetic split {split!r} is not one of {', '.join(SPLITS)}")
        self.split = split
        self.size = (int(size[0]), int(size[1]))
        self.original_size = (int(original_size[0]), int(original_size[1])) if original_size else self.size
        self.n = int(DEFAULT_N[split] if n is None else n)
        if self.n < 0:
            raise ValueError(f"synthetic n must be >= 0, got {n}")
        self.seed = int(seed)
        self.difficulty = resolve_difficulty(difficulty, **overrides)
        self.difficulty_name = difficulty if isinstance(difficulty, str) else "custom"
        if cache is None:
            cache = self.n * self.size[0] * self.size[1] * 4 <= CACHE_BUDGET
        self._cache: list[dict[str, Any] | None] | None = [None] * self.n if cache else None

    @property
    def config(self) -> dict[str, Any]:
        """JSON-able options that identify this dataset (for results files and config hashes)."""
        return {"name": "synthetic", "split": self.split, "size": list(self.size), "n": self.n,
                "seed": self.seed, "difficulty": self.difficulty_name,
                "original_size": list(self.original_size), **self.difficulty.to_dict()}

    def __len__(self) -> int:
        return self.n

    def raw(self, index: int) -> SyntheticImage:
        """The generated image behind sample ``index`` (stored orientation, raw [0, 1] intensities)."""
        return generate(index, self.original_size, seed=self.seed, split=self.split, difficulty=self.difficulty)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -self.n <= index < self.n:
            raise IndexError(f"synthetic {self.split} index {index} out of range for {self.n} images")
        index %= self.n
        if self._cache is not None:
            hit = self._cache[index]
            if hit is None:
                hit = self._cache[index] = self._make(index)
            return {**hit, "boxes": hit["boxes"].clone(), "image": hit["image"].clone()}  # callers may edit
        return self._make(index)

    def materialize(self) -> SyntheticDataset:
        """Generate every sample now (fills the cache; a no-op without one). Returns ``self``."""
        if self._cache is not None:
            for i in range(self.n):
                if self._cache[i] is None:
                    self._cache[i] = self._make(i)
        return self

    def labels(self) -> list[int]:
        """Every image's label without generating pixels."""
        from .generator import label_of

        return [label_of(i) for i in range(self.n)]

    def image_ids(self) -> list[str]:
        """Every image's ``image_id`` without generating pixels."""
        from .generator import image_id

        return [image_id(self.split, i) for i in range(self.n)]

    def _make(self, index: int) -> dict[str, Any]:
        im = self.raw(index)
        flipped = im.laterality == "R"
        pixels = mirror(im.normalised()) if flipped else im.normalised()
        transform = BoxTransform(original_size=self.original_size, model_size=self.size, crop=None,
                                 flipped=flipped)
        image = resize(pixels, self.size)
        boxes = torch.as_tensor(transform.to_model(im.boxes), dtype=torch.float32).reshape(-1, 4)
        masks = im.masks[:, :, ::-1] if flipped else im.masks
        return {"image": image, "label": int(im.label), "boxes": boxes, "image_id": im.image_id,
                "study_id": im.study_id, "laterality": im.laterality, "view": im.view, "transform": transform,
                "masks": resize_masks(masks, self.size), "density": density_category(im.info["density"])}

