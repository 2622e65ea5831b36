"""The faithfulness metrics in a bench (``camkit bench --faithfulness ...``): per-image values while the maps
are in memory, bootstrap CIs when scoring (docs/metrics.md section 6).

They cost extra forwards (deletion/insertion 2 x (steps + 1) per image, average drop 2, ROAD 18 plus 18 sparse
solves), so the bench computes them only when asked, on the test images with a mass (the score is the model's
mass probability, ``model.predict``; on a normal image a falling probability is the right answer).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from camkit.bench import metric_table


def values() -> dict[str, str]:
    """Per-image value -> the leaderboard metric it averages into (the metric table's faithfulness entries)."""
    return {s.source: s.name for s in metric_table.metrics("faithfulness")}


def expand_families(names: Sequence[str]) -> list[str]:
    """``all`` -> every family (the metric table's ``--faithfulness`` options); others as given, in that order,
    each once."""
    from camkit.errors import OptionError

    families = metric_table.faithfulness_options()
    chosen = set(families) if "all" in names else set(names)
    unknown = sorted(chosen - set(families))
    if unknown:
        raise OptionError(f"--faithfulness {', '.join(unknown)}: choose from {', '.join(families)} or all")
    return [f for f in families if f in chosen]


def per_image_faithfulness(model: Any, images: Any, maps: Any, labels: Sequence[int], families: Sequence[str],
                           steps: int, batch_size: int, seed: int) -> list[dict[str, float] | None]:
    """Per image of a batch: ``{"deletion", "insertion", "drop", "increase", "road"}`` (those of ``families``),
    None for an image without a mass. ``images`` (B, C, H, W) and ``maps`` (B, h, w) on the model's device."""
    import torch

    from camkit.metrics import confidence_change, deletion_insertion, road

    out: list[dict[str, float] | None] = [None] * len(labels)
    keep = [i for i, y in enumerate(labels) if int(y) == 1]
    if not keep or not families:
        return out
    x, m = images[keep], maps[keep]

    def score(batch: Any) -> Any:
        with torch.no_grad():
            return model.predict(model(batch)).reshape(-1)

    values: dict[str, np.ndarray] = {}
    if "deletion-insertion" in families:
        r = deletion_insertion(score, x, m, steps=steps, baseline="min", batch_size=batch_size)
        values["deletion"], values["insertion"] = r.deletion_auc, r.insertion_auc
    if "confidence" in families:
        c = confidence_change(score, x, m, batch_size=batch_size)
        values["drop"], values["increase"] = c["drop"], (c["o"] > c["y"]).astype(np.float64)
    if "road" in families:
        values["road"] = road(score, x, m, seed=seed, batch_size=batch_size).combined
    for k, i in enumerate(keep):
        out[i] = {name: round(float(v[k]), 6) for name, v in values.items()}
    return out


def score_faithfulness(per_image: dict[str, Any], images: list[dict[str, Any]], cfg: Any) -> dict[str, Any]:
    """``{metric: {value, ci}}`` for the faithfulness values the predictions carry (``{}`` when none), with
    the study bootstrap over the images that have them."""
    boot = bootstrap_faithfulness(per_image, images, cfg.bootstrap, cfg.seed)
    return {m: {"value": b.estimate, "ci": [b.low, b.high]} for m, b in boot.items()}


def bootstrap_faithfulness(per_image: dict[str, Any], images: list[dict[str, Any]], n: int,
                           seed: int) -> dict[str, Any]:
    """Study bootstrap (camkit.metrics.bootstrap_means) of each stored faithfulness value, by leaderboard name."""
    from camkit.metrics import bootstrap_means

    rows = [(per_image[r["image_id"]]["faithfulness"], r["study_id"]) for r in images
            if (per_image.get(r["image_id"]) or {}).get("faithfulness")]
    if not rows:
        return {}
    by_value = values()
    names = [k for k in by_value if k in rows[0][0]]
    return bootstrap_means([g for _, g in rows], {by_value[k]: [v[k] for v, _ in rows] for k in names}, n=n,
                           seed=seed)


def faithfulness_bootstrap(spec: Any, data: Any) -> dict[str, Any]:
    """The metric table's ``faithfulness`` kind: ``{spec.name: BootstrapResult}`` of one faithfulness metric over
    ``data``'s stored per-image values (camkit.bench.metric_table.CellData)."""
    from camkit.errors import OptionError

    found = bootstrap_faithfulness(data.per_image, data.per_image_images(), data.n, data.seed)
    if spec.name not in found:
        raise OptionError(f"{data.where}: {spec.missing_message()}")
    return {spec.name: found[spec.name]}
