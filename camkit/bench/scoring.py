"""Scoring a bench's stored predictions: FROC numbers and classification with study-level bootstrap CIs (paired
comparisons: camkit.bench.significance). Works from ``predictions/*.json`` alone, so any run can be re-scored
without inference."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from camkit.bench import metric_table
from camkit.bench.metric_table import OPERATING_FPPI, CellData


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
    their per-image values; then any other metric of the table (camkit.bench.metric_table) whose per-image
    records the predictions carry."""
    from camkit.bench.faithful import score_faithfulness
    from camkit.bench.wsol import score_localization
    from camkit.metrics import froc

    gt, _ = ground_truth(images)
    curve = froc(as_predictions(per_image), gt, iou_threshold=cfg.iou_threshold, images=cfg.fppi_images)
    # every FROC number of the table in one bootstrap (one matching, one resample plan)
    froc_specs = [s for s in metric_table.metrics("detection") if s.bootstrap == "froc"]
    boot = froc_bootstraps(froc_specs, CellData(per_image, images, cfg.bootstrap, cfg.seed, cfg))
    entry: dict[str, Any] = {s.name: {"value": boot[s.name].estimate, "ci": [boot[s.name].low, boot[s.name].high]}
                             for s in froc_specs if not s.operating_point}
    best = curve.best_operating_point
    for s in froc_specs:
        if s.operating_point:  # the curve's own operating point, with the bootstrap's intervals
            entry[s.name] = {s.value_key: best.tpr, "fppi": best.fppi, "threshold": best.threshold,
                             "ci": [boot[s.name].low, boot[s.name].high],
                             "fppi_ci": [boot[OPERATING_FPPI].low, boot[OPERATING_FPPI].high]}
    entry["froc"] = {"fppi": curve.fppi.tolist(), "tpr": curve.tpr.tolist()}
    entry.update(score_localization(per_image, images, cfg))
    entry.update(score_faithfulness(per_image, images, cfg))
    entry.update(_score_others(per_image, images, cfg, entry))
    entry.update(n_lesions=curve.n_lesions, n_images=curve.n_images, n_predictions=curve.n_predictions,
                 images=curve.images, bootstrap={"n": cfg.bootstrap, "seed": cfg.seed, "by": "study",
                                                 "skipped": boot[froc_specs[0].name].n_skipped})
    return entry


def _score_others(per_image: dict[str, Any], images: list[dict[str, Any]], cfg: Any,
                  done: dict[str, Any]) -> dict[str, Any]:
    """``{metric: {value, ci}}`` of the table's pairing metrics not scored above whose per-image records the
    predictions carry (a metric registered in camkit.bench.metric_table needs nothing more)."""
    out: dict[str, Any] = {}
    data = CellData(per_image, images, cfg.bootstrap, cfg.seed, cfg)
    for spec in metric_table.pairing_metrics():
        if spec.name not in done and spec.has_records(per_image):
            b = bootstrap_metric(spec, data)[spec.name]
            out[spec.name] = {"value": b.estimate, "ci": [b.low, b.high]}
    return out


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


def not_scored_message(dataset_name: str) -> str:
    """The bench's line on what the runs of a dataset without lesion boxes leave unscored, and why."""
    names = [s.name for s in metric_table.metrics() if s.needs & {"boxes", "masks"}]
    return (f"not scored: {', '.join(names)} (detection and box localisation); they need lesion boxes, and dataset "
            f"{dataset_name!r} gives image-level labels only (it declares annotations = ()). Scored: classification, "
            "and the faithfulness metrics when asked (--faithfulness)")


def score_without_boxes(per_image: dict[str, Any], images: list[dict[str, Any]], cfg: Any) -> dict[str, Any]:
    """One pairing's numbers on a test set without lesion boxes (camkit.data.annotations): the metrics of the
    table that need no boxes (the faithfulness family, when the predictions carry its values)."""
    from camkit.bench.faithful import score_faithfulness

    entry = score_faithfulness(per_image, images, cfg)
    data = CellData(per_image, images, cfg.bootstrap, cfg.seed, cfg)
    for spec in metric_table.pairing_metrics():
        if spec.name not in entry and not spec.needs & {"boxes", "masks"} and spec.has_records(per_image):
            b = bootstrap_metric(spec, data)[spec.name]
            entry[spec.name] = {"value": b.estimate, "ci": [b.low, b.high]}
    entry.update(n_images=len(images), bootstrap={"n": cfg.bootstrap, "seed": cfg.seed, "by": "study"})
    return entry


def score_pairings(records: dict[str, Any], cfg: Any, boxes: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """Detection numbers of every test-cam and the classification numbers of one trained model; a test-cam
    that does not apply to the model gets ``{"not_applicable": reason}`` instead of numbers. ``boxes`` False:
    the test set has no lesion boxes, and each test-cam gets :func:`score_without_boxes`."""
    score = score_detection if boxes else score_without_boxes
    det: dict[str, Any] = {cam: score(per_image, records["images"], cfg)
                           for cam, per_image in records["predictions"].items()}
    det.update({cam: {"not_applicable": why} for cam, why in records.get("not_applicable", {}).items()})
    return det, score_classification(records["images"], cfg)


def bootstrap_metric(spec: metric_table.MetricSpec, data: CellData) -> dict[str, Any]:
    """``{spec.name: BootstrapResult, ...}`` of one metric of the table over one pairing's stored records: its
    bootstrap kind (camkit.bench.metric_table.BOOTSTRAP_KINDS), or its own callable."""
    if callable(spec.bootstrap):
        return spec.bootstrap(spec, data)
    if spec.bootstrap == "froc":
        return froc_bootstrap(spec, data)
    if spec.bootstrap == "classification":
        return classification_bootstrap(spec, data)
    if spec.bootstrap == "mean":
        return mean_bootstrap(spec, data)
    if spec.bootstrap == "localization":
        from camkit.bench.wsol import localization_bootstrap

        return localization_bootstrap(spec, data)
    from camkit.bench.faithful import faithfulness_bootstrap

    return faithfulness_bootstrap(spec, data)


def froc_bootstrap(spec: metric_table.MetricSpec, data: CellData) -> dict[str, Any]:
    """One FROC metric of the stored boxes (:func:`froc_bootstraps`); an operating-point metric adds the FPPI
    where it is reached, key ``best_fppi``."""
    boot = froc_bootstraps([spec], data)
    return {spec.name: boot[spec.name], **({OPERATING_FPPI: boot[OPERATING_FPPI]} if spec.operating_point else {})}


def froc_bootstraps(specs: Sequence[metric_table.MetricSpec], data: CellData) -> dict[str, Any]:
    """FROC numbers of the stored boxes (camkit.metrics.bootstrap_froc, by each spec's ``source``: ``tpr@<f>``,
    ``cpm``, ``best_tpr``), all from one matching and one resample plan, keyed by spec name (and ``best_fppi``
    when one is an operating-point metric); a stratum keeps its images and counts its lesions only."""
    from camkit.metrics import bootstrap_froc

    images, per_image, part, cfg = list(data.images), dict(data.per_image), data.stratum, data.config
    if part is not None and part.images is not None:
        images = [r for r in images if r["image_id"] in part.images]
        per_image = {k: v for k, v in per_image.items() if k in part.images}
    gt, groups = ground_truth(images)
    names = list(dict.fromkeys(s.source for s in specs))
    if any(s.operating_point for s in specs):
        names.append(OPERATING_FPPI)
    boot = bootstrap_froc(as_predictions(per_image), gt, groups, metrics=names, n=data.n, seed=data.seed,
                          iou_threshold=cfg.iou_threshold, images=cfg.fppi_images,
                          lesions=part.lesions if part is not None else None)
    out = {s.name: boot[s.source] for s in specs}
    if OPERATING_FPPI in boot:
        out[OPERATING_FPPI] = boot[OPERATING_FPPI]
    return out


def classification_bootstrap(spec: metric_table.MetricSpec, data: CellData) -> dict[str, Any]:
    """Image-level classification (camkit.metrics.bootstrap_classification, by ``spec.source``) of the stored
    probabilities at ``data.threshold``."""
    from camkit.metrics import bootstrap_classification

    images = data.images
    boot = bootstrap_classification([i["label"] for i in images], [i["prob"] for i in images],
                                    [i["study_id"] for i in images], threshold=data.threshold,
                                    metrics=[spec.source], n=data.n, seed=data.seed)
    return {spec.name: boot[spec.source]}


def mean_bootstrap(spec: metric_table.MetricSpec, data: CellData) -> dict[str, Any]:
    """The metric table's ``mean`` kind: the study bootstrap (camkit.metrics.bootstrap_means) of the mean of the
    per-image number at ``spec.record``, over ``data``'s per-image images whose record holds one (the complexity
    family: camkit.bench.complexity)."""
    from camkit.errors import OptionError
    from camkit.metrics import bootstrap_means

    rows = [(spec.value_of(data.per_image.get(r["image_id"])), r["study_id"]) for r in data.per_image_images()]
    rows = [(float(v), g) for v, g in rows if v is not None]
    if not rows:
        raise OptionError(f"{data.where}: {spec.missing_message()}")
    return bootstrap_means([g for _, g in rows], {spec.name: [v for v, _ in rows]}, n=data.n, seed=data.seed)
