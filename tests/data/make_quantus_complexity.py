"""Regenerate tests/data/quantus_complexity.json: Quantus 0.6's Sparseness and Complexity (their defaults:
``abs=True``, ``normalise=True`` by the maximum) on generated maps, the reference camkit's ``sparseness`` and
``complexity`` are held to (tests/test_complexity.py).

Quantus is not a test dependency (tests/data/make_quantus_pointing_game.py says why: it pulls opencv-python next
to the opencv-python-headless that grad-cam installs), so its figures are recorded here, once, outside the
project's environment; tests/test_complexity.py also compares live where Quantus is importable:

    python -m venv /tmp/qenv --system-site-packages
    /tmp/qenv/bin/pip install "quantus==0.6.*"
    /tmp/qenv/bin/python tests/data/make_quantus_complexity.py

Quantus 0.6 is called twice: once per map (``per_image``: what camkit computes) and once on the whole batch
(``batch``), where its ``normalise_by_max`` divides every map by the largest value of the batch, so a map with a
smaller maximum gets another Sparseness (its ``1e-7`` is added after that division), and a map of zeros gets NaN
for its Complexity (stored as null). Alone, Quantus refuses a map of zeros (an assertion), so that map is in the
batch call only. The inputs are stored with the figures (rounded to 6 decimals, as given to Quantus), so the test
does not depend on numpy's random streams.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

OUT = Path(__file__).with_name("quantus_complexity.json")
H, W = 12, 10


def _maps(rng: np.random.Generator) -> tuple[list[str], np.ndarray]:
    """Families of maps: uniform noise, ReLU'd noise (many zeros), signed noise (the absolute value matters),
    smooth blobs like a CAM's, few levels (ties), one hot pixel, a map scaled down to 1e-3 of the others (the
    batch normalisation), a near-flat map and a map of zeros (last)."""
    yy, xx = np.mgrid[0:H, 0:W]
    kinds, maps = [], []
    for _ in range(4):
        kinds.append("uniform"), maps.append(rng.random((H, W)))
        kinds.append("relu"), maps.append(np.maximum(rng.normal(size=(H, W)), 0.0))
        kinds.append("signed"), maps.append(rng.normal(size=(H, W)))
        cy, cx, s = rng.uniform(0, H), rng.uniform(0, W), rng.uniform(1.0, 4.0)
        kinds.append("blob"), maps.append(np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s)))
        kinds.append("levels"), maps.append(rng.integers(0, 4, size=(H, W)) / 3.0)
    one = np.zeros((H, W))
    one[int(rng.integers(H)), int(rng.integers(W))] = 0.7
    kinds.append("one-hot"), maps.append(one)
    kinds.append("scaled"), maps.append(1e-3 * rng.random((H, W)))
    kinds.append("near-flat"), maps.append(0.5 + 1e-3 * rng.random((H, W)))
    kinds.append("zeros"), maps.append(np.zeros((H, W)))
    return kinds, np.round(np.stack(maps), 6)


def _call(metric: object, maps: np.ndarray) -> list[float | None]:
    n = len(maps)
    a = maps[:, None].astype(np.float64).copy()
    out = metric(model=None, x_batch=np.zeros_like(a, dtype=np.float32), y_batch=np.zeros(n, dtype=int),
                 a_batch=a, channel_first=True)
    return [None if v != v else float(v) for v in out]


def main() -> None:
    if not hasattr(np, "trapz"):  # Quantus 0.6's AUC helper needs np.trapz, gone from numpy 2.4
        np.trapz = np.trapezoid  # type: ignore[attr-defined]
    import quantus

    kinds, maps = _maps(np.random.default_rng(2031))
    found: dict[str, dict[str, list[float | None]]] = {}
    for name, cls in (("sparseness", quantus.Sparseness), ("complexity", quantus.Complexity)):
        metric = cls(disable_warnings=True, return_aggregate=False)
        alone = [_call(metric, maps[i:i + 1])[0] if kind != "zeros" else None for i, kind in enumerate(kinds)]
        found[name] = {"per_image": alone, "batch": _call(metric, maps)}
    OUT.write_text(json.dumps({
        "reference": f"quantus {quantus.__version__} Sparseness() and Complexity() (abs=True, normalise=True)",
        "generator": "tests/data/make_quantus_complexity.py",
        "kinds": kinds, "maps": maps.tolist(), **found}, separators=(",", ":")) + "\n")
    print(f"wrote {OUT}: {len(kinds)} maps")


if __name__ == "__main__":
    main()
