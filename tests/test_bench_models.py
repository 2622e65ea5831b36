"""Benches of other models than GMIC, and of several models in one matrix (issue 12): rows, labels, options."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from camkit.bench.config import BenchConfig, Row
from camkit.bench.recipe import resolve_recipe
from camkit.bench.results import load_results
from camkit.cli import main
from camkit.errors import CamkitError, OptionError

TINY = ["--epochs", "1", "--batch-size", "8", "--dataset-opt", "n=24", "--bootstrap", "40", "--quiet"]


def test_one_gmic_keeps_the_one_model_form_and_its_train_cam_rows():
    cfg = BenchConfig().resolved()
    assert cfg.model == "gmic" and cfg.train_cams == ["cam", "gradcampp", "xgradcam"]
    assert cfg.model_options == {"preset": "cpu", "num_classes": 1}  # no prefixes: old configurations hash equal
    assert [r.label for r in cfg.rows()] == ["cam", "gradcampp", "xgradcam"]
    assert cfg.rows()[0] == Row("cam", "gmic", "cam") and cfg.rows()[0].title == "trained with cam"


def test_a_model_without_a_train_cam_axis_is_one_row():
    cfg = BenchConfig(model="classifier").resolved()
    assert cfg.train_cams == [] and cfg.rows() == [Row("classifier", "classifier", None)]
    # the recipe preset maps onto the classifier's own preset of the same name
    assert cfg.model_options == {"preset": "cpu"}
    with pytest.raises(OptionError, match="no train-cam to choose"):
        BenchConfig(model="classifier", train_cams=["xgradcam"]).resolved()


def test_recipe_presets_map_to_a_model_preset_of_the_same_name_only():
    assert resolve_recipe("cpu", model="classifier").model_options == {"preset": "cpu"}
    assert resolve_recipe("paper", model="classifier").model_options == {}  # it has no "paper" preset
    assert resolve_recipe("paper").model_options == {"preset": "official", "num_classes": 1}


def test_mixed_models_label_rows_and_route_prefixed_options():
    cfg = BenchConfig(model=["gmic", "classifier"], train_cams=["cam", "xgradcam"],
                      model_options={"classifier.pooling": "max", "gmic.num_crops": 1}).resolved()
    assert [(r.label, r.model, r.train_cam) for r in cfg.rows()] == [
        ("gmic+cam", "gmic", "cam"), ("gmic+xgradcam", "gmic", "xgradcam"), ("classifier", "classifier", None)]
    assert cfg.recipe("classifier").model_options == {"preset": "cpu", "pooling": "max"}
    assert cfg.recipe("gmic").model_options == {"preset": "cpu", "num_classes": 1, "num_crops": 1}
    assert cfg.rows()[1].title == "gmic trained with xgradcam"
    # the resolved form stores each model's options under its prefix, and resolves to itself
    assert cfg.model_options["classifier.pooling"] == "max" and cfg.model_options["gmic.preset"] == "cpu"
    assert cfg.resolved().to_dict() == cfg.to_dict()


@pytest.mark.parametrize("kwargs, match", [
    ({"model": ["gmic", "gmic"]}, "given twice"),
    ({"model": "gmic", "model_options": {"classifier.pooling": "max"}}, "not in this bench"),
    ({"model": ["gmic", "classifier"], "model_options": {"classifier.pooling": "median"}}, "pooling must be"),
])
def test_bad_model_lists_and_options_are_named(kwargs, match, tmp_path):
    from camkit.bench.runner import run_bench

    with pytest.raises(CamkitError, match=match):
        run_bench(BenchConfig(**kwargs, train_cams=["cam"], bootstrap=5), tmp_path / "run")
    assert not (tmp_path / "run" / "results.json").exists()  # refused before anything was written


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("mixed") / "run"
    res = CliRunner().invoke(main, ["bench", "--model", "gmic", "--model", "classifier", "--train-cam", "cam",
                                    "--test-cam", "cam", "--test-cam", "gradcampp", "--model-opt",
                                    "gmic.num_crops=1", "--out", str(out), "--format", "json", *TINY])
    assert res.exit_code == 0, res.output
    return out, res.stdout


@pytest.mark.slow  # mixed_run: a bench of two models
def test_mixed_matrix_has_a_row_per_model_and_train_cam(mixed_run):
    out, stdout = mixed_run
    results = load_results(out)
    assert results["status"] == "complete"
    assert list(results["detection"]) == ["gmic+cam", "classifier"]
    assert results["rows"]["classifier"] == {"model": "classifier", "train_cam": None}
    for label in ("gmic+cam", "classifier"):
        assert (out / "predictions" / f"{label}.json").is_file()
        assert (out / "figures" / f"overlay-{label}.png").stat().st_size > 1000
        assert 0.0 <= results["detection"][label]["cam"]["tpr@1"]["value"] <= 1.0
    # every row is compared with the released GMIC's own pairing, on the same resamples
    sig = results["significance"]["tpr@1"]
    assert sig["baseline"] == ["gmic+cam", "cam"]
    assert ("classifier", "gradcampp") in {(c["row"], c["test_cam"]) for c in sig["cells"]}
    # the classifier's stored model is named by its model alone; GMIC's by its train-cam too
    store = sorted(p.name.rsplit("-", 1)[0] for p in (out.parent / "models").iterdir())
    assert store == ["classifier", "gmic-cam"]
    printed = json.loads(stdout)
    rec = {(r["row"], r["test_cam"]): r for r in printed["detection"]}
    assert rec[("classifier", "cam")]["model"] == "classifier" and rec[("classifier", "cam")]["train_cam"] is None
    assert rec[("gmic+cam", "cam")]["train_cam"] == "cam"
    assert {r["row"] for r in printed["classification"]} == {"gmic+cam", "classifier"}


@pytest.mark.slow  # mixed_run: a bench of two models
def test_mixed_matrix_prints_rows_by_model_and_resumes(mixed_run):
    out, _ = mixed_run
    res = CliRunner().invoke(main, ["leaderboard", str(out), "--format", "markdown"])
    assert res.exit_code == 0, res.output
    assert "| model+train-cam" in res.output and "| classifier" in res.output
    before = load_results(out)["training"]
    res = CliRunner().invoke(main, ["bench", "--model", "gmic", "--model", "classifier", "--train-cam", "cam",
                                    "--test-cam", "cam", "--test-cam", "gradcampp", "--model-opt",
                                    "gmic.num_crops=1", "--out", str(out), "--format", "csv", *TINY])
    assert res.exit_code == 0, res.output
    assert load_results(out)["training"] == before  # nothing retrained
    # the columns of one-model benches come first, in their old order; the row and its model last
    assert res.stdout.splitlines()[0] == ("table,train_cam,test_cam,metric,value,ci_low,ci_high,fppi,sd,runs,"
                                          "best_in_row,best_overall,not_applicable,row,model,baseline,"
                                          "difference,p_value,p_holm,significant")


@pytest.mark.slow  # a GLAM bench
def test_glam_bench_rows_by_train_cam_and_its_full_resolution_map(tmp_path):
    out = tmp_path / "glam"
    res = CliRunner().invoke(main, ["bench", "--model", "glam", "--train-cam", "cam", "--train-cam", "xgradcam",
                                    "--test-cam", "cam", "--test-cam", "gradcampp", "--out", str(out), *TINY])
    assert res.exit_code == 0, res.output
    results = load_results(out)
    assert list(results["detection"]) == ["cam", "xgradcam"]
    assert results["rows"]["xgradcam"] == {"model": "glam", "train_cam": "xgradcam"}
    assert results["significance"]["tpr@1"]["baseline"] == ["cam", "cam"]
    store = sorted(p.name.rsplit("-", 1)[0] for p in (tmp_path / "models").iterdir())
    assert store == ["glam-cam", "glam-xgradcam"]


def test_cam_reads_glams_full_resolution_map():
    import torch

    import camkit

    model = camkit.create_model("glam", preset="cpu").eval()
    x = torch.randn(2, 1, 256, 160)
    maps = camkit.cam_maps(model, x, ["cam"])
    with torch.no_grad():
        native = model(x)["saliency"][:, 0]
    lo = native.flatten(1).amin(1)[:, None, None]
    hi = native.flatten(1).amax(1)[:, None, None]
    # CAM on GLAM is its own map at the input's resolution (min-max normalised), not a coarse layer's
    torch.testing.assert_close(maps["cam"].float(), ((native - lo) / (hi - lo)).float(), atol=1e-5, rtol=0)


def test_list_models_shows_every_model_with_its_presets_and_options():
    res = CliRunner().invoke(main, ["list", "models", "--format", "json"])
    assert res.exit_code == 0, res.output
    rows = {r["name"]: r for r in json.loads(res.stdout)}
    assert set(rows) >= {"gmic", "glam", "classifier"}
    assert rows["glam"]["presets"] == "official, cpu" and "patch_size" in rows["glam"]["options"].split(", ")
    assert "pooling" in rows["classifier"]["options"].split(", ")
    assert "train_cam" not in rows["gmic"]["options"].split(", ")  # the bench's axis, not a model option
