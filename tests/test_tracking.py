"""--log tensorboard / mlflow: what a tiny bench and a tiny train wrote, read back through each tracker's own
reader (TensorBoard's EventAccumulator, MLflow's client)."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from camkit.cli.app import main
from camkit.errors import OptionError
from camkit.training.progress import Tee
from camkit.training.tracking import check_backend

pytest.importorskip("tensorboard", reason="pip install 'camkit[tracking]' for the tracker tests")
pytest.importorskip("mlflow", reason="pip install 'camkit[tracking]' for the tracker tests")

BENCH = ["bench", "--epochs", "2", "--batch-size", "8", "--dataset-opt", "n=16", "--train-cam", "cam",
         "--test-cam", "cam", "--test-cam", "gradcampp", "--quiet", "--format", "json"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    import os

    out = tmp_path_factory.mktemp("bench") / "run"
    here = tmp_path_factory.mktemp("cwd")
    old = os.getcwd()
    os.chdir(here)  # nothing may land in the working folder (MLflow's default artifact root is ./mlruns)
    try:
        res = CliRunner().invoke(main, BENCH + ["--out", str(out), "--log", "tensorboard", "--log", "mlflow"])
    finally:
        os.chdir(old)
    assert not any(here.iterdir()), list(here.iterdir())
    assert res.exit_code == 0, res.output
    return out, json.loads((out / "results.json").read_text())


def test_tensorboard_events(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, results = run
    ea = EventAccumulator(str(out / "tensorboard" / "cam"), size_guidance={"scalars": 0, "images": 0})
    ea.Reload()
    scalars = set(ea.Tags()["scalars"])
    assert {"train/loss", "train/lr", "train/images_per_s", "train/bce_global", "epoch/loss"} <= scalars
    steps = 2 * (16 // 8)  # epochs x steps per epoch
    assert [e.step for e in ea.Scalars("train/loss")] == list(range(1, steps + 1))
    assert [e.step for e in ea.Scalars("epoch/loss")] == [1, 2]
    assert len(ea.Tags()["images"]) >= 1 and len(ea.Images(ea.Tags()["images"][0])) == 2  # one per epoch
    tpr = results["detection"]["cam"]["gradcampp"]["tpr@1"]["value"]
    assert ea.Scalars("result/gradcampp/tpr@1")[0].value == pytest.approx(tpr, abs=1e-6)
    auc = results["classification"]["cam"]["auc"]["value"]
    assert ea.Scalars("result/classification/auc")[0].value == pytest.approx(auc, abs=1e-6)


def test_mlflow_run(run):
    from mlflow.tracking import MlflowClient

    out, results = run
    client = MlflowClient(f"sqlite:///{out.resolve() / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("camkit-bench")
    (found,) = client.search_runs([experiment.experiment_id])
    assert found.info.run_name == "cam" and found.info.status == "FINISHED"
    assert found.data.tags["config_hash"] == results["config_hash"] and found.data.tags["train_cam"] == "cam"
    assert len(client.get_metric_history(found.info.run_id, "train/loss")) == 4
    assert [m.step for m in client.get_metric_history(found.info.run_id, "epoch/loss")] == [1, 2]
    tpr = results["detection"]["cam"]["cam"]["tpr@1"]["value"]
    assert found.data.metrics["result/cam/tpr_at_1"] == pytest.approx(tpr, abs=1e-6)
    assert any((out / "mlartifacts").rglob("*.png"))                      # the overlays, beside the store


@pytest.mark.slow  # trains
def test_train_logs_too(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    res = CliRunner().invoke(main, ["train", "--preset", "cpu", "--epochs", "1", "--batch-size", "8", "--dataset-opt",
                                    "n=16", "--train-cam", "cam", "--out", str(tmp_path / "m"), "--quiet",
                                    "--log", "tensorboard"])
    assert res.exit_code == 0, res.output
    ea = EventAccumulator(str(tmp_path / "m" / "tensorboard" / "cam"))
    ea.Reload()
    assert len(ea.Scalars("train/loss")) == 2


def test_tee_and_backend_checks():
    seen = []

    class A:
        def on_step(self, *args):
            seen.append(("a", args))

    class B:
        def on_step(self, *args):
            seen.append(("b", args))

        def on_message(self, text):
            seen.append(("b", text))

    tee = Tee(A(), None, B())
    tee.on_step(1, 2)
    tee.on_message("hi")
    assert seen == [("a", (1, 2)), ("b", (1, 2)), ("b", "hi")]
    assert not hasattr(tee, "on_epoch_model")   # the loop skips what no sink wants
    with pytest.raises(OptionError, match="choose one of tensorboard, mlflow"):
        check_backend("wandb")


@pytest.mark.slow  # a bench
def test_a_bench_that_fails_mid_row_ends_its_mlflow_run_failed(tmp_path, monkeypatch):
    """The row's run does not stay RUNNING when the evaluation after its training raises."""
    from mlflow.tracking import MlflowClient

    import camkit.bench.evaluate as evaluate

    def broken(*args, **kwargs):
        raise RuntimeError("evaluation broke")

    monkeypatch.setattr(evaluate, "evaluate_pairings", broken)  # the cell imports it when it evaluates
    out = tmp_path / "run"
    res = CliRunner().invoke(main, BENCH[:2] + ["1"] + BENCH[3:] + ["--out", str(out), "--log", "mlflow",
                                                                  "--log-uri", f"sqlite:///{tmp_path / 'ml.db'}"])
    assert res.exit_code != 0 and "evaluation broke" in str(res.exception or res.output)
    client = MlflowClient(f"sqlite:///{tmp_path / 'ml.db'}")
    (found,) = client.search_runs([client.get_experiment_by_name("camkit-bench").experiment_id])
    assert found.info.status == "FAILED"
    assert json.loads((out / "results.json").read_text())["status"] == "failed"
