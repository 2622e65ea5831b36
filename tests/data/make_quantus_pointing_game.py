"""Regenerate tests/data/quantus_pointing_game.json: Quantus 0.6's PointingGame on generated maps with tied
maxima, the reference that camkit's ``pointing_hits(..., ties="any")`` is held to (tests/test_metrics_localization.py).

Quantus is not a test dependency: it pulls opencv-python (which shadows the opencv-python-headless that camkit
installs), pandas and scikit-image, ~200 MB that CI would install for one assertion. So its figures are recorded
here, once, outside the project's environment:

    python -m venv /work/refs/qenv --system-site-packages
    /work/refs/qenv/bin/pip install "quantus==0.6.*"
    /work/refs/qenv/bin/python tests/data/make_quantus_pointing_game.py

The inputs are stored with the figures, so the test does not depend on numpy's random streams. Maps take few
levels (``level / 4``) with 1-4 pixels at the top level, so most images have tied maxima; some are flat (every
pixel a maximum) or have a third of their pixels at the maximum. Quantus takes
segmentation masks, not boxes: each box becomes the pixels whose centre (j + 0.5, i + 0.5) lies in
``[x1 - tol, x2 + tol) x [y1 - tol, y2 + tol)``, camkit's rule. Every box covers at least one pixel centre, since
Quantus scores an image with an empty mask as a hit (its NaN is cast to a boolean True).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

OUT = Path(__file__).with_name("quantus_pointing_game.json")
H, W, N, LEVELS = 9, 11, 48, 4


def _mask(boxes: list[list[float]], tol: float) -> np.ndarray:
    cy = np.arange(H)[:, None] + 0.5
    cx = np.arange(W)[None, :] + 0.5
    m = np.zeros((H, W), dtype=bool)
    for x1, y1, x2, y2 in boxes:
        m |= (x1 - tol <= cx) & (cx < x2 + tol) & (y1 - tol <= cy) & (cy < y2 + tol)
    return m


def _boxes(rng: np.random.Generator) -> list[list[float]]:
    out = []
    for _ in range(int(rng.integers(1, 4))):
        x1, y1 = float(rng.integers(0, W - 1)), float(rng.integers(0, H - 1))
        w, h = float(rng.integers(1, 5)), float(rng.integers(1, 5))
        shift = 0.25 * float(rng.integers(0, 2))            # fractional boxes too (still >= 1 pixel centre)
        out.append([x1 + shift, y1 + shift, min(W, x1 + w + shift), min(H, y1 + h + shift)])
    return out


def main() -> None:
    import quantus

    rng = np.random.default_rng(2027)
    levels = rng.integers(0, LEVELS, size=(N, H, W))
    for img in levels:                                          # 1-4 tied maxima anywhere in the map
        img.reshape(-1)[rng.choice(H * W, size=int(rng.integers(1, 5)), replace=False)] = LEVELS
    levels[::12] = 2                                            # flat maps: every pixel is a maximum
    levels[1::12] = rng.integers(0, 2, size=(H, W))             # many pixels at the maximum
    boxes = [_boxes(rng) for _ in range(N)]
    maps = levels / LEVELS
    cases = []
    for tol in (0.0, 1.0):
        masks = np.stack([_mask(b, tol) for b in boxes])
        assert masks.reshape(N, -1).any(axis=1).all(), "a box covers no pixel centre"
        metric = quantus.PointingGame(abs=False, normalise=False, disable_warnings=True, return_aggregate=False)
        hits = metric(model=None, x_batch=maps[:, None].astype(np.float32), y_batch=np.zeros(N, dtype=int),
                      a_batch=maps[:, None], s_batch=masks[:, None].astype(np.float32), channel_first=True)
        cases.append({"tolerance": tol, "hits": [float(h) for h in hits]})
    OUT.write_text(json.dumps({
        "reference": f"quantus {quantus.__version__} PointingGame(abs=False, normalise=False)",
        "generator": "tests/data/make_quantus_pointing_game.py",
        "levels": LEVELS, "maps": levels.tolist(), "boxes": boxes, "cases": cases}, separators=(",", ":")) + "\n")
    print(f"wrote {OUT}: hit rate {[round(float(np.mean(c['hits'])), 4) for c in cases]}")


if __name__ == "__main__":
    main()
