"""The threshold-free localisation metrics in a bench: per-image values while evaluating, bootstrap CIs when
scoring (docs/metrics.md section 5).

While the maps are in memory, :func:`per_image_values` turns each test-cam's maps and the ground-truth boxes
(scaled to the maps' grid) into small JSON-able values per image: the pointing-game hit (the share of tied
maxima inside a box, so a fraction where the maximum ties), the energy inside
the boxes and, per IoU threshold, the map thresholds at which the image is a MaxBoxAcc hit (a hex bit mask).
They are stored with the image's predictions, so any run can be re-scored without inference;
:func:`score_localization` reads them back.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

IOU_THRESHOLDS = (0.3, 0.5, 0.7)
N_THRESHOLDS = 100          # numpy.arange(0, 1, 0.01), MaxBoxAcc's default
N_BINS = 100                # PxAP's thresholds in the bench: 0, 0.01, .., 0.99 (Choe et al. bin theirs too)
NAMES = ("pointing", "energy", "maxboxacc")


def per_image_values(maps: Any, gt_model: Sequence[Any], model_size: tuple[int, int],
                     masks: Sequence[Any] | None = None, convention: str = "camkit") -> list[dict[str, Any]]:
    """Per image of a batch: ``{"pointing", "energy", "box_hits"}`` (None for an image without boxes), and
    ``"pxap_hist"`` where the dataset gives lesion masks.

    ``maps`` (B, h, w) on any device; ``gt_model`` the ground-truth boxes in the model frame
    (``model_size`` (H, W)), scaled here to the maps' grid; ``masks`` per image (k, H, W) bool in the model
    frame (or None), resized to the maps' grid (centre sampling) and joined: PxAP's pixel histograms.
    ``convention``: MaxBoxAcc's (:func:`camkit.metrics.box_hits`); ``"wsolevaluation"`` also truncates the
    scaled ground-truth boxes to integers, as that code's ``resize_bbox`` does, and takes its threshold array.
    """
    from camkit.metrics import box_hits, energy_inside, pointing_hits

    h, w = maps.shape[-2:]
    sy, sx = h / model_size[0], w / model_size[1]
    gt = [np.asarray(b, dtype=np.float64).reshape(-1, 4) * [sx, sy, sx, sy] for b in gt_model]
    out: list[dict[str, Any]] = [{"pointing": None, "energy": None, "box_hits": None} for _ in gt]
    keep = [i for i, g in enumerate(gt) if len(g)]   # only images with a lesion are scored: label only those
    if not keep:
        return out
    maps, gt = maps[keep], [gt[i] for i in keep]
    point, energy = pointing_hits(maps, gt), energy_inside(maps, gt)
    if convention == "wsolevaluation":
        # the CAM engine's maps are in [0, 1] up to float rounding, which the reference's check would refuse
        hits = box_hits(maps.clamp(0, 1) if hasattr(maps, "clamp") else np.clip(maps, 0, 1),
                        [np.trunc(g) for g in gt], thresholds(convention), IOU_THRESHOLDS, convention=convention)
    else:
        hits = box_hits(maps, gt, thresholds(convention), IOU_THRESHOLDS)
    hist = _histograms(maps, [masks[i] for i in keep]) if masks is not None else None
    for k, i in enumerate(keep):
        out[i] = {"pointing": float(point[k]), "energy": round(float(energy[k]), 6),
                  "box_hits": [_pack(hits[k, :, j]) for j in range(len(IOU_THRESHOLDS))]}
        if hist is not None and hist[k] is not None:
            out[i]["pxap_hist"] = hist[k]
    return out


def thresholds(convention: str = "camkit") -> np.ndarray:
    """The bench's MaxBoxAcc map thresholds: ``i / 100`` (camkit), or wsolevaluation's own
    ``numpy.arange(0, 1, 0.01)`` (a few of its values differ from ``i / 100`` in the last bit, which its
    truncated ``int(t * max)`` can tell apart)."""
    if convention == "wsolevaluation":
        return np.arange(0, 1, 1 / N_THRESHOLDS)
    return np.arange(N_THRESHOLDS) / N_THRESHOLDS


def _histograms(maps: Any, masks: Sequence[Any]) -> list[Any]:
    """Per image, [lesion counts, other counts] by map value bin (camkit.metrics.pixel_histograms), or None for
    an image without a mask."""
    import torch

    from camkit.data.imaging import resize_masks
    from camkit.metrics.localization import pixel_histograms

    h, w = maps.shape[-2:]
    out: list[Any] = [None] * len(masks)
    have = [k for k, m in enumerate(masks) if m is not None and len(m)]
    if not have:
        return out
    union = torch.stack([resize_masks(torch.as_tensor(masks[k]).bool().any(dim=0, keepdim=True), (h, w))[0]
                         for k in have]).to(maps.device)
    counts = pixel_histograms(maps[have], union, N_BINS)
    for j, k in enumerate(have):
        out[k] = counts[j].tolist()
    return out


def score_localization(per_image: dict[str, Any], images: list[dict[str, Any]], cfg: Any) -> dict[str, Any]:
    """Pointing game, energy pointing game and MaxBoxAcc (V2: mean over IoU 0.3/0.5/0.7) with study-level
    bootstrap CIs, over the test images with a lesion; ``{}`` for predictions stored without these values.
    ``maxboxacc.convention`` records ``cfg.maxboxacc_convention``, the rules the stored hits were computed by."""
    found = _values(per_image, images)
    if found is None:
        return {}
    boot = _bootstrap(found, cfg.bootstrap, cfg.seed)
    out: dict[str, Any] = {m: {"value": boot[m].estimate, "ci": [boot[m].low, boot[m].high]} for m in NAMES}
    px = _pxap_bootstrap(per_image, images, cfg.bootstrap, cfg.seed)
    if px is not None:
        out["pxap"] = {"value": px[0].estimate, "ci": [px[0].low, px[0].high], "n_images": px[1],
                       "thresholds": N_BINS}
    acc = found[3].mean(axis=0)
    convention = getattr(cfg, "maxboxacc_convention", "camkit")
    ts = thresholds(convention)
    out["maxboxacc"].update(
        convention=convention,
        per_iou={f"{d:g}": {"value": boot[f"maxboxacc@{d:g}"].estimate,
                            "ci": [boot[f"maxboxacc@{d:g}"].low, boot[f"maxboxacc@{d:g}"].high],
                            "best_threshold": float(ts[acc[:, j].argmax()])}
                 for j, d in enumerate(IOU_THRESHOLDS)},
        n_images=len(found[0]))
    return out


def bootstrap_values(per_image: dict[str, Any], images: list[dict[str, Any]], n: int,
                     seed: int) -> dict[str, Any]:
    """The stored per-image values' study-level bootstrap (camkit.metrics.bootstrap_localization)."""
    from camkit.errors import OptionError

    found = _values(per_image, images)
    if found is None:
        raise OptionError("these predictions carry no pointing/energy/maxboxacc values (a bench from before "
                          "camkit stored them): re-run the bench to compute them")
    out = _bootstrap(found, n, seed)
    px = _pxap_bootstrap(per_image, images, n, seed)
    if px is not None:
        out["pxap"] = px[0]
    return out


def localization_bootstrap(spec: Any, data: Any) -> dict[str, Any]:
    """The metric table's ``localization`` kind: ``{spec.name: BootstrapResult}`` of one threshold-free metric
    (``spec.source`` among pointing, energy, maxboxacc, pxap) over ``data``'s stored per-image values
    (camkit.bench.metric_table.CellData)."""
    from camkit.errors import OptionError

    found = bootstrap_values(data.per_image, data.per_image_images(), data.n, data.seed)
    if spec.source not in found:
        raise OptionError(f"{data.where}: {spec.missing_message()}")
    return {spec.name: found[spec.source]}


def _pxap_bootstrap(per_image: dict[str, Any], images: list[dict[str, Any]], n: int,
                    seed: int) -> tuple[Any, int] | None:
    """PxAP over the pixels of the test images with a mask (study bootstrap: a resample sums its images'
    histograms, each as often as its study is drawn) and how many images; None without histograms."""
    from camkit.metrics.bootstrap import percentile_result, resample_plan
    from camkit.metrics.localization import pxap_from_histograms

    rows = [(per_image[r["image_id"]]["pxap_hist"], r["study_id"]) for r in images
            if (per_image.get(r["image_id"]) or {}).get("pxap_hist") is not None]
    if not rows:
        return None
    hist = np.asarray([h for h, _ in rows], dtype=np.float64)          # (N, 2, bins)
    plan = resample_plan([g for _, g in rows], n, seed)
    w = plan.weights().astype(np.float64)                                # (n, N)
    pos, neg = np.tensordot(w, hist[:, 0], axes=(1, 0)), np.tensordot(w, hist[:, 1], axes=(1, 0))
    full = float(pxap_from_histograms(hist[:, 0].sum(axis=0), hist[:, 1].sum(axis=0)))
    return percentile_result("pxap", full, pxap_from_histograms(pos, neg), plan, 0.95), len(rows)


def _bootstrap(found: tuple[Any, ...], n: int, seed: int) -> dict[str, Any]:
    from camkit.metrics import bootstrap_localization

    groups, pointing, energy, hits = found
    return bootstrap_localization(groups, pointing, energy, hits, IOU_THRESHOLDS, n=n, seed=seed)


def _values(per_image: dict[str, Any], images: list[dict[str, Any]]) -> tuple[Any, ...] | None:
    rows = [(per_image[r["image_id"]], r["study_id"]) for r in images
            if r["image_id"] in per_image and per_image[r["image_id"]].get("box_hits") is not None]
    if not rows:
        return None
    pointing = np.array([p["pointing"] for p, _ in rows], dtype=np.float64)
    energy = np.array([p["energy"] for p, _ in rows], dtype=np.float64)
    hits = np.stack([np.stack([_unpack(x) for x in p["box_hits"]], axis=1) for p, _ in rows])   # (N, T, D)
    return [g for _, g in rows], pointing, energy, hits


def _pack(bits: np.ndarray) -> str:
    """(T,) 0/1 -> hex of the integer whose bit t is threshold t."""
    packed = np.packbits(np.asarray(bits, dtype=bool), bitorder="little")
    return format(int.from_bytes(packed.tobytes(), "little"), "x")


def _unpack(text: str) -> np.ndarray:
    raw = int(text, 16).to_bytes((N_THRESHOLDS + 7) // 8, "little")
    return np.unpackbits(np.frombuffer(raw, dtype=np.uint8), bitorder="little")[:N_THRESHOLDS].astype(np.float64)
