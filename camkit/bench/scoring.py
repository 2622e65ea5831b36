"""Scoring a bench's stored predictions: FROC numbers and classification with study-level bootstrap CIs (paired
comparisons: camkit.bench.significance). Works from ``predictions/*.json`` alone, so any run can be re-scored
without inference."""
from __future__ import annotations

from typing import Any

import numpy as np


FROC_NAMES = ("tpr@0.5", "tpr@1", "tpr@2", "cpm", "best_tpr", "best_fppi")
#: the headline metric: what ``camkit bench`` and ``camkit leaderboard`` print unless ``--metric`` says
#: otherwise, and the metric ``camkit report``'s page opens on (one constant, so the two cannot drift apart)
DEFAULT_METRIC = "tpr@1"


def as_predictions(per_image: dict[str, Any]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """JSON predictions -> the arrays camkit.metrics.froc takes."""
    return {i: (np.asarray(p["boxes"], dtype=float).reshape(-1, 4), np.asarray(p["scores"], dtype=float))
            for i, p in per_image.items()}


def ground_truth(images: list[dict[str, Any]]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Per-image ground-truth boxes (original frame) and study ids from evaluation records."""
    gt = {r["image_id"]: np.asarray(r["gt"], dtype=float).reshape(-1, 4) for r in images}
    return gt, {r["image_id"]: r["study_id"] for r in images}


def score_detection(per_image: dict[str, Any], images: list[dict[str, Any]], cfg: Any) -> dict[str, Any]:
    """One pairing's FROC numbers with study-level bootstrap CIs, its curve, and the threshold-free
    localisation metrics (pointing, energy, maxboxacc) and the faithfulness ones where the predictions carry
    their per-image values."""
    from camkit.bench.faithful import score_faithfulness
    from camkit.bench.wsol import score_localization
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
    entry.update(score_localization(per_image, images, cfg))
    entry.update(score_faithfulness(per_image, images, cfg))
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
    """Detection numbers of every test-cam and the classification numbers of one trained model; a test-cam
    that does not apply to the model gets ``{"not_applicable": reason}`` instead of numbers."""
    det: dict[str, Any] = {cam: score_detection(per_image, records["images"], cfg)
                           for cam, per_image in records["predictions"].items()}
    det.update({cam: {"not_applicable": why} for cam, why in records.get("not_applicable", {}).items()})
    return det, score_classification(records["images"], cfg)
