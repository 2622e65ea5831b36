"""End to end: a tiny train-cam x test-cam matrix through the real CLI, resume, leaderboards, explain."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from camkit.cli import main
from camkit.bench.results import load_results

REPO = Path(__file__).resolve().parents[1]
# every one-pass method, the second-order one, FullGrad and the two single-sample perturbation methods: each cost class
# through the bench (SS-CAM and IS-CAM repeat Score-CAM's forwards 35 and 10 times; the parity tests cover them)
TEST_CAMS = ["--test-cam", "one-pass", "--test-cam", "shapleycam", "--test-cam", "fullgrad", "--test-cam",
             "scorecam", "--test-cam", "ablationcam"]
TINY = ["--epochs", "1", "--batch-size", "8", "--dataset-opt", "n=24", "--bootstrap", "40", "--quiet",
        "--model-opt", "num_crops=1"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench") / "run"
    res = CliRunner().invoke(main, ["bench", "--train-cam", "cam", "--train-cam", "xgradcam", *TEST_CAMS,
                                    "--out", str(out), "--format", "json", *TINY])
    assert res.exit_code == 0, res.output
    return out


def test_tiny_matrix_writes_a_complete_run(tiny_run):
    results = load_results(tiny_run)
    assert results["status"] == "complete"
    assert list(results["detection"]) == ["cam", "xgradcam"]
    for train_cam, per_test in results["detection"].items():
        assert list(per_test)[:5] == ["cam", "gradcam", "gradcampp", "xgradcam", "layercam"]
        # the one-class model has no class to contrast with: FinerCAM is reported, not fatal
        assert "single class" in per_test.pop("finercam")["not_applicable"]
        for entry in per_test.values():
            lo, hi = entry["tpr@1"]["ci"]
            assert 0.0 <= lo <= entry["tpr@1"]["value"] <= hi <= 1.0
            assert entry["images"] == "positive" and entry["n_lesions"] > 0
            assert len(entry["froc"]["fppi"]) == len(entry["froc"]["tpr"])
        assert (tiny_run / "predictions" / f"{train_cam}.json").is_file()
        assert (tiny_run / results["training"][train_cam]["checkpoint"]).is_file()
        assert set(results["classification"][train_cam]) >= {"accuracy", "auc", "tpr", "tnr"}
    # significance is scored once, at assembly, for every leaderboard metric the run holds
    sig = results["significance"]["tpr@1"]
    assert sig["baseline"] == ["cam", "cam"] and sig["alpha"] == 0.05 and sig["asked"] is None
    assert {(c["row"], c["test_cam"]) for c in sig["cells"]} >= {("xgradcam", "cam"), ("cam", "gradcam")}
    assert ("cam", "cam") not in {(c["row"], c["test_cam"]) for c in sig["cells"]}
    assert results["cells"] == {r: {"status": "complete", "document": f"cells/{r}.json"} for r in ("cam", "xgradcam")}
    for fig in ("froc.png", "overlay-cam.png", "overlay-xgradcam.png"):
        assert (tiny_run / "figures" / fig).stat().st_size > 1000
    assert results["git"] is None or len(results["git"]["commit"]) == 40
    assert {p["name"] for p in results["plugins"]} >= {"cams", "gmic", "synthetic"}


def test_predictions_are_rescorable_without_inference(tiny_run):
    from camkit.bench.config import BenchConfig
    from camkit.bench.scoring import score_detection

    results = load_results(tiny_run)
    cfg = BenchConfig(**{k: v for k, v in results["config"].items()})
    stored = json.loads((tiny_run / "predictions" / "xgradcam.json").read_text())
    again = score_detection(stored["predictions"]["gradcampp"], stored["images"], cfg)
    assert again["tpr@1"] == results["detection"]["xgradcam"]["gradcampp"]["tpr@1"]


def test_threshold_free_metrics_are_stored_and_match_the_metric_functions(tiny_run):
    """The bench's stored per-image values give the same numbers as camkit.metrics on the maps' grid."""
    from camkit.bench.wsol import IOU_THRESHOLDS, _unpack

    results = load_results(tiny_run)
    stored = json.loads((tiny_run / "predictions" / "cam.json").read_text())
    positives = [r for r in stored["images"] if r["gt"]]
    for cam in ("gradcampp", "layercam"):
        entry = results["detection"]["cam"][cam]
        per_image = stored["predictions"][cam]
        rows = [per_image[r["image_id"]] for r in positives]
        assert entry["pointing"]["value"] == pytest.approx(sum(p["pointing"] for p in rows) / len(rows))
        assert entry["energy"]["value"] == pytest.approx(sum(p["energy"] for p in rows) / len(rows), abs=1e-6)
        per_d = [max(sum(_unpack(p["box_hits"][j])[t] for p in rows) / len(rows) for t in range(100))
                 for j in range(len(IOU_THRESHOLDS))]
        assert entry["maxboxacc"]["value"] == pytest.approx(sum(per_d) / len(per_d))
        assert entry["maxboxacc"]["n_images"] == len(rows)
        for m in ("pointing", "energy", "maxboxacc"):
            lo, hi = entry[m]["ci"]
            assert 0.0 <= lo <= entry[m]["value"] <= hi <= 1.0
    # negatives carry no values
    assert all(stored["predictions"]["cam"][r["image_id"]]["box_hits"] is None
               for r in stored["images"] if not r["gt"])


@pytest.mark.slow  # a second tiny bench (tiny_run_seed1)
@pytest.mark.parametrize("metric", ["maxboxacc", "pointing", "energy", "pxap"])
def test_leaderboard_shows_the_threshold_free_metrics(tiny_run, tiny_run_seed1, metric):
    runner = CliRunner()
    one = runner.invoke(main, ["leaderboard", str(tiny_run), "--metric", metric, "--format", "json"])
    assert one.exit_code == 0, one.output
    rec = {(r["train_cam"], r["test_cam"]): r for r in json.loads(one.output)["detection"]}
    assert rec[("cam", "gradcampp")]["value"] == load_results(tiny_run)["detection"]["cam"]["gradcampp"][metric]["value"]
    plain = runner.invoke(main, ["leaderboard", str(tiny_run), "--metric", metric, "--format", "plain"])
    assert "map thresholds 0 .. 0.99" in plain.output and "IoU > 0.3" not in plain.output
    both = runner.invoke(main, ["leaderboard", str(tiny_run), str(tiny_run_seed1), "--metric", metric,
                                "--format", "json"])
    assert both.exit_code == 0, both.output
    r = next(r for r in json.loads(both.output)["detection"] if r["test_cam"] == "gradcampp")
    assert r["runs"] == 2 and r["ci_low"] <= r["value"] <= r["ci_high"]


@pytest.mark.slow  # a second tiny bench (tiny_run_seed1)
@pytest.mark.parametrize("metric", ["tpr@1", "maxboxacc"])
def test_leaderboard_marks_significance_against_the_baseline_holm_corrected(tiny_run, tiny_run_seed1, metric):
    from camkit.bench.leaderboard import cell_bootstraps, load_runs
    from camkit.metrics import compare, holm

    runner = CliRunner()
    js = json.loads(runner.invoke(main, ["leaderboard", str(tiny_run), "--metric", metric, "--alpha", "0.5",
                                         "--format", "json"]).output)
    assert js["significance"]["baseline"] == ["cam", "cam"] and "Holm" in js["significance"]["method"]
    rec = [r for r in js["detection"] if r["value"] is not None]
    base = next(r for r in rec if r["baseline"])
    assert (base["train_cam"], base["test_cam"]) == ("cam", "cam") and base["p_value"] is None
    others = [r for r in rec if not r["baseline"]]
    # each p-value is the paired bootstrap's, recomputed here; Holm over all of them together
    run = load_runs([tiny_run])[0]
    b = cell_bootstraps(run, "cam", "cam", metric)[metric]
    for r in others[:3]:
        c = compare(cell_bootstraps(run, r["row"], r["test_cam"], metric)[metric], b)
        assert r["p_value"] == c.p_value and r["difference"] == pytest.approx(c.difference)
    assert [r["p_holm"] for r in others] == pytest.approx(holm([r["p_value"] for r in others]).tolist())
    assert all(r["significant"] == (r["p_holm"] < 0.5) for r in others)
    # 40 resamples cannot resolve ~30 comparisons at 0.05: said, with the --bootstrap that would
    strict = json.loads(runner.invoke(main, ["leaderboard", str(tiny_run), "--metric", metric, "--format",
                                             "json"]).output)
    assert "--bootstrap" in strict["significance"]["note"]
    assert not any(r["significant"] for r in strict["detection"])
    plain = runner.invoke(main, ["leaderboard", str(tiny_run), "--metric", metric, "--alpha", "0.5"]).output
    row = next(line for line in plain.splitlines() if line.startswith("xgradcam "))
    marks = sum(1 for r in others if r["train_cam"] == "xgradcam" and r["significant"])
    assert row.count("▲") + row.count("▼") == marks and "(baseline)" in plain
    other = json.loads(runner.invoke(main, ["leaderboard", str(tiny_run), "--baseline", "xgradcam:gradcampp",
                                            "--metric", metric, "--format", "json"]).output)
    assert other["significance"]["baseline"] == ["xgradcam", "gradcampp"]
    bad = runner.invoke(main, ["leaderboard", str(tiny_run), "--baseline", "nope:cam"])
    assert bad.exit_code != 0 and "not a scored cell" in bad.output and "xgradcam" in bad.output
    seeds = json.loads(runner.invoke(main, ["leaderboard", str(tiny_run), str(tiny_run_seed1), "--metric",
                                            metric, "--format", "json"]).output)
    assert "t test over seeds" in seeds["significance"]["method"]
    assert all(r["p_value"] is not None for r in seeds["detection"] if r["value"] is not None and not r["baseline"])
    # the bench stores the TPR@1FPPI comparison with its Holm-corrected p-value
    stored = load_results(tiny_run)["significance"]["tpr@1"]
    vs = next(c for c in stored["cells"] if (c["row"], c["test_cam"]) == ("xgradcam", "gradcampp"))
    assert stored["metric"] == "tpr@1" and 0 < vs["p_value"] <= vs["p_holm"] <= 1


def test_leaderboard_breaks_down_by_lesion_size_view_and_laterality(tiny_run):
    runner = CliRunner()
    results = load_results(tiny_run)
    js = json.loads(runner.invoke(main, ["leaderboard", str(tiny_run), "--by", "size", "--format", "json"]).output)
    assert [s["stratum"] for s in js["strata"]] == ["small", "medium", "large"]
    n = [int(s["description"].rsplit(": ", 1)[1].split()[0]) for s in js["strata"]]
    for train_cam in ("cam", "xgradcam"):
        for test_cam in ("cam", "gradcampp"):
            entry = results["detection"][train_cam][test_cam]
            assert sum(n) == entry["n_lesions"]
            cells = {r["stratum"]: r["value"] for r in js["detection"]
                     if (r["train_cam"], r["test_cam"]) == (train_cam, test_cam)}
            # every stratum counts the same false positives, so the hits at <= 1 FPPI add up to all the hits
            hits = sum(cells[s] * k for s, k in zip(("small", "medium", "large"), n))
            assert hits == pytest.approx(entry["tpr@1"]["value"] * entry["n_lesions"])
    assert {r["by"] for r in js["detection"]} == {"size"}
    plain = runner.invoke(main, ["leaderboard", str(tiny_run), "--by", "size"]).output
    assert plain.count("Detection — size ") == 3 and plain.count("Classification ") == 1
    stored = json.loads((tiny_run / "predictions" / "cam.json").read_text())
    for by in ("view", "laterality"):
        js = json.loads(runner.invoke(main, ["leaderboard", str(tiny_run), "--by", by, "--metric", "pointing",
                                             "--format", "json"]).output)
        values = sorted({r[by] for r in stored["images"]})
        assert [s["stratum"] for s in js["strata"]] == values
        for v in values:  # the pointing game of the stratum: the stored per-image hits of its images
            hits = [stored["predictions"]["gradcampp"][r["image_id"]]["pointing"] for r in stored["images"]
                    if r[by] == v and r["gt"]]
            cell = next(r for r in js["detection"] if r["stratum"] == v and r["train_cam"] == "cam"
                        and r["test_cam"] == "gradcampp")
            assert cell["value"] == pytest.approx(sum(hits) / len(hits))
    # the synthetic set's study density, as BI-RADS categories
    js = json.loads(runner.invoke(main, ["leaderboard", str(tiny_run), "--by", "density", "--format",
                                         "json"]).output)
    assert {s["stratum"] for s in js["strata"]} <= {"DENSITY A", "DENSITY B", "DENSITY C", "DENSITY D"}
    assert sorted(s["stratum"] for s in js["strata"]) == sorted({r["density"] for r in stored["images"]})


@pytest.mark.slow  # two more benches
def test_peak_proposals_and_validation_chosen_thresholds(tiny_run):
    """--boxes peaks and --box-threshold auto re-use tiny_run's trained models (same store) and change only
    how maps become boxes."""
    from camkit.bench.thresholds import AUTO_THRESHOLDS

    runner = CliRunner()
    single = load_results(tiny_run)
    cams = ["--test-cam", "cam", "--test-cam", "gradcampp"]
    peaks_out = tiny_run.parent / "peaks"
    res = runner.invoke(main, ["bench", "--train-cam", "cam", "--train-cam", "xgradcam", *cams, "--boxes",
                               "peaks", "--out", str(peaks_out), "--format", "json", *TINY])
    assert res.exit_code == 0, res.output
    peaks = load_results(peaks_out)
    assert peaks["config"]["boxes"] == "peaks" and "boxes" not in single["config"]
    assert peaks["training"]["cam"]["checkpoint"] == single["training"]["cam"]["checkpoint"]  # not retrained
    one = json.loads((tiny_run / "predictions" / "cam.json").read_text())["predictions"]
    many = json.loads((peaks_out / "predictions" / "cam.json").read_text())["predictions"]
    for cam in ("cam", "gradcampp"):
        # every single-threshold box of the highest peak is kept, weaker peaks add boxes: never fewer
        assert all(len(many[cam][i]["boxes"]) >= min(1, len(one[cam][i]["boxes"])) for i in one[cam])
        assert sum(len(p["boxes"]) for p in many[cam].values()) >= sum(len(p["boxes"]) for p in one[cam].values())
        assert peaks["detection"]["cam"][cam]["n_predictions"] >= single["detection"]["cam"][cam]["n_predictions"]
    plain = runner.invoke(main, ["leaderboard", str(peaks_out)]).output
    assert "a box per map peak" in plain

    auto_out = tiny_run.parent / "auto"
    res = runner.invoke(main, ["bench", "--train-cam", "cam", *cams, "--box-threshold", "auto", "--out",
                               str(auto_out), "--format", "json", *TINY])
    assert res.exit_code == 0, res.output
    auto = load_results(auto_out)
    assert auto["config"]["box_threshold"] == "auto"
    for cam in ("cam", "gradcampp"):
        chosen = auto["detection"]["cam"][cam]["box_threshold"]
        assert chosen["chosen_on"] == "val" and chosen["n_images"] == auto["dataset"]["counts"]["val"]
        assert chosen["shards"] == [chosen["n_images"]]          # one process mapped them all
        curve = chosen["validation"]
        assert sorted(float(t) for t in curve) == list(AUTO_THRESHOLDS)
        best = max(curve.values(), key=lambda v: (v["tpr@1"], v["cpm"]))
        assert curve[f"{chosen['value']:g}"]["tpr@1"] == best["tpr@1"]
    assert "validation-chosen threshold" in runner.invoke(main, ["leaderboard", str(auto_out)]).output
    bad = runner.invoke(main, ["bench", "--box-threshold", "auto", "--boxes", "peaks", "--out",
                               str(tiny_run.parent / "bad"), *TINY])
    assert bad.exit_code != 0 and "--boxes peaks" in bad.output
    bad = runner.invoke(main, ["bench", "--box-threshold", "half", "--out", str(tiny_run.parent / "bad"), *TINY])
    assert bad.exit_code == 2 and "neither a number" in bad.output


def test_maxboxacc_convention_wsolevaluation_is_recorded_and_shown(tiny_run):
    """--maxboxacc-convention wsolevaluation re-uses tiny_run's models; the stored hits follow the reference's
    rules, the config and the results say so, and the leaderboard names the convention."""
    from camkit.bench.wsol import IOU_THRESHOLDS, _unpack

    runner = CliRunner()
    out = tiny_run.parent / "wsolevaluation"
    res = runner.invoke(main, ["bench", "--train-cam", "cam", "--test-cam", "cam", "--test-cam", "gradcampp",
                               "--maxboxacc-convention", "wsolevaluation", "--out", str(out), "--format", "json",
                               *TINY])
    assert res.exit_code == 0, res.output
    ref, single = load_results(out), load_results(tiny_run)
    assert ref["config"]["maxboxacc_convention"] == "wsolevaluation"
    assert "maxboxacc_convention" not in single["config"]       # the default leaves old configs' hashes alone
    assert ref["training"]["cam"]["checkpoint"] == single["training"]["cam"]["checkpoint"]  # not retrained
    stored = json.loads((out / "predictions" / "cam.json").read_text())
    theirs = json.loads((tiny_run / "predictions" / "cam.json").read_text())
    rows = [r["image_id"] for r in stored["images"] if r["gt"]]
    differ = 0
    for cam in ("cam", "gradcampp"):
        entry = ref["detection"]["cam"][cam]["maxboxacc"]
        assert entry["convention"] == "wsolevaluation"
        assert single["detection"]["cam"][cam]["maxboxacc"]["convention"] == "camkit"
        hits = np.stack([np.stack([_unpack(x) for x in stored["predictions"][cam][i]["box_hits"]], axis=1)
                         for i in rows])
        per_d = hits.mean(axis=0).max(axis=0)
        assert entry["value"] == pytest.approx(per_d.mean())
        assert [entry["per_iou"][f"{d:g}"]["value"] for d in IOU_THRESHOLDS] == pytest.approx(per_d)
        differ += sum(stored["predictions"][cam][i]["box_hits"] != theirs["predictions"][cam][i]["box_hits"]
                      for i in rows)
    assert differ > 0                                           # other rules, other hits
    plain = runner.invoke(main, ["leaderboard", str(out), "--metric", "maxboxacc"]).output
    assert "wsolevaluation convention" in plain
    js = json.loads(runner.invoke(main, ["leaderboard", str(out), "--metric", "maxboxacc", "--format",
                                         "json"]).output)
    assert js["maxboxacc_convention"] == "wsolevaluation"
    assert "camkit convention" in runner.invoke(main, ["leaderboard", str(tiny_run), "--metric",
                                                       "maxboxacc"]).output
    bad = runner.invoke(main, ["bench", "--maxboxacc-convention", "opencv", "--out", str(out.parent / "bad"),
                               *TINY])
    assert bad.exit_code == 2 and "opencv" in bad.output


@pytest.mark.slow  # a bench with the faithfulness metrics' extra forwards
def test_faithfulness_metrics_on_request(tiny_run):
    import math

    runner = CliRunner()
    out = tiny_run.parent / "faithful"
    res = runner.invoke(main, ["bench", "--train-cam", "cam", "--test-cam", "cam", "--test-cam", "gradcampp",
                               "--faithfulness", "all", "--faithfulness-steps", "5", "--out", str(out),
                               "--format", "json", *TINY])
    assert res.exit_code == 0, res.output
    results = load_results(out)
    assert results["config"]["faithfulness"] == ["deletion-insertion", "confidence", "road"]
    stored = json.loads((out / "predictions" / "cam.json").read_text())
    labels = {r["image_id"]: r["label"] for r in stored["images"]}
    names = {"deletion": "deletion", "insertion": "insertion", "drop": "average_drop", "increase": "increase",
             "road": "road"}
    for cam in ("cam", "gradcampp"):
        per = stored["predictions"][cam]
        assert all((per[i]["faithfulness"] is None) == (labels[i] == 0) for i in per)  # masses only
        values = [p["faithfulness"] for p in per.values() if p["faithfulness"]]
        for key, metric in names.items():
            entry = results["detection"]["cam"][cam][metric]
            assert entry["value"] == pytest.approx(sum(v[key] for v in values) / len(values), abs=1e-6)
            assert entry["ci"][0] <= entry["value"] + 1e-9 and entry["value"] <= entry["ci"][1] + 1e-9
        assert all(0 <= v["deletion"] <= 1 and 0 <= v["insertion"] <= 1 and v["increase"] in (0, 1)
                   and math.isfinite(v["road"]) for v in values)
    js = json.loads(runner.invoke(main, ["leaderboard", str(out), "--metric", "deletion", "--format",
                                         "json"]).output)
    cells = {r["test_cam"]: r for r in js["detection"]}
    lower = min(cells, key=lambda c: cells[c]["value"])
    assert cells[lower]["best_in_row"]  # lower deletion is better
    plain = runner.invoke(main, ["leaderboard", str(out), "--metric", "average_drop"]).output
    assert "(lower is better) ↓" in plain
    # the default bench did not compute them: said, with the option that would
    none = runner.invoke(main, ["leaderboard", str(tiny_run), "--metric", "road"])
    assert none.exit_code != 0 and "--faithfulness road" in none.output


def test_pxap_from_the_synthetic_masks(tiny_run):
    from camkit.metrics.localization import pxap_from_histograms

    results = load_results(tiny_run)
    stored = json.loads((tiny_run / "predictions" / "xgradcam.json").read_text())
    for cam in ("cam", "gradcampp"):
        hists = [p["pxap_hist"] for p in stored["predictions"][cam].values() if p.get("pxap_hist")]
        positives = sum(1 for r in stored["images"] if r["gt"])
        assert len(hists) == positives  # every mass image, and only those
        h = np.asarray(hists, dtype=float)
        entry = results["detection"]["xgradcam"][cam]["pxap"]
        assert entry["value"] == pytest.approx(pxap_from_histograms(h[:, 0].sum(0), h[:, 1].sum(0)))
        assert entry["n_images"] == positives and entry["ci"][0] <= entry["value"] <= entry["ci"][1]
        # the lesion pixels counted are the masks' pixels on the maps' grid: a few per cent of the image
        assert 0 < h[:, 0].sum() < 0.2 * h.sum()


def test_rerun_resumes_without_training_again(tiny_run):
    before = load_results(tiny_run)
    res = CliRunner().invoke(main, ["bench", "--train-cam", "cam", "--train-cam", "xgradcam", *TEST_CAMS,
                                    "--out", str(tiny_run), "--format", "csv", *TINY])
    assert res.exit_code == 0, res.output
    after = load_results(tiny_run)
    assert after["detection"] == before["detection"]
    assert after["training"] == before["training"]
    header = res.output.splitlines()[0]
    assert header.startswith("table,train_cam,test_cam,metric,value")
    assert any(line.startswith("classification,cam,,auc,") for line in res.output.splitlines())


def test_changed_options_refuse_to_mix_into_an_existing_run(tiny_run):
    res = CliRunner().invoke(main, ["bench", "--train-cam", "cam", "--out", str(tiny_run), *TINY, "--seed", "3"])
    assert res.exit_code == 1 and "another configuration" in res.output


@pytest.fixture(scope="module")
def tiny_run_seed1(tiny_run) -> Path:
    out = tiny_run.parent / "run-seed1"
    res = CliRunner().invoke(main, ["bench", "--train-cam", "cam", "--train-cam", "xgradcam", *TEST_CAMS,
                                    "--out", str(out), "--format", "json", "--seed", "1", *TINY])
    assert res.exit_code == 0, res.output
    return out


@pytest.mark.parametrize("metric", ["tpr@1", "best", "cpm"])
def test_leaderboard_formats_keep_their_titles(tiny_run, metric):
    runner = CliRunner()
    md = runner.invoke(main, ["leaderboard", str(tiny_run), "--metric", metric, "--format", "markdown"])
    assert md.exit_code == 0, md.output
    assert "| train-cam | cam | gradcam | gradcampp | xgradcam | layercam |" in md.output
    assert md.output.count("**Detection: ") == 1 and md.output.count("**Classification ") == 1
    plain = runner.invoke(main, ["leaderboard", str(tiny_run), "--metric", metric, "--format", "plain"])
    assert plain.stdout.startswith("Detection: ") and "IoU > 0.3" in plain.stdout
    assert "\nClassification ↑ (positive when p >= 0.5" in plain.stdout


@pytest.mark.slow  # a second tiny bench (tiny_run_seed1)
def test_leaderboard_combines_seeds_with_a_t_interval(tiny_run, tiny_run_seed1):
    from camkit.bench.leaderboard import detection_table, load_runs

    js = json.loads(CliRunner().invoke(main, ["leaderboard", str(tiny_run), str(tiny_run_seed1), "--format",
                                              "json"]).output)
    assert js["runs"] == 2 and js["seeds"] == [0, 1] and "random-effects t interval" in js["interval"]
    assert sum(r["best_overall"] for r in js["detection"]) == 1 and all(r["runs"] == 2 for r in js["detection"])
    one = [detection_table(load_runs([d]))["cells"] for d in (tiny_run, tiny_run_seed1)]
    for r in js["detection"]:
        if r["test_cam"] == "finercam":  # not applicable to a one-class model: no value, and said why
            assert r["value"] is None and "single class" in r["not_applicable"]
            continue
        key = (r["train_cam"], r["test_cam"])
        values = [cells[key].value for cells in one]
        assert r["value"] == pytest.approx(sum(values) / 2)  # the mean of the seeds
        assert r["ci_low"] <= r["value"] <= r["ci_high"] and 0 <= r["ci_low"] and r["ci_high"] <= 1
        if r["sd"]:  # at least the t interval over the two runs (1 df), clipped to [0, 1]
            half = 12.7062 * r["sd"] / 2 ** 0.5
            assert r["ci_low"] <= max(0.0, r["value"] - half) + 1e-9
            assert r["ci_high"] >= min(1.0, r["value"] + half) - 1e-9
    assert {r["metric"] for r in js["classification"]} == {"accuracy", "auc", "tpr", "tnr"}


def test_leaderboard_refuses_runs_that_differ_beyond_the_seed(tiny_run, tmp_path):
    runner = CliRunner()
    same = runner.invoke(main, ["leaderboard", str(tiny_run), str(tiny_run)])
    assert same.exit_code == 1 and "the same seed appears twice" in same.output
    other = tmp_path / "other"
    other.mkdir()
    doc = load_results(tiny_run)
    doc["config"]["box_threshold"] = 0.3
    (other / "results.json").write_text(json.dumps(doc))
    mixed = runner.invoke(main, ["leaderboard", str(tiny_run), str(other)])
    assert mixed.exit_code == 1 and "differ in more than the seed (box_threshold: 0.5, 0.3)" in mixed.output
    grouped = runner.invoke(main, ["leaderboard", str(tiny_run), str(other), "--group", "--format", "plain"])
    assert grouped.exit_code == 0, grouped.output
    assert "configuration 1 of 2: box_threshold=0.5" in grouped.output
    assert "configuration 2 of 2: box_threshold=0.3" in grouped.output


def test_unknown_cam_is_refused_with_suggestion():
    res = CliRunner().invoke(main, ["bench", "--test-cam", "gradcamm"])
    assert res.exit_code == 1 and "Did you mean 'gradcam'" in res.output


@pytest.mark.slow  # trains with perturbation and full-backward train-cams
def test_perturbation_and_full_backward_train_cams_drive_a_bench(tmp_path):
    out = tmp_path / "run"
    res = CliRunner().invoke(main, ["bench", "--train-cam", "scorecam", "--train-cam", "fullgrad", "--test-cam",
                                    "gradcam", "--out", str(out), "--format", "json", *TINY])
    assert res.exit_code == 0, res.output
    results = load_results(out)
    assert results["status"] == "complete" and list(results["detection"]) == ["scorecam", "fullgrad"]
    for train_cam in ("scorecam", "fullgrad"):
        assert f"gmic-{train_cam}-" in results["training"][train_cam]["checkpoint"]
        assert 0.0 <= results["detection"][train_cam]["gradcam"]["tpr@1"]["value"] <= 1.0


def test_explain_one_png_with_a_bench_checkpoint(tiny_run, tmp_path):
    import numpy as np
    from PIL import Image

    h, w = 300, 190
    yy, xx = np.mgrid[0:h, 0:w]
    img = (20000 * ((xx < 150) & ((yy - 150) ** 2 < 140 ** 2 - (xx * 0.9) ** 2))).astype(np.uint16)
    img[100:130, 60:90] = 60000
    png = tmp_path / "one.png"
    Image.fromarray(img).save(png)
    checkpoint = tiny_run / load_results(tiny_run)["training"]["xgradcam"]["checkpoint"]
    fig = tmp_path / "fig.png"
    res = CliRunner().invoke(main, ["explain", str(png), "--checkpoint", str(checkpoint), "--cam", "gradcampp",
                                    "--cam", "layercam", "--out", str(fig), "--format", "json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output[: res.output.rindex("}") + 1])
    assert 0.0 <= data["probability"] <= 1.0 and set(data["boxes"]) == {"gradcampp", "layercam"}
    for b in data["boxes"].values():
        boxes = np.asarray(b["original_frame"]).reshape(-1, 4)
        assert (boxes[:, [0, 2]] <= w).all() and (boxes[:, [1, 3]] <= h).all() and (boxes >= 0).all()
    assert fig.stat().st_size > 1000


def test_explain_with_another_models_checkpoint_names_the_model_it_holds(tiny_run, tmp_path):
    """issue 29: `explain --model glam` with a GMIC checkpoint said "model 'glam' has no option 'attn_dim'"."""
    from PIL import Image

    png = tmp_path / "one.png"
    Image.new("I;16", (190, 300), 20000).save(png)
    checkpoint = tiny_run / load_results(tiny_run)["training"]["cam"]["checkpoint"]
    res = CliRunner().invoke(main, ["explain", str(png), "--checkpoint", str(checkpoint), "--model", "glam"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert (f"{checkpoint} holds a model 'gmic' (camkit_gmic.model.GMIC), not a 'glam' model: pass --model gmic"
            in res.output)


def test_cam_output_selects_the_explained_score(tmp_path):
    res = CliRunner().invoke(main, ["bench", "--train-cam", "cam", "--test-cam", "gradcam", "--cam-output",
                                    "y_fusion", "--out", str(tmp_path / "run"), "--format", "json", *TINY])
    assert res.exit_code == 0, res.output
    results = load_results(tmp_path / "run")
    assert results["config"]["cam_output"] == "y_fusion"
    assert "gradcam" in results["detection"]["cam"]


@pytest.mark.slow  # a bench per seed
def test_bench_seeds_trains_each_seed_and_prints_them_combined(tmp_path):
    out = tmp_path / "seeds"
    args = ["bench", "--seeds", "0,1", "--train-cam", "cam", "--test-cam", "cam", "--test-cam", "xgradcam",
            "--out", str(out), *TINY]
    res = CliRunner().invoke(main, [*args, "--format", "json"])
    assert res.exit_code == 0, res.output
    board = json.loads(res.output[: res.output.rindex("}") + 1])
    assert board["runs"] == 2 and board["seeds"] == [0, 1] and all(r["runs"] == 2 for r in board["detection"])
    for s in (0, 1):
        assert load_results(out / f"seed-{s}")["config"]["seed"] == s
    assert len(list((out / "models").glob("gmic-cam-*"))) == 2  # one model per seed, in one store
    again = CliRunner().invoke(main, ["leaderboard", str(out), "--format", "json"])  # the folder = its seeds
    assert json.loads(again.output)["detection"] == board["detection"]
    both = CliRunner().invoke(main, [*args, "--seed", "3"])
    assert both.exit_code == 1 and "either --seed or --seeds" in both.output


def test_a_model_that_classifies_but_does_not_localise_is_named():
    from camkit.bench.cell import localisation_warning

    det = {"cam": {"tpr@1": {"value": 0.05}}, "gradcam": {"tpr@1": {"value": 0.12}}}
    msg = localisation_warning("xgradcam", det, {"auc": {"value": 0.93}})
    assert "train-cam 'xgradcam'" in msg and "AUC 0.93" in msg and "0.12" in msg and "docs/training.md" in msg
    assert localisation_warning("cam", det, {"auc": {"value": 0.6}}) is None
    assert localisation_warning("cam", {"cam": {"tpr@1": {"value": 0.5}}}, {"auc": {"value": 0.9}}) is None


def test_cam_options_reach_the_method_and_bad_ones_stop_before_training(tmp_path):
    bad = CliRunner().invoke(main, ["bench", "--test-cam", "fem", "--cam-opt", "fem.kk=3"])
    assert bad.exit_code == 1 and "has no option 'kk'" in bad.output and "Did you mean 'k'" in bad.output
    stray = CliRunner().invoke(main, ["bench", "--test-cam", "fem", "--cam-opt", "scorecam.chunk=8"])
    assert stray.exit_code == 1 and "neither a test-cam" in stray.output and "nor a train-cam" in stray.output
    res = CliRunner().invoke(main, ["bench", "--train-cam", "cam", "--test-cam", "fem", "--test-cam", "eigencam",
                                    "--cam-opt", "fem.k=1", "--out", str(tmp_path / "run"), "--format", "json",
                                    *TINY])
    assert res.exit_code == 0, res.output
    results = load_results(tmp_path / "run")
    assert results["config"]["cam_options"] == {"fem": {"k": 1}}
    assert set(results["detection"]["cam"]) == {"fem", "eigencam"}


@pytest.mark.slow  # trains with a fem train-cam
def test_cam_options_reach_a_train_cam_and_its_stored_model(tmp_path):
    """--cam-opt NAME.KEY=V also configures NAME as a train-cam: the model trained with it records the options
    (so the model store keeps it apart from the default's), and a bad one stops before anything is trained."""
    from camkit.storage.checkpoint import read_checkpoint

    bad = CliRunner().invoke(main, ["bench", "--train-cam", "fem", "--test-cam", "cam", "--cam-opt", "fem.kk=1",
                                    "--out", str(tmp_path / "bad"), *TINY])
    assert bad.exit_code == 1 and "has no option 'kk'" in bad.output and not (tmp_path / "bad").exists()
    res = CliRunner().invoke(main, ["bench", "--train-cam", "fem", "--test-cam", "cam", "--cam-opt", "fem.k=1",
                                    "--out", str(tmp_path / "run"), "--models", str(tmp_path / "models"),
                                    "--format", "json", *TINY])
    assert res.exit_code == 0, res.output
    (folder,) = (tmp_path / "models").glob("gmic-fem-*")
    assert read_checkpoint(folder / "best.pt")["model_config"]["train_cam_options"] == {"k": 1}
    assert set(load_results(tmp_path / "run")["detection"]["fem"]) == {"cam"}


@pytest.mark.slow  # a second tiny bench (tiny_run_seed1)
def test_a_metric_added_through_one_table_entry_reaches_the_leaderboard_the_choices_and_the_report(
        tiny_run, tiny_run_seed1, tmp_path):
    """A new metric = its function in camkit.metrics (here the FROC's TPR at 4 FPPI) + one entry of the metric
    table: it is a --metric choice, a leaderboard column of runs benched before it existed (scored from their
    stored predictions, one run or two seeds combined), a row of `camkit list metrics` and an option of the
    report's metric menu; unregistered, it is gone again."""
    from camkit.bench import metric_table
    from camkit.bench.metric_table import MetricSpec
    from camkit.bench.scoring import as_predictions, ground_truth
    from camkit.metrics import froc
    from camkit.ui.report import write_report

    runner = CliRunner()
    spec = MetricSpec("tpr@4", "TPR at <= 4 false positives per image", "detection", "froc", "boxes",
                      needs=frozenset({"boxes"}), bounds=(0.0, 1.0))
    metric_table.register(spec)
    try:
        for command in ("bench", "leaderboard"):
            assert "tpr@4" in runner.invoke(main, [command, "--help"]).output, command
        res = runner.invoke(main, ["leaderboard", str(tiny_run), "--metric", "tpr@4", "--format", "json"])
        assert res.exit_code == 0, res.output
        cells = {(r["row"], r["test_cam"]): r for r in json.loads(res.stdout)["detection"]
                 if r["not_applicable"] is None}
        stored = json.loads((tiny_run / "predictions" / "cam.json").read_text())
        gt, _ = ground_truth(stored["images"])
        curve = froc(as_predictions(stored["predictions"]["gradcampp"]), gt, iou_threshold=0.3, images="positive")
        got = cells[("cam", "gradcampp")]
        assert got["value"] == pytest.approx(curve.metric("tpr@4"))
        assert 0.0 <= got["ci_low"] <= got["value"] <= got["ci_high"] <= 1.0
        plain = runner.invoke(main, ["leaderboard", str(tiny_run), "--metric", "tpr@4", "--format", "plain"]).stdout
        assert plain.startswith("Detection: TPR at <= 4 false positives per image ↑ (rows: train-cam")
        assert "IoU > 0.3" in plain  # the detection family's rule text
        both = runner.invoke(main, ["leaderboard", str(tiny_run), str(tiny_run_seed1), "--metric", "tpr@4",
                                    "--format", "json"])
        assert both.exit_code == 0, both.output
        r = next(r for r in json.loads(both.stdout)["detection"] if r["test_cam"] == "gradcampp")
        assert r["runs"] == 2 and 0.0 <= r["ci_low"] <= r["value"] <= r["ci_high"] <= 1.0
        listed = json.loads(runner.invoke(main, ["list", "metrics", "tpr@*", "--format", "json"]).stdout)
        assert [m["name"] for m in listed] == ["tpr@0.5", "tpr@1", "tpr@2", "tpr@4"]
        assert listed[-1]["bootstrap"] == "froc" and listed[-1]["bounds"] == [0.0, 1.0]
        page = write_report([tiny_run], tmp_path / "report", redraw=False).read_text()
        assert '<option value="tpr@4">tpr@4: TPR at <= 4 false positives per image</option>' in page.replace(
            "&lt;", "<")
    finally:
        metric_table.unregister("tpr@4")
    assert "tpr@4" not in runner.invoke(main, ["leaderboard", "--help"]).output
    assert "tpr@4" not in metric_table.names()
