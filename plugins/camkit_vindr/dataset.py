"""The ``vindr`` dataset: VinDr-Mammo's mass-vs-normal task as camkit samples (see :mod:`camkit.data`)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from camkit.data.sample import BoxTransform, clip_boxes, skip_unreadable

from .annotations import ImageRecord, load_records
from camkit.data.cache import CacheReader
from camkit.data.lesion_dataset import RecordsDataset
from camkit.data.dicom import DicomReadError, missing_message, read_header

from .cache import default_cache_dir, settings_dir
from .preprocess import DEFAULT_SIZE, Settings, finish, prepare_image
from .splits import check_split, select


class VinDrDataset(RecordsDataset):
    """VinDr-Mammo (PhysioNet v1.0.0 layout) as samples: label 1 = mass, 0 = normal (no finding).

    ``root``: the folder with ``images/`` and the two annotation CSVs. ``split``: ``train`` / ``val`` /
    ``test`` (``val`` = ``val_fraction`` of the official training studies, drawn with ``seed``).
    ``size``: the model's (H, W) input. ``balanced``: the paper's subsets (all mass images + as many
    seeded-random normal images; ``balance_by="box"`` counts mass boxes instead, reproducing its
    1,978 / 474). ``cache``: the folder ``camkit prepare vindr`` wrote (``True``: the default folder), read
    memory-mapped; ``None`` decodes the DICOMs on the fly. ``skip_bad``: leave out images with bad rows or
    files, listing each in ``self.skipped`` as ``(file or CSV row, reason)``; otherwise the first one raises.
    ``crop`` / ``flip`` / ``voi``: the preprocessing steps (breast crop, mirror right views, VOI LUT).

    Example::

        ds = camkit.create_dataset("vindr", root="/data/vindr-mammo", split="test", size=(2944, 1920))
        sample = ds[0]   # image (1, H, W) z-scored, label, boxes (N, 4) in the model frame, transform
    """

    def __init__(self, root: str | Path, split: str = "train", size: tuple[int, int] = DEFAULT_SIZE,
                 balanced: bool = True, val_fraction: float = 0.1, seed: int = 0,
                 cache: str | Path | bool | None = None, skip_bad: bool = False, balance_by: str = "image",
                 crop: bool = True, flip: bool = True, voi: bool = True):
        self.root = Path(root)
        self.split = check_split(split)
        self.settings = Settings(size=tuple(size), crop=crop, flip=flip, voi=voi)
        self.skip_bad = skip_bad
        self._options = {"balanced": balanced, "balance_by": balance_by, "val_fraction": val_fraction, "seed": seed}
        self.skipped: list[tuple[str, str]] = []
        self.cache_dir = None if cache in (None, False) else settings_dir(
            default_cache_dir() if cache is True else cache, self.settings)
        all_records = load_records(self.root, skip_bad=skip_bad, skipped=self.skipped)
        self._cache: CacheReader | None = None
        valid = self._cached_valid() if self.cache_dir is not None else self._direct_valid()
        self.records: list[ImageRecord] = select(all_records, self.split, balanced=balanced,
                                                 val_fraction=val_fraction, seed=seed, balance_by=balance_by,
                                                 valid=valid)
        if self.cache_dir is not None:
            self._bind_cache()
        elif not skip_bad:
            for r in self.records:
                if not (self.root / r.relpath()).is_file():
                    raise DicomReadError(missing_message(self.root / r.relpath(), r.where()))

    # -- validity of images while selecting -------------------------------------------------------------
    def _direct_valid(self):
        if not self.skip_bad:
            return None
        verdict: dict[str, bool] = {}

        def valid(r: ImageRecord) -> bool:
            if r.image_id not in verdict:
                try:
                    read_header(self.root / r.relpath(), r.where())
                    verdict[r.image_id] = True
                except DicomReadError as exc:
                    verdict[r.image_id] = False
                    self.skipped.append((str(self.root / r.relpath()), str(exc)))
            return verdict[r.image_id]
        return valid

    def _cached_valid(self):
        self._cache = CacheReader(self.cache_dir, self._prepare_command())
        return self._cache.valid(self.skipped) if self.skip_bad else None

    def _bind_cache(self) -> None:
        self._cache.bind(self.root, self.records, self.split)

    def _prepare_command(self) -> str:
        """The ``camkit prepare`` command that fills the cache this dataset reads (non-default options)."""
        s, o = self.settings, self._options
        flags = "".join(f" --no-{k}" for k in ("crop", "flip", "voi") if not getattr(s, k))
        flags += "" if o["balanced"] else " --all"
        flags += f" --balance-by {o['balance_by']}" if o["balance_by"] != "image" else ""
        flags += f" --val-fraction {o['val_fraction']}" if o["val_fraction"] != 0.1 else ""
        flags += f" --seed {o['seed']}" if o["seed"] != 0 else ""
        return (f"camkit prepare vindr {self.root} --size {s.size[0]} {s.size[1]}{flags} "
                f"--out {self.cache_dir.parent}")

    # -- samples (config, __len__ and labels come from RecordsDataset) ----------------------------------

    def load(self, index: int) -> tuple[torch.Tensor, BoxTransform]:
        """The preprocessed (1, H, W) [0, 1] image (before the z-score) and its transform."""
        r = self.records[index]
        if self._cache is not None:
            return self._cache.raw(r.image_id)
        return prepare_image(self.root / r.relpath(), r.laterality, self.settings, (r.height, r.width),
                             r.where())

    def __getitem__(self, index: int) -> dict[str, Any]:
        r = self.records[index]
        if self._cache is not None:
            image, transform, _ = self._cache.sample(r.image_id)
        else:
            try:
                raw, transform = self.load(index)
            except DicomReadError as exc:
                if not self.skip_bad:
                    raise
                skip_unreadable(self.skipped, str(self.root / r.relpath()), exc)
                return None
            image = finish(raw)
        boxes = clip_boxes(transform.to_model(r.boxes), self.settings.size)
        return {"image": image, "label": int(r.label),
                "boxes": torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                "image_id": r.image_id, "study_id": r.study_id, "laterality": r.laterality, "view": r.view,
                "transform": transform, "density": r.breast_density or None}

    def __repr__(self) -> str:
        n_mass = sum(self.labels())
        return (f"VinDrDataset({str(self.root)!r}, split={self.split!r}, {len(self)} images: {n_mass} mass, "
                f"{len(self) - n_mass} normal, size={self.settings.size}, "
                f"cache={str(self.cache_dir) if self.cache_dir else None}, skipped={len(self.skipped)})")


def records_for_prepare(root: str | Path, *, balanced: bool = True, val_fraction: float = 0.1, seed: int = 0,
                        balance_by: str = "image", skip_bad: bool = False,
                        skipped: list[tuple[str, str]] | None = None):
    """A ``records_for(bad_ids)`` callback for :func:`camkit_vindr.cache.prepare`: the union of the train,
    val and test selections the dataset would make with these options, bad images replaced."""
    records = load_records(root, skip_bad=skip_bad, skipped=skipped)

    def records_for(bad: set[str]) -> list[ImageRecord]:
        out: dict[str, ImageRecord] = {}
        for split in ("train", "val", "test"):
            for r in select(records, split, balanced=balanced, val_fraction=val_fraction, seed=seed,
                            balance_by=balance_by, valid=lambda r: r.image_id not in bad):
                out[r.image_id] = r
        return sorted(out.values(), key=lambda r: (r.study_id, r.image_id))
    return records_for

