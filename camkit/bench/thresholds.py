"""``--box-threshold auto``: each pairing's box threshold chosen on the validation split, never on test.

Choe et al. (CVPR 2020) showed that a localisation method's threshold is a hyper-parameter: picking it on the
test set flatters every method, and a fixed 0.5 favours some maps' value distributions over others'. Here every
test-cam of a trained model gets the threshold (of :data:`AUTO_THRESHOLDS`) at which its boxes on the
validation images reach the highest TPR@1FPPI (ties: higher CPM, then the threshold nearest 0.5), under the
bench's own scoring rules; the test set is then cut at that threshold. What was chosen, and the validation
curve it was chosen from, is recorded in results.json (``detection.<row>.<test-cam>.box_threshold``).
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

AUTO_THRESHOLDS = tuple(round(0.1 * k, 1) for k in range(1, 10))  # 0.1 .. 0.9
CRITERION = "tpr@1"


def choose_box_thresholds(model: Any, val_set: Any, options: Any, batch_size: int, cfg: Any,
                          device: Any = None) -> dict[str, dict[str, Any]]:
    """Per test-cam ``{"value", "chosen_on": "val", "criterion", "validation": {threshold: {tpr@1, cpm}},
    "n_images", "shards", "seconds"}``; one CAM-engine pass over the validation split (all test-cams together),
    every candidate threshold cut from the same maps. Under ``torchrun`` each rank maps a disjoint shard
    (``shards``: the images each rank mapped), rank 0 chooses, and every rank gets the same choice."""
    from camkit.training import distributed

    t0 = time.perf_counter()
    rank, world = distributed.rank(), distributed.world_size()
    mine = _validation_boxes(model, val_set, range(rank, len(val_set), world), options, batch_size, device)
    gathered = distributed.gather_to_main(mine)
    out: dict[str, dict[str, Any]] | None = None
    if gathered is not None:
        out = _choose(_merge(gathered), cfg, [len(g[1]) for g in gathered], time.perf_counter() - t0)
    return distributed.broadcast_from_main(out)


def _validation_boxes(model: Any, val_set: Any, indices: Any, options: Any, batch_size: int,
                      device: Any) -> tuple[dict[str, dict[float, dict[str, Any]]], dict[str, np.ndarray]]:
    """Every test-cam's boxes at every candidate threshold, and the ground truth, of the images ``indices``."""
    import torch

    from camkit.data.sample import collate
    from camkit.inference import localize
    from camkit.metrics.boxes import batch_to_original, maps_to_boxes_sweep

    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(val_set, list(indices)), batch_size=batch_size,
                                         shuffle=False, collate_fn=collate)
    preds: dict[str, dict[float, dict[str, Any]]] = {c: {t: {} for t in AUTO_THRESHOLDS} for c in options.cams}
    gt: dict[str, np.ndarray] = {}
    for batch in loader:
        if batch is None:
            continue
        found = localize(model, batch["image"], options, device)
        for cam, maps in found.maps.items():
            swept = maps_to_boxes_sweep(maps, AUTO_THRESHOLDS, found.probs, options.box_score)
            for t, per_image in swept.items():
                for image_id, (b, s) in zip(batch["image_id"], batch_to_original(per_image, batch["transform"],
                                                                                found.map_size)):
                    preds[cam][t][image_id] = (b, s)
        for i, image_id in enumerate(batch["image_id"]):
            boxes = batch["boxes"][i]
            gt[image_id] = batch["transform"][i].to_original(boxes) if len(boxes) else np.zeros((0, 4))
    return preds, gt


def _merge(shards: list[Any]) -> tuple[dict[str, dict[float, dict[str, Any]]], dict[str, np.ndarray]]:
    preds, gt = shards[0][0], dict(shards[0][1])
    for p, g in shards[1:]:
        for cam, per_t in p.items():
            for t, boxes in per_t.items():
                preds[cam][t].update(boxes)
        gt.update(g)
    return preds, gt


def _choose(found: Any, cfg: Any, shards: list[int], seconds: float) -> dict[str, dict[str, Any]]:
    from camkit.metrics import froc

    preds, gt = found
    out: dict[str, dict[str, Any]] = {}
    for cam, per_t in preds.items():
        if not any(per_t[t] for t in per_t):  # not applicable to this model: no map, nothing to choose
            continue
        curve = {}
        for t, p in per_t.items():
            r = froc(p, gt, iou_threshold=cfg.iou_threshold, images=cfg.fppi_images)
            curve[t] = {CRITERION: r.tpr_at(1.0), "cpm": r.cpm()}
        best = max(AUTO_THRESHOLDS, key=lambda t: (_finite(curve[t][CRITERION]), _finite(curve[t]["cpm"]),
                                                   -abs(t - 0.5)))
        out[cam] = {"value": best, "chosen_on": "val", "criterion": f"highest validation {CRITERION} (ties: cpm, "
                    "then nearest 0.5)", "validation": {f"{t:g}": v for t, v in curve.items()},
                    "n_images": len(gt), "shards": shards, "seconds": seconds}
    return out


def _finite(x: float) -> float:
    return x if x == x else -1.0
