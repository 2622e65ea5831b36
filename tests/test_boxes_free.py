"""Datasets without lesion boxes (screening sets labelled per image): declared with ``annotations = ()``,
decided before training, scored as classification (plus the box-free faithfulness metrics), and said so in one
line; a dataset that declares boxes but gives none is refused before any training."""
from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

import camkit
from camkit.cli import main
from camkit.data.annotations import annotations_of, has_boxes
from camkit.data.checks import SplitCheckError, check_splits
from camkit.errors import DataError
from camkit.testing import check_dataset

TINY = ["--epochs", "1", "--batch-size", "8", "--dataset-opt", "n=24", "--bootstrap", "20",
        "--model-opt", "num_crops=1", "--train-cam", "cam", "--test-cam", "cam", "--test-cam", "gradcam"]


def _synthetic(annotations=None, boxes: bool = False, split: str = "test", n: int = 24):
    """Synthetic mammograms whose samples carry no boxes (``boxes`` False), declaring ``annotations``."""
    from camkit_synthetic.dataset import SyntheticDataset

    class Screening(SyntheticDataset):
        @property
        def config(self):
            return {**super().config, "boxes": boxes, "annotations": annotations}

        def __getitem__(self, index):
            sample = dict(super().__getitem__(index))
            if not boxes:
                sample["boxes"] = torch.zeros((0, 4))
                sample.pop("masks", None)
            return sample

    if annotations is not None:
        Screening.annotations = annotations
    return Screening(split=split, n=n)


class _Plugin:
    """``screening``: image-level labels only, declared; ``undeclared``: the same samples, no declaration."""

    @camkit.hookimpl
    def register_datasets(self, register):
        register("screening", lambda split="train", size=(256, 160), n=None, seed=0: _synthetic((), split=split, n=n))
        register("undeclared", lambda split="train", size=(256, 160), n=None, seed=0: _synthetic(split=split, n=n))


@pytest.mark.parametrize("declared, needle", [
    ("boxes", "give a tuple of names"),
    (("boxes", "contours"), "'contours' is not one of boxes, masks"),
    (("masks",), "declares masks without boxes"),
])
def test_a_declaration_camkit_cannot_read_is_one_line(declared, needle):
    class Odd:
        annotations = declared

    with pytest.raises(DataError, match=needle):
        annotations_of(Odd(), "dataset 'odd'")


def test_no_declaration_means_boxes_and_an_empty_one_means_none():
    assert annotations_of(object()) == frozenset({"boxes"}) and has_boxes(object())
    assert not has_boxes(_synthetic(()))
    assert annotations_of(_synthetic(("boxes", "masks"), boxes=True)) == frozenset({"boxes", "masks"})


def test_a_dataset_that_declares_boxes_but_gives_none_is_refused_before_training():
    sets = {"train": _synthetic(split="train"), "test": _synthetic()}
    with pytest.raises(SplitCheckError, match=r"none of its 12 mass images has a lesion box.*annotations = \(\)"):
        check_splits(sets, where="dataset 'undeclared'")
    with pytest.raises(AssertionError, match="none of its 1 mass sample"):
        check_dataset(_synthetic(), n=2)


def test_a_dataset_that_declares_no_boxes_must_give_none():
    sets = {"train": _synthetic((), boxes=True, split="train"), "test": _synthetic(())}
    with pytest.raises(SplitCheckError, match="declares annotations without boxes"):
        check_splits(sets, where="dataset 'x'")
    with pytest.raises(AssertionError, match="declares no lesion boxes"):
        check_dataset(_synthetic((), boxes=True))
    check_dataset(_synthetic(()))  # declared and consistent: passes


def test_mass_images_without_boxes_in_part_are_named_in_a_warning():
    base = _synthetic(boxes=True)

    class Partial(type(base)):
        def __getitem__(self, index):
            sample = dict(super().__getitem__(index))
            if index in (2, 3):
                sample["boxes"] = torch.zeros((0, 4))
            return sample

    notes = check_splits({"test": Partial(split="test", n=24)}, where="dataset 'p'")
    assert any("2 of its 12 mass images have no lesion box" in n and "synth-test-000002" in n for n in notes), notes


def test_a_split_with_one_class_is_warned_about():
    class OneClass(type(_synthetic(boxes=True))):
        def labels(self):
            return [1] * len(self)

    notes = check_splits({"train": OneClass(split="train", n=8), "test": _synthetic(boxes=True)}, where="dataset 'o'")
    assert any("train split: no normal (label 0) image" in n and "hold_out" in n for n in notes), notes


def test_bench_on_a_dataset_without_boxes_gives_a_classification_leaderboard(fresh_plugins, tmp_path):
    fresh_plugins.get_host().register(_Plugin(), name="screening-plugin")
    out = tmp_path / "run"
    res = CliRunner().invoke(main, ["bench", "--dataset", "screening", "--out", str(out), "--format", "json",
                                    *TINY, "--faithfulness", "confidence"])
    assert res.exit_code == 0, res.output
    assert "not scored: tpr@0.5, tpr@1" in res.stderr  # said before training, and beside the table
    board = json.loads(res.stdout)
    assert board["detection"] == [] and "dataset 'screening' gives image-level labels only" in board["not_scored"]
    cls = {r["metric"]: r for r in board["classification"]}
    assert set(cls) == {"accuracy", "auc", "tpr", "tnr"} and all(r["ci_low"] is not None for r in cls.values())
    results = json.loads((out / "results.json").read_text())
    assert results["status"] == "complete" and results["dataset"]["annotations"] == []
    assert set(results["detection"]["cam"]) == {"cam", "gradcam"}
    assert "tpr@1" not in results["detection"]["cam"]["cam"] and "average_drop" in results["detection"]["cam"]["cam"]
    assert not (out / "figures" / "froc.png").exists() and (out / "figures" / "overlay-cam.png").is_file()

    # a box-free metric still has its table; the box metrics say why they are absent
    res = CliRunner().invoke(main, ["leaderboard", str(out), "--metric", "average_drop"])
    assert res.exit_code == 0 and "average drop" in res.stdout and "Classification" in res.stdout, res.output
    res = CliRunner().invoke(main, ["leaderboard", str(out)])
    assert res.exit_code == 0 and "Detection" not in res.stdout and "Classification" in res.stdout
    assert "note: not scored" in res.stderr

    from camkit.ui.report import write_report

    page = write_report([out], tmp_path / "report", log=lambda *_: None).read_text()
    assert "gives image-level labels only" in page and "FROC curves" not in page and "Outcome</label>" not in page

    # the text comes from results.json: a hostile one is shown as text, never run as markup
    doc = json.loads((out / "results.json").read_text())
    doc["dataset"]["not_scored"] = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
    (out / "results.json").write_text(json.dumps(doc))
    page = write_report([out], tmp_path / "report2", log=lambda *_: None).read_text()
    assert "&lt;img src=x onerror=" in page and "<img src=x" not in page and "<script>alert" not in page


def test_bench_on_undeclared_boxless_data_stops_before_training(fresh_plugins, tmp_path):
    fresh_plugins.get_host().register(_Plugin(), name="screening-plugin")
    res = CliRunner().invoke(main, ["bench", "--dataset", "undeclared", "--out", str(tmp_path / "run"), *TINY])
    assert res.exit_code == 1
    assert "none of its 12 mass images has a lesion box" in res.output and "Traceback" not in res.output
    assert not list((tmp_path / "models").glob("gmic-*"))  # nothing trained


class _DistillPlugin:
    """``screening`` as above; ``train-unboxed``: lesion boxes on the validation and test splits only."""

    @camkit.hookimpl
    def register_datasets(self, register):
        register("screening", lambda split="train", size=(256, 160), n=None, seed=0: _synthetic((), split=split, n=n))
        register("train-unboxed", lambda split="train", size=(256, 160), n=None, seed=0: _synthetic(
            () if split == "train" else None, boxes=split != "train", split=split, n=n))


DISTILL = ["distill", "--dataset-opt", "n=24", "--model-opt", "num_crops=1", "--bootstrap", "20", "--epochs", "1",
           "--teacher-train", "epochs=1", "--teacher-train", "batch_size=8", "--train-teacher", "--quiet",
           "--detector-opt", "backbone=timm:resnet10t"]


def test_distill_on_a_dataset_without_test_boxes_is_one_line_before_training(fresh_plugins, tmp_path):
    fresh_plugins.get_host().register(_DistillPlugin(), name="screening-plugin")
    res = CliRunner().invoke(main, [*DISTILL, "--dataset", "screening", "--out", str(tmp_path / "run")])
    assert res.exit_code == 1
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert len(lines) == 1 and "dataset 'screening' gives none on its test split" in lines[0], res.output
    assert not list(tmp_path.rglob("*.pt"))  # nothing trained


@pytest.mark.slow  # a teacher and a detector, one epoch each
def test_distill_skips_the_oracle_of_a_dataset_without_training_boxes_saying_why(fresh_plugins, tmp_path):
    fresh_plugins.get_host().register(_DistillPlugin(), name="screening-plugin")
    out = tmp_path / "run"
    res = CliRunner().invoke(main, [*DISTILL, "--dataset", "train-unboxed", "--out", str(out), "--format", "json"])
    assert res.exit_code == 0, res.output
    board = json.loads(res.stdout)
    assert {r["row"] for r in board["records"]} == {"cam-boxes", "detector"} and board["gain"] is None
    assert board["oracle"] == "skipped: the dataset gives no training boxes"
    doc = json.loads((out / "distill.json").read_text())
    assert "oracle" not in doc["training"] and doc["pseudo_boxes"]["corloc"] is None  # no truth to compare with
