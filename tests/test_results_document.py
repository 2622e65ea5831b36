"""The results document and the cells it is assembled from: one schema (``camkit.bench/2``) with one migration
from ``/1``, a hash over an explicit list of fields, significance scored once and rendered from the document,
and a cell that runs from its spec alone (a subprocess gives the same numbers as the in-process bench)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from camkit.bench.config import BenchConfig
from camkit.bench.results import HASHED_CONFIG, SCHEMA, UNHASHED_CONFIG, config_hash, load_results
from camkit.cli import main

REPO = Path(__file__).resolve().parents[1]
V1 = Path(__file__).parent / "data" / "bench-v1"  # written by camkit d536b04's bench (schema camkit.bench/1)
# the options that V1 was benched with
V1_ARGS = ["--train-cam", "cam", "--train-cam", "xgradcam", "--test-cam", "cam", "--test-cam", "gradcampp",
           "--epochs", "1", "--batch-size", "8", "--dataset-opt", "n=24", "--bootstrap", "40", "--quiet",
           "--model-opt", "num_crops=1"]


def _numbers(results: dict) -> dict:
    """Every scored value and interval of a document (what must not change), without timings or paths."""
    out = {}
    for row, cells in results["detection"].items():
        for col, entry in cells.items():
            for name, m in entry.items():
                if isinstance(m, dict) and "value" in m:
                    out[(row, col, name)] = (m["value"], tuple(m.get("ci") or ()))
    for row, cls in results["classification"].items():
        for name, m in cls.items():
            if isinstance(m, dict) and "value" in m:
                out[(row, "classification", name)] = (m["value"], tuple(m["ci"]))
    return out


def test_every_configuration_field_is_hashed_or_declared_unhashed():
    fields = set(BenchConfig.__dataclass_fields__)
    assert fields == set(HASHED_CONFIG) | set(UNHASHED_CONFIG), "put a new BenchConfig field in one of the lists"
    assert not set(HASHED_CONFIG) & set(UNHASHED_CONFIG)


def test_the_configuration_hash_reads_the_listed_fields_only():
    conf = json.loads((V1 / "results.json").read_text())["config"]
    assert config_hash({**conf, "display_only": 1}) == config_hash(conf)
    assert config_hash({**conf, "seed": 1}) != config_hash(conf)
    assert config_hash(dict(reversed(list(conf.items())))) == config_hash(conf)


def test_a_v1_document_is_migrated_when_read():
    raw = json.loads((V1 / "results.json").read_text())
    doc = load_results(V1)
    assert raw["schema"] == "camkit.bench/1" and doc["schema"] == SCHEMA
    assert doc["config_hash"] == config_hash(doc["config"]) != raw["config_hash"]
    assert _numbers(doc) == _numbers(raw)
    assert not any("vs_baseline" in e for cells in doc["detection"].values() for e in cells.values())
    assert doc["significance"] is None and doc["cells"] == {"cam": {"status": "complete"},
                                                             "xgradcam": {"status": "complete"}}
    assert doc["rows"]["xgradcam"] == {"model": "gmic", "train_cam": "xgradcam"}


@pytest.mark.parametrize("fmt", ["json", "plain"])
def test_the_leaderboard_of_a_v1_run_prints_what_it_printed(fmt):
    """The v1 run's leaderboard as camkit d536b04 printed it: the same cells, intervals and markers."""
    res = CliRunner().invoke(main, ["leaderboard", str(V1), "--format", fmt])
    assert res.exit_code == 0, res.output
    if fmt == "json":
        assert json.loads(res.stdout) == json.loads((V1.parent / "bench-v1-leaderboard.json").read_text())
    else:
        assert res.stdout == (V1.parent / "bench-v1-leaderboard.txt").read_text()


def test_resuming_a_v1_run_adopts_its_rows_and_stores_the_significance(tmp_path):
    out = tmp_path / "run"
    shutil.copytree(V1, out)
    before = _numbers(load_results(out))
    res = CliRunner().invoke(main, ["bench", *V1_ARGS, "--out", str(out), "--format", "json"])
    assert res.exit_code == 0, res.output
    assert not any((tmp_path / "models").iterdir()), "a scored v1 row was trained again"
    doc = json.loads((out / "results.json").read_text())
    assert doc["schema"] == SCHEMA and doc["status"] == "complete"
    assert _numbers(doc) == before
    assert sorted(p.name for p in (out / "cells").glob("*.json")) == [
        "cam.json", "cam.spec.json", "xgradcam.json", "xgradcam.spec.json"]
    sig = doc["significance"]["tpr@1"]
    assert sig["baseline"] == ["cam", "cam"] and len(sig["cells"]) == 3
    # the printed markers are the stored ones: the leaderboard renders the document
    board = json.loads(res.stdout)
    stored = {(c["row"], c["test_cam"]): c["p_holm"] for c in sig["cells"]}
    assert {(r["row"], r["test_cam"]): r["p_holm"] for r in board["detection"] if r["p_holm"] is not None} == stored


def test_the_leaderboard_renders_the_stored_significance(tmp_path):
    """A document's significance is what the leaderboard shows for the question it answers (metric, baseline,
    alpha): a doctored stored p-value shows, so nothing recomputed it; another alpha is a new scoring step."""
    out = tmp_path / "run"
    shutil.copytree(V1, out)
    assert CliRunner().invoke(main, ["bench", *V1_ARGS, "--out", str(out)]).exit_code == 0
    doc = json.loads((out / "results.json").read_text())
    for cell in doc["significance"]["tpr@1"]["cells"]:
        cell["p_holm"] = 0.0123
    (out / "results.json").write_text(json.dumps(doc))
    shown = json.loads(CliRunner().invoke(main, ["leaderboard", str(out), "--format", "json"]).stdout)
    assert {r["p_holm"] for r in shown["detection"] if r["p_holm"] is not None} == {0.0123}
    other = json.loads(CliRunner().invoke(main, ["leaderboard", str(out), "--alpha", "0.1", "--format",
                                                 "json"]).stdout)
    assert 0.0123 not in {r["p_holm"] for r in other["detection"]}


def test_a_spec_that_is_not_one_is_refused_in_one_line(tmp_path):
    bad = tmp_path / "x.spec.json"
    bad.write_text('{"row": "cam"}')
    res = CliRunner().invoke(main, ["bench-cell", str(bad)])
    assert res.exit_code != 0 and "not a camkit cell spec" in res.output and str(bad) in res.output
    assert "Traceback" not in res.output


@pytest.mark.slow
def test_a_cell_run_in_another_process_gives_the_in_process_numbers(tmp_path):
    """The cell needs nothing but its spec: run in a subprocess (as a job on another node would), with its own
    model store, it writes the document the in-process bench writes; the bench then skips it and assembles."""
    from camkit.bench.cell import plan_cells, write_spec

    args = ["--train-cam", "cam", "--test-cam", "cam", "--test-cam", "gradcampp", "--epochs", "1",
            "--batch-size", "8", "--dataset-opt", "n=24", "--bootstrap", "40", "--quiet", "--model-opt",
            "num_crops=1"]
    here = tmp_path / "here" / "run"
    assert CliRunner().invoke(main, ["bench", *args, "--out", str(here)]).exit_code == 0
    there = tmp_path / "there" / "run"
    cfg = BenchConfig(**load_results(here)["config"]).resolved()
    (spec,) = plan_cells(cfg, there, tmp_path / "there" / "models")
    path = write_spec(spec)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "plugins"),
                                                         os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "camkit", "bench-cell", str(path), "--quiet"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    document = json.loads((there / "cells" / "cam.json").read_text())
    written = (there / "cells" / "cam.json").stat().st_mtime_ns
    assert CliRunner().invoke(main, ["bench", *args, "--out", str(there)]).exit_code == 0
    assert (there / "cells" / "cam.json").stat().st_mtime_ns == written, "the finished cell ran again"
    a, b = load_results(here), load_results(there)
    assert _numbers(a) == _numbers(b) and _numbers(b) == _numbers({"detection": {"cam": document["detection"]},
                                                                   "classification": {"cam": document[
                                                                       "classification"]}})
    assert a["significance"] == b["significance"]
