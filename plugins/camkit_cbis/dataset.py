"""The ``cbis-ddsm`` dataset: CBIS-DDSM's mass-vs-negative task as camkit samples with lesion masks."""
from __future__ import annotations

from pathlib import Path

from camkit.data.cache import Settings
from camkit.data.lesion_dataset import LesionDataset, LesionRecord
from camkit.data.splits import check_split, group_labels, hold_out

from .annotations import load_records
from .preprocess import prepare_record

DEFAULT_SIZE = (2944, 1920)
# in every dataset's config: a stored model trained on another split rule's patients is not reused
SPLIT_RULE = "patients-stratified/1"


def select(records: list[LesionRecord], split: str, val_fraction: float, seed: int, valid=None) -> list[LesionRecord]:
    """The labelled records of camkit's ``split``: ``test`` = the official test CSVs; ``val`` = ``val_fraction`` of
    the official training patients (all four CSVs: one ``P_xxxxx`` is one patient), ``train`` the rest; the
    val draw is stratified by whether the patient has a mass image (:func:`camkit.data.splits.hold_out`)."""
    check_split(split, "cbis-ddsm")
    labels = group_labels((r.patient_id, r.label) for r in records if r.split == "train")
    held = hold_out(labels, val_fraction, seed, labels=labels)

    def split_of(r: LesionRecord) -> str:
        return "test" if r.split == "test" else ("val" if r.patient_id in held else "train")

    valid = valid or (lambda r: True)
    return [r for r in records if r.label is not None and split_of(r) == split and valid(r)]


class CbisDataset(LesionDataset):
    """CBIS-DDSM (TCIA) as samples: label 1 = a mass image, 0 = a negative (see ``negatives``).

    ``root``: the folder holding ``CBIS-DDSM/`` (or the NBIA ``manifest-*`` folder, or any folder above the
    subject folders) and the four description CSVs (there or a few levels below). ``split``: ``train`` / ``val``
    / ``test`` (``test`` is the official one; ``val`` is ``val_fraction`` of the official training patients,
    drawn with ``seed``). ``negatives``: ``"calc-only"`` the calcification images of views without a mass, or
    ``"none"``. ``exclude_shapes``: mass shapes not counted as masses (default: none, as the dataset defines it).
    ``cache``: the folder ``camkit prepare cbis-ddsm`` wrote (``True``: the default one); ``None`` decodes on the
    fly. ``skip_bad``: leave out bad rows and files, listed in ``self.skipped``. ``crop`` / ``flip`` / ``voi``:
    the preprocessing steps (the flip is decided from the pixels).

    Example::

        ds = camkit.create_dataset("cbis-ddsm", root="/data/cbis", split="test", size=(2944, 1920), cache=True)
        s = ds[0]   # image, label, boxes (one per mask component), masks (N, H, W), transform, density
    """

    name = "cbis-ddsm"

    def __init__(self, root: str | Path, split: str = "train", size: tuple[int, int] = DEFAULT_SIZE,
                 negatives: str = "calc-only", val_fraction: float = 0.1, seed: int = 0,
                 exclude_shapes: tuple[str, ...] | list[str] = (), cache: str | Path | bool | None = None,
                 skip_bad: bool = False, crop: bool = True, flip: bool = True, voi: bool = True):
        settings = Settings(size=tuple(size), crop=crop, flip=flip, voi=voi)
        options = {"negatives": negatives, "val_fraction": val_fraction, "seed": seed,
                   "exclude_shapes": sorted(exclude_shapes), "split_rule": SPLIT_RULE}
        super().__init__(root, check_split(split, "cbis-ddsm"), settings, prepare_record, cache, skip_bad, options)
        records = load_records(self.root, negatives=negatives, exclude_shapes=tuple(exclude_shapes),
                               skip_bad=skip_bad, skipped=self.skipped)
        self._bind(select(records, self.split, val_fraction, seed, self._valid()))

    def prepare_command(self) -> str:
        s, o = self.settings, self._options
        flags = "".join(f" --no-{k}" for k in ("crop", "flip", "voi") if not getattr(s, k))
        flags += f" --negatives {o['negatives']}" if o["negatives"] != "calc-only" else ""
        flags += "".join(f" --exclude-shape {x}" for x in o["exclude_shapes"])
        out = f" --out {self.cache_dir.parent}" if self.cache_dir is not None else ""
        return f"camkit prepare cbis-ddsm {self.root} --size {s.size[0]} {s.size[1]}{flags}{out}"


def records_for_prepare(root: str | Path, *, negatives: str = "calc-only", exclude_shapes: tuple[str, ...] = (),
                        skip_bad: bool = False, skipped: list[tuple[str, str]] | None = None):
    """A ``records_for(bad_ids)`` for :func:`camkit.data.cache.prepare`: every labelled image (all three splits
    share the cache, whatever the val carve-out)."""
    records = [r for r in load_records(root, negatives=negatives, exclude_shapes=exclude_shapes, skip_bad=skip_bad,
                                       skipped=skipped) if r.label is not None]
    return lambda bad: [r for r in records if r.image_id not in bad]
