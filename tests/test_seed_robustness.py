"""CI's cheap version of benchmarks/seeds.py (issue 16): the default recipe localises whatever the seed, on
whatever CPU.

Train-cam ``cam`` alone (the released GMIC's pairing, the one that collapsed before) with seeds 0 and 1; the
full table (seeds 0-4, the three default train-cams, where the best pairing must reach 0.8) is
benchmarks/seeds.py's and docs/training.md's. About four minutes a seed on 2 idle cores.

What is checked, and why it holds on every CPU. The numbers are deterministic on one CPU for a given torch
build, but not across CPUs: float rounding differs between CPU kernels and training follows it. With the same
code and torch 2.14.1, seed 1's ``cam`` row gave cam x cam 0.71 on the machines of earlier sessions
(docs/training.md's seed table), 0.65 (0.65 at best) on an AMD EPYC and 0.79 on an Intel Xeon. Holding each
seed to the released pairing's 0.7 therefore tested the machine, and seed 1 had to be an expected failure that
passed either way. The failure the recipe fixed, and that a regression brings back, is not a seed landing at
0.65 but the collapse: the native map fires a constant distance beside the masses and cam x cam falls to
0.00-0.49 (camkit 0.1's recipe: 0.00-0.32 for four seeds in five; the narrow-stem runs: 0.31 and 0.49). So:

* every seed, on its own (``FLOOR``): the row's best test-cam and cam x cam reach 0.5, AUC 0.85, and the bench
  warns about nothing. Seen on every CPU: 0.65 or more, AUC 0.89-0.94;
* the seeds together (``TARGET``): cam x cam averaged over the seeds reaches the released pairing's target,
  0.7; a mean over seeds is also what the README's combined leaderboard quotes. Seen: 0.81 on the earlier
  machines (0.91 and 0.71), 0.77 on the AMD EPYC (0.88 and 0.65), 0.82 on the Intel Xeon (0.85 and 0.79).

camkit 0.1's recipe fails both (seed 1: 0.01), as would any change that moves a seed's map off the masses;
neither depends on which side of 0.7 one seed's trajectory lands on a given CPU.
"""
from __future__ import annotations

import pytest

SEEDS = (0, 1)
FLOOR = 0.5    # every seed: best test-cam and cam x cam (a collapsed map: 0.00-0.49; seen working: 0.65+)
TARGET = 0.7   # the mean of cam x cam over SEEDS: the released pairing's target
AUC = 0.85

pytestmark = pytest.mark.slow  # each seed trains the default recipe to the end


@pytest.fixture(scope="module")
def cam_row(tmp_path_factory):
    """``cam_row(seed)``: the ``cam`` row of a default bench with that seed (trained once per module)."""
    rows: dict[int, dict] = {}

    def get(seed: int) -> dict:
        if seed not in rows:
            from camkit.bench.config import BenchConfig
            from camkit.bench.runner import run_bench

            out = tmp_path_factory.mktemp(f"seed{seed}") / "run"
            results = run_bench(BenchConfig(train_cams=["cam"], seed=seed, bootstrap=50), out)
            rows[seed] = {
                "tpr": {test_cam: e["tpr@1"]["value"] for test_cam, e in results["detection"]["cam"].items()},
                "auc": results["classification"]["cam"]["auc"]["value"],
                "warnings": results.get("warnings"),
            }
            print(f"seed {seed}: {rows[seed]}")
        return rows[seed]

    return get


# One default training: 4-5 minutes on 2 idle cores, and more than 25 (1500 s, timed out) at nice 15 beside three
# other jobs on 2 cores: the limit catches a hang, not a busy machine.
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("seed", SEEDS)
def test_no_seed_leaves_the_maps_beside_the_masses(cam_row, seed):
    row = cam_row(seed)
    tpr = row["tpr"]
    assert max(tpr.values()) >= FLOOR, tpr
    assert tpr["cam"] >= FLOOR, tpr
    assert row["auc"] >= AUC, row
    assert not row["warnings"], row["warnings"]


@pytest.mark.timeout(7200)  # selected alone (-k), it trains both seeds
def test_over_the_seeds_the_released_pairing_meets_its_target(cam_row):
    native = {seed: cam_row(seed)["tpr"]["cam"] for seed in SEEDS}
    assert sum(native.values()) / len(native) >= TARGET, native
