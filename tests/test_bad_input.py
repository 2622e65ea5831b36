"""Bad input costs seconds, never a training run: each case gives one line naming what is wrong and what to
do, exits non-zero, and leaves nothing behind that would block the next good command."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from dicom_fixtures import write_dicom, write_png

import camkit
from camkit.cli import main

TINY = ["--epochs", "1", "--batch-size", "8", "--dataset-opt", "n=24", "--bootstrap", "20", "--quiet",
        "--model-opt", "num_crops=1", "--train-cam", "cam", "--test-cam", "cam"]


def refused(args: list[str], *needles: str) -> str:
    """Run ``camkit ARGS``; it must exit 1 with one error line containing every needle (no traceback)."""
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1, (res.exit_code, res.output, res.exception)
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.mark.parametrize("args, needles", [
    (["--box-threshold", "0"], ["--box-threshold must be in (0, 1]"]),
    (["--box-threshold", "2"], ["--box-threshold must be in (0, 1]"]),
    (["--bootstrap", "0"], ["--bootstrap must be a positive number"]),
    (["--cam-output", "y_foo"], ["--cam-output 'y_foo'", "y_global", "y_fusion"]),
    (["--dataset-opt", "contrst=[3,4]"], ["dataset 'synthetic' has no option 'contrst'", "Did you mean 'contrast'"]),
    (["--model-opt", "num_crop=2"], ["model 'gmic' has no option 'num_crop'", "Did you mean 'num_crops'"]),
    (["--dataset-opt", "split=test"], ["--dataset-opt split=", "creates the train, val and test splits"]),
    (["--dataset-opt", "n=4", "--dataset-opt", "n=8"], ["n= is given twice"]),
    (["--epochs", "-1"], ["epochs must be a positive integer, got -1"]),
    (["--device", "gpu0"], ["--device 'gpu0' is not a device", "cuda:N"]),
    # issue 29: checked before training, not after it (or not at all)
    (["--device", "cpu:99"], ["--device cpu:99", "one cpu device"]),
    (["--alpha", "0"], ["--alpha must be in (0, 1)"]),
    (["--alpha", "1.5"], ["--alpha must be in (0, 1)"]),
    (["--baseline", "nope"], ["--baseline 'nope'", "ROW:TEST_CAM"]),
    (["--baseline", "nope:cam"], ["--baseline nope:cam: not a cell of this bench", "rows: cam, gradcampp, xgradcam"]),
    (["--baseline", "cam:nope"], ["--baseline cam:nope: not a cell of this bench", "test-cams: cam, gradcam"]),
    (["--seed", "-1"], ["--seed -1: seeds are integers 0 .. 4294967295"]),
    (["--seed", str(2**70)], ["seeds are integers 0 .. 4294967295"]),
    (["--seeds", "0-50000000"], ["asks for 50,000,001 seeds", "at most 1000"]),
    (["--seeds", "-3-2"], ["seed -3 is out of range"]),
    (["--bootstrap", "1000000000"], ["--bootstrap 1,000,000,000: at most 100,000 resamples"]),
    (["--preset", "paper"], ["dataset 'vindr' needs 'root'", "--data PATH"]),   # was a TypeError traceback
])
def test_bench_options_are_checked_before_anything_runs_or_is_written(tmp_path, args, needles):
    out = tmp_path / "run"
    refused(["bench", "--out", str(out), *args], *needles)
    assert not out.exists()  # nothing left behind to block the next command


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_one_line(tmp_path):
    refused(["bench", "--out", str(tmp_path / "run"), "--device", "cuda"], "--device cuda", "no usable CUDA GPU")
    refused(["train", "--preset", "cpu", "--device", "cuda:1", "--out", str(tmp_path / "t")], "no usable CUDA GPU")


@pytest.mark.slow  # a bench
def test_a_rejected_bench_does_not_block_the_next_good_one(tmp_path):
    out = tmp_path / "run"
    refused(["bench", "--out", str(out), "--epochs", "-1", *TINY[2:]], "epochs must be a positive integer")
    res = CliRunner().invoke(main, ["bench", "--out", str(out), "--format", "json", *TINY])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "results.json").read_text())["status"] == "complete"


def test_unwritable_or_invalid_out(tmp_path):
    afile = tmp_path / "a-file"
    afile.write_text("x")
    refused(["bench", "--out", str(afile), *TINY], "is a file, not a folder")
    refused(["bench", "--out", "/proc/camkit-cannot-be-here", *TINY], "is not writable")


def test_explain_refuses_an_unknown_figure_format_before_loading_anything(tmp_path):
    png = write_png(tmp_path / "one.png", np.zeros((40, 30)))
    ckpt = tmp_path / "none.pt"
    ckpt.write_bytes(b"")
    refused(["explain", str(png), "--checkpoint", str(ckpt), "--out", str(tmp_path / "x.jpgx")],
            "x.jpgx", ".jpgx is not a figure format", ".png")


@pytest.mark.parametrize("content, needles", [
    (b"", ["is empty (0 bytes)"]),
    (b"this is not a checkpoint at all" * 20, ["is not a PyTorch checkpoint"]),
    (b"\x00" * 64, ["is not a PyTorch checkpoint"]),
    (b"PK\x03\x04" + b"\x00" * 60, ["is damaged or not a PyTorch checkpoint"]),
], ids=["empty", "text", "null-bytes", "cut-zip"])
def test_empty_or_garbage_checkpoint(tmp_path, content, needles):
    png = write_png(tmp_path / "one.png", np.zeros((40, 30)))
    ckpt = tmp_path / "bad.pt"
    ckpt.write_bytes(content)
    line = refused(["explain", str(png), "--checkpoint", str(ckpt), "--out", str(tmp_path / "f.png")], "bad.pt",
                   *needles)
    assert "unpickling" not in line and "EOFError" not in line and "weights_only" not in line


def test_a_corrupt_last_pt_says_how_to_start_over(tmp_path):
    out = tmp_path / "t"
    out.mkdir()
    (out / "last.pt").write_bytes(b"\x00" * 64)
    args = ["train", "--preset", "cpu", "--epochs", "1", "--batch-size", "4", "--dataset-opt", "n=8",
            "--model-opt", "num_crops=1", "--device", "cpu", "--out", str(out), "--quiet"]
    refused(args, "last.pt", "--no-resume")
    res = CliRunner().invoke(main, [*args, "--no-resume"])
    assert res.exit_code == 0, res.output


def _folder(tmp_path: Path, text: str, encoding: str = "utf-8") -> Path:
    for name in ("a.png", "b.png"):
        img = np.zeros((60, 40))
        img[10:50, :30] = 0.5
        write_png(tmp_path / name, img * 65535)
    path = tmp_path / "labels.csv"
    path.write_bytes(text.encode(encoding))
    return path


def test_a_semicolon_csv_is_read_and_a_non_utf8_one_is_named(tmp_path):
    csv = _folder(tmp_path, "image;label;x1;y1;x2;y2\na.png;1;5;5;20;20\nb.png;0;;;;\n")
    ds = camkit.create_dataset("folder", split=None, csv=str(csv), size=(64, 40))
    assert ds.labels() == [1, 0] and ds[0]["boxes"].shape == (1, 4)
    latin = _folder(tmp_path, "image,label,note\na.png,1,caf\xe9\n", encoding="latin-1")
    with pytest.raises(camkit.errors.DataError, match=r"labels.csv is not UTF-8 text \(byte 0xe9 on line 2\)"):
        camkit.create_dataset("folder", split=None, csv=str(latin))


def test_skip_bad_also_skips_images_whose_pixels_fail_to_decode(tmp_path):
    from camkit.data import collate

    write_dicom(tmp_path / "good.dcm", np.full((40, 30), 900, np.uint16))
    bad = write_dicom(tmp_path / "bad.dcm", np.full((40, 30), 900, np.uint16))
    csv = tmp_path / "labels.csv"
    csv.write_text("image,label\ngood.dcm,1\nbad.dcm,0\n")
    ds = camkit.create_dataset("folder", split=None, csv=str(csv), size=(40, 30), skip_bad=True)
    assert len(ds) == 2  # both headers were fine when the dataset was made
    bad.write_bytes(bad.read_bytes()[:-500])  # the pixels break afterwards
    with pytest.warns(UserWarning, match="skipped labels.csv row 3"):
        assert ds[1] is None
    assert ds[1] is None and len(ds.skipped) == 1  # reported once
    batch = collate([ds[0], ds[1]])
    assert batch["image"].shape[0] == 1 and batch["image_id"] == [ds[0]["image_id"]]
    strict = camkit.create_dataset("folder", split=None, csv=str(csv), size=(40, 30), skip_bad=True)
    with pytest.warns(UserWarning):
        assert strict[1] is None


def test_unknown_plugin_in_camkit_plugins_warns():
    env = dict(os.environ, CAMKIT_PLUGINS="no-such-plugin")
    res = subprocess.run([sys.executable, "-m", "camkit", "list", "models", "--format", "json"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "gmic" in res.stdout
    assert "CAMKIT_PLUGINS names 'no-such-plugin', which no installed plugin provides" in res.stderr


def test_files_are_written_with_the_users_umask(tmp_path):
    from camkit.storage.atomic import atomic_write_json

    old = os.umask(0o022)
    try:
        path = atomic_write_json(tmp_path / "r.json", {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


class _Fragile:
    """A test-time CAM that fails until ``fixed`` is set: a bench that breaks after training."""

    fixed = False

    @camkit.hookimpl
    def register_cams(self, register):
        from camkit.cams.methods.gradcam import GradCAM

        class Fragile(GradCAM):
            name = "fragile"

            def weights(self, ctx):
                if not _Fragile.fixed:
                    raise RuntimeError("the fragile method broke")
                return super().weights(ctx)

        register("fragile", Fragile)


@pytest.mark.slow  # two benches
def test_a_bench_that_fails_mid_run_records_it_and_resumes_after_the_fix(fresh_plugins, tmp_path):
    fresh_plugins.get_host().register(_Fragile(), name="fragile-plugin")
    out = tmp_path / "run"
    args = ["bench", "--out", str(out), "--format", "json", *TINY, "--test-cam", "fragile"]
    _Fragile.fixed = False
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1
    failed = json.loads((out / "results.json").read_text())
    assert failed["status"] == "failed" and "the fragile method broke" in failed["error"]
    assert list((tmp_path / "models").glob("gmic-cam-*/last.pt"))  # the trained model is kept
    _Fragile.fixed = True
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    done = json.loads((out / "results.json").read_text())
    assert done["status"] == "complete" and "error" not in done
    assert done["training"]["cam"]["reused"] is True and set(done["detection"]["cam"]) == {"cam", "fragile"}


def test_a_missing_figure_is_drawn_again(tmp_path):
    out = tmp_path / "run"
    res = CliRunner().invoke(main, ["bench", "--out", str(out), "--format", "json", *TINY])
    assert res.exit_code == 0, res.output
    froc, overlay = out / "figures" / "froc.png", out / "figures" / "overlay-cam.png"
    assert froc.stat().st_size > 1000 and overlay.stat().st_size > 1000
    overlay.unlink()  # as if drawing it had failed
    res = CliRunner().invoke(main, ["bench", "--out", str(out), "--format", "json", *TINY])
    assert res.exit_code == 0 and overlay.stat().st_size > 1000


@pytest.mark.parametrize("content, needles", [
    (b'{"schema": "camkit.bench/1", "config": {', ["cannot be read as JSON", "JSONDecodeError"]),
    (b"", ["cannot be read as JSON"]),
    (b"\x89PNG\r\n\x1a\n\xff\xfe", ["cannot be read as JSON", "UnicodeDecodeError"]),
    (b"[1, 2]", ["holds a JSON list"]),
    (b'{"config": {}}', ["has no schema field"]),
    (b'{"schema": "camkit.bench/1", "config": {}, "detection": []}', ["its 'detection' is a list"]),
    (b'{"schema": "camkit.bench/1", "config": {}, "detection": {"cam": 3}}', ["detection row 'cam'"]),
])
def test_a_damaged_results_json_is_named_with_what_to_do(tmp_path, content, needles):
    """Truncated, empty, binary or hand-edited: one line naming the file, that it is damaged, and the way out
    (issue 29: these were 11 different tracebacks)."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_bytes(content)
    line = refused(["leaderboard", str(run)], str(run / "results.json"), "the file is damaged", "Move it aside",
                   *needles)
    assert "Traceback" not in line


def test_a_run_that_scored_nothing_is_an_error_not_two_empty_tables(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    doc = {"schema": "camkit.bench/1", "config": {"seed": 0}, "status": "failed",
           "error": "RuntimeError: out of memory", "detection": {}, "classification": {}}
    (run / "results.json").write_text(json.dumps(doc))
    refused(["leaderboard", str(run)], "no row was scored (status failed: RuntimeError: out of memory)",
            "re-run `camkit bench` with the same --out")


@pytest.mark.slow  # a bench, then its re-run
def test_a_bench_resumes_past_a_damaged_results_json(tmp_path):
    out = tmp_path / "run"
    first = CliRunner().invoke(main, ["bench", "--out", str(out), *TINY])
    assert first.exit_code == 0, first.output
    scored = json.loads((out / "results.json").read_text())["detection"]
    (out / "results.json").write_text('{"schema": "camkit.bench/1", "conf')   # e.g. a disk that filled up
    again = CliRunner().invoke(main, ["bench", "--out", str(out), *TINY])
    assert again.exit_code == 0, again.output
    aside = list(out.glob("results.json.damaged-*"))
    assert len(aside) == 1 and aside[0].read_text().startswith('{"schema"')     # kept for inspection
    doc = json.loads((out / "results.json").read_text())
    assert doc["status"] == "complete" and doc["detection"] == scored            # same models, same scores
    # the finished cells are kept: results.json is assembled again from their documents, nothing re-runs
    assert "already scored in this run directory, skipped" in again.stderr or all(
        (out / "cells" / f"{row}.json").stat().st_mtime < aside[0].stat().st_mtime for row in doc["cells"])
    assert any("moved it to results.json.damaged-" in w for w in doc["warnings"])
