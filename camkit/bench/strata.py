"""Leaderboard strata: the test set split by lesion size, view, laterality or breast density
(``camkit leaderboard RUN --by size``).

Built from a run's stored evaluation records alone (each image's ground-truth boxes in the original pixels,
its view, laterality and, where the dataset has it, density), so any run can be broken down without
inference. docs/metrics.md, "Strata", states the rules:

- ``size``: the terciles of the test set's lesion areas (box width x height, original pixels) cut the lesions
  into small / medium / large. FROC metrics count the lesions of the stratum only; a prediction that hits a
  lesion of another stratum is neither a hit nor a false positive; the FPPI denominator stays every evaluated
  test image (camkit.metrics.froc, ``lesions=``). The per-image metrics (MaxBoxAcc, the pointing games) put an
  image in the stratum of its largest lesion.
- ``view``, ``laterality``, ``density``: the images with that value (an image without one: ``unknown``); every
  metric is computed on those images alone.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from camkit.errors import OptionError

BY = ("size", "view", "laterality", "density")
SIZE_NAMES = ("small", "medium", "large")


@dataclass(frozen=True)
class Stratum:
    """One stratum: which images are evaluated and which of their lesions count (None: all)."""

    by: str
    name: str
    description: str
    images: frozenset[str] | None = None        # FROC and per-image metrics: only these images (None: all)
    lesions: dict[str, np.ndarray] | None = None  # FROC: image id -> which of its boxes count (None: all)
    image_metric_images: frozenset[str] | None = None  # per-image metrics under ``size``: largest lesion's stratum

    def per_image_ids(self) -> frozenset[str] | None:
        """The images the per-image (threshold-free) metrics use (None: all)."""
        return self.image_metric_images if self.image_metric_images is not None else self.images


def lesion_areas(images: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Image id -> (M,) areas of its ground-truth boxes, in original pixels squared."""
    out = {}
    for r in images:
        g = np.asarray(r["gt"], dtype=np.float64).reshape(-1, 4)
        out[r["image_id"]] = (g[:, 2] - g[:, 0]) * (g[:, 3] - g[:, 1])
    return out


def make_strata(images: list[dict[str, Any]], by: str) -> list[Stratum]:
    """The strata of a run's test images (its evaluation records), in display order."""
    if by not in BY:
        raise OptionError(f"--by {by!r}: choose one of {', '.join(BY)}")
    if by == "size":
        return _size_strata(images)
    if not any(by in r for r in images):
        raise OptionError(f"this run's stored predictions carry no {by} (a bench from before camkit stored it); "
                          "re-run the bench to break it down by " + by)
    values = [r.get(by) for r in images]
    if all(v is None for v in values):
        raise OptionError(f"no test image of this run has a {by}: the dataset does not record it (VinDr-Mammo "
                          "and the synthetic set record density; a folder dataset does not)")
    names = sorted({str(v) for v in values if v is not None}) + (["unknown"] if None in values else [])
    out = []
    for name in names:
        ids = frozenset(r["image_id"] for r in images if (str(r.get(by)) if r.get(by) is not None else "unknown")
                        == name)
        n_les = sum(len(r["gt"]) for r in images if r["image_id"] in ids)
        out.append(Stratum(by, name, f"{by} {name}: {len(ids)} images, {n_les} lesions", images=ids))
    return out


def _size_strata(images: list[dict[str, Any]]) -> list[Stratum]:
    areas = lesion_areas(images)
    every = np.concatenate(list(areas.values())) if areas else np.zeros(0)
    if every.size < 3:
        raise OptionError(f"--by size needs at least 3 test lesions to cut into terciles; this run has "
                          f"{every.size}")
    q1, q2 = np.quantile(every, [1 / 3, 2 / 3])
    which = {k: np.digitize(a, [q1, q2]) for k, a in areas.items()}  # 0 small, 1 medium, 2 large
    largest = {k: int(w[np.argmax(areas[k])]) for k, w in which.items() if w.size}
    bounds = (f"area < {q1:.0f} px²", f"{q1:.0f} <= area < {q2:.0f} px²", f"area >= {q2:.0f} px²")
    out = []
    for j, name in enumerate(SIZE_NAMES):
        n = int(sum((w == j).sum() for w in which.values()))
        out.append(Stratum("size", name, f"size {name} ({bounds[j]}, terciles of the test lesions): {n} lesions",
                           lesions={k: w == j for k, w in which.items()},
                           image_metric_images=frozenset(k for k, s in largest.items() if s == j)))
    return out
