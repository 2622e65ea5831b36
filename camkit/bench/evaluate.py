"""The evaluation half of a bench: every test-cam's boxes from one CAM-engine pass per batch, then scoring."""
from __future__ import annotations

import time
from typing import Any

import numpy as np


def evaluate_pairings(model: Any, test_set: Any, cfg: Any, sink: Any = None) -> dict[str, Any]:
    """Run the test set once through the CAM engine; boxes of every test-cam in the original image frame.

    Under ``torchrun`` each rank evaluates a disjoint shard (no padding, no image twice) and rank 0 gathers
    the records; other ranks return None.
    """
    import torch

    from camkit.training import distributed
    from camkit.metrics.boxes import batch_to_original, maps_to_boxes
    from camkit.cams.engine import run_cams
    from camkit.data.sample import collate

    rank, world = _rank_world()
    indices = list(range(rank, len(test_set), world))
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(test_set, indices),
                                         batch_size=cfg.eval_batch_size, shuffle=False, collate_fn=collate)
    device = next(model.parameters()).device
    target = int(getattr(model, "target_class", 0))
    images: list[dict[str, Any]] = []
    preds: dict[str, dict[str, Any]] = {c: {} for c in cfg.test_cams}
    cam_seconds = 0.0
    if sink is not None:
        sink.start(len(loader))
    model.eval()
    for batch in loader:
        x = batch["image"].to(device)
        t0 = time.perf_counter()
        maps, output = run_cams(model, x, cfg.test_cams, model.cam_layers, target,
                                output=cfg.cam_output or model.cam_output,
                                fuse=cfg.cam_fuse, return_output=True)
        with torch.no_grad():
            probs = model.predict(output).float().cpu().numpy()
        cam_seconds += time.perf_counter() - t0
        map_size = tuple(next(iter(maps.values())).shape[-2:])
        for cam in cfg.test_cams:
            found = maps_to_boxes(maps[cam], cfg.box_threshold, probs, cfg.box_score)
            for image_id, (boxes, scores) in zip(batch["image_id"], batch_to_original(found, batch["transform"],
                                                                                         map_size)):
                preds[cam][image_id] = {"boxes": np.round(boxes, 2).tolist(), "scores": scores.tolist()}
        for i, image_id in enumerate(batch["image_id"]):
            gt = batch["transform"][i].to_original(batch["boxes"][i]) if len(batch["boxes"][i]) else np.zeros((0, 4))
            images.append({"image_id": image_id, "study_id": batch["study_id"][i],
                           "label": int(batch["label"][i]), "prob": float(probs[i]),
                           "gt": np.round(gt, 2).tolist()})
        if sink is not None:
            sink.step()
    records = {"images": images, "predictions": preds, "cam_seconds": cam_seconds}
    if world > 1:
        gathered = distributed.gather_to_main(records)
        if gathered is None:
            return None
        records = _merge(gathered)
    if sink is not None:
        sink.end(f"{len(records['images'])} test images, all test-cams in {records['cam_seconds']:.1f} s")
    return records


def _rank_world() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    out = {"images": [], "predictions": {}, "cam_seconds": 0.0}
    for p in parts:
        out["images"].extend(p["images"])
        out["cam_seconds"] = max(out["cam_seconds"], p["cam_seconds"])
        for cam, per_image in p["predictions"].items():
            out["predictions"].setdefault(cam, {}).update(per_image)
    out["images"].sort(key=lambda r: r["image_id"])
    return out


FROC_NAMES = ("tpr@0.5", "tpr@1", "tpr@2", "cpm", "best_tpr", "best_fppi")


def as_predictions(per_image: dict[str, Any]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """JSON predictions -> the arrays camkit.metrics.froc takes."""
    return {i: (np.asarray(p["boxes"], dtype=float).reshape(-1, 4), np.asarray(p["scores"], dtype=float))
            for i, p in per_image.items()}


def ground_truth(images: list[dict[str, Any]]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Per-image ground-truth boxes (original frame) and study ids from evaluation records."""
    gt = {r["image_id"]: np.asarray(r["gt"], dtype=float).reshape(-1, 4) for r in images}
    return gt, {r["image_id"]: r["study_id"] for r in images}


def score_detection(per_image: dict[str, Any], images: list[dict[str, Any]], cfg: Any) -> dict[str, Any]:
    """One pairing's FROC numbers with study-level bootstrap CIs, and its curve."""
    from camkit.metrics import bootstrap_froc, froc

    gt, groups = ground_truth(images)
    preds = as_predictions(per_image)
    kw = {"iou_threshold": cfg.iou_threshold, "images": cfg.fppi_images}
    curve = froc(preds, gt, **kw)
    boot = bootstrap_froc(preds, gt, groups, metrics=FROC_NAMES, n=cfg.bootstrap, seed=cfg.seed, **kw)
    entry: dict[str, Any] = {m: {"value": boot[m].estimate, "ci": [boot[m].low, boot[m].high]}
                             for m in ("tpr@0.5", "tpr@1", "tpr@2", "cpm")}
    best = curve.best_operating_point
    entry["best"] = {"tpr": best.tpr, "fppi": best.fppi, "threshold": best.threshold,
                     "ci": [boot["best_tpr"].low, boot["best_tpr"].high],
                     "fppi_ci": [boot["best_fppi"].low, boot["best_fppi"].high]}
    entry["froc"] = {"fppi": curve.fppi.tolist(), "tpr": curve.tpr.tolist()}
    entry.update(n_lesions=curve.n_lesions, n_images=curve.n_images, n_predictions=curve.n_predictions,
                 images=curve.images, bootstrap={"n": cfg.bootstrap, "seed": cfg.seed, "by": "study",
                                                 "skipped": boot["tpr@1"].n_skipped})
    return entry


def score_classification(images: list[dict[str, Any]], cfg: Any, threshold: float = 0.5) -> dict[str, Any]:
    """Accuracy, AUC, TPR, TNR of the image-level probabilities with study-level bootstrap CIs."""
    from camkit.metrics import bootstrap_classification

    labels = [r["label"] for r in images]
    probs = [r["prob"] for r in images]
    boot = bootstrap_classification(labels, probs, [r["study_id"] for r in images], threshold=threshold,
                                    n=cfg.bootstrap, seed=cfg.seed)
    out: dict[str, Any] = {m: {"value": b.estimate, "ci": [b.low, b.high]} for m, b in boot.items()}
    out.update(threshold=threshold, rule="positive when p >= threshold", n=len(images),
               n_positive=int(sum(labels)), n_negative=len(labels) - int(sum(labels)))
    return out


def score_pairings(records: dict[str, Any], cfg: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Detection numbers of every test-cam and the classification numbers of one trained model."""
    det = {cam: score_detection(per_image, records["images"], cfg)
           for cam, per_image in records["predictions"].items()}
    return det, score_classification(records["images"], cfg)


def compare_pairings(predictions: dict[str, dict[str, Any]], images: list[dict[str, Any]], cfg: Any,
                     baseline: tuple[str, str], metric: str = "tpr@1") -> dict[str, dict[str, Any]]:
    """Paired bootstrap of every pairing against ``baseline`` (train-cam, test-cam) on the same resamples.

    ``predictions[train_cam][test_cam]`` holds per-image predictions; returns
    ``{train_cam: {test_cam: {difference, ci, p_value}}}``.
    """
    from camkit.metrics import bootstrap_froc, compare

    gt, groups = ground_truth(images)
    kw = {"iou_threshold": cfg.iou_threshold, "images": cfg.fppi_images, "n": cfg.bootstrap, "seed": cfg.seed}
    base = bootstrap_froc(as_predictions(predictions[baseline[0]][baseline[1]]), gt, groups, metrics=[metric],
                          **kw)[metric]
    out: dict[str, dict[str, Any]] = {}
    for train_cam, per_test in predictions.items():
        for test_cam, per_image in per_test.items():
            b = bootstrap_froc(as_predictions(per_image), gt, groups, metrics=[metric], **kw)[metric]
            c = compare(b, base)
            out.setdefault(train_cam, {})[test_cam] = {"metric": metric, "difference": c.difference,
                                                       "ci": [c.low, c.high], "p_value": c.p_value}
    return out
