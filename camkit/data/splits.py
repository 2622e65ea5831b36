"""Seeded hold-outs by group (patient): how datasets without an official split carve one, keeping every
patient's images on one side, stratified by the patient's label when the dataset gives it
(:func:`hold_out`, :func:`group_labels`), and :func:`missing_classes` for a check that warns when a split
lacks a class. docs/datasets.md "Carving splits by patient" is the guide."""
from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping

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


def hold_out(groups: Iterable[str], fraction: float, seed: int, salt: int = 7, what: str = "val_fraction", *,
             labels: Mapping[str, int] | None = None) -> set[str]:
    """The groups (patients) to hold out: about ``fraction`` of the distinct ``groups``, drawn with ``seed``.

    Without ``labels``: ``round(fraction * n)`` of the sorted names, at least one when ``fraction > 0``, never
    all (fewer than 2 groups: none). This draw is kept bit for bit, so a dataset that passes no labels keeps its
    splits.

    With ``labels`` (group -> its label, e.g. from :func:`group_labels`; every group needs one, extra keys are
    ignored): the same total, shared out over the labels by largest remainder of ``fraction * size``, each
    label's share drawn among its own groups. A label with >= 2 groups gives at least one and keeps at least
    one, so both sides have every such label even when it is rare; the total then grows by at most one a label
    when ``fraction`` is too small for that. A label with a single group keeps it on the kept side (a model
    cannot learn a class it never sees); when every label has a single group nothing is held out. One label
    only: the same draw as without labels.

    ``salt`` makes different hold-outs of one seed independent (a test split, then a val split from the rest).
    ``what`` names the fraction in the error for one outside [0, 1).
    """
    if not 0.0 <= fraction < 1.0:
        raise SplitError(f"{what} must be in [0, 1), got {fraction!r}")
    names = sorted(set(groups))
    if labels is not None:
        return _stratified(names, fraction, seed, salt, labels)
    if fraction == 0.0 or len(names) < 2:
        return set()
    n = min(len(names) - 1, max(1, int(round(fraction * len(names)))))
    rng = np.random.default_rng([int(seed), int(salt)])
    return {names[i] for i in rng.choice(len(names), size=n, replace=False)}


def _stratified(names: list[str], fraction: float, seed: int, salt: int, labels: Mapping[str, int]) -> set[str]:
    unlabelled = [g for g in names if g not in labels]
    if unlabelled:
        shown = ", ".join(repr(g) for g in unlabelled[:3]) + (", ..." if len(unlabelled) > 3 else "")
        raise SplitError(f"hold_out: no label for {len(unlabelled)} group(s): {shown}; labels= must map every "
                         "group to its label (camkit.data.splits.group_labels builds it from (group, label) pairs)")
    strata: dict[int, list[str]] = {}
    for g in names:  # sorted names in, sorted names within each stratum
        strata.setdefault(labels[g], []).append(g)
    if fraction == 0.0:
        return set()
    keys = sorted(strata)
    total = min(len(names) - 1, max(1, int(round(fraction * len(names))))) if len(names) >= 2 else 0
    counts = _share(total, [len(strata[k]) for k in keys], fraction)
    rng = np.random.default_rng([int(seed), int(salt)])
    held: set[str] = set()
    for k, count in zip(keys, counts):
        if count:  # draw nothing for an empty share, so that the single-stratum draw is the unlabelled one
            held.update(strata[k][i] for i in rng.choice(len(strata[k]), size=count, replace=False))
    return held


def _share(total: int, sizes: list[int], fraction: float) -> list[int]:
    """``total`` shared over strata of ``sizes``: largest remainder of ``fraction * size``, each stratum of
    >= 2 kept within [1, size - 1] and a single-group one at 0 (those bounds win over ``total``)."""
    quotas = [fraction * m for m in sizes]
    low = [1 if m >= 2 else 0 for m in sizes]
    high = [m - 1 if m >= 2 else 0 for m in sizes]
    counts = [min(max(math.floor(q), lo), hi) for q, lo, hi in zip(quotas, low, high)]
    # one group at a time to the stratum furthest below its quota (ties: the lower label), or back from the one
    # furthest above it, while the bounds allow
    while sum(counts) < total:
        room = [i for i, c in enumerate(counts) if c < high[i]]
        if not room:
            break
        counts[max(room, key=lambda i: (quotas[i] - counts[i], -i))] += 1
    while sum(counts) > total:
        room = [i for i, c in enumerate(counts) if c > low[i]]
        if not room:
            break
        counts[min(room, key=lambda i: (quotas[i] - counts[i], i))] -= 1
    return counts


def group_labels(pairs: Iterable[tuple[str, int | None]]) -> dict[str, int]:
    """group -> its label for :func:`hold_out`'s ``labels``, from ``(group, image label)`` pairs: the largest
    label of the group's images (a patient with any mass image is 1); None labels (images left out of the task)
    are ignored, and a group with only those is 0, so that it still has a stratum."""
    out: dict[str, int] = {}
    for group, label in pairs:
        out[group] = max(out.get(group, 0), 0 if label is None else int(label))
    return out


def missing_classes(labels: Iterable[int], classes: Iterable[int] = (0, 1)) -> list[int]:
    """The ``classes`` (sorted) that no label in ``labels`` has: ``[]`` when a split has every class, ``[1]`` for a
    split without a positive, all of them for an empty one. For a check that warns about such a split (a
    metric like AUC or FROC is undefined without positives) before anything trains."""
    present = {int(x) for x in labels}
    return sorted(int(c) for c in set(classes) if int(c) not in present)
