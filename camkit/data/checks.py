"""Checks of a run's splits before any training: bad data costs seconds, never a training run.

:func:`check_splits` is called by ``camkit bench`` (its planner, on every input size's datasets) and by
``camkit train`` (after its datasets are built). Each problem is one line naming the split, the image (its id,
and its row or file where the dataset can say) and what to do; errors raise :class:`SplitCheckError` (a
:class:`camkit.errors.DataError`), the rest are returned as warnings.

* **errors**: an empty train or test split; a test split without a mass image (also once ``skip_bad`` has
  left images out); a test image that fails to read (with the ``skip_bad`` hint), is smaller than
  :data:`MIN_SIDE` on a side or holds NaN; an ``image_id`` twice in a split; an ``image_id`` in the test split
  and another one;
  a dataset that declares lesion boxes (camkit.data.annotations) but gives none on any test mass image; a
  sample with boxes in a dataset that declares none; a sample that breaks the contract (its first few per split);
* **warnings**: constant test images (every pixel the same: a blank or a failed export), named by id; an
  ``image_id`` in both the train and the val split; test mass images without a box (some, not all); a split
  that holds one class only.

Only the dataset contract is used (``len``, ``labels()``, ``dataset[i]``), so third-party datasets are checked
too, plus two optional members a dataset may have: ``image_ids()`` (every sample's id, in order, without reading
pixels) and ``describe(index)`` (where a sample comes from, e.g. ``labels.csv row 7 (p004/R_CC.png)``).

**Cost, the trade-off.** The test split is read once, every sample (pixels included): broken, tiny and blank
images only show in their pixels, and the test split is the one read only *after* training. At bench sizes
this is seconds (the default 400 synthetic test images: about 2 s on one core, kept in the dataset's memory
cache so evaluation does not generate them again; the paper's 474 VinDr test images from the ``camkit
prepare`` cache: about 10 s; decoded on the fly from DICOM, about 0.4 s an image). Train and validation images
are not read: their ids come from ``image_ids()``; a dataset without it is read once for its ids (one pass of
data loading, no model) - give such a dataset ``image_ids()`` to skip that.
"""
from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from camkit.data.annotations import has_boxes
from camkit.errors import CamkitError, DataError

#: the smallest side (stored pixels) an image may have: anything smaller is no mammogram
MIN_SIDE = 16
#: how a user of a dataset with a ``skip_bad`` option leaves a bad image out
SKIP_HINT = "pass skip_bad=True (--dataset-opt skip_bad=true) to leave it out"
#: examples a message names before it says how many more there are
SHOWN = 3
_SPLIT_ORDER = ("train", "val", "test")


class SplitCheckError(DataError):
    """Data that would make a run fail, or mislead, after training; found before it by :func:`check_splits`."""


def tiny_message(size: tuple[int, int], hint: str) -> str:
    """The message for a stored image of ``size`` (H, W) below :data:`MIN_SIDE`; ``hint`` says how to drop it."""
    h, w = size
    return (f"the image is {w}x{h} pixels (WxH), below camkit's minimum of {MIN_SIDE} on each side: no mammogram "
            f"(a thumbnail, an icon or a failed export); replace it, or {hint}")


@dataclass
class _Scan:
    """What reading every sample of a split found: ids (None where ``skip_bad`` left a sample out), the labels
    of the samples that were read, and the constant images' ids."""

    ids: list[str | None] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    constant: list[str] = field(default_factory=list)
    unboxed: list[str] = field(default_factory=list)  # mass images without a lesion box


def check_splits(sets: Mapping[str, Any], *, where: str) -> list[str]:
    """Check a run's datasets (split name -> dataset; None values are ignored) before training.

    ``where`` names the data in messages (e.g. ``"dataset 'folder'"``). Raises :class:`SplitCheckError` for
    the first error found; returns the warnings (one line each, without a ``warning:`` prefix).
    """
    present = {split: ds for split, ds in sets.items() if ds is not None}
    _check_counts(present, where)
    notes: list[str] = _missing_class_notes(present, where)
    ids: dict[str, list[str | None]] = {}
    for split, ds in present.items():
        _check_contract(ds, split, where)
        known = _known_ids(ds)
        if split == "test":  # read now what evaluation would read only after training
            scan = _scan(ds, split, where)
            _check_kept(scan, len(ds), where)
            notes += _constant_notes(scan, where) + _box_notes(ds, scan, where)
            ids[split] = known if known is not None else scan.ids
        else:
            ids[split] = known if known is not None else _scan(ds, split, where, pixels=False).ids
        _check_unique(ds, split, ids[split], where)
    return notes + _check_disjoint(present, ids, where)


#: samples of each split read to check the sample contract before training (the test split is read whole)
CONTRACT_SAMPLES = 4


def sample_problem(sample: Any) -> str | None:
    """What breaks the sample contract (camkit.protocols.Sample) in one phrase, or None: a missing key, an id
    that is not a non-empty str, boxes that are not (N, 4), a transform without ``to_original``, a laterality or
    view outside its values. Cheap: no pixel is compared."""
    from camkit.protocols import SAMPLE_KEYS

    if not isinstance(sample, Mapping):
        return f"is a {type(sample).__name__}, not a dict"
    missing = [k for k in SAMPLE_KEYS if k not in sample]
    if missing:
        return (f"lacks {', '.join(map(repr, missing))}" + (" (without study_id every image would count as its own "
                "study, or all as one, and the intervals would be wrong)" if "study_id" in missing else ""))
    for key in ("image_id", "study_id"):
        if not isinstance(sample[key], str) or not sample[key]:
            return f"has {key} {sample[key]!r}, not a non-empty str"
    shape = tuple(getattr(sample["boxes"], "shape", ()))
    if len(shape) != 2 or shape[1] != 4:
        return f"has boxes of shape {shape or type(sample['boxes']).__name__}, not (N, 4)"
    if not callable(getattr(sample["transform"], "to_original", None)):
        return "has a transform without to_original (a camkit.data.BoxTransform)"
    if sample["laterality"] not in ("L", "R", None) or sample["view"] not in ("CC", "MLO", None):
        return f"has laterality {sample['laterality']!r} / view {sample['view']!r}, not 'L'/'R'/None and 'CC'/'MLO'/None"
    return None


def _check_contract(ds: Any, split: str, where: str) -> None:
    """The first :data:`CONTRACT_SAMPLES` samples of a split against the sample contract, before training."""
    boxes = has_boxes(ds, where)
    for index in range(min(CONTRACT_SAMPLES, len(ds))):
        sample = _read(ds, index, split, where)
        problem = None if sample is None else sample_problem(sample)
        if problem is None and sample is not None and not boxes and len(sample["boxes"]):
            problem = (f"has {len(sample['boxes'])} lesion box(es), but the dataset declares annotations without "
                       "boxes (image-level labels only): declare ('boxes',), or give empty (0, 4) boxes")
        if problem:
            raise SplitCheckError(f"{where}, {split} split, {_describe(ds, index)}: the sample {problem}; every "
                                  "sample carries the keys of camkit.protocols.Sample (docs/plugins.md, 'A dataset'; "
                                  "camkit.testing.check_dataset checks a plugin's samples)")


def _check_counts(present: Mapping[str, Any], where: str) -> None:
    """An empty train or test split, or a test split without a mass image (from ``len`` and ``labels()``)."""
    for split, purpose in (("train", "nothing to train on"), ("test", "nothing to score")):
        if split in present and len(present[split]) == 0:
            raise SplitCheckError(f"{where}: the {split} split holds no image ({purpose}); check the options "
                                  f"that select it (the folder dataset: rows with split={split} in its CSV)")
    test = present.get("test")
    if test is not None and 1 not in set(int(v) for v in test.labels()):
        scored = ("detection (FROC, TPR@FPPI) is scored on mass images and would fail after training; give the "
                  "test split images with label 1 and their boxes" if has_boxes(test, where) else
                  "TPR and AUC need mass images and would be undefined after training; give the test split images "
                  "with label 1")
        raise SplitCheckError(f"{where}: the test split has no mass image ({len(test)} images, every label 0): "
                              f"{scored}")


def _missing_class_notes(present: Mapping[str, Any], where: str) -> list[str]:
    """A warning per split that holds one class only (a test split without masses is an error above): a train
    split cannot teach, a validation split cannot select a checkpoint (its AUC is undefined), a test split
    without normal images leaves TNR and AUC undefined."""
    why = {"train": "the model cannot learn to tell the classes apart",
           "val": "its AUC, which picks the best checkpoint, is undefined",
           "test": "TNR and AUC are undefined"}
    notes = []
    for split, ds in present.items():
        found = set(int(v) for v in ds.labels())
        if len(ds) and split in why and len(found) == 1 and not (split == "test" and found == {0}):
            lacking = "normal (label 0)" if found == {1} else "mass (label 1)"
            notes.append(f"{where}, {split} split: no {lacking} image among its {len(ds)}: {why[split]}; a "
                         "patient-level hold-out stratified by label keeps both classes on each side "
                         "(camkit.data.splits.hold_out, docs/datasets.md)")
    return notes


def _known_ids(ds: Any) -> list[str | None] | None:
    """``ds.image_ids()`` where the dataset has it (and it fits its length), else None."""
    method = getattr(ds, "image_ids", None)
    if not callable(method):
        return None
    got = list(method())
    return [str(v) for v in got] if len(got) == len(ds) else None


def _describe(ds: Any, index: int, image_id: str | None = None) -> str:
    """``image_id 'x' (labels.csv row 3 (x.png))``, as much of it as the dataset can say."""
    method = getattr(ds, "describe", None)
    place = str(method(index)) if callable(method) else f"index {index}"
    return f"image_id {image_id!r} ({place})" if image_id is not None else place


def _read(ds: Any, index: int, split: str, where: str) -> Any:
    """``ds[index]``; a failure becomes one line naming the split and the image, with the ``skip_bad`` hint
    where the dataset has that option and it would leave the image out."""
    try:
        return ds[index]
    except (CamkitError, OSError) as exc:
        text = " ".join(str(exc).split()).rstrip(".")
        if not isinstance(exc, CamkitError):
            text = f"{type(exc).__name__}: {text}"
        skippable = isinstance(exc, DataError) and getattr(ds, "skip_bad", None) is False
        hint = f"; fix or replace the file, or {SKIP_HINT}" if skippable and "skip_bad" not in text else ""
        raise SplitCheckError(f"{where}, {split} split, image {index + 1} of {len(ds)}: {text}{hint} "
                              "(checked before training)") from exc


def _scan(ds: Any, split: str, where: str, pixels: bool = True) -> _Scan:
    """Read every sample of ``ds`` once: ids and labels, and (``pixels``) each image's size and values."""
    out = _Scan()
    for index in range(len(ds)):
        sample = _read(ds, index, split, where)
        if sample is None:  # skip_bad left it out (the dataset reported it)
            out.ids.append(None)
            continue
        image_id = str(sample["image_id"])
        out.ids.append(image_id)
        out.labels.append(int(sample["label"]))
        if int(sample["label"]) == 1 and not len(sample["boxes"]):
            out.unboxed.append(image_id)
        if pixels and _is_constant(sample, f"{where}, {split} split, {_describe(ds, index, image_id)}"):
            out.constant.append(image_id)
    return out


def _is_constant(sample: Mapping[str, Any], named: str) -> bool:
    """Raise for an image below :data:`MIN_SIDE` or with NaN; True when every pixel has the same value."""
    import torch

    size = getattr(sample.get("transform"), "original_size", None)
    if size is not None and min(int(v) for v in size) < MIN_SIDE:
        raise SplitCheckError(f"{named}: {tiny_message(tuple(int(v) for v in size), 'remove it from the split')}")
    image = torch.as_tensor(sample["image"])
    if image.numel() == 0 or not bool(torch.isfinite(image).all()):
        raise SplitCheckError(f"{named}: the image holds no pixels, or NaN / infinite values after preprocessing; "
                              "replace the file, or remove it from the split")
    lo, hi = float(image.min()), float(image.max())
    return hi - lo <= 1e-6 * max(1.0, abs(hi))  # z-scoring maps a constant image to exact zeros


def _check_kept(scan: _Scan, n: int, where: str) -> None:
    """What ``skip_bad`` left of the test split must still hold a mass image."""
    left_out = sum(v is None for v in scan.ids)
    if not left_out:
        return
    if not scan.labels:
        raise SplitCheckError(f"{where}: every one of the {n} test images failed to read and was left out "
                              "(skip_bad): nothing to score; fix the files reported above")
    if 1 not in scan.labels:
        raise SplitCheckError(f"{where}: skip_bad left out {left_out} of the {n} test images and no mass image is "
                              "left: detection could not be scored; fix the mass images' files reported above")


def _box_notes(ds: Any, scan: _Scan, where: str) -> list[str]:
    """A dataset that declares boxes but gives none on any test mass image is refused (the bench would train,
    then fail to score); one whose mass images lack boxes in part gets a warning naming them."""
    masses = sum(1 for v in scan.labels if v == 1)
    if not scan.unboxed or not has_boxes(ds, where):
        return []
    if len(scan.unboxed) == masses:
        raise SplitCheckError(
            f"{where}, test split: none of its {masses} mass images has a lesion box, so detection cannot be "
            "scored. If the dataset labels whole images only, declare it (a class attribute annotations = (); "
            "docs/plugins.md, 'A dataset without lesion boxes'): camkit bench then scores classification; "
            "otherwise give the mass images their boxes")
    shown = ", ".join(repr(v) for v in scan.unboxed[:SHOWN])
    more = f" and {len(scan.unboxed) - SHOWN} more" if len(scan.unboxed) > SHOWN else ""
    return [f"{where}, test split: {len(scan.unboxed)} of its {masses} mass images have no lesion box: detection "
            f"has no lesion to find on them (they still count for classification): {shown}{more}"]


def _constant_notes(scan: _Scan, where: str) -> list[str]:
    """One warning naming the constant images, if any."""
    if not scan.constant:
        return []
    shown = ", ".join(repr(v) for v in scan.constant[:SHOWN])
    more = f" and {len(scan.constant) - SHOWN} more" if len(scan.constant) > SHOWN else ""
    return [f"{where}, test split: {len(scan.constant)} image(s) have every pixel the same value (blank, or a "
            f"failed export), so no map can find anything on them; they are scored as they are: {shown}{more}. "
            "Check those files, or remove them from the test split"]


def _check_unique(ds: Any, split: str, ids: list[str | None], where: str) -> None:
    """Every ``image_id`` at most once in a split (predictions, the report and the bootstrap key on it)."""
    seen: dict[str, list[int]] = {}
    for index, image_id in enumerate(ids):
        if image_id is not None:
            seen.setdefault(image_id, []).append(index)
    repeated = {k: v for k, v in seen.items() if len(v) > 1}
    if not repeated:
        return
    image_id, indices = next(iter(repeated.items()))
    places = "; ".join(_describe(ds, i) for i in indices[:SHOWN]) + ("; ..." if len(indices) > SHOWN else "")
    more = f" ({len(repeated) - 1} more id(s) repeat too)" if len(repeated) > 1 else ""
    raise SplitCheckError(f"{where}, {split} split: image_id {image_id!r} names {len(indices)} images ({places})"
                          f"{more}; predictions and the report are keyed on the id, so they would show one picture "
                          "for all of them: give each image its own image_id")


def _check_disjoint(present: Mapping[str, Any], ids: Mapping[str, list[str | None]], where: str) -> list[str]:
    """No ``image_id`` in the test split and another: a score on images the model trained (or was tuned) on is
    not held out, so that is an error. Train and val sharing images only blunts the choice of the best epoch
    (and of ``--box-threshold auto``): a warning, returned."""
    order = [s for s in _SPLIT_ORDER if s in ids] + [s for s in ids if s not in _SPLIT_ORDER]
    notes = []
    for a, b in itertools.combinations(order, 2):
        in_b = {image_id: i for i, image_id in enumerate(ids[b]) if image_id is not None}
        shared = [(i, in_b[v]) for i, v in enumerate(ids[a]) if v is not None and v in in_b]
        if not shared:
            continue
        i, j = shared[0]
        text = (f"{where}: {len(shared)} image(s) are in both the {a} and the {b} split (first: image_id "
                f"{ids[a][i]!r}, {a}: {_describe(present[a], i)}, {b}: {_describe(present[b], j)})")
        if "test" in (a, b):
            raise SplitCheckError(f"{text}; scores on the test split would not be held out: put each image, "
                                  "better each patient, in one split only")
        notes.append(f"{text}; choices made on the {b} split (the best epoch, --box-threshold auto) are then made "
                     "on images the model trains on: put each image in one split only")
    return notes
