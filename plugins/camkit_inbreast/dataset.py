"""The ``inbreast`` dataset: INbreast's mass-vs-normal task as camkit samples with lesion masks."""
from __future__ import annotations

from pathlib import Path

from camkit.data.cache import Settings
from camkit.data.lesion_dataset import LesionDataset, LesionRecord
from camkit.data.splits import SplitError, check_split, group_labels, hold_out

from .annotations import load_records
from .preprocess import prepare_record

DEFAULT_SIZE = (2944, 1920)
# in every dataset's config: a stored model trained on another split rule's patients is not reused
SPLIT_RULE = "patients-stratified/1"


def split_patients(records: list[LesionRecord], test_fraction: float, val_fraction: float,
                   seed: int) -> dict[str, str]:
    """patient hash -> train / val / test: ``test_fraction`` of the patients, then ``val_fraction`` of all patients
    from the rest, drawn with ``seed`` (INbreast has no official split; both exams of a patient stay together).

    Each draw is stratified by whether the patient has a mass image (:func:`camkit.data.splits.hold_out`), so
    every split has patients with and without a mass; patients whose images are all left out of the task count
    as without, so that ``negatives`` does not move the split (``spiculated`` can: it makes masses)."""
    if test_fraction + val_fraction >= 1.0:
        raise SplitError(f"test_fraction + val_fraction must be < 1, got {test_fraction} + {val_fraction}")
    labels = group_labels((r.patient_id, r.label) for r in records)
    patients = sorted(labels)
    test = hold_out(patients, test_fraction, seed, salt=11, what="test_fraction", labels=labels)
    rest = [p for p in patients if p not in test]
    share = val_fraction / (1.0 - test_fraction) if rest else 0.0
    val = hold_out(rest, min(share, 0.99), seed, salt=13, what="val_fraction", labels=labels)
    return {p: "test" if p in test else "val" if p in val else "train" for p in patients}


class InbreastDataset(LesionDataset):
    """INbreast as samples: label 1 = an image with a Mass contour, 0 = a negative (see ``negatives``).

    ``root``: the unpacked ``INbreast Release 1.0`` folder or its parent. ``split``: ``train`` / ``val`` /
    ``test``, carved by patient (the hash in the DICOM names) with ``seed``: ``test_fraction`` and
    ``val_fraction`` of the patients. ``negatives``: ``"birads1"`` (the normals; default) or ``"any"`` (every
    image without a mass). ``spiculated``: count ``Spiculated Region`` contours as masses. ``cache``: the folder
    ``camkit prepare inbreast`` wrote (``True``: the default one); ``None`` decodes on the fly. ``skip_bad``:
    leave out bad rows and files, listed in ``self.skipped``.

    Example::

        ds = camkit.create_dataset("inbreast", root="/data/INbreast Release 1.0", split="test", size=(2944, 1920))
        s = ds[0]   # image, label, boxes (one per Mass contour), masks (N, H, W), transform, density
    """

    name = "inbreast"

    def __init__(self, root: str | Path, split: str = "train", size: tuple[int, int] = DEFAULT_SIZE,
                 negatives: str = "birads1", spiculated: bool = False, test_fraction: float = 0.2,
                 val_fraction: float = 0.1, seed: int = 0, cache: str | Path | bool | None = None,
                 skip_bad: bool = False, crop: bool = True, flip: bool = True, voi: bool = True):
        settings = Settings(size=tuple(size), crop=crop, flip=flip, voi=voi)
        options = {"negatives": negatives, "spiculated": spiculated, "test_fraction": test_fraction,
                   "val_fraction": val_fraction, "seed": seed, "split_rule": SPLIT_RULE}
        skipped: list[tuple[str, str]] = []
        release, records = load_records(root, negatives=negatives, spiculated=spiculated, skip_bad=skip_bad,
                                        skipped=skipped)
        super().__init__(release, check_split(split, "inbreast"), settings, prepare_record, cache, skip_bad, options)
        self.skipped.extend(skipped)
        of = split_patients(records, test_fraction, val_fraction, seed)
        valid = self._valid() or (lambda r: True)
        self._bind([r for r in records if r.label is not None and of[r.patient_id] == self.split and valid(r)])

    def prepare_command(self) -> str:
        s, o = self.settings, self._options
        flags = "".join(f" --no-{k}" for k in ("crop", "flip", "voi") if not getattr(s, k))
        flags += f" --negatives {o['negatives']}" if o["negatives"] != "birads1" else ""
        flags += " --spiculated" if o["spiculated"] else ""
        out = f" --out {self.cache_dir.parent}" if self.cache_dir is not None else ""
        return f"camkit prepare inbreast '{self.root}' --size {s.size[0]} {s.size[1]}{flags}{out}"


def records_for_prepare(root: str | Path, *, negatives: str = "birads1", spiculated: bool = False,
                        skip_bad: bool = False, skipped: list[tuple[str, str]] | None = None):
    """``(release folder, records_for(bad_ids))`` for :func:`camkit.data.cache.prepare`: every labelled image."""
    release, records = load_records(root, negatives=negatives, spiculated=spiculated, skip_bad=skip_bad,
                                    skipped=skipped)
    return release, (lambda bad: [r for r in records if r.label is not None and r.image_id not in bad])
