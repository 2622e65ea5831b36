"""The RSNA-layout example: its samples pass camkit's contract checks, and camkit bench on it gives a
classification leaderboard (no lesion boxes) without a traceback."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from camkit.cli import main
from camkit.testing import check_dataset
from camkit_rsna import create_rsna, write_example


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_example(tmp_path_factory.mktemp("rsna"), patients=24)


def test_every_split_passes_the_dataset_contract_and_keeps_both_classes(folder):
    sizes = {}
    for split in ("train", "val", "test"):
        ds = create_rsna(str(folder), split=split)
        check_dataset(ds)
        assert set(ds.labels()) == {0, 1}, split  # the hold-out is stratified by label
        sizes[split] = len(ds)
    assert sum(sizes.values()) == 48


def test_bench_scores_classification_and_says_what_it_does_not_score(folder, tmp_path):
    res = CliRunner().invoke(main, [
        "bench", "--dataset", "rsna", "--data", str(folder), "--train-cam", "cam", "--test-cam", "gradcam",
        "--epochs", "1", "--batch-size", "8", "--model-opt", "num_crops=1", "--bootstrap", "20",
        "--out", str(tmp_path / "run"), "--models", str(tmp_path / "models"), "--format", "json", "--quiet"])
    assert res.exit_code == 0, res.output
    board = json.loads(res.stdout)
    assert board["detection"] == [] and "need lesion boxes" in board["not_scored"]
    assert {r["metric"] for r in board["classification"]} == {"accuracy", "auc", "tpr", "tnr"}
    auc = next(r for r in board["classification"] if r["metric"] == "auc")
    assert 0.0 <= auc["ci_low"] <= auc["value"] <= auc["ci_high"] <= 1.0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["status"] == "complete" and results["dataset"]["annotations"] == []
