"""Seeded hold-outs by group (patient): how datasets without an official split carve one, keeping every
patient's images on one side."""
from __future__ import annotations

import difflib
from collections.abc import Iterable

import numpy as np

from camkit.errors import DataError

SPLITS = ("train", "val", "test")


class SplitError(DataError, ValueError):
    """An unknown split name or a fraction out of range."""


def check_split(split: str, dataset: str) -> str:
    """``split`` if it is one of train/val/test; otherwise an error naming the closest one."""
    if split in SPLITS:
        return split
    close = difflib.get_close_matches(str(split), SPLITS + ("training", "validation"), n=1, cutoff=0.4)
    hint = f" Did you mean {({'training': 'train', 'validation': 'val'}).get(close[0], close[0])!r}?" if close else ""
    raise SplitError(f"unknown split {split!r} for dataset {dataset!r}.{hint} Use one of: train, val, test.")


def hold_out(groups: Iterable[str], fraction: float, seed: int, salt: int = 7, what: str = "val_fraction") -> set[str]:
    """``round(fraction * n)`` of the distinct ``groups`` (at least one when ``fraction > 0``, never all), drawn
    with ``seed`` from the sorted names; ``salt`` makes different hold-outs of one seed independent."""
    if not 0.0 <= fraction < 1.0:
        raise SplitError(f"{what} must be in [0, 1), got {fraction!r}")
    names = sorted(set(groups))
    if fraction == 0.0 or len(names) < 2:
        return set()
    n = min(len(names) - 1, max(1, int(round(fraction * len(names)))))
    rng = np.random.default_rng([int(seed), int(salt)])
    return {names[i] for i in rng.choice(len(names), size=n, replace=False)}
