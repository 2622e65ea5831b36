"""Pseudo-boxes: the teacher's CAM boxes on the training images, the detector's training targets.

The teacher (a model trained on image labels, with its train-cam) maps every mass image of the training split
with one test-cam (:func:`camkit.inference.localize`, the bench's own step); its boxes, best first, become that
image's targets. Normal images are kept with no box (they teach the detector what is not a mass). Two of the
noisy-label remedies live here, as settings:

* ``max_boxes`` > 1: several boxes per image (the map's peaks, with ``--boxes peaks``), not only the best;
* ``min_score``: a mass image whose best box scores below it is left out of training (an uncertain image
  teaches the detector nothing reliable, and its one box may be the wrong one).

The third, self-training, is :func:`relabel`: a trained detector's own boxes on the training masses become the
next round's targets.

Boxes come out of :func:`localize` in map pixels; they are stored in the model frame (the detector's input).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from camkit.errors import OptionError


@dataclass(frozen=True)
class PseudoSettings:
    """How a teacher's boxes become targets: which ``test_cam`` draws them, how many boxes a mass image keeps
    (``max_boxes``, best first) and the teacher score below which a mass image is left out (``min_score``)."""

    test_cam: str
    max_boxes: int = 1
    min_score: float = 0.0

    def check(self) -> PseudoSettings:
        if isinstance(self.max_boxes, bool) or not isinstance(self.max_boxes, int) or self.max_boxes < 1:
            raise OptionError(f"--max-boxes must be a whole number >= 1, got {self.max_boxes!r}")
        if not 0.0 <= float(self.min_score) < 1.0:
            raise OptionError(f"--min-score must be in [0, 1) (the teacher's box score), got {self.min_score!r}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def to_model_frame(boxes: Any, map_size: tuple[int, int], model_size: tuple[int, int]) -> np.ndarray:
    """Boxes (N, 4) x1 y1 x2 y2 in map pixels -> the model frame (the maps cover the whole input)."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
    b[:, [0, 2]] *= model_size[1] / map_size[1]
    b[:, [1, 3]] *= model_size[0] / map_size[0]
    return b


def select(found: list[tuple[Any, Any]], labels: list[int], settings: PseudoSettings, map_size: tuple[int, int],
           model_size: tuple[int, int]) -> list[dict[str, Any] | None]:
    """Per image of a batch, its targets: ``{"boxes": (N, 4) model frame, "scores": (N,)}`` (empty for a normal
    image), or None for a mass image left out (no box, or its best box scores below ``min_score``).
    ``found``: :func:`camkit.inference.localize`'s ``(boxes in map pixels, scores)`` per image, best first."""
    out: list[dict[str, Any] | None] = []
    for (boxes, scores), label in zip(found, labels):
        boxes, scores = np.asarray(boxes, float).reshape(-1, 4), np.asarray(scores, float).reshape(-1)
        if int(label) != 1:
            out.append({"boxes": np.zeros((0, 4)), "scores": np.zeros(0)})
            continue
        if not len(boxes) or scores[0] < settings.min_score:
            out.append(None)
            continue
        keep = slice(0, settings.max_boxes)
        out.append({"boxes": to_model_frame(boxes[keep], map_size, model_size), "scores": scores[keep]})
    return out


def pseudo_label(teacher: Any, dataset: Any, options: Any, settings: PseudoSettings, batch_size: int = 16,
                 device: Any = None, progress: Any = None) -> dict[str, Any]:
    """The teacher's targets for every image of ``dataset`` (its training split), and their quality where the
    dataset has true boxes: ``{"targets": {image_id: {boxes, scores} or None}, "quality": {...}}``.
    ``options``: :class:`camkit.inference.LocalizeOptions` (its thresholds, box mode and score); only
    ``settings.test_cam`` is mapped. ``progress(done, total)``: called after each batch."""
    import torch

    from camkit.data.sample import collate
    from camkit.inference import localize

    options = replace(options, cams=(settings.test_cam,))
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
    targets: dict[str, Any] = {}
    truth: dict[str, np.ndarray] = {}
    for k, batch in enumerate(loader):
        if batch is None:
            continue
        found = localize(teacher, batch["image"], options, device)
        if settings.test_cam not in found.boxes:
            raise OptionError(f"--test-cam {settings.test_cam!r} gives the teacher no map: "
                              f"{found.not_applicable.get(settings.test_cam, 'not applicable')}")
        model_size = tuple(int(v) for v in batch["image"].shape[-2:])
        chosen = select(found.boxes[settings.test_cam], batch["label"].tolist(), settings, found.map_size,
                        model_size)
        for image_id, target, boxes in zip(batch["image_id"], chosen, batch["boxes"]):
            targets[image_id] = target
            truth[image_id] = np.asarray(boxes, float).reshape(-1, 4)
        if progress is not None:
            progress(k + 1, len(loader))
    return {"targets": targets, "quality": pseudo_quality(targets, truth)}


def relabel(detector: Any, dataset: Any, previous: dict[str, Any], settings: PseudoSettings, batch_size: int = 16,
            device: Any = None) -> dict[str, Any]:
    """A self-training round's targets: ``detector`` (a :class:`camkit.distill.adapter.DetectorModel`) finds
    boxes on every image of ``dataset`` (the training split); a mass image's best ``settings.max_boxes`` of them
    (model frame, best first) are its new targets. Its image label says it holds a mass, so its best box is kept
    whatever its score; where the detector finds none, the ``previous`` target stays (None stays None: an image
    the teacher left out is not brought back). Normal images stay empty. Returns ``{"targets", "quality"}`` as
    :func:`pseudo_label` does."""
    import torch

    from camkit.data.sample import collate

    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
    keep_all = replace(settings, min_score=0.0)
    targets: dict[str, Any] = {}
    truth: dict[str, np.ndarray] = {}
    was_training = detector.training
    detector.eval()
    try:
        with torch.no_grad():
            for batch in loader:
                if batch is None:
                    continue
                images = batch["image"] if device is None else device.prepare_images(batch["image"])
                found = [(b.detach().float().cpu().numpy(), s.detach().float().cpu().numpy())
                         for b, s in detector(images)["detections"]]
                size = tuple(int(v) for v in batch["image"].shape[-2:])
                chosen = select(found, batch["label"].tolist(), keep_all, size, size)
                for image_id, target, boxes in zip(batch["image_id"], chosen, batch["boxes"]):
                    old = previous.get(image_id)
                    targets[image_id] = None if old is None else (old if target is None else target)
                    truth[image_id] = np.asarray(boxes, float).reshape(-1, 4)
    finally:
        detector.train(was_training)
    return {"targets": targets, "quality": pseudo_quality(targets, truth)}


def pseudo_quality(targets: dict[str, Any], truth: dict[str, np.ndarray], iou: float = 0.3) -> dict[str, Any]:
    """How good the pseudo-boxes are where the true boxes are known (both in the model frame): **CorLoc** (the
    share of mass images whose best pseudo-box overlaps a true box at IoU >= 0.5, the WSOD literature's
    measure), and the pseudo-boxes' **precision** / the lesions' **recall** at IoU > ``iou`` (the bench's rule).
    Images left out count as missed in CorLoc and recall. None values when no image has a true box."""
    from camkit.metrics.detection import iou_matrix

    masses = [i for i, t in truth.items() if len(t)]
    if not masses:
        return {"corloc": None, "precision": None, "recall": None, "n_images": 0, "left_out": 0}
    hits_best = found = lesions = boxes = matched = 0
    for image_id in masses:
        gt, target = truth[image_id], targets.get(image_id)
        lesions += len(gt)
        pb = np.zeros((0, 4)) if target is None else np.asarray(target["boxes"], float).reshape(-1, 4)
        if not len(pb):
            continue
        m = iou_matrix(pb, gt)
        hits_best += int(m[0].max() >= 0.5)
        found += int((m > iou).any(axis=0).sum())
        boxes += len(pb)
        matched += int((m > iou).any(axis=1).sum())
    return {"corloc": hits_best / len(masses), "precision": matched / boxes if boxes else None,
            "recall": found / lesions, "n_images": len(masses), "iou": iou,
            "left_out": sum(1 for t in targets.values() if t is None)}


def targets_digest(targets: dict[str, Any]) -> str:
    """A short hash of the targets (boxes rounded to 0.01 px): it enters the detector's training fingerprint,
    so other pseudo-boxes never reuse a stored detector."""
    plain = {k: None if v is None else np.round(np.asarray(v["boxes"], float), 2).tolist()
             for k, v in sorted(targets.items())}
    return hashlib.sha256(json.dumps(plain, sort_keys=True).encode()).hexdigest()[:16]


class PseudoBoxDataset:
    """``base`` (a training split) with each kept image's boxes replaced by its pseudo-boxes (model frame);
    images left out (``None`` targets) are not in it. ``source``: what made the targets (the teacher's
    fingerprint, the settings), for ``config``."""

    annotations = ("boxes",)

    def __init__(self, base: Any, targets: dict[str, Any], source: dict[str, Any]) -> None:
        self.base = base
        ids = _image_ids(base)
        self.indices = [i for i, image_id in enumerate(ids) if targets.get(image_id) is not None]
        self.targets = targets
        self._ids = [ids[i] for i in self.indices]
        self._labels = [int(base.labels()[i]) for i in self.indices]
        self._config = {**dict(base.config), "pseudo_boxes": {**source, "digest": targets_digest(targets)}}

    @property
    def config(self) -> dict[str, Any]:
        return dict(self._config)

    def __len__(self) -> int:
        return len(self.indices)

    def labels(self) -> list[int]:
        return list(self._labels)

    def image_ids(self) -> list[str]:
        return list(self._ids)

    def __getitem__(self, index: int) -> dict[str, Any]:
        import torch

        sample = dict(self.base[self.indices[index]])
        target = self.targets[sample["image_id"]]
        sample["boxes"] = torch.as_tensor(np.asarray(target["boxes"], float).reshape(-1, 4), dtype=torch.float32)
        sample.pop("masks", None)  # the true lesions' masks do not belong to the pseudo-boxes
        return sample


def _image_ids(dataset: Any) -> list[str]:
    method = getattr(dataset, "image_ids", None)
    if callable(method):
        return [str(v) for v in method()]
    return [str(dataset[i]["image_id"]) for i in range(len(dataset))]
