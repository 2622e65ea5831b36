"""The complexity metrics in a bench (docs/metrics.md section 7): each test image's sparseness and complexity
of every test-cam's map, computed while the bench holds the maps, stored with the image's predictions
(``predictions/<row>.json``: ``sparseness``, ``complexity``) and scored per pairing by the metric table's
``mean`` bootstrap (camkit.bench.scoring.mean_bootstrap).

They need no ground truth and no forward (a sort and a sum per map), so they are always computed, on every
test image: the map is the one the CAM engine returns, in the model input's grid, the map the boxes are cut
from and the localisation metrics read.
"""
from __future__ import annotations

from typing import Any

#: the per-image keys this module writes, which are the metric table's complexity entries' records
NAMES = ("sparseness", "complexity")


def per_image_complexity(maps: Any) -> list[dict[str, float]]:
    """Per image of a batch: ``{"sparseness", "complexity"}`` of its map (``maps`` (B, h, w), any device;
    camkit.metrics.sparseness and camkit.metrics.complexity with Quantus 0.6's constants), rounded to 1e-6 as
    the other stored per-image values are."""
    from camkit.metrics import complexity, sparseness

    if len(maps) == 0:
        return []
    gini, entropy = sparseness(maps), complexity(maps)
    return [{"sparseness": round(float(g), 6), "complexity": round(float(h), 6)} for g, h in zip(gini, entropy)]
