"""``camkit synth`` and ``camkit prepare`` through click's test runner."""
from __future__ import annotations

import csv

from click.testing import CliRunner

import camkit
from camkit.cli import main
from camkit_vindr.cache import settings_dir
from camkit_vindr.preprocess import Settings


def test_synth_then_prepare(tmp_path):
    runner = CliRunner()
    data, cache = tmp_path / "vindr", tmp_path / "cache"
    result = runner.invoke(main, ["synth", str(data), "--format", "vindr", "--n", "3", "--size", "128", "96",
                                  "--seed", "2"])
    assert result.exit_code == 0, result.output
    assert "wrote 12 images in 3 studies" in result.output
    with open(data / "finding_annotations.csv") as f:
        rows = list(csv.DictReader(f))
    assert {(r["height"], r["width"]) for r in rows} == {("128", "96")}
    assert len(list((data / "images").rglob("*.dicom"))) == 12

    again = runner.invoke(main, ["synth", str(data)])
    assert again.exit_code != 0 and "already holds a data set" in again.output and "--force" in again.output

    args = ["prepare", "vindr", str(data), "--size", "64", "48", "--out", str(cache), "--workers", "1",
            "--val-fraction", "0"]
    first = runner.invoke(main, args)
    assert first.exit_code == 0, first.output
    n = sum(len(camkit.create_dataset("vindr", root=data, split=s, size=(64, 48), val_fraction=0))
            for s in ("train", "test"))
    assert f"{n} images in " in first.output and f"({n} written, 0 already there)" in first.output
    assert (settings_dir(cache, Settings(size=(64, 48))) / "manifest.json").is_file()
    second = runner.invoke(main, args)
    assert second.exit_code == 0 and f"(0 written, {n} already there)" in second.output

    ds = camkit.create_dataset("vindr", root=data, split="test", size=(64, 48), val_fraction=0, cache=cache)
    assert ds[0]["image"].shape == (1, 64, 48)


def test_prepare_reports_bad_input_without_a_traceback(tmp_path):
    (tmp_path / "finding_annotations.csv").write_text("study_id,image_id\n")
    result = CliRunner().invoke(main, ["prepare", "vindr", str(tmp_path), "--out", str(tmp_path / "c")])
    assert result.exit_code == 1
    assert "Error: " in result.output and "missing column(s) series_id" in result.output
    assert "Traceback" not in result.output


def test_synth_folder_format_feeds_the_folder_dataset(tmp_path):
    result = CliRunner().invoke(main, ["synth", str(tmp_path / "f"), "--format", "folder", "--n", "3",
                                       "--size", "128", "96"])
    assert result.exit_code == 0, result.output
    with open(tmp_path / "f" / "labels.csv") as f:
        rows = list(csv.DictReader(f))
    masses = {r["image_id"] for r in rows if r["label"] == "1"}
    assert masses and all(r["x2"] for r in rows if r["label"] == "1")
    test = camkit.create_dataset("folder", csv=tmp_path / "f", split="test", size=(64, 48))
    assert len(test) == sum(1 for r in {r["image_id"]: r for r in rows}.values() if r["split"] == "test") > 0
    every = camkit.create_dataset("folder", csv=tmp_path / "f", size=(64, 48))
    i = next(i for i in range(len(every)) if every[i]["label"] == 1)
    sample = every[i]
    row = next(r for r in rows if r["image_id"] == sample["image_id"])
    back = sample["transform"].to_original(sample["boxes"])[0]
    assert abs(back - [float(row[k]) for k in ("x1", "y1", "x2", "y2")]).max() < 1.0
