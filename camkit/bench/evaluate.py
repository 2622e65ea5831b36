"""The evaluation half of a bench: every test-cam's boxes from one CAM-engine pass per batch.

Each batch goes through :func:`camkit.inference.localize` (the step ``camkit explain`` uses too); boxes are
stored in each original image's pixels, where scoring happens, with the per-image values of the
threshold-free localisation metrics (camkit.bench.wsol) and of the complexity metrics (camkit.bench.complexity),
computed while the maps are in memory.
Under ``torchrun`` each rank evaluates a disjoint shard and rank 0 gathers the records.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Evaluation:
    """How a test set is evaluated: ``options`` (:class:`camkit.inference.LocalizeOptions`), the batch size, the
    device (:class:`camkit.training.device.DeviceSettings`; None: the model's), ``faithfulness``
    ``(families, steps, seed)`` to also store each mass image's faithfulness values (camkit.bench.faithful), and
    the rules of the stored MaxBoxAcc hits (camkit.metrics.box_hits)."""

    options: Any
    batch_size: int
    device: Any = None
    faithfulness: Any = None
    maxboxacc_convention: str = "camkit"


def evaluate_pairings(model: Any, test_set: Any, how: Evaluation, sink: Any = None) -> dict[str, Any] | None:
    """Run the test set once through the CAM engine; boxes of every test-cam in the original image frame.

    Returns ``{"images": [...], "predictions": {cam: {image_id: {boxes, scores}}}, "not_applicable":
    {cam: reason}, "cam_seconds"}`` on rank 0, None on other ranks; a test-cam that does not apply to the model
    is in ``not_applicable`` instead of ``predictions``. ``sink``: the evaluation's progress (start/step/end).
    """
    import torch

    from camkit.data.sample import collate
    from camkit.training import distributed

    rank, world = distributed.rank(), distributed.world_size()
    indices = list(range(rank, len(test_set), world))  # no padding, no image twice
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(test_set, indices), batch_size=how.batch_size,
                                         shuffle=False, collate_fn=collate)
    records: dict[str, Any] = {"images": [], "predictions": {c: {} for c in how.options.cams},
                               "not_applicable": {}, "cam_seconds": 0.0}
    if sink is not None:
        sink.start(len(loader))
    for batch in loader:
        if batch is not None:  # None: every image of the batch failed to read (skip_bad; the dataset says so)
            _evaluate_batch(model, batch, how, records, getattr(sink, "forwards", None))
        if sink is not None:
            sink.step()
    records["predictions"] = {c: p for c, p in records["predictions"].items() if c not in records["not_applicable"]}
    if world > 1:
        gathered = distributed.gather_to_main(records)
        if gathered is None:
            return None
        records = _merge(gathered)
    if sink is not None:
        sink.end(f"{len(records['images'])} test images, all test-cams in {records['cam_seconds']:.1f} s")
    return records


def _evaluate_batch(model: Any, batch: dict[str, Any], how: Evaluation, records: dict[str, Any],
                    forwards: Any) -> None:
    """One batch's maps (one engine pass), boxes and per-image values, added to ``records``."""
    from camkit.bench.complexity import per_image_complexity
    from camkit.bench.wsol import per_image_values
    from camkit.inference import localize

    t0 = time.perf_counter()
    found = localize(model, batch["image"], how.options, how.device, forwards)
    records["cam_seconds"] += time.perf_counter() - t0
    records["not_applicable"].update(found.not_applicable)
    model_size = tuple(batch["image"].shape[-2:])
    for cam, per_image in found.original(batch["transform"]).items():
        wsol = per_image_values(found.maps[cam], batch["boxes"], model_size, batch.get("masks"),
                                how.maxboxacc_convention)
        faith = _faithfulness(model, batch, found.maps[cam], how.faithfulness, how.device)
        simple = per_image_complexity(found.maps[cam])
        for image_id, (boxes, scores), extra, f, c in zip(batch["image_id"], per_image, wsol, faith, simple):
            records["predictions"][cam][image_id] = {"boxes": np.round(boxes, 2).tolist(), "scores": scores.tolist(),
                                                     **extra, **c, **({"faithfulness": f} if how.faithfulness else {})}
    records["images"] += [image_record(batch, i, found.probs[i]) for i in range(len(batch["image_id"]))]


def image_record(batch: dict[str, Any], i: int, prob: float) -> dict[str, Any]:
    """Image ``i`` of a collated test batch as the scoring reads it: ids, label, the model's probability and the
    true boxes in the stored image's pixels (with the strata's view, laterality, density)."""
    gt = batch["transform"][i].to_original(batch["boxes"][i]) if len(batch["boxes"][i]) else np.zeros((0, 4))
    density = batch.get("density", [None] * len(batch["image_id"]))
    return {"image_id": batch["image_id"][i], "study_id": batch["study_id"][i], "label": int(batch["label"][i]),
            "prob": float(prob), "gt": np.round(gt, 2).tolist(), "view": batch["view"][i],
            "laterality": batch["laterality"][i], "density": density[i]}


def _faithfulness(model: Any, batch: dict[str, Any], maps: Any, faithfulness: Any, device: Any) -> list[Any]:
    if not faithfulness:
        return [None] * len(batch["image_id"])
    from camkit.bench.faithful import per_image_faithfulness

    families, steps, seed = faithfulness
    x = device.prepare_images(batch["image"]) if device is not None else batch["image"].to(maps.device)
    return per_image_faithfulness(model, x, maps, batch["label"].tolist(), families, steps, x.shape[0], seed)


def _merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"images": [], "predictions": {}, "not_applicable": {}, "cam_seconds": 0.0}
    for p in parts:
        out["images"].extend(p["images"])
        out["not_applicable"].update(p.get("not_applicable", {}))
        out["cam_seconds"] = max(out["cam_seconds"], p["cam_seconds"])
        for cam, per_image in p["predictions"].items():
            out["predictions"].setdefault(cam, {}).update(per_image)
    out["images"].sort(key=lambda r: r["image_id"])
    out["predictions"] = {c: v for c, v in out["predictions"].items() if c not in out["not_applicable"]}
    return out


def overlay_data(model: Any, test_set: Any, options: Any, device: Any = None, n: int = 8, n_negative: int = 4,
                 max_side: int = 512, batch_size: int = 16) -> dict[str, np.ndarray] | None:
    """What the paper's Fig. 4 shows for one trained model, as arrays (the figure and the report's gallery are
    drawn by camkit.ui).

    The first ``n`` test images with a mass and the first ``n_negative`` without: the model input, its label and
    ground truth and each test-cam's map and boxes, downsampled so the longer side is at most ``max_side`` (maps
    of 2944x1920 inputs would be large), computed ``batch_size`` images at a time. Returns None when the test set
    has no mass image.
    """
    labels = [int(v) for v in test_set.labels()]
    masses = [i for i, v in enumerate(labels) if v == 1][:n]
    chosen = sorted(masses + [i for i, v in enumerate(labels) if v == 0][:n_negative])
    parts = []
    for start in range(0, len(chosen), max(1, int(batch_size))):
        samples = [s for s in (test_set[i] for i in chosen[start:start + batch_size]) if s is not None]
        if samples:
            parts.append(_overlay_batch(model, samples, options, device, max_side))
    if not parts or not any((p["label"] == 1).any() for p in parts):
        return None
    out = {}
    offset = np.cumsum([0] + [len(p["image"]) for p in parts[:-1]])
    for key in parts[0]:
        if key == "cams":
            out[key] = parts[0][key]
        elif key == "gt" or key.startswith("boxes_"):
            shifted = [p[key] + np.array([o, 0, 0, 0, 0], dtype=np.float32) for p, o in zip(parts, offset)]
            out[key] = np.concatenate(shifted).astype(np.float32)
        else:
            out[key] = np.concatenate([p[key] for p in parts])
    return out


def _overlay_batch(model: Any, samples: list[dict[str, Any]], options: Any, device: Any,
                   max_side: int) -> dict[str, np.ndarray]:
    import torch
    import torch.nn.functional as F

    from camkit.data.sample import collate
    from camkit.inference import localize

    batch = collate(samples)
    found = localize(model, batch["image"], options, device)
    h, w = batch["image"].shape[-2:]
    scale = min(1.0, max_side / max(h, w))
    size = (max(1, round(h * scale)), max(1, round(w * scale)))

    def shrink(x: Any) -> np.ndarray:
        x = x.detach().float().cpu()
        if scale < 1.0:
            x = F.interpolate(x.reshape(-1, 1, h, w), size=size, mode="area").reshape(*x.shape[:-2], *size)
        return x.numpy().astype(np.float16)

    out = {"image": shrink(batch["image"][:, 0]), "prob": found.probs.astype(np.float32),
           "label": batch["label"].numpy().astype(np.int8),
           "image_id": np.asarray(batch["image_id"]), "cams": np.asarray(list(found.maps)),
           "gt": _stack_boxes([b.numpy() * scale if hasattr(b, "numpy") else np.asarray(b) * scale
                               for b in batch["boxes"]])}
    with torch.no_grad():
        for cam in found.maps:
            out[f"map_{cam}"] = shrink(found.maps[cam])
            out[f"boxes_{cam}"] = _stack_boxes([b * scale for b, _ in found.boxes[cam]])
    return out


def _stack_boxes(per_image: list[np.ndarray]) -> np.ndarray:
    """Per-image (N_i, 4) boxes as one (sum N_i, 5) array whose first column is the image index."""
    rows = [np.column_stack([np.full(len(b), i), np.asarray(b, dtype=np.float32).reshape(-1, 4)])
            for i, b in enumerate(per_image)]
    return np.concatenate(rows).astype(np.float32) if rows else np.zeros((0, 5), np.float32)
