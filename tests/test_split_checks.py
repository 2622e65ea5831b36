"""Issue 29: bad data gets one clear line, checked before any training (camkit.data.checks.check_splits).

Each case of the hostile-user trial is built from tiny files (the folder dataset, or a stub dataset where only
the dataset contract is involved) and must raise, or warn, with the exact line docs/errors.md shows.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from dicom_fixtures import phantom, write_png

import camkit
from camkit.cli import main
from camkit.data.checks import SplitCheckError, check_splits
from camkit.data.sample import BoxTransform

HEADER = "image,label,study_id,laterality,view,x1,y1,x2,y2,split\n"
MASS = "20,40,35,60"


def _png(folder: Path, name: str, scale: float = 1.0, shape: tuple[int, int] = (120, 80)) -> Path:
    return write_png(folder / name, phantom(*shape) * 4095 * scale)


@pytest.fixture
def data(tmp_path):
    """Six PNG mammograms (a mass in im0, im2, im4) and a writer of labels.csv rows."""
    for i in range(6):
        _png(tmp_path, f"im{i}.png", 0.5 + 0.1 * i)

    def csv(*rows: str) -> Path:
        path = tmp_path / "labels.csv"
        path.write_text(HEADER + "".join(r + "\n" for r in rows))
        return path

    return tmp_path, csv


def row(i: int, split: str, label: int | None = None, name: str | None = None) -> str:
    label = (1 - i % 2) if label is None else label
    return f"{name or f'im{i}.png'},{label},s{i // 2},L,{'CC' if i % 2 == 0 else 'MLO'}," \
           f"{MASS if label else ',,,'},{split}"


GOOD = [row(0, "train"), row(1, "train"), row(2, "val"), row(3, "val"), row(4, "test"), row(5, "test")]


def folder_sets(csv: Path, **options) -> dict:
    return {split: camkit.create_dataset("folder", csv=str(csv), split=split, size=(64, 40), **options)
            for split in ("train", "val", "test")}


def refused(sets: dict) -> str:
    with pytest.raises(SplitCheckError) as info:
        check_splits(sets, where="dataset 'folder'")
    text = str(info.value)
    assert "\n" not in text
    return text


def test_good_splits_pass_silently(data):
    _, csv = data
    assert check_splits(folder_sets(csv(*GOOD)), where="dataset 'folder'") == []


# -- 1: a test split without mass images, or without any image ------------------------------------------
def test_a_test_split_without_a_mass_image(data):
    _, csv = data
    sets = folder_sets(csv(*GOOD[:4], row(4, "test", label=0), row(5, "test")))
    assert refused(sets) == (
        "dataset 'folder': the test split has no mass image (2 images, every label 0): detection (FROC, "
        "TPR@FPPI) is scored on mass images and would fail after training; give the test split images with "
        "label 1 and their boxes")


def test_a_test_split_without_any_image(data):
    _, csv = data
    assert refused(folder_sets(csv(*GOOD[:4]))) == (
        "dataset 'folder': the test split holds no image (nothing to score); check the options that select it "
        "(the folder dataset: rows with split=test in its CSV)")


def test_the_bench_planner_refuses_before_training(data, tmp_path):
    """plan_bench (what `camkit bench` runs before any cell) checks every input size's splits."""
    from camkit.bench.config import BenchConfig
    from camkit.bench.runner import plan_bench

    _, csv = data
    path = csv(*GOOD[:4], row(4, "test", label=0), row(5, "test"))
    config = BenchConfig(dataset="folder", dataset_options={"csv": str(path)}, train_cams=["cam"],
                         test_cams=["cam"])
    with pytest.raises(SplitCheckError, match=r"^dataset 'folder': the test split has no mass image \(2 images"):
        plan_bench(config, tmp_path / "run")
    assert not (tmp_path / "models").exists()  # nothing was trained


# -- 2: broken test images, named with the skip_bad hint ------------------------------------------------
def test_a_broken_test_image_names_its_row_and_skip_bad(data):
    root, csv = data
    victim = root / "im4.png"
    victim.write_bytes(victim.read_bytes()[:200])  # the header reads, the pixels do not
    text = refused(folder_sets(csv(*GOOD)))
    assert re.fullmatch(
        r"dataset 'folder', test split, image 1 of 2: labels.csv row 6: cannot read image '.*im4.png': "
        r"OSError: .*; fix or replace the file, or pass skip_bad=True \(--dataset-opt skip_bad=true\) to leave "
        r"it out \(checked before training\)", text), text
    with pytest.warns(UserWarning, match="skipped labels.csv row 6"):  # with skip_bad: left out, one mass left?
        with pytest.raises(SplitCheckError) as info:
            check_splits(folder_sets(csv(*GOOD), skip_bad=True), where="dataset 'folder'")
    assert str(info.value) == ("dataset 'folder': skip_bad left out 1 of the 2 test images and no mass image is "
                               "left: detection could not be scored; fix the mass images' files reported above")


def test_skip_bad_leaves_a_broken_normal_out_and_goes_on(data):
    root, csv = data
    victim = root / "im5.png"
    victim.write_bytes(victim.read_bytes()[:200])
    with pytest.warns(UserWarning, match="skipped labels.csv row 7"):
        assert check_splits(folder_sets(csv(*GOOD), skip_bad=True), where="dataset 'folder'") == []


# -- 3: duplicate ids in a split; one image in two splits ------------------------------------------------
def test_two_images_with_one_id_in_a_split(data):
    root, csv = data
    _png(root, "im4.tif", 0.3)  # im4.png and im4.tif: both default to the id 'im4'
    sets = folder_sets(csv(*GOOD, row(4, "test", label=0, name="im4.tif")))
    assert refused(sets) == (
        "dataset 'folder', test split: image_id 'im4' names 2 images (labels.csv row 6 (im4.png); labels.csv row 8 "
        "(im4.tif)); predictions and the report are keyed on the id, so they would show one picture for all of "
        "them: give each image its own image_id")


def test_one_image_in_train_and_test(data):
    _, csv = data
    sets = folder_sets(csv(*GOOD, row(0, "test")))
    assert refused(sets) == (
        "dataset 'folder': 1 image(s) are in both the train and the test split (first: image_id 'im0', train: "
        "labels.csv row 2 (im0.png), test: labels.csv row 8 (im0.png)); scores on the test split would not be "
        "held out: put each image, better each patient, in one split only")


def test_one_image_in_train_and_val_is_a_warning(data):
    _, csv = data
    assert check_splits(folder_sets(csv(*GOOD, row(0, "val"))), where="dataset 'folder'") == [
        "dataset 'folder': 1 image(s) are in both the train and the val split (first: image_id 'im0', train: "
        "labels.csv row 2 (im0.png), val: labels.csv row 8 (im0.png)); choices made on the val split (the best "
        "epoch, --box-threshold auto) are then made on images the model trains on: put each image in one split "
        "only"]


def test_camkit_train_refuses_a_duplicate_id_before_training(data, tmp_path):
    root, csv = data
    _png(root, "im0.tif", 0.3)
    path = csv(*GOOD, row(1, "train", name="im0.tif"))
    res = CliRunner().invoke(main, ["train", "--dataset", "folder", "--dataset-opt", f"csv={path}", "--epochs",
                                    "1", "--train-cam", "cam", "--quiet", "--models", str(tmp_path / "models")])
    assert res.exit_code == 1, res.output
    assert res.output.strip().splitlines() == [
        "Error: dataset 'folder', train split: image_id 'im0' names 2 images (labels.csv row 2 (im0.png); "
        "labels.csv row 8 (im0.tif)); predictions and the report are keyed on the id, so they would show one "
        "picture for all of them: give each image its own image_id"]
    assert not (tmp_path / "models").exists()


# -- 4: 1x1 and constant images ------------------------------------------------------------------------
def test_a_one_pixel_image_is_refused_when_the_dataset_is_built(data):
    root, csv = data
    write_png(root / "dot.png", np.full((1, 1), 1000))
    path = csv(*GOOD, row(5, "test", name="dot.png"))
    with pytest.raises(camkit.errors.DataError) as info:
        folder_sets(path)
    assert str(info.value) == (
        f"labels.csv row 8 ({root / 'dot.png'}): the image is 1x1 pixels (WxH), below camkit's minimum of 16 on "
        "each side: no mammogram (a thumbnail, an icon or a failed export); replace it, or pass skip_bad=True "
        "(--dataset-opt skip_bad=true) to leave it out")
    kept = folder_sets(path, skip_bad=True)["test"]
    assert len(kept) == 2 and "1x1 pixels" in kept.skipped[0][1]


class _Stub(torch.utils.data.Dataset):
    """A third-party dataset: the contract only (no image_ids, no describe, no skip_bad)."""

    def __init__(self, split: str, stored: list[tuple[int, int]], labels: list[int]):
        self.split, self.stored, self._labels = split, stored, labels
        self.config = {"name": "stub", "split": split}

    def __len__(self) -> int:
        return len(self._labels)

    def labels(self) -> list[int]:
        return list(self._labels)

    def __getitem__(self, i: int) -> dict:
        image = torch.randn(1, 32, 20)
        return {"image": image, "label": self._labels[i], "boxes": torch.zeros(0, 4), "study_id": f"s{i}",
                "image_id": f"{self.split}-{i}", "laterality": None, "view": None,
                "transform": BoxTransform(self.stored[i], (32, 20))}


def test_a_tiny_image_of_any_dataset_is_refused():
    sets = {"train": _Stub("train", [(64, 40)] * 2, [1, 0]),
            "test": _Stub("test", [(64, 40), (1, 1)], [1, 0])}
    with pytest.raises(SplitCheckError) as info:
        check_splits(sets, where="dataset 'stub'")
    assert str(info.value) == (
        "dataset 'stub', test split, image_id 'test-1' (index 1): the image is 1x1 pixels (WxH), below camkit's "
        "minimum of 16 on each side: no mammogram (a thumbnail, an icon or a failed export); replace it, or "
        "remove it from the split")


def test_constant_images_are_named_once_in_a_warning(data):
    root, csv = data
    write_png(root / "blank.png", np.full((120, 80), 3000))
    write_png(root / "black.png", np.zeros((120, 80)))
    sets = folder_sets(csv(*GOOD, row(7, "test", name="blank.png"), row(9, "test", name="black.png")))
    assert check_splits(sets, where="dataset 'folder'") == [
        "dataset 'folder', test split: 2 image(s) have every pixel the same value (blank, or a failed export), so "
        "no map can find anything on them; they are scored as they are: 'blank', 'black'. Check those files, or "
        "remove them from the test split"]


def test_the_bench_logs_the_warning_and_trains_on(data, tmp_path):
    """plan_bench hands check_splits' warnings to the display, once."""
    from camkit.bench.config import BenchConfig
    from camkit.bench.runner import plan_bench

    root, csv = data
    write_png(root / "blank.png", np.full((120, 80), 3000))
    path = csv(*GOOD, row(7, "test", name="blank.png"))
    logged: list[str] = []
    display = type("Display", (), {"log": lambda self, text: logged.append(text)})()
    config = BenchConfig(dataset="folder", dataset_options={"csv": str(path)}, train_cams=["cam"],
                         test_cams=["cam"])
    plan_bench(config, tmp_path / "run", display=display)
    assert logged == ["warning: dataset 'folder', test split: 1 image(s) have every pixel the same value (blank, "
                      "or a failed export), so no map can find anything on them; they are scored as they are: "
                      "'blank'. Check those files, or remove them from the test split"]
