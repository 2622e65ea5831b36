"""camkit distill: pseudo-boxes from hand-worked maps, their quality, the detector adapter, bad input before
training, and a tiny end-to-end run whose three rows are scored by the bench's engine."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from camkit.cli import main
from camkit.distill.pseudo import (PseudoBoxDataset, PseudoSettings, pseudo_quality, select, targets_digest,
                                   to_model_frame)
from camkit.inference import LocalizeOptions


def test_boxes_in_map_pixels_scale_to_the_model_frame():
    assert to_model_frame([[1, 2, 3, 4]], (10, 8), (20, 16)).tolist() == [[2, 4, 6, 8]]


def test_pseudo_boxes_from_a_hand_worked_map():
    """A 10x8 map with one bright block (rows 2-4, columns 3-6) on a mass image, the same on a normal image, and
    a faint block on a second mass image: the block's box, scaled to the 20x16 model frame, is the first image's
    target; the normal image gets none; the faint one is left out under min_score."""
    maps = torch.zeros(3, 10, 8)
    maps[0, 2:5, 3:7] = 1.0
    maps[1, 2:5, 3:7] = 1.0
    maps[2, 2:5, 3:7] = 1.0
    probs = np.array([0.9, 0.9, 0.2])
    found = LocalizeOptions(cams=("x",), box_threshold=0.5, box_score="peak_x_prob").cut("x", maps, probs)
    assert found[0][0].tolist() == [[3, 2, 7, 5]]  # continuous pixel coordinates: columns 3..6, rows 2..4
    chosen = select(found, [1, 0, 1], PseudoSettings("x", min_score=0.5), (10, 8), (20, 16))
    assert chosen[0]["boxes"].tolist() == [[6, 4, 14, 10]] and chosen[0]["scores"].tolist() == [0.9]
    assert chosen[1]["boxes"].shape == (0, 4)  # a normal image: an empty target, kept
    assert chosen[2] is None  # its best box scores 0.2 x 1.0 < 0.5: left out


def test_several_boxes_per_image_keeps_the_best_first():
    found = [(np.array([[0, 0, 2, 2], [4, 4, 6, 6], [1, 1, 3, 3]]), np.array([0.9, 0.5, 0.2]))]
    one = select(found, [1], PseudoSettings("x"), (8, 8), (8, 8))[0]
    two = select(found, [1], PseudoSettings("x", max_boxes=2), (8, 8), (8, 8))[0]
    assert one["boxes"].tolist() == [[0, 0, 2, 2]] and two["boxes"].tolist() == [[0, 0, 2, 2], [4, 4, 6, 6]]


def test_pseudo_box_quality_by_hand():
    truth = {"a": np.array([[0, 0, 10, 10]]), "b": np.array([[20, 20, 30, 30]]), "n": np.zeros((0, 4)),
             "c": np.array([[0, 0, 4, 4]])}
    targets = {"a": {"boxes": [[0, 0, 10, 10]]},  # best box right: a CorLoc hit
               "b": {"boxes": [[0, 0, 5, 5], [20, 20, 30, 30]]},  # best box wrong, the second finds the lesion
               "n": {"boxes": []}, "c": None}  # c left out: a miss
    q = pseudo_quality(targets, truth)
    assert q["corloc"] == pytest.approx(1 / 3) and q["recall"] == pytest.approx(2 / 3)
    assert q["precision"] == pytest.approx(2 / 3) and q["left_out"] == 1 and q["n_images"] == 3


def test_the_pseudo_box_dataset_replaces_boxes_and_leaves_out_uncertain_images():
    from train_toy import ToyMasses

    base = ToyMasses(n=6)
    targets = {f"toy{i}": {"boxes": np.zeros((0, 4))} for i in range(0, 6, 2)}
    targets.update({"toy1": {"boxes": [[1, 1, 5, 5]]}, "toy3": None, "toy5": {"boxes": [[2, 2, 6, 6]]}})
    data = PseudoBoxDataset(base, targets, {"teacher": "abc"})
    assert data.image_ids() == ["toy0", "toy1", "toy2", "toy4", "toy5"] and data.labels() == [0, 1, 0, 0, 1]
    assert data[1]["boxes"].tolist() == [[1, 1, 5, 5]] and data[1]["image_id"] == "toy1"
    moved = dict(targets, toy1={"boxes": [[1, 1, 5, 6]]})
    assert targets_digest(moved) != targets_digest(targets)  # other boxes: another training fingerprint
    assert data.config["pseudo_boxes"]["digest"] == targets_digest(targets)


class _Stub(torch.nn.Module):
    """A detector that finds one box whose score is a learnable constant."""

    input_size = (16, 16)
    config = {"stub": 1}

    def __init__(self):
        super().__init__()
        self.logit = torch.nn.Parameter(torch.zeros(()))
        self.seen = []

    def detection_loss(self, images, targets):
        self.seen.append([len(t["boxes"]) for t in targets])
        return (self.logit - 1.0) ** 2, {"stub": 0.0}

    def detect(self, images):
        score = torch.sigmoid(self.logit)
        return [(torch.tensor([[1.0, 1.0, 5.0, 5.0]]), score.reshape(1)) for _ in range(images.shape[0])]


def test_the_adapter_puts_a_detector_behind_the_model_contract():
    from camkit.distill.adapter import DetectorModel
    from camkit.protocols import require_model

    model = DetectorModel("stub", _Stub())
    require_model(model, "test")
    out = model(torch.zeros(2, 1, 16, 16))
    assert torch.allclose(model.predict(out), torch.full((2,), 0.5)) and model.config == {"detector": "stub", "stub": 1}
    model.training_loss(torch.zeros(2, 1, 16, 16), torch.tensor([1, 0]), 0.0,
                        [torch.tensor([[1.0, 1, 4, 4]]), torch.zeros(0, 4)])
    assert model.detector.seen == [[1, 0]]


class _Finder(_Stub):
    """Finds, on image k of a batch, the boxes ``plan[image_id]`` (scores 0.9, 0.4 ...), or none."""

    def __init__(self, plan):
        super().__init__()
        self.plan = plan
        self.ids = []

    def detect(self, images):
        out = []
        for _ in range(images.shape[0]):
            boxes = self.plan.get(self.ids.pop(0), [])
            out.append((torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                        torch.tensor([0.9, 0.4, 0.1][:len(boxes)])))
        return out


def test_a_self_training_round_relabels_masses_with_the_detector_s_boxes():
    """Hand-worked: toy1's detector boxes replace its teacher box (the best max_boxes of them, whatever their
    score); toy3, where the detector finds nothing, keeps its teacher box; toy5, left out by the teacher, stays
    out; the normals stay empty even where the detector fires (toy0)."""
    from train_toy import ToyMasses

    from camkit.distill.adapter import DetectorModel
    from camkit.distill.pseudo import relabel

    base = ToyMasses(n=6)
    plan = {"toy0": [[0, 0, 3, 3]], "toy1": [[2, 2, 8, 8], [9, 9, 12, 12], [0, 0, 1, 1]], "toy5": [[1, 1, 4, 4]]}
    finder = _Finder(plan)
    finder.ids = [f"toy{i}" for i in range(6)]
    previous = {f"toy{i}": {"boxes": np.zeros((0, 4)), "scores": np.zeros(0)} for i in (0, 2, 4)}
    previous.update({"toy1": {"boxes": np.array([[5.0, 5, 7, 7]]), "scores": np.array([0.8])},
                     "toy3": {"boxes": np.array([[1.0, 1, 3, 3]]), "scores": np.array([0.7])}, "toy5": None})
    made = relabel(DetectorModel("finder", finder), base, previous, PseudoSettings("x", max_boxes=2, min_score=0.95),
                   batch_size=4)
    t = made["targets"]
    assert t["toy1"]["boxes"].tolist() == [[2, 2, 8, 8], [9, 9, 12, 12]]
    assert t["toy1"]["scores"].tolist() == pytest.approx([0.9, 0.4])  # min_score is the teacher's filter only
    assert t["toy3"]["boxes"].tolist() == [[1, 1, 3, 3]] and t["toy5"] is None
    assert all(t[f"toy{i}"]["boxes"].shape == (0, 4) for i in (0, 2, 4))
    assert made["quality"]["n_images"] == 3 and made["quality"]["left_out"] == 1


def test_a_recipe_s_distill_settings_sit_under_the_explicit_ones():
    from camkit.distill.run import DistillConfig, with_recipe

    full = with_recipe(DistillConfig(preset="paper"))
    assert full.detector == "fcos" and full.detector_options == {"backbone": "timm:resnet18"}
    assert full.train == {"epochs": 12, "batch_size": 4, "lr": 1e-4, "amp": "auto"}
    assert with_recipe(DistillConfig(preset="inbreast")).train["epochs"] == 50
    mine = with_recipe(DistillConfig(preset="paper", detector="retinanet", train={"epochs": 3},
                                     detector_options={"fpn_channels": 64}))
    assert mine.detector == "retinanet" and mine.train["epochs"] == 3 and mine.train["batch_size"] == 4
    assert mine.detector_options == {"backbone": "timm:resnet18", "fpn_channels": 64}
    cpu = with_recipe(DistillConfig(preset="cpu"))  # the default: no settings, distill's own defaults
    assert (cpu.detector, cpu.train, cpu.detector_options) == ("fcos", {}, {})


ARGS = ["--dataset-opt", "n=24", "--model-opt", "num_crops=1", "--bootstrap", "20", "--epochs", "1",
        "--teacher-train", "epochs=1", "--teacher-train", "batch_size=8", "--quiet"]


def refused(args, *needles):
    res = CliRunner().invoke(main, ["distill", *args])
    assert res.exit_code == 1, res.output
    line = [x for x in res.output.splitlines() if x.strip()]
    assert len(line) == 1 and all(n in line[0] for n in needles), res.output


def test_bad_input_is_one_line_before_training(tmp_path):
    refused([*ARGS, "--out", str(tmp_path / "a"), "--detector", "fcoss"], "--detector 'fcoss'", "Did you mean 'fcos'")
    refused([*ARGS, "--out", str(tmp_path / "a")], "no trained teacher gmic with train-cam 'xgradcam'",
            "--train-teacher")
    refused([*ARGS, "--out", str(tmp_path / "a"), "--max-boxes", "0"], "--max-boxes")
    refused([*ARGS, "--out", str(tmp_path / "a"), "--train-cam", "auto"], "--train-cam auto: none of the candidate "
            "teachers (cam, gradcampp, xgradcam) is in the model store", "--train-teacher")
    res = CliRunner().invoke(main, ["distill", *ARGS, "--out", str(tmp_path / "a"), "--rounds", "-1"])
    assert res.exit_code == 2 and "--rounds" in res.output
    assert not list(tmp_path.rglob("*.pt"))  # nothing trained


@pytest.mark.slow  # a teacher and two detectors, one epoch each
def test_a_tiny_distill_scores_three_rows_and_resumes_without_training(tmp_path):
    out = tmp_path / "run"
    args = [*ARGS, "--out", str(out), "--train-teacher", "--format", "json", "--detector-opt",
            "backbone=timm:resnet10t"]
    res = CliRunner().invoke(main, ["distill", *args])
    assert res.exit_code == 0, res.output
    board = json.loads(res.stdout)
    assert {r["row"] for r in board["records"]} == {"cam-boxes", "detector", "oracle"}
    assert all(0.0 <= r["value"] <= 1.0 for r in board["records"])
    doc = json.loads((out / "distill.json").read_text())
    assert doc["schema"] == "camkit.distill/1" and doc["pseudo_boxes"]["n_images"] > 0
    assert set(doc["gain"]) >= {"value", "ci", "teacher", "detector", "oracle"}
    assert doc["gain"]["teacher"] == doc["rows"]["cam-boxes"]["tpr@1"]["value"]
    again = CliRunner().invoke(main, ["distill", *args])
    assert again.exit_code == 0 and json.loads(again.stdout)["records"] == board["records"]
    assert all(t["reused"] for t in json.loads((out / "distill.json").read_text())["training"].values())
    # a self-training round: the detector above is reused as round 0, one new detector trains on its boxes
    again = CliRunner().invoke(main, ["distill", *args, "--rounds", "1"])
    assert again.exit_code == 0, again.output
    doc = json.loads((out / "distill.json").read_text())
    assert [t["reused"] for t in doc["training"].values()] == [True, False, True]
    assert list(doc["training"]) == ["detector", "detector-r1", "oracle"]
    assert doc["rounds"][0]["round"] == 1 and doc["rounds"][0]["pseudo_boxes"]["n_images"] > 0
    # a longer-trained oracle: only the oracle trains again
    again = CliRunner().invoke(main, ["distill", *args, "--oracle-epochs", "2"])
    assert again.exit_code == 0, again.output
    doc = json.loads((out / "distill.json").read_text())
    assert doc["training"]["oracle"]["epochs"] == 2 and not doc["training"]["oracle"]["reused"]
    assert doc["training"]["detector"]["reused"] and doc["training"]["detector"]["epochs"] == 1


@pytest.mark.slow  # two seeds: two teachers, two detectors, two oracles, one epoch each
def test_seeds_combine_as_the_bench_combines_them_and_trackers_get_each_training(tmp_path):
    pytest.importorskip("tensorboard", reason="pip install 'camkit[tracking]' for the tracker tests")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    res = CliRunner().invoke(main, ["distill", *ARGS, "--out", str(out), "--train-teacher", "--seeds", "0,1",
                                    "--format", "json", "--detector-opt", "backbone=timm:resnet10t",
                                    "--log", "tensorboard"])
    assert res.exit_code == 0, res.output
    board = json.loads(res.stdout)
    assert board["seeds"] == [0, 1] and (out / "models").is_dir()  # seeds keep their store inside --out
    seeds = [json.loads((out / f"seed-{s}" / "distill.json").read_text()) for s in (0, 1)]
    for record in board["records"]:
        per_seed = [doc["rows"][record["row"]][record["metric"]]["value"] for doc in seeds]
        assert record["runs"] == 2 and record["value"] == pytest.approx(np.mean(per_seed))
        assert record["ci_low"] <= record["value"] <= record["ci_high"]
    combined = json.loads((out / "distill-seeds.json").read_text())
    assert [g["value"] for g in combined["gain"]["per_seed"]] == [doc["gain"]["value"] for doc in seeds]
    ea = EventAccumulator(str(out / "seed-1" / "tensorboard" / "detector"), size_guidance={"scalars": 0})
    ea.Reload()
    assert "train/loss" in ea.Tags()["scalars"]
    assert ea.Scalars("result/tpr@1")[0].value == pytest.approx(seeds[1]["rows"]["detector"]["tpr@1"]["value"])
    assert (out / "seed-0" / "tensorboard" / "oracle").is_dir()


def test_seeds_of_different_configurations_are_not_combined(tmp_path):
    from camkit.distill.seeds import combine_seeds
    from camkit.errors import OptionError

    for name, epochs in (("a", 1), ("b", 2)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "distill.json").write_text(json.dumps({"config": {"seed": 0, "train": {"epochs": epochs}}}))
        (tmp_path / name / "predictions.json").write_text("{}")
    with pytest.raises(OptionError, match="differs from .* in train, not only in its seed"):
        combine_seeds([tmp_path / "a", tmp_path / "b"])
    (tmp_path / "b" / "predictions.json").unlink()
    with pytest.raises(OptionError, match="not a finished camkit distill run .predictions.json is missing"):
        combine_seeds([tmp_path / "a", tmp_path / "b"])


@pytest.mark.slow  # the bench's three teachers, then one detector, one epoch each
def test_auto_chooses_the_pairing_with_the_best_validation_tpr(tmp_path):
    out = tmp_path / "run"
    res = CliRunner().invoke(main, ["distill", *ARGS, "--out", str(out), "--train-teacher", "--train-cam", "auto",
                                    "--test-cam", "auto", "--no-oracle", "--detector-opt", "backbone=timm:resnet10t"])
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "distill.json").read_text())
    p = doc["pairing"]
    assert set(p["validation"]) == {"cam", "gradcampp", "xgradcam"} and p["chosen_on"] == "val"
    assert all(set(v) == {"cam", "gradcam", "gradcampp", "xgradcam", "layercam"} for v in p["validation"].values())
    best = max((v["tpr@1"], v["cpm"]) for cams in p["validation"].values() for v in cams.values())
    assert (p["validation"][p["train_cam"]][p["test_cam"]]["tpr@1"], p["validation"][p["train_cam"]][p["test_cam"]]
            ["cpm"]) == best
    assert (doc["config"]["train_cam"], doc["config"]["test_cam"]) == (p["train_cam"], p["test_cam"])
    assert p["requested"] == {"train_cam": "auto", "test_cam": "auto"}


@pytest.mark.slow  # a teacher, a detector and an oracle twice: in this process, then as a local executor's job
def test_a_seed_run_as_a_cell_of_the_local_executor_gives_the_inline_numbers(tmp_path):
    args = [*ARGS, "--train-teacher", "--seeds", "0", "--format", "json", "--detector-opt", "backbone=timm:resnet10t"]
    inline = CliRunner().invoke(main, ["distill", *args, "--out", str(tmp_path / "a")])
    assert inline.exit_code == 0, inline.output
    local = CliRunner().invoke(main, ["distill", *args, "--out", str(tmp_path / "b"), "--executor", "local"])
    assert local.exit_code == 0, local.output
    assert json.loads(local.stdout)["records"] == json.loads(inline.stdout)["records"]
    job = json.loads((tmp_path / "b" / "cells" / "seed-0.job.json").read_text())
    assert job["executor"] == "local" and (tmp_path / "b" / "seed-0" / "distill.json").is_file()
    again = CliRunner().invoke(main, ["distill", *args, "--out", str(tmp_path / "b"), "--executor", "local"])
    assert again.exit_code == 0 and json.loads(again.stdout)["records"] == json.loads(inline.stdout)["records"]


def test_a_cell_spec_runs_camkit_functions_only():
    from camkit.bench.executors import run_cell_job
    from camkit.errors import OptionError

    with pytest.raises(OptionError, match="not a camkit function"):
        run_cell_job({"runner": "os:system", "config": {}})
