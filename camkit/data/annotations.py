"""What a dataset's samples carry besides their image-level labels: lesion boxes, lesion masks, or neither.

Most screening sets (RSNA Screening Mammography, CMMD, a hospital's PACS export) label whole images only. Such a
dataset declares it with a class attribute, and ``camkit bench`` then decides before training what it can
score: the classification metrics (accuracy, AUC, TPR, TNR) and the map metrics that need no boxes (the
faithfulness family), and says in one line what it does not score and why::

    class ScreeningSet:
        annotations = ()                 # image-level labels only; samples carry empty (0, 4) boxes
        ...

A dataset without the attribute gives boxes (camkit's datasets before it existed all did). ``"masks"`` says
its samples also carry lesion masks (PxAP); it is information for readers, camkit scores PxAP wherever samples
carry masks.
"""
from __future__ import annotations

from typing import Any

from camkit.errors import DataError

#: the annotations a dataset may declare
ANNOTATIONS: tuple[str, ...] = ("boxes", "masks")
#: what a dataset that declares nothing gives
DEFAULT_ANNOTATIONS: frozenset[str] = frozenset({"boxes"})


def annotations_of(dataset: Any, where: str = "the dataset") -> frozenset[str]:
    """The annotations ``dataset`` declares (its ``annotations`` attribute), or :data:`DEFAULT_ANNOTATIONS`;
    a declaration camkit cannot read is a :class:`DataError` naming ``where``."""
    declared = getattr(dataset, "annotations", None)
    if declared is None:
        return DEFAULT_ANNOTATIONS
    if isinstance(declared, str) or not hasattr(declared, "__iter__"):
        raise DataError(f"{where} declares annotations = {declared!r}: give a tuple of names from "
                        f"{', '.join(ANNOTATIONS)} (an empty tuple: image-level labels only)")
    names = frozenset(str(v) for v in declared)
    unknown = sorted(names - set(ANNOTATIONS))
    if unknown:
        raise DataError(f"{where} declares annotations {sorted(names)}: {', '.join(map(repr, unknown))} is not one of "
                        f"{', '.join(ANNOTATIONS)}")
    if "masks" in names and "boxes" not in names:
        raise DataError(f"{where} declares masks without boxes: camkit's masks are each box's lesion pixels "
                        "(camkit.protocols.Sample); declare ('boxes', 'masks')")
    return names


def has_boxes(dataset: Any, where: str = "the dataset") -> bool:
    """Whether ``dataset``'s samples carry lesion boxes (it declares nothing, or declares ``"boxes"``)."""
    return "boxes" in annotations_of(dataset, where)

