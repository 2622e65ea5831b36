"""Which images make up ``train`` / ``val`` / ``test``: the official split, a seeded validation carve-out by
study, and the paper's balanced mass-vs-normal subsets.

VinDr ships ``training`` (4,000 studies) and ``test`` (1,000); ``val`` is ``val_fraction`` of the training
studies drawn with ``seed`` (whole studies, so no patient straddles train and val). With ``balanced=True``
every mass image of a split is kept plus as many normal images, drawn with ``seed``, as there are mass
images (``balance_by="image"``, 894 + 894 / 219 + 219 on the full dataset before the val carve-out) or mass
boxes (``balance_by="box"``: each mass image once per mass box, which reproduces the paper's 1,978 / 474).
"""
from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable

import numpy as np

from camkit.errors import DataError

from .annotations import ImageRecord

SPLITS = ("train", "val", "test")
BALANCE_BY = ("image", "box")


class SplitError(DataError, ValueError):
    """An unknown split name or option."""


def check_split(split: str) -> str:
    """``split`` if it is one of train/val/test; otherwise an error with the closest names."""
    if split in SPLITS:
        return split
    close = difflib.get_close_matches(str(split), SPLITS + ("training", "validation"), n=1, cutoff=0.4)
    hint = f" Did you mean {({'training': 'train', 'validation': 'val'}).get(close[0], close[0])!r}?" \
        if close else ""
    raise SplitError(f"unknown split {split!r} for dataset 'vindr'.{hint} Use one of: train, val, test "
                     "(VinDr's own 'training' split is camkit's train + val).")


def val_studies(records: Iterable[ImageRecord], val_fraction: float, seed: int) -> set[str]:
    """The training studies held out for validation: ``round(val_fraction * n)`` of them (at least one
    when ``val_fraction > 0``), drawn with ``seed`` from the sorted study ids."""
    if not 0.0 <= val_fraction < 1.0:
        raise SplitError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    studies = sorted({r.study_id for r in records if r.split == "training"})
    if val_fraction == 0.0 or len(studies) < 2:
        return set()
    n = min(len(studies) - 1, max(1, int(round(val_fraction * len(studies)))))
    rng = np.random.default_rng([int(seed), 7])
    return {studies[i] for i in rng.choice(len(studies), size=n, replace=False)}


def split_of(record: ImageRecord, held_out: set[str]) -> str:
    """camkit's split of a record: test, or train/val by whether its study is held out."""
    if record.split == "test":
        return "test"
    return "val" if record.study_id in held_out else "train"


def select(records: list[ImageRecord], split: str, *, balanced: bool = True, val_fraction: float = 0.1,
           seed: int = 0, balance_by: str = "image",
           valid: Callable[[ImageRecord], bool] | None = None) -> list[ImageRecord]:
    """The records of ``split`` for the mass-vs-normal task, sorted by (study, image).

    ``valid(record)``: False leaves an image out (a bad file, when skipping); with ``balanced`` a left-out
    normal image is replaced by the next one of the seeded draw, so the subset stays balanced.
    Images with other findings only (label None) are never selected.
    """
    check_split(split)
    if balance_by not in BALANCE_BY:
        raise SplitError(f"balance_by must be one of {', '.join(BALANCE_BY)}, got {balance_by!r}")
    valid = valid or (lambda r: True)
    held_out = val_studies(records, val_fraction, seed)
    mine = [r for r in records if split_of(r, held_out) == split]
    masses = [r for r in mine if r.label == 1 and valid(r)]
    normals = [r for r in mine if r.label == 0]
    if balance_by == "box":
        masses = [r for r in masses for _ in range(max(1, len(r.boxes)))]
    if not balanced:
        chosen = masses + [r for r in normals if valid(r)]
    else:
        rng = np.random.default_rng([int(seed), SPLITS.index(split)])
        chosen = list(masses)
        want = len(masses)
        for i in rng.permutation(len(normals)):
            if want == 0:
                break
            if valid(normals[int(i)]):
                chosen.append(normals[int(i)])
                want -= 1
    return sorted(chosen, key=lambda r: (r.study_id, r.image_id))
