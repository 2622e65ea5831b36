"""The data side of the contract: samples and their box transform, the one imaging pipeline, DICOM, augmentation.

Dataset plugins build samples with :class:`BoxTransform` and :func:`camkit.data.imaging.preprocess`; the training
loop batches them with :func:`collate` and augments them with :mod:`camkit.data.augment`.
"""
from camkit.data.sample import BoxTransform, clip_boxes, collate

__all__ = ["BoxTransform", "clip_boxes", "collate"]
