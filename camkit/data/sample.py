"""The sample contract every dataset plugin follows, and the transform from model frame to original image.

A sample is a dict::

    image       Tensor (1, H, W) float32, normalised as the model expects (model frame)
    label       int, 1 = mass, 0 = normal
    boxes       Tensor (N, 4) float32, x1 y1 x2 y2 in the model frame (continuous pixel coordinates)
    image_id    str
    study_id    str
    laterality  "L" / "R" / None
    view        "CC" / "MLO" / None
    transform   BoxTransform: model frame <-> original image pixel frame
    density     (optional) breast density as the dataset writes it, e.g. "DENSITY C"
    masks       (optional) Tensor (N, H, W) bool: each box's lesion pixels in the model frame

Coordinates are continuous: pixel (row i, column j) covers [j, j+1) x [i, i+1), so a box spanning a whole
W-pixel-wide image is x1=0, x2=W, and a horizontal flip maps x to W - x.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class BoxTransform:
    """Original image -> model input, as: optional horizontal flip, then crop, then resize.

    ``original_size`` (H0, W0) of the stored image; ``flipped``: mirrored left-right first (right views);
    ``crop`` (y0, x0, y1, x1) in the flipped original's pixels; ``model_size`` (H, W) the crop is resized to.
    """

    original_size: tuple[int, int]
    model_size: tuple[int, int]
    crop: tuple[float, float, float, float] | None = None
    flipped: bool = False

    @property
    def _crop(self) -> tuple[float, float, float, float]:
        return self.crop if self.crop is not None else (0.0, 0.0, float(self.original_size[0]),
                                                        float(self.original_size[1]))

    def scale(self) -> tuple[float, float]:
        """(sy, sx): model pixels per original pixel."""
        y0, x0, y1, x1 = self._crop
        return self.model_size[0] / (y1 - y0), self.model_size[1] / (x1 - x0)

    def to_model(self, boxes: Any) -> np.ndarray:
        """Boxes (N, 4) x1 y1 x2 y2 from the original image's pixels into the model frame."""
        b = _as_boxes(boxes).copy()
        if self.flipped:
            w0 = self.original_size[1]
            b[:, [0, 2]] = w0 - b[:, [2, 0]]
        y0, x0, _, _ = self._crop
        sy, sx = self.scale()
        b[:, [0, 2]] = (b[:, [0, 2]] - x0) * sx
        b[:, [1, 3]] = (b[:, [1, 3]] - y0) * sy
        return b

    def to_original(self, boxes: Any) -> np.ndarray:
        """Boxes (N, 4) x1 y1 x2 y2 from the model frame back into the original image's pixels."""
        b = _as_boxes(boxes).copy()
        y0, x0, _, _ = self._crop
        sy, sx = self.scale()
        b[:, [0, 2]] = b[:, [0, 2]] / sx + x0
        b[:, [1, 3]] = b[:, [1, 3]] / sy + y0
        if self.flipped:
            w0 = self.original_size[1]
            b[:, [0, 2]] = w0 - b[:, [2, 0]]
        return b

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BoxTransform:
        crop = d.get("crop")
        return cls(tuple(d["original_size"]), tuple(d["model_size"]), tuple(crop) if crop else None,
                   bool(d.get("flipped", False)))


def _as_boxes(boxes: Any) -> np.ndarray:
    if isinstance(boxes, torch.Tensor):
        boxes = boxes.detach().cpu().numpy()
    arr = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return arr


def clip_boxes(boxes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Clip x1 y1 x2 y2 boxes to an (H, W) image."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
    b[:, [0, 2]] = b[:, [0, 2]].clip(0, size[1])
    b[:, [1, 3]] = b[:, [1, 3]].clip(0, size[0])
    return b


def skip_unreadable(skipped: list[tuple[str, str]], where: str, exc: Exception) -> None:
    """Record (once) and report an image that failed to read although its header looked fine.

    A dataset created with ``skip_bad=True`` calls this from ``__getitem__`` and returns None for the sample;
    :func:`collate` and the training loop leave such samples out of their batch.
    """
    import warnings

    if any(w == where for w, _ in skipped):
        return
    skipped.append((where, str(exc)))
    warnings.warn(f"skipped {where}: {exc}", stacklevel=3)


#: the per-image entries :func:`collate` keeps as lists (one entry per kept sample)
LIST_KEYS = ("boxes", "image_id", "study_id", "laterality", "view", "transform", "density", "masks")


def collate(samples: list[dict[str, Any] | None], lists: Sequence[str] = LIST_KEYS) -> dict[str, Any] | None:
    """Stack images and labels; keep per-image boxes, ids and transforms (the ``lists`` keys) as lists.

    Samples that are None (images a ``skip_bad`` dataset could not read) are left out; a batch of nothing but
    those is None. The training loop asks for no lists (``lists=()``): it needs images and labels only, and a
    DataLoader worker would otherwise pickle every sample's masks and transform to the main process.
    """
    samples = [s for s in samples if s is not None]
    if not samples:
        return None
    _check_keys(samples, ("image", "label", *lists))
    out: dict[str, Any] = {
        "image": torch.stack([s["image"] for s in samples]),
        "label": torch.tensor([int(s["label"]) for s in samples], dtype=torch.long),
    }
    for key in lists:
        out[key] = [s.get(key) for s in samples]
    return out


def _check_keys(samples: list[dict[str, Any]], keys: Sequence[str]) -> None:
    """A sample without a key the batch needs is one line naming the image and the key (cheap: a set test per
    sample); before this, a missing study_id silently made every image one study."""
    from camkit.errors import DataError
    from camkit.protocols import OPTIONAL_SAMPLE_KEYS

    for sample in samples:
        missing = [k for k in keys if k not in sample and k not in OPTIONAL_SAMPLE_KEYS]
        if missing:
            raise DataError(f"sample {sample.get('image_id', '(no image_id)')!r} lacks {', '.join(map(repr, missing))}"
                            ": every sample carries the keys of camkit.protocols.Sample (docs/plugins.md, 'A dataset')")


def mass_targets(labels: Any, num_classes: int, mass_index: int) -> Any:
    """(B,) 0/1 image labels -> (B, num_classes) multi-label targets, 1 on the mass class where the label is 1;
    (B, C) targets pass through as float. What a model's ``training_loss`` compares its scores with.

    Example:
        >>> mass_targets(torch.tensor([0, 1]), 2, 1).tolist()
        [[0.0, 0.0], [0.0, 1.0]]
    """
    if labels.dim() == 2:
        return labels.float()
    out = torch.zeros(labels.shape[0], num_classes, device=labels.device)
    out[:, mass_index] = labels.float()
    return out

