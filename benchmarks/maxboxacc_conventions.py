"""MaxBoxAcc in camkit's convention and in wsolevaluation's, side by side (docs/metrics.md section 5's table).

The inputs are the families of tests/data/make_wsolevaluation_maxboxacc.py (smooth blobs, noise, rings,
equal plateaus, borders, degenerate maps), drawn ``--reps`` times with other seeds. With ``--reference PATH``
(a checkout of clovaai/wsolevaluation outside this repository) the reference's own ``BoxEvaluator`` scores the
same images, and the script counts the images whose hits differ from ``convention="wsolevaluation"``.

    python benchmarks/maxboxacc_conventions.py --reps 10 [--reference /work/refs/wsolevaluation]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "data"))
import make_wsolevaluation_maxboxacc as gen  # noqa: E402  (the fixture's input families)

from camkit.metrics import box_hits  # noqa: E402

IOU = (0.3, 0.5, 0.7)


def _reference_hits(ev, m: np.ndarray, boxes: list[list[int]], ts: list[float], multi: bool) -> np.ndarray:
    e = ev.BoxEvaluator.__new__(ev.BoxEvaluator)   # its __init__ reads dataset metadata; accumulate does not
    e.cam_threshold_list, e.iou_threshold_list, e.multi_contour_eval = ts, [30, 50, 70], multi
    e.cnt, e.num_correct, e.gt_bboxes = 0, {d: np.zeros(len(ts)) for d in (30, 50, 70)}, {"0": boxes}
    e.accumulate(m.copy(), "0")
    return np.stack([e.num_correct[d] for d in (30, 50, 70)], axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--reference", type=Path, default=None, help="clovaai/wsolevaluation checkout")
    args = parser.parse_args()
    ev = gen._import_reference(args.reference.resolve()) if args.reference else None
    ts = np.arange(0, 1, 0.01)
    table: dict[tuple[str, str], dict[str, list[np.ndarray]]] = {}
    for rep in range(args.reps):
        for name, items in gen.families(np.random.default_rng(args.seed * 1000 + rep)).items():
            for version, multi in (("v1", False), ("V2", True)):
                row = table.setdefault((name, version), {"camkit": [], "wsolevaluation": [], "reference": []})
                for k, b in items:
                    m = k / gen.DENOM
                    gt = [np.asarray(b, dtype=np.float64)]
                    row["camkit"].append(box_hits(m[None], gt, ts, IOU, multi_box=multi)[0])
                    row["wsolevaluation"].append(
                        box_hits(m[None], gt, ts, IOU, multi_box=multi, convention="wsolevaluation")[0])
                    if ev is not None:
                        row["reference"].append(_reference_hits(ev, m, b, list(ts), multi))

    def acc(hits: list[np.ndarray]) -> str:
        return " / ".join(f"{v:.1f}" for v in 100 * np.mean(hits, axis=0).max(axis=0))

    print(f"| family | version | images | camkit | wsolevaluation convention |"
          + (" reference | images differing |" if ev else ""))
    print("|---|---|---|---|---|" + ("---|---|" if ev else ""))
    for (name, version), row in table.items():
        line = f"| {name} | {version} | {len(row['camkit'])} | {acc(row['camkit'])} | {acc(row['wsolevaluation'])} |"
        if ev is not None:
            differ = sum(not np.array_equal(a, b) for a, b in zip(row["wsolevaluation"], row["reference"]))
            line += f" {acc(row['reference'])} | {differ} |"
        print(line)


if __name__ == "__main__":
    main()
