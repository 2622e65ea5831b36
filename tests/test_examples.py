"""The example plugins of docs/examples (a CAM, two datasets, a model), installed with pip as a user would, pass
their own contract tests and run together through ``camkit bench`` like built-ins."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = ("camkit-noisecam", "camkit-blobs", "camkit-tinycnn", "camkit-rsna")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "--target", str(target), *[str(REPO / "docs" / "examples" / e) for e in EXAMPLES]],
                   check=True, capture_output=True, text=True)
    return target


def _env(site: Path) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(site))
    env.pop("CAMKIT_PLUGINS", None)
    return env


def test_examples_are_listed_as_plugins(site):
    res = subprocess.run([sys.executable, "-m", "camkit", "plugins", "--format", "json"], env=_env(site),
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    rows = {r["name"]: r for r in json.loads(res.stdout)}
    for name in ("noisecam", "blobs", "tinycnn", "rsna"):
        assert rows[name]["status"] == "ok" and not rows[name]["builtin"], rows.get(name)


def test_examples_pass_their_own_contract_tests(site):
    tests = [str(REPO / "docs" / "examples" / e / "tests") for e in EXAMPLES]
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests], env=_env(site),
                         capture_output=True, text=True, timeout=300, cwd=site)
    assert res.returncode == 0, res.stdout + res.stderr
    # noisecam 1, blobs 1, tinycnn 8 (its contract with each train-cam cost class), rsna 2 (its contract, and a
    # bench on a dataset without boxes: a classification leaderboard)
    assert "12 passed" in res.stdout


@pytest.mark.slow  # a bench in a fresh environment
def test_third_party_model_dataset_and_cam_run_through_bench(site, tmp_path):
    out = tmp_path / "run"
    res = subprocess.run([sys.executable, "-m", "camkit", "bench", "--model", "tinycnn", "--dataset", "blobs",
                          "--dataset-opt", "n=96", "--train-cam", "cam", "--test-cam", "cam", "--test-cam",
                          "gradcam", "--test-cam", "noise", "--epochs", "4", "--batch-size", "16", "--bootstrap",
                          "50", "--out", str(out), "--format", "json", "--quiet"], env=_env(site),
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    board = json.loads(res.stdout)
    assert {r["test_cam"] for r in board["detection"]} == {"cam", "gradcam", "noise"}
    results = json.loads((out / "results.json").read_text())
    assert results["status"] == "complete" and results["dataset"]["name"] == "blobs"
    assert (out / "figures" / "overlay-cam.png").stat().st_size > 1000
