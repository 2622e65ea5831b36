"""The shared half of datasets whose lesions are masks (CBIS-DDSM, INbreast): records in, samples out.

A plugin reads its files into records (one per image, with the fields of :class:`LesionRecord`), selects a
split's records, and gives a picklable ``prepare_fn(root, record, settings) -> (image, transform, Lesions)``
that decodes the image and its masks. :class:`LesionDataset` then serves samples either from the
``camkit prepare`` cache (memory-mapped, :mod:`camkit.data.cache`) or by running ``prepare_fn`` on the fly,
with ``skip_bad`` handling and the config the training loop fingerprints.
"""
from __future__ import annotations

from abc import ABCMeta, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from camkit.data.cache import CacheReader, PrepareFn, Settings, default_cache_dir, finish, settings_dir
from camkit.data.files import file_problem
from camkit.data.sample import clip_boxes, skip_unreadable
from camkit.errors import DataError


@dataclass
class LesionRecord:
    """One image of a mask dataset, as its tables and file names describe it (no pixels read).

    ``files``: every file under the root the sample is made from, the image first (the cache keys on them);
    ``label``: 1 mass, 0 negative, None left out of the task; ``split``: the dataset's own split of the image
    (``train`` / ``test``) or None where it has none; ``rows``: where it comes from, for messages.
    """

    image_id: str
    patient_id: str
    laterality: str | None
    view: str | None
    label: int | None
    files: tuple[str, ...]
    split: str | None = None
    density: str | None = None
    rows: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def study_id(self) -> str:
        return self.patient_id

    def sources(self) -> tuple[str, ...]:
        return self.files

    def where(self) -> str:
        return self.rows or (self.files[0] if self.files else self.image_id)


class RecordsDataset(torch.utils.data.Dataset):
    """A split's selected ``records`` under one preprocessing ``settings``: the config the training loop
    fingerprints, the length and the labels. Subclasses (:class:`LesionDataset`, VinDr's dataset) set ``root``,
    ``split``, ``settings``, ``skip_bad``, ``_options`` and ``records`` (each with a ``label``)."""

    root: Path
    split: str
    settings: Settings
    skip_bad: bool
    _options: dict[str, Any]
    records: list[Any]

    @property
    def config(self) -> dict[str, Any]:
        """What decides this dataset's samples (root, split, preprocessing, subset options), JSON-able;
        the training loop's checkpoint fingerprint uses it."""
        return {"root": str(self.root.resolve()), "split": self.split, "settings": self.settings.key(),
                "skip_bad": self.skip_bad, **self._options}

    def __len__(self) -> int:
        return len(self.records)

    def labels(self) -> list[int]:
        """The label of every sample, in order (1 mass, 0 negative)."""
        return [int(r.label) for r in self.records]

    def image_ids(self) -> list[str]:
        """Every sample's ``image_id``, in order, without reading pixels (:mod:`camkit.data.checks`)."""
        return [r.image_id for r in self.records]

    def describe(self, index: int) -> str:
        """Where sample ``index`` comes from (its table row or file), for messages."""
        r = self.records[index]
        return r.where() if callable(getattr(r, "where", None)) else str(r.image_id)


class LesionDataset(RecordsDataset, metaclass=ABCMeta):
    """Samples of the selected ``records`` (see the module docstring); subclasses set the records.

    Each sample has the contract's keys plus ``masks`` (N, H, W) bool in the model frame, one per box, and
    ``density``. Skipped images are listed in ``self.skipped`` as ``(file or row, reason)``.
    """

    name = "lesions"

    def __init__(self, root: str | Path, split: str, settings: Settings, prepare_fn: PrepareFn,
                 cache: str | Path | bool | None, skip_bad: bool, options: dict[str, Any]):
        self.root = Path(root)
        self.split = split
        self.settings = settings
        self.skip_bad = skip_bad
        self.prepare_fn = prepare_fn
        self._options = dict(options)
        self.skipped: list[tuple[str, str]] = []
        self.records: list[LesionRecord] = []
        self.cache_dir = None if cache in (None, False) else settings_dir(
            default_cache_dir(self.name) if cache is True else cache, settings)
        self._cache: CacheReader | None = None

    # -- called by subclasses once they know their records ------------------------------------------------
    def _open_cache(self) -> CacheReader | None:
        if self.cache_dir is not None and self._cache is None:
            self._cache = CacheReader(self.cache_dir, self.prepare_command())
        return self._cache

    def _valid(self):
        """``valid(record)`` for the selection: under ``skip_bad``, False for images prepare skipped or whose
        image file is missing (each listed in ``skipped``); None (everything valid) otherwise."""
        if not self.skip_bad:
            return None
        cache = self._open_cache()
        cached = cache.valid(self.skipped) if cache is not None else (lambda r: True)
        seen: dict[str, bool] = {}

        def valid(r: LesionRecord) -> bool:
            if r.image_id not in seen:
                problems = [(f, file_problem(self.root / f)) for f in r.files]
                missing = [(f, p) for f, p in problems if p]
                if missing and cache is None:
                    self.skipped.append((str(self.root / missing[0][0]), missing[0][1]))
                seen[r.image_id] = not missing if cache is None else True
            return seen[r.image_id] and cached(r)
        return valid

    def _bind(self, records: list[LesionRecord]) -> None:
        self.records = records
        cache = self._open_cache()
        if cache is not None:
            cache.bind(self.root, records, self.split)
        elif not self.skip_bad:
            from camkit.data.dicom import DicomReadError, missing_message

            for r in records:
                for f in r.files:
                    if file_problem(self.root / f):
                        raise DicomReadError(missing_message(self.root / f, r.where()))

    @abstractmethod
    def prepare_command(self) -> str:
        """The ``camkit prepare`` command line that fills this dataset's cache."""

    # -- samples ----------------------------------------------------------------------------------------
    def load(self, index: int):
        """``(image (1, H, W) in [0, 1] before the z-score, transform)`` of sample ``index``."""
        r = self.records[index]
        if self._cache is not None:
            return self._cache.raw(r.image_id)
        image, transform, _ = self.prepare_fn(self.root, r, self.settings)
        return image, transform

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        r = self.records[index]
        if self._cache is not None:
            image, transform, lesions = self._cache.sample(r.image_id)
        else:
            try:
                raw, transform, lesions = self.prepare_fn(self.root, r, self.settings)
            except DataError as exc:
                if not self.skip_bad:
                    raise
                skip_unreadable(self.skipped, r.where(), exc)
                return None
            image = finish(raw)
        size = self.settings.size
        if lesions is None:
            boxes, masks = np.zeros((0, 4)), torch.zeros((0, *size), dtype=torch.bool)
        else:
            boxes, masks = lesions.boxes, lesions.masks
        model_boxes = clip_boxes(transform.to_model(boxes), size)
        return {"image": image, "label": int(r.label),
                "boxes": torch.as_tensor(model_boxes, dtype=torch.float32).reshape(-1, 4),
                "image_id": r.image_id, "study_id": r.study_id, "laterality": r.laterality, "view": r.view,
                "transform": transform, "density": r.density, "masks": masks}

    def __repr__(self) -> str:
        n_mass = sum(self.labels())
        return (f"{type(self).__name__}({str(self.root)!r}, split={self.split!r}, {len(self)} images: {n_mass} "
                f"mass, {len(self) - n_mass} negative, size={self.settings.size}, "
                f"cache={str(self.cache_dir) if self.cache_dir else None}, skipped={len(self.skipped)})")
