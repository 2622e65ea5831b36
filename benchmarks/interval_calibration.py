"""Calibration study: do camkit's "95%" intervals over seeds cover the true value 95% of the time?

    python benchmarks/interval_calibration.py [--reps 2000] [--out camkit-runs/calibration] [--only NAME ...]

Each replicate simulates a whole seed study where the truth is known: R training runs (seeds) of one recipe,
each scored on a test set of S studies (2 images per study, one lesion per image), then scores it with camkit's
own functions (``bootstrap_means`` / ``bootstrap_froc`` / ``bootstrap_classification`` per run, then
``combine_runs``) and checks whether the interval holds the grand mean, i.e. the recipe's value averaged over
seeds and over test populations. Written for issue 27; docs/metrics.md shows the table.

How a replicate is drawn (a latent-variable model, so the truth is exact):

- seed r has a true TPR ``p_r = p0 + tau * z_r`` (``tau``: the between-seed sd of the true TPR);
- image i has a difficulty ``v_i`` (``rho``: the share of the latent variance that is the image's, half of it
  common to the study's two images), and run r hits lesion i when ``Phi^-1(p_r) + v_i + e_ir > 0``
  (``e_ir`` the run's own noise): the hit rate over the population is exactly ``p_r``;
- **separate** test sets: every run draws new images (the synthetic data's seeds do); **shared**: all runs score
  the same images (VinDr-Mammo, CBIS-DDSM, INbreast), so their difficulties are common to every run. The study
  ids are the same strings in both cases (as the synthetic data's are), so camkit must *measure* whether the
  runs share anything.
- metric ``tpr@1``: one box per image (the lesion when hit, else a false positive), so TPR at <= 1 FPPI is the
  hit rate (bootstrapped by ``bootstrap_means``; ``benchmarks`` checks it equals ``bootstrap_froc``);
  ``froc``: the lesion box scored by its latent value and Poisson(1.5) false positives per image scored N(0, 1),
  TPR at <= 0.5 FPPI through ``bootstrap_froc`` (a threshold chosen on the data: nonlinear); ``auc``: half the
  images normal, the classifier's AUC through ``bootstrap_classification``.

The paired design checks ``combine_paired`` + Holm under no difference: K test-cams and the baseline share the
images and the seed, their seed-by-method effects have sd ``tau``, and the family-wise error rate (any Holm
marker at alpha 0.05) must stay <= 0.05. "before" is the two-level bootstrap camkit used until issue 27
(percentiles of means of runs drawn with replacement and one study resample per drawn run).
"""
from __future__ import annotations

import argparse
import json
import time
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Design:
    name: str
    runs: int
    studies: int
    tau: float            # between-seed sd of the true TPR (or AUC)
    shared: bool          # every run scored on the same test images
    rho: float = 0.5      # share of the latent variance that belongs to the image (its difficulty)
    p0: float = 0.75      # the mean true value over seeds
    metric: str = "tpr@1"  # tpr@1 | froc | auc


def designs() -> list[Design]:
    """The issue's table (5 x 200 and 3 x 100, separate / shared, tau 0 / 0.03 / 0.10), then harder ones."""
    out = []
    for runs, studies in ((5, 200), (3, 100)):
        for shared in (False, True):
            for tau in (0.0, 0.03, 0.10):
                out.append(Design(f"{runs}x{studies}{' shared' if shared else ''} tau={tau:g}", runs, studies,
                                  tau, shared))
    out += [
        Design("2x200 shared tau=0.10", 2, 200, 0.10, True),
        Design("10x200 separate tau=0.03", 10, 200, 0.03, False),
        Design("3x40 shared tau=0.03 p0=0.9", 3, 40, 0.03, True, p0=0.9),
        Design("5x200 shared tau=0 rho=0.9", 5, 200, 0.0, True, rho=0.9),
        Design("5x200 shared tau=0.03 no image effect", 5, 200, 0.03, True, rho=0.0),
        Design("3x100 shared tau=0.05 froc tpr@0.5", 3, 100, 0.05, True, metric="froc"),
        Design("5x100 separate tau=0.05 froc tpr@0.5", 5, 100, 0.05, False, metric="froc"),
        Design("3x100 shared tau=0.03 auc", 3, 100, 0.03, True, p0=0.85, metric="auc"),
        Design("5x100 separate tau=0.03 auc", 5, 100, 0.03, False, p0=0.85, metric="auc"),
    ]
    return out


# --- one replicate -----------------------------------------------------------------------------------------

def seed_truths(d: Design, rng: np.random.Generator) -> np.ndarray:
    return np.clip(d.p0 + d.tau * rng.standard_normal(d.runs), 0.01, 0.99)


def grand_mean(d: Design) -> float:
    """E over seeds of the clipped true value (Gauss-Hermite quadrature; = p0 unless the clip bites)."""
    x, w = np.polynomial.hermite_e.hermegauss(80)
    return float((np.clip(d.p0 + d.tau * x, 0.01, 0.99) * w).sum() / w.sum())


def difficulties(d: Design, n_images: int, rng: np.random.Generator) -> np.ndarray:
    """Image difficulties: half the image variance shared by the study's two images."""
    study = np.repeat(rng.standard_normal(n_images // 2), 2)
    return np.sqrt(d.rho / 2) * (study + rng.standard_normal(n_images))


def simulate_run(d: Design, p: float, v: np.ndarray, rng: np.random.Generator, n: int, seed: int) -> Any:
    """One run's study-level bootstrap of the design's metric (camkit's functions)."""
    from camkit.metrics import bootstrap_classification, bootstrap_froc, bootstrap_means

    k = v.size
    groups = [f"study-{i // 2:04d}" for i in range(k)]
    noise = np.sqrt(1 - d.rho) * rng.standard_normal(k)
    if d.metric == "tpr@1":
        hits = (stats.norm.ppf(p) + v + noise > 0).astype(float)
        return bootstrap_means(groups, {"tpr@1": hits}, n=n, seed=seed)["tpr@1"]
    if d.metric == "auc":
        labels = np.arange(k) % 2  # one image of each study has a mass
        scores = labels * np.sqrt(2) * stats.norm.ppf(p) + v + noise
        return bootstrap_classification(labels, scores, groups, metrics=("auc",), n=n, seed=seed)["auc"]
    # froc: the lesion's box scored by its latent value; Poisson(1.5) false positives per image, N(0, 1) scores
    lam, fppi = 1.5, 0.5
    cut = stats.norm.ppf(1 - fppi / lam)  # the population threshold where FPPI = 0.5
    lesion = stats.norm.ppf(p) + cut + v + noise
    preds, gt, study = {}, {}, {}
    for i in range(k):
        m = int(rng.poisson(lam))
        boxes = [[0, 0, 10, 10]] + [[50 + 20 * j, 50, 60 + 20 * j, 60] for j in range(m)]
        preds[i] = (np.asarray(boxes, float), np.r_[lesion[i], rng.standard_normal(m)])
        gt[i] = np.asarray([[0, 0, 10, 10]], float)
        study[i] = groups[i]
    return bootstrap_froc(preds, gt, study, metrics=("tpr@0.5",), n=n, seed=seed)["tpr@0.5"]


def replicate(d: Design, rng: np.random.Generator, n: int) -> list[Any]:
    """The R runs' bootstraps of one simulated seed study (all on one plan: same ids, n and seed)."""
    p = seed_truths(d, rng)
    k = 2 * d.studies
    common = difficulties(d, k, rng)
    return [simulate_run(d, p[r], common if d.shared else difficulties(d, k, rng), rng, n, 0)
            for r in range(d.runs)]


def two_level_means(results: Sequence[Any], n: int, seed: int) -> np.ndarray:
    """The two-level bootstrap camkit used until issue 27 (re-implemented here as the comparison): each of the
    n resamples draws the runs with replacement and one study resample per drawn run, and averages."""
    pools = [r.samples[np.isfinite(r.samples)] for r in results]
    rng = np.random.default_rng([int(seed), 0x32626F6F])
    runs = rng.choice(len(pools), size=(n, len(pools)), replace=True)
    picks = np.empty(runs.shape)
    for k, pool in enumerate(pools):
        where = runs == k
        picks[where] = pool[rng.integers(0, pool.size, size=int(where.sum()))]
    return picks.mean(axis=1)


def two_level_before(results: Sequence[Any], n: int, seed: int, level: float = 0.95) -> tuple[float, float]:
    """The interval camkit printed until issue 27: percentiles of the two-level means."""
    lo, hi = np.percentile(two_level_means(results, n, seed), [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def coverage(d: Design, reps: int, n: int, seed: int = 0) -> dict[str, Any]:
    """Coverage of the grand mean by combine_runs (now) and the two-level bootstrap (before)."""
    from camkit.metrics import combine_runs

    rng = np.random.default_rng([seed, zlib.crc32(d.name.encode())])
    truth = grand_mean(d)
    now = before = 0
    widths, widths_before = [], []
    for rep in range(reps):
        runs = replicate(d, rng, n)
        c = combine_runs(runs, bounds=(0.0, 1.0))
        now += c.low <= truth <= c.high
        widths.append(c.high - c.low)
        lo, hi = two_level_before(runs, n, rep)
        before += lo <= truth <= hi
        widths_before.append(hi - lo)
    return {"design": asdict(d), "truth": truth, "reps": reps, "coverage": now / reps,
            "coverage_before": before / reps, "mc_se": float(np.sqrt(0.95 * 0.05 / reps)),
            "median_width": float(np.median(widths)), "median_width_before": float(np.median(widths_before))}


# --- paired comparisons under no difference ------------------------------------------------------------------

def paired_fwer(d: Design, cells: int, reps: int, n: int, alpha: float = 0.05, seed: int = 0) -> dict[str, Any]:
    """Family-wise error of the Holm markers over ``cells`` comparisons with a baseline, none truly different;
    and the coverage of each difference's interval (truth 0)."""
    from camkit.metrics import bootstrap_means, combine_paired, compare, holm

    rng = np.random.default_rng([seed, 7, zlib.crc32(d.name.encode())])
    k = 2 * d.studies
    groups = [f"study-{i // 2:04d}" for i in range(k)]
    any_now = any_before = covered = total = 0
    common = None
    for rep in range(reps):
        if d.shared:
            common = difficulties(d, k, rng)
        paired: list[list[Any]] = [[] for _ in range(cells)]
        for _ in range(d.runs):
            v = common if d.shared else difficulties(d, k, rng)
            base = stats.norm.ppf(np.clip(d.p0 + d.tau * rng.standard_normal(), 0.01, 0.99))
            run_noise = np.sqrt(1 - d.rho) * rng.standard_normal(k)  # what the methods of one run share
            boots = []
            for _m in range(cells + 1):
                # each method: the seed's value, its own seed-by-method effect, mostly the run's shared noise
                shift = d.tau * rng.standard_normal()
                own = 0.6 * run_noise + 0.8 * np.sqrt(1 - d.rho) * rng.standard_normal(k)
                hits = (base + shift + v + own > 0).astype(float)
                boots.append(bootstrap_means(groups, {"tpr@1": hits}, n=n, seed=0)["tpr@1"])
            for c in range(cells):
                paired[c].append(compare(boots[c + 1], boots[0]))
        now = [combine_paired(p) for p in paired]
        p_now = holm([x["p_value"] for x in now])
        any_now += bool((p_now <= alpha).any())
        for x in now:
            covered += x["ci"][0] <= 0 <= x["ci"][1]
            total += 1
        p_before = holm([_two_level_p(p, n, rep) for p in paired])
        any_before += bool((p_before <= alpha).any())
    return {"design": asdict(d), "cells": cells, "reps": reps, "alpha": alpha, "fwer": any_now / reps,
            "fwer_before": any_before / reps, "difference_coverage": covered / total}


def _two_level_p(paired: Sequence[Any], n: int, seed: int) -> float:
    """The p-value camkit's combine_paired gave before issue 27 (two-level means, bootstrap p)."""
    from camkit.metrics import bootstrap_p_value

    return bootstrap_p_value(two_level_means(paired, n, seed))


def paired_designs() -> list[Design]:
    return [Design("5x200 shared tau=0.03", 5, 200, 0.03, True), Design("3x100 shared tau=0.10", 3, 100, 0.10, True),
            Design("5x200 separate tau=0.03", 5, 200, 0.03, False)]


# --- the study ---------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=1500, help="replicates per design")
    p.add_argument("--paired-reps", type=int, default=1000)
    p.add_argument("--resamples", type=int, default=500, help="study bootstrap resamples per run")
    p.add_argument("--cells", type=int, default=5, help="comparisons with the baseline in the paired design")
    p.add_argument("--only", nargs="*", default=None, help="design names to run (substring match)")
    p.add_argument("--out", type=Path, default=Path("camkit-runs/calibration"))
    a = p.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    rows, paired_rows = [], []
    pick = (lambda name: any(s in name for s in a.only)) if a.only else (lambda name: True)
    for d in designs():
        if not pick(d.name):
            continue
        t = time.perf_counter()
        reps = a.reps
        rows.append(coverage(d, reps, a.resamples))
        r = rows[-1]
        print(f"{d.name:45s} now {r['coverage']:.3f}  before {r['coverage_before']:.3f}  "
              f"width {r['median_width']:.3f} / {r['median_width_before']:.3f}  ({time.perf_counter() - t:.0f} s)",
              flush=True)
    for d in paired_designs():
        if not pick("paired " + d.name):
            continue
        t = time.perf_counter()
        paired_rows.append(paired_fwer(d, a.cells, a.paired_reps, a.resamples))
        r = paired_rows[-1]
        print(f"paired {d.name:38s} FWER now {r['fwer']:.3f}  before {r['fwer_before']:.3f}  "
              f"difference coverage {r['difference_coverage']:.3f}  ({time.perf_counter() - t:.0f} s)", flush=True)
    text = render(rows, paired_rows)
    print(text)
    (a.out / "calibration.md").write_text(text + "\n")
    (a.out / "calibration.json").write_text(json.dumps({"coverage": rows, "paired": paired_rows}, indent=1) + "\n")
    return 0


def render(rows: list[dict[str, Any]], paired_rows: list[dict[str, Any]]) -> str:
    lines = []
    if rows:
        lines += ["| design (runs x studies, tau = between-seed sd) | metric | replicates | coverage now | "
                  "before (two-level bootstrap) | median width now / before |", "|---|---|---|---|---|---|"]
        for r in rows:
            d = r["design"]
            metric = {"tpr@1": "TPR@1FPPI", "froc": "TPR@0.5FPPI", "auc": "AUC"}[d["metric"]]
            lines.append(f"| {d['name']} | {metric} | {r['reps']} | {r['coverage']:.3f} | {r['coverage_before']:.3f} | "
                         f"{r['median_width']:.3f} / {r['median_width_before']:.3f} |")
    if paired_rows:
        lines += ["", "| paired design (no true difference) | comparisons | replicates | FWER now (Holm, alpha 0.05) | "
                  "FWER before | coverage of each difference's CI |", "|---|---|---|---|---|---|"]
        for r in paired_rows:
            lines.append(f"| {r['design']['name']} | {r['cells']} | {r['reps']} | {r['fwer']:.3f} | "
                         f"{r['fwer_before']:.3f} | {r['difference_coverage']:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
