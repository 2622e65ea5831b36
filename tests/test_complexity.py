"""The complexity family (docs/metrics.md section 7): sparseness (the Gini index, Chalasani et al. 2020) and
complexity (the entropy, Bhatt et al. 2020) on hand-worked maps, against Quantus 0.6 (recorded by
tests/data/make_quantus_complexity.py, and live where Quantus is importable), and through a tiny bench, its
stored records, the leaderboard and the report; runs benched before they existed still load."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from camkit.bench import metric_table
from camkit.cli import main
from camkit.metrics import complexity, sparseness
from camkit.metrics.map_complexity import COMPLEXITY_EPS, SPARSENESS_EPS, flat_complexity

DATA = Path(__file__).parent / "data"
V1 = DATA / "bench-v1"  # a finished bench from before camkit stored these records
BENCH = ["bench", "--epochs", "2", "--batch-size", "8", "--dataset-opt", "n=16", "--train-cam", "cam",
         "--test-cam", "cam", "--test-cam", "gradcampp", "--quiet", "--format", "json"]


# -- hand-worked ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 1), (4, 4), (7, 9), (64, 40)])
def test_one_hot_map(shape):
    n = shape[0] * shape[1]
    m = np.zeros((1, *shape))
    m[0, shape[0] // 2, shape[1] // 3] = 0.37
    # the textbook Gini of one hot pixel out of n is (n - 1) / n; Quantus adds 1e-7 to each max-normalised value,
    # so the sum is 1 + n eps and the weighted sum still n - 1
    assert sparseness(m, eps=0)[0] == pytest.approx((n - 1) / n, abs=1e-15)
    assert sparseness(m)[0] == pytest.approx((n - 1) / (n * (1 + n * SPARSENESS_EPS)), abs=1e-15)
    assert complexity(m, eps=0)[0] == 0.0
    assert complexity(m)[0] == pytest.approx(-math.log(1.0 + COMPLEXITY_EPS), abs=1e-15)   # -1 * log(1 + 1e-12)


@pytest.mark.parametrize("value", [1e-6, 0.3, 1.0, 250.0])
def test_flat_map(value):
    m = np.full((2, 8, 5), value)
    np.testing.assert_allclose(sparseness(m), 0.0, atol=1e-15)
    np.testing.assert_allclose(sparseness(m, eps=0), 0.0, atol=1e-15)
    np.testing.assert_allclose(complexity(m, eps=0), math.log(40), rtol=1e-15)
    np.testing.assert_allclose(complexity(m), -math.log(1 / 40 + COMPLEXITY_EPS), rtol=1e-15)
    assert flat_complexity(40, eps=0) == math.log(40) and flat_complexity(40) == pytest.approx(complexity(m)[0])


def test_a_four_pixel_map_by_hand():
    m = np.array([[[3.0, 0.0], [1.0, 0.0]]])
    # |a| sorted / max: 0, 0, 1/3, 1; G = (-3*0 - 1*0 + 1*(1/3) + 3*1) / (4 * 4/3) = 10/16
    assert sparseness(m, eps=0)[0] == pytest.approx(0.625, abs=1e-15)
    # p = 0, 0, 1/4, 3/4
    assert complexity(m, eps=0)[0] == pytest.approx(-(0.25 * math.log(0.25) + 0.75 * math.log(0.75)), abs=1e-15)


def test_sign_scale_layout_dtype_and_device_do_not_change_the_values():
    rng = np.random.default_rng(5)
    m = rng.normal(size=(6, 16, 10))
    s, c = sparseness(m), complexity(m)
    np.testing.assert_array_equal(sparseness(-m), s)                   # absolute values
    np.testing.assert_allclose(sparseness(7.5 * m), s, rtol=1e-13)     # max-normalised first
    np.testing.assert_allclose(complexity(7.5 * m), c, rtol=1e-13)     # a distribution
    np.testing.assert_array_equal(sparseness(m[:, None]), s)           # (N, 1, H, W): every pixel of the map
    np.testing.assert_allclose(sparseness(torch.as_tensor(m)), s, rtol=1e-15)
    np.testing.assert_allclose(complexity(torch.as_tensor(m)), c, rtol=1e-15)
    # float32 maps (the engine's) give the values of their float64 copies: the sums run in float64
    m32 = m.astype(np.float32)
    np.testing.assert_allclose(sparseness(torch.as_tensor(m32)), sparseness(m32.astype(np.float64)), rtol=1e-15)
    np.testing.assert_allclose(complexity(torch.as_tensor(m32)), complexity(m32.astype(np.float64)), rtol=1e-15)
    # each map on its own: another map in the batch changes nothing
    np.testing.assert_array_equal(sparseness(np.concatenate([m[:2], 1e-4 * m[2:]]))[:2], s[:2])
    # more concentrated: a blob is sparser and simpler than noise
    yy, xx = np.mgrid[0:16, 0:10]
    blob = np.exp(-((yy - 8) ** 2 + (xx - 5) ** 2) / 4.0)[None]
    noise = rng.random((1, 16, 10))
    assert sparseness(blob)[0] > sparseness(noise)[0] and complexity(blob)[0] < complexity(noise)[0]


def test_a_map_of_zeros_counts_as_flat_and_bad_maps_are_refused():
    m = np.zeros((2, 6, 4))
    m[1, 2, 3] = 1.0
    np.testing.assert_allclose(sparseness(m), [0.0, (23 / 24) / (1 + 24 * SPARSENESS_EPS)], atol=1e-15)
    assert complexity(m, eps=0)[0] == math.log(24) and complexity(m)[0] == pytest.approx(flat_complexity(24))
    assert sparseness(np.zeros((0, 4, 4))).shape == (0,)
    with pytest.raises(ValueError, match="NaN"):
        sparseness(np.full((1, 3, 3), np.nan))
    with pytest.raises(ValueError, match="at least one pixel"):
        complexity(np.zeros((2, 0, 3)))


# -- Quantus 0.6 -------------------------------------------------------------------------------------------------
def test_equals_quantus_recorded():
    """Quantus 0.6 called on each map alone, recorded by tests/data/make_quantus_complexity.py: equal. Called on
    the whole batch it divides every map by the batch's maximum (before adding its 1e-7): the maps with a smaller
    maximum get another sparseness there, and the map of zeros a NaN complexity (docs/metrics.md section 7)."""
    ref = json.loads((DATA / "quantus_complexity.json").read_text())
    assert ref["reference"].startswith("quantus 0.6")
    maps, kinds = np.asarray(ref["maps"], dtype=np.float64), ref["kinds"]
    ours = {"sparseness": sparseness(maps), "complexity": complexity(maps)}
    zero = kinds.index("zeros")
    for name in ours:
        alone = np.asarray([np.nan if v is None else v for v in ref[name]["per_image"]])
        keep = np.arange(len(kinds)) != zero
        np.testing.assert_allclose(ours[name][keep], alone[keep], rtol=0, atol=1e-9, err_msg=name)
    batch = ref["sparseness"]["batch"]
    peak = np.abs(maps).reshape(len(maps), -1).max(axis=1)
    for i, kind in enumerate(kinds):
        if peak[i] == peak.max() or kind == "zeros":
            assert ours["sparseness"][i] == pytest.approx(batch[i], abs=1e-12), kind
    scaled = kinds.index("scaled")
    assert abs(ours["sparseness"][scaled] - batch[scaled]) > 1e-4            # 1e-7 against a maximum of 1e-3
    assert ref["complexity"]["batch"][zero] is None and ours["complexity"][zero] == pytest.approx(
        flat_complexity(maps[0].size))


@pytest.fixture(scope="module")
def quantus():
    """Quantus 0.6 where it is installed (not a test dependency: docs/metrics.md section 7); its AUC helper needs
    np.trapz, which numpy 2.4 removed, so it is aliased for the module's tests and removed again after."""
    added = not hasattr(np, "trapz")
    if added:
        np.trapz = np.trapezoid  # type: ignore[attr-defined]
    try:
        yield pytest.importorskip("quantus", minversion="0.6", reason="Quantus 0.6 is the live reference; the "
                                  "recorded one (tests/data/quantus_complexity.json) always runs")
    finally:
        if added:
            del np.trapz


def _quantus_per_map(metric, maps: np.ndarray) -> np.ndarray:
    out = []
    for m in maps:
        a = m[None, None].astype(np.float64)
        out.append(metric(model=None, x_batch=np.zeros_like(a, dtype=np.float32), y_batch=np.zeros(1, dtype=int),
                          a_batch=a.copy(), channel_first=True)[0])
    return np.asarray(out, dtype=np.float64)


@pytest.mark.parametrize("shape", [(12, 10), (64, 40), (256, 160)])
def test_equals_quantus_live_on_random_maps(quantus, shape):
    rng = np.random.default_rng(shape[0])
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    blob = np.exp(-((yy - 0.3 * h) ** 2 + (xx - 0.6 * w) ** 2) / (2 * (0.1 * h) ** 2))
    maps = np.stack([rng.random(shape), np.maximum(rng.normal(size=shape), 0), rng.normal(size=shape), blob,
                     rng.random(shape).astype(np.float32).astype(np.float64)])
    for name, ours, cls in (("sparseness", sparseness, quantus.Sparseness),
                            ("complexity", complexity, quantus.Complexity)):
        theirs = _quantus_per_map(cls(disable_warnings=True), maps)
        np.testing.assert_allclose(ours(maps), theirs, rtol=0, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(ours(torch.as_tensor(maps, dtype=torch.float32)), theirs, rtol=0, atol=1e-6,
                                   err_msg=f"{name}, float32")


# -- the metric table, the bench, the leaderboard, the report ----------------------------------------------------
def test_the_table_declares_both():
    s, c = metric_table.get("sparseness"), metric_table.get("complexity")
    assert (s.family, s.direction, s.bootstrap, s.record, s.bounds, s.needs) == (
        "complexity", "higher", "mean", "sparseness", (0.0, 1.0), frozenset())
    assert (c.family, c.direction, c.bootstrap, c.record, c.bounds, c.needs) == (
        "complexity", "lower", "mean", "complexity", None, frozenset())
    assert metric_table.names("complexity") == ("sparseness", "complexity")
    assert "complexity" in metric_table.PAIRING_FAMILIES and c.arrow == "↓" and s.arrow == "↑"
    assert "every test image" in c.rule_text({}) and "section 7" in s.rule_text({})
    assert "benches from before camkit stored it" in s.missing_message()


def test_mean_bootstrap_over_stored_records():
    from camkit.bench.scoring import bootstrap_metric
    from camkit.errors import OptionError
    from camkit.metrics import bootstrap_means

    images = [{"image_id": str(i), "study_id": str(i // 2)} for i in range(8)]
    per_image = {str(i): {"sparseness": 0.1 * i, "complexity": 5.0 - 0.1 * i} for i in range(8)}
    per_image["7"] = {"boxes": []}  # an image without the record is left out, not counted as 0
    data = metric_table.CellData(per_image, images, n=50, seed=3, config=None)
    got = bootstrap_metric(metric_table.get("complexity"), data)["complexity"]
    want = bootstrap_means([str(i // 2) for i in range(7)], {"complexity": [5.0 - 0.1 * i for i in range(7)]},
                           n=50, seed=3)["complexity"]
    assert got.estimate == pytest.approx(want.estimate) and (got.low, got.high) == (want.low, want.high)
    with pytest.raises(OptionError, match="no sparseness"):
        bootstrap_metric(metric_table.get("sparseness"),
                         metric_table.CellData({"0": {"boxes": []}}, images[:1], n=5, seed=0, config=None))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[Path, dict, str]:
    out = tmp_path_factory.mktemp("bench") / "run"
    res = CliRunner().invoke(main, BENCH + ["--out", str(out), "--metric", "complexity"])
    assert res.exit_code == 0, res.output
    return out, json.loads((out / "results.json").read_text()), res.output


def test_a_bench_records_both_per_image_and_per_test_cam(tiny_run):
    out, results, printed = tiny_run
    stored = json.loads((out / "predictions" / "cam.json").read_text())
    assert len(stored["images"]) == 16
    h, w = 256, 160   # the maps' grid: the model input, the synthetic dataset's default size
    for cam in ("cam", "gradcampp"):
        per_image = stored["predictions"][cam]
        rows = [per_image[r["image_id"]] for r in stored["images"]]   # every test image, normal ones too
        assert all(0.0 <= p["sparseness"] < 1.0 and 0.0 <= p["complexity"] <= math.log(h * w) for p in rows)
        entry = results["detection"]["cam"][cam]
        for name in ("sparseness", "complexity"):
            values = [p[name] for p in rows]
            assert entry[name]["value"] == pytest.approx(sum(values) / len(values), abs=1e-9)
            lo, hi = entry[name]["ci"]
            assert lo <= entry[name]["value"] <= hi
        assert {"sparseness", "complexity"} <= set(results["significance"])
    assert json.loads(printed)["metric"] == "complexity"   # bench --metric prints that table


def _report_boards(run: Path, where: Path) -> dict:
    """The leaderboards ``camkit report`` put in its page (its metric menu), by metric."""
    res = CliRunner().invoke(main, ["report", str(run), "--out", str(where)])
    assert res.exit_code == 0, res.output
    html = (where / "index.html").read_text()
    blob = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S).group(1)
    return json.loads(blob.replace("<\\/", "</"))["groups"][0]["leaderboards"]


def test_the_leaderboard_and_the_report_show_them(tiny_run, tmp_path):
    out, results, _ = tiny_run
    for metric in ("sparseness", "complexity"):
        res = CliRunner().invoke(main, ["leaderboard", str(out), "--metric", metric, "--format", "json"])
        assert res.exit_code == 0, res.output
        rows = {r["test_cam"]: r for r in json.loads(res.output)["detection"]}
        assert set(rows) == {"cam", "gradcampp"}
        for cam, r in rows.items():
            assert r["value"] == results["detection"]["cam"][cam][metric]["value"]
            assert r["ci_low"] <= r["value"] <= r["ci_high"]
        best = (min if metric == "complexity" else max)(rows, key=lambda c: rows[c]["value"])
        assert rows[best]["best_in_row"]
        plain = CliRunner().invoke(main, ["leaderboard", str(out), "--metric", metric, "--format", "csv"])
        assert plain.exit_code == 0 and metric in plain.output
    boards = _report_boards(out, tmp_path / "report")
    assert boards["complexity"]["lower_is_better"] and not boards["sparseness"]["lower_is_better"]
    assert [r["value"] for r in boards["sparseness"]["records"]] == [
        results["detection"]["cam"][c]["sparseness"]["value"] for c in ("cam", "gradcampp")]


def test_runs_from_before_still_load(tmp_path):
    """bench-v1's predictions have no such records: the default leaderboard and the report are unchanged (the
    metrics are left out), and asking for one says why, in one line."""
    boards = _report_boards(V1, tmp_path / "report")
    assert "tpr@1" in boards and not {"sparseness", "complexity"} & set(boards)
    res = CliRunner().invoke(main, ["leaderboard", str(V1), "--metric", "sparseness", "--format", "json"])
    assert res.exit_code != 0 and "no sparseness" in res.output and "Traceback" not in res.output
    assert CliRunner().invoke(main, ["leaderboard", str(V1)]).exit_code == 0
