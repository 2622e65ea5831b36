"""Regenerate tests/data/wsolevaluation_maxboxacc.json: clovaai/wsolevaluation's own MaxBoxAcc (v1 and V2) on
generated maps, the figures that ``camkit.metrics.max_box_acc(..., convention="wsolevaluation")`` is held to
(tests/test_metrics_localization.py).

wsolevaluation is not a package, so it is run from a checkout outside this repository (nothing of it is copied
here; this script imports its ``evaluation`` module from the path it is given):

    # a copy of github:clovaai/wsolevaluation, e.g. in /work/refs/wsolevaluation (evaluation.py, util.py,
    # config.py, data_loaders.py at the top level); recorded from commit 96f4b88
    python tests/data/make_wsolevaluation_maxboxacc.py /work/refs/wsolevaluation [--commit SHA]

The reference was written for numpy < 1.20 (``np.float``) and imports ``munch`` through its config module; the
script sets ``numpy.float = float`` and, when munch is not installed, a stand-in module before the import (the
evaluation code does not use munch). It needs cv2 (opencv-python-headless, installed with camkit's grad-cam).

Per family of inputs the JSON holds the maps (as integers ``k``, the map being ``k / DENOM`` in float64), the
ground-truth boxes (integers, as the reference's resized metadata boxes are), and for ``multi_contour_eval``
False (v1's box rule) and True (V2's):

- ``max_box_acc``: ``BoxEvaluator.compute()`` over the family's images (percent, per IoU 30/50/70);
- ``hits``: per image and IoU threshold, the thresholds at which the reference counts a hit (a hex bit mask,
  bit t = threshold t), read from ``num_correct`` of an evaluator that saw that image alone;
- ``best_iou``: per image, the reference's best IoU (``compute_bboxes_from_scoremaps`` then
  ``calculate_multiple_iou``) at every ``IOU_STRIDE``-th threshold.

Thresholds are the reference's: ``list(numpy.arange(0, 1, 0.01))`` (its ``cam_curve_interval`` 0.01).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np

OUT = Path(__file__).with_name("wsolevaluation_maxboxacc.json")
DENOM = 1000                   # maps are k / DENOM: exact in JSON, ~4 values per 1/255 quantisation step
INTERVAL = 0.01
IOU_LIST = [30, 50, 70]
IOU_STRIDE = 5                 # best IoUs recorded at every 5th threshold (the hits cover all of them)


def _import_reference(path: Path) -> types.ModuleType:
    np.float = float           # type: ignore[attr-defined]  # removed in numpy 1.24; the reference uses it
    try:
        import munch  # noqa: F401
    except ImportError:
        stand_in = types.ModuleType("munch")
        stand_in.Munch = dict  # type: ignore[attr-defined]
        sys.modules["munch"] = stand_in
    sys.path.insert(0, str(path))
    import evaluation          # the reference's module, from the checkout given on the command line

    return evaluation


def _smooth(rng: np.random.Generator, h: int, w: int, blobs: int) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    m = np.zeros((h, w))
    for _ in range(blobs):
        cy, cx = rng.uniform(-2, h + 1), rng.uniform(-2, w + 1)
        sy, sx = rng.uniform(1.5, h / 3), rng.uniform(1.5, w / 3)
        m += rng.uniform(0.3, 1) * np.exp(-0.5 * (((yy - cy) / sy) ** 2 + ((xx - cx) / sx) ** 2))
    return m


def _ring(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    cy, cx = rng.uniform(h / 3, 2 * h / 3), rng.uniform(w / 3, 2 * w / 3)
    r = np.hypot((yy - cy) / rng.uniform(0.7, 1.3), xx - cx)
    radius, width = rng.uniform(3, min(h, w) / 2.5), rng.uniform(0.8, 2.5)
    m = np.exp(-0.5 * ((r - radius) / width) ** 2)
    return m + rng.uniform(0, 0.25) * rng.random((h, w))      # a little noise: broken rings, small holes


def _normalise(m: np.ndarray) -> np.ndarray:
    """Min-max to [0, 1] (what the reference's inference does before it saves a score map), as k / DENOM."""
    m = m - m.min()
    m = m / m.max() if m.max() > 0 else m
    return np.round(m * DENOM).astype(np.int64)


def _boxes(rng: np.random.Generator, h: int, w: int, k: int, edge: bool = False) -> list[list[int]]:
    out = []
    for _ in range(k):
        x0, y0 = int(rng.integers(0, w - 2)), int(rng.integers(0, h - 2))
        x1, y1 = int(rng.integers(x0, w + 1)), int(rng.integers(y0, h + 1))
        if edge:               # boxes reaching the image's last row/column (and beyond its W-1, H-1)
            x1, y1 = (w, y1) if rng.random() < 0.5 else (x1, h)
        out.append([x0, y0, x1, y1])
    return out


def _around(rng: np.random.Generator, m: np.ndarray, level: float) -> list[int]:
    """The box (inclusive ends) of the pixels >= level x max, each side moved by -2..2 pixels (kept in the
    image): a ground truth that some thresholds of the map fit and others do not."""
    h, w = m.shape
    ys, xs = np.nonzero(m >= level * m.max())
    move = rng.integers(-2, 3, size=4)
    x0, y0 = int(np.clip(xs.min() + move[0], 0, w - 1)), int(np.clip(ys.min() + move[1], 0, h - 1))
    return [x0, y0, int(np.clip(xs.max() + move[2], x0, w)), int(np.clip(ys.max() + move[3], y0, h))]


def families(rng: np.random.Generator) -> dict[str, list[tuple[np.ndarray, list[list[int]]]]]:
    """name -> [(map as k, boxes)]: smooth blobs, noise, rings/holes, ties, borders, degenerate maps."""
    out: dict[str, list[tuple[np.ndarray, list[list[int]]]]] = {}
    sizes = [(20, 26), (15, 19), (24, 16), (13, 23)]
    out["smooth"] = []
    for h, w in sizes * 2:
        m = _smooth(rng, h, w, int(rng.integers(1, 4)))
        out["smooth"].append((_normalise(m), [_around(rng, m - m.min(), rng.uniform(0.2, 0.7))]
                              + _boxes(rng, h, w, int(rng.integers(0, 2)))))
    out["noise"] = []
    for h, w in sizes * 2:
        m = rng.random((h, w)) ** 3
        box = _boxes(rng, h, w, 1)[0]
        m[box[1]:box[3] + 1, box[0]:box[2] + 1] += 0.5          # a noisy region with a box around it
        out["noise"].append((_normalise(m), [box] + _boxes(rng, h, w, int(rng.integers(0, 2)))))
    out["rings"] = []
    for h, w in sizes:
        m = _ring(rng, h, w)
        out["rings"].append((_normalise(m), [_around(rng, m, 0.5)] + _boxes(rng, h, w, int(rng.integers(0, 2)))))
        # the same kind of ring with the ground truth in its hole: only a hole's border can fit it
        m = _ring(rng, h, w)
        inside = (m < 0.3 * m.max()) & (np.cumsum(m >= 0.5 * m.max(), axis=1) > 0) \
            & (np.cumsum((m >= 0.5 * m.max())[:, ::-1], axis=1)[:, ::-1] > 0)
        ys, xs = np.nonzero(inside)
        box = [int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())] if len(xs) else _boxes(rng, h, w, 1)[0]
        out["rings"].append((_normalise(m), [box]))
    out["ties"] = []
    for h, w in sizes * 2:
        # plateaus: equal squares (equal contour areas), so v1's "first of the largest" decides which one is
        # the box; the ground truth is one of them; a few pixels at a lower level
        size = int(rng.integers(2, 5))
        cells = [(y, x) for y in range(0, h - size, size + 2) for x in range(0, w - size, size + 2)]
        picks = rng.choice(len(cells), size=min(len(cells), int(rng.integers(2, 5))), replace=False)
        m = np.zeros((h, w))
        for c in picks:
            y, x = cells[c]
            m[y:y + size, x:x + size] = 1.0
        m[(rng.random((h, w)) < 0.05) & (m == 0)] = 0.25
        y, x = cells[picks[int(rng.integers(0, len(picks)))]]
        out["ties"].append((np.round(m * DENOM).astype(np.int64),
                            [[x, y, x + size - int(rng.integers(0, 2)), y + size - int(rng.integers(0, 2))]]))
    out["borders"] = []
    for h, w in sizes * 2:
        m = _smooth(rng, h, w, 1)
        corner = rng.integers(0, 4)
        yy, xx = np.mgrid[:h, :w]
        m += np.exp(-0.5 * (((yy - (0 if corner < 2 else h - 1)) / 3) ** 2
                            + ((xx - (0 if corner % 2 == 0 else w - 1)) / 4) ** 2))
        out["borders"].append((_normalise(m), [_around(rng, m - m.min(), rng.uniform(0.3, 0.8))]
                               + _boxes(rng, h, w, int(rng.integers(1, 3)), edge=True)))
    h, w = 12, 15
    deg = [np.zeros((h, w)), np.full((h, w), 1.0), np.full((h, w), 0.003), np.full((h, w), 0.5)]
    small = np.zeros((h, w))
    small[3:6, 4:9] = 0.8 / 255                              # below one quantisation step: no foreground
    deg.append(small)
    one = np.zeros((h, w))
    one[0, 0] = 1.0                                          # a single pixel at the origin, like the empty box
    deg.append(one)
    ring = np.zeros((h, w))
    ring[2:10, 3:12] = 1.0
    ring[4:8, 5:10] = 0.0                                    # a square ring: the hole's box is a candidate
    ring[5, 7] = 1.0                                         # with an island in the hole
    deg.append(ring)
    out["degenerate"] = [(np.round(m * DENOM).astype(np.int64), [[0, 0, 0, 0], [2, 2, 11, 9], [4, 3, 10, 8]])
                         for m in deg]
    return out


def _record(ev: types.ModuleType, maps: list[np.ndarray], boxes: list[list[list[int]]],
            multi: bool) -> dict[str, object]:
    thresholds = list(np.arange(0, 1, INTERVAL))

    def evaluator(gt: list[list[list[int]]]) -> object:
        # BoxEvaluator's __init__ reads dataset metadata; its accumulate/compute only use these attributes
        e = ev.BoxEvaluator.__new__(ev.BoxEvaluator)
        e.cam_threshold_list, e.iou_threshold_list, e.multi_contour_eval = thresholds, IOU_LIST, multi
        e.cnt = 0
        e.num_correct = {d: np.zeros(len(thresholds)) for d in IOU_LIST}
        e.gt_bboxes = {str(i): g for i, g in enumerate(gt)}
        return e

    whole = evaluator(boxes)
    hits, best = [], []
    for i, m in enumerate(maps):
        whole.accumulate(m, str(i))
        alone = evaluator([boxes[i]])
        alone.accumulate(m, "0")
        hits.append([_pack(alone.num_correct[d]) for d in IOU_LIST])
        found, _ = ev.compute_bboxes_from_scoremaps(m, thresholds[::IOU_STRIDE], multi_contour_eval=multi)
        best.append([float(ev.calculate_multiple_iou(np.asarray(b), np.asarray(boxes[i])).max()) for b in found])
    return {"max_box_acc": [float(v) for v in whole.compute()], "hits": hits, "best_iou": best}


def _pack(bits: np.ndarray) -> str:
    """(T,) 0/1 counts -> hex of the integer whose bit t is threshold t."""
    return format(sum(1 << t for t, v in enumerate(bits) if v), "x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wsolevaluation", type=Path, help="checkout of clovaai/wsolevaluation (outside this repo)")
    parser.add_argument("--commit", default=None,
                        help="the reference's commit, recorded in the JSON (default: the checkout's git HEAD)")
    args = parser.parse_args()
    ev = _import_reference(args.wsolevaluation.resolve())
    import cv2

    commit = args.commit or subprocess.run(["git", "-C", str(args.wsolevaluation), "rev-parse", "HEAD"],
                                           capture_output=True, text=True).stdout.strip() or None
    rng = np.random.default_rng(20200227)
    doc: dict[str, object] = {
        "reference": "clovaai/wsolevaluation evaluation.py (BoxEvaluator, compute_bboxes_from_scoremaps, "
                     "calculate_multiple_iou)",
        "reference_commit": commit, "cv2": cv2.__version__, "numpy": np.__version__,
        "generator": "tests/data/make_wsolevaluation_maxboxacc.py", "denominator": DENOM, "interval": INTERVAL,
        "iou_thresholds": IOU_LIST, "iou_stride": IOU_STRIDE, "families": {}}
    for name, items in families(rng).items():
        maps = [k / DENOM for k, _ in items]
        boxes = [b for _, b in items]
        doc["families"][name] = {  # type: ignore[index]
            "maps": [k.tolist() for k, _ in items], "boxes": boxes,
            "v1": _record(ev, maps, boxes, multi=False), "v2": _record(ev, maps, boxes, multi=True)}
        print(name, "v1", doc["families"][name]["v1"]["max_box_acc"],  # type: ignore[index]
              "v2", doc["families"][name]["v2"]["max_box_acc"])  # type: ignore[index]
    OUT.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
