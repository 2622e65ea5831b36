"""``camkit train`` on a toy model and dataset registered in-process (and on gmic + synthetic when present)."""
from __future__ import annotations

import json
import os

import pytest
import torch
from click.testing import CliRunner
from train_toy import ToyMasses, ToyNet

from camkit import hookimpl
from camkit.storage.checkpoint import read_checkpoint
from camkit.cli import main


class ToyTrainPlugin:
    @hookimpl
    def register_models(self, register):
        def create_toy(seed: int = 1, lr: float = 0.02, train_cam: str = "cam"):
            model = ToyNet(seed=seed, lr=lr)
            model.config["train_cam"] = train_cam
            return model

        register("toytrain", create_toy, description="toy model for the training-loop tests")

    @hookimpl
    def register_datasets(self, register):
        def create_toy_data(split: str = "train", size=(16, 16), seed: int = 0, n: int = 32, n_val: int = 16):
            assert list(size) == [16, 16], size  # the CLI passes the model's input size
            return ToyMasses(n if split == "train" else n_val, seed=seed + (split != "train"))

        register("toytrain", create_toy_data, description="toy 16x16 images")


@pytest.fixture
def toy(fresh_plugins):
    fresh_plugins.get_host().register(ToyTrainPlugin(), name="toytrain")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def run(*args: str):
    return CliRunner().invoke(main, ["train", "--model", "toytrain", "--dataset", "toytrain", "--device", "cpu",
                                     *args], catch_exceptions=False)


def test_train_writes_checkpoints_and_table_then_reuses(toy, tmp_path):
    out = tmp_path / "run"
    res = run("--epochs", "2", "--batch-size", "8", "--train-cam", "gradcam", "--out", str(out), "--format", "json")
    assert res.exit_code == 0, res.output + res.stderr
    rows = json.loads(res.stdout)
    assert [r["epoch"] for r in rows] == [1, 2] and all(0.0 <= r["val_auc"] <= 1.0 for r in rows)
    assert "epoch 2/2" in res.stderr and "complete; best:" in res.stderr
    ckpt = read_checkpoint(out / "last.pt")
    assert ckpt["model_config"]["train_cam"] == "gradcam" and ckpt["step"] == 8
    assert (out / "best.pt").is_file()

    again = run("--epochs", "2", "--batch-size", "8", "--train-cam", "gradcam", "--out", str(out), "--format", "json")
    assert again.exit_code == 0 and "reused a complete checkpoint" in again.stderr
    assert json.loads(again.stdout) == rows

    other = run("--epochs", "2", "--batch-size", "8", "--lr", "0.5", "--out", str(out), "--quiet")
    assert other.exit_code != 0 and "different configuration" in other.output + other.stderr
    fresh = run("--epochs", "1", "--batch-size", "8", "--lr", "0.5", "--out", str(out), "--no-resume", "--quiet",
                "--format", "csv")
    assert fresh.exit_code == 0 and fresh.stderr == "" and fresh.stdout.startswith("epoch,step,loss")


def test_init_checkpoint_is_loaded_weights_only(toy, tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"x": Evil()}, tmp_path / "evil.pt")
    res = run("--epochs", "1", "--batch-size", "8", "--checkpoint", str(tmp_path / "evil.pt"), "--out",
              str(tmp_path / "r"))
    assert res.exit_code == 1 and "refusing to load" in res.stderr and "evil.pt" in res.stderr
    torch.save(ToyNet(seed=4).state_dict(), tmp_path / "init.pt")
    res = run("--epochs", "1", "--batch-size", "8", "--max-steps", "1", "--checkpoint", str(tmp_path / "init.pt"),
              "--no-augment", "--out", str(tmp_path / "r"), "--quiet")
    assert res.exit_code == 0, res.stderr
    assert "stopped after step 1" not in res.stderr  # --quiet
    trained = read_checkpoint(tmp_path / "r" / "last.pt")["model"]["head.weight"]
    from_init = (trained - ToyNet(seed=4).head.weight.detach()).abs().max()
    from_default = (trained - ToyNet(seed=1).head.weight.detach()).abs().max()
    assert from_init <= 0.021 < from_default  # one Adam step (lr 0.02) away from the given weights


def test_missing_dataset_is_a_usage_error(toy):
    res = CliRunner().invoke(main, ["train", "--model", "toytrain"])
    assert res.exit_code == 1 and "no dataset: pass --dataset NAME" in res.output + res.stderr


def test_gmic_on_synthetic_smoke(tmp_path):
    import camkit

    if not {"gmic"} <= set(camkit.list_models()) or "synthetic" not in camkit.list_datasets():
        pytest.skip("the gmic model or the synthetic dataset plugin is not installed")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        res = CliRunner().invoke(main, ["train", "--preset", "cpu", "--train-cam", "gradcampp", "--epochs", "1",
                                        "--batch-size", "2", "--dataset-opt", "n=4", "--device", "cpu",
                                        "--out", str(tmp_path / "g"), "--format", "json"], catch_exceptions=False)
    finally:
        torch.set_num_threads(n)
    assert res.exit_code == 0, res.stderr
    ckpt = read_checkpoint(tmp_path / "g" / "last.pt")
    assert ckpt["model_config"]["train_cam"] == "gradcampp" and ckpt["step"] == 2
    assert len(json.loads(res.stdout)) == 1


def test_an_empty_validation_split_is_said_and_skipped(toy, tmp_path):
    res = run("--epochs", "2", "--batch-size", "8", "--dataset-opt", "n_val=0", "--out", str(tmp_path / "r"),
              "--format", "json")
    assert res.exit_code == 0, res.output + res.stderr
    assert "the validation split is empty: validation is skipped" in res.stderr
    rows = json.loads(res.stdout)
    assert [r["epoch"] for r in rows] == [1, 2] and all(r["val_auc"] is None for r in rows)
    assert read_checkpoint(tmp_path / "r" / "best.pt")["epoch"] == 2  # best.pt holds the final weights


def test_train_preset_trains_what_bench_trains_and_bench_reuses_it(tmp_path):
    from camkit.bench.results import load_results

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    small = ["--epochs", "1", "--batch-size", "8", "--dataset-opt", "n=24", "--model-opt", "num_crops=1"]
    try:
        res = CliRunner().invoke(main, ["train", "--preset", "cpu", "--train-cam", "xgradcam", "--models",
                                        str(tmp_path / "models"), "--quiet", "--format", "json", *small])
        assert res.exit_code == 0, res.output
        trained = list((tmp_path / "models").glob("gmic-xgradcam-*/best.pt"))
        assert len(trained) == 1
        res = CliRunner().invoke(main, ["bench", "--train-cam", "xgradcam", "--test-cam", "cam", "--out",
                                        str(tmp_path / "bench"), "--bootstrap", "20", "--quiet", "--format", "json",
                                        *small])
        assert res.exit_code == 0, res.output
    finally:
        torch.set_num_threads(n)
    training = load_results(tmp_path / "bench")["training"]["xgradcam"]
    assert training["reused"] is True
    assert (tmp_path / "bench" / training["checkpoint"]).resolve() == trained[0].resolve()


def test_train_paper_preset_on_synthetic_data_drops_the_vindr_options(tmp_path):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        res = CliRunner().invoke(main, ["train", "--preset", "paper", "--dataset", "synthetic", "--model-opt",
                                        "input_size=[512,320]", "--batch-size", "2", "--max-steps", "1",
                                        "--dataset-opt", "n=4", "--val-split", "none", "--device", "cpu",
                                        "--out", str(tmp_path / "p"), "--quiet", "--format", "json"])
    finally:
        torch.set_num_threads(n)
    assert res.exit_code == 0, res.output
    ckpt = read_checkpoint(tmp_path / "p" / "last.pt")
    assert ckpt["step"] == 1 and ckpt["model_config"]["preset"] == "official"
    assert ckpt["config"]["lr"] == 4.134e-6 and ckpt["fingerprint"]["train_set"]["config"]["name"] == "synthetic"


def test_cam_opt_configures_the_train_cam_and_nothing_else(tmp_path):
    base = ["train", "--preset", "cpu", "--train-cam", "fem", "--epochs", "1", "--max-steps", "1",
            "--dataset-opt", "n=8", "--batch-size", "4", "--val-split", "none", "--quiet"]
    stray = CliRunner().invoke(main, [*base, "--cam-opt", "gradcam.k=1"])
    assert stray.exit_code == 1 and "takes options for its --train-cam only (fem)" in stray.output
    bad = CliRunner().invoke(main, [*base, "--cam-opt", "fem.kk=1"])
    assert bad.exit_code == 1 and "has no option 'kk'" in bad.output
    ok = CliRunner().invoke(main, [*base, "--cam-opt", "fem.k=1", "--out", str(tmp_path / "run")])
    assert ok.exit_code == 0, ok.output
    ckpt = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert ckpt["model_config"]["train_cam_options"] == {"k": 1}
