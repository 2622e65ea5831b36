"""camkit explain --detector: a detector checkpoint (what camkit distill's training loop writes) is read
weights-only, rebuilt from its stored options, run on one image preprocessed as explain does for a CAM model, and
its best boxes are drawn and printed in the original image's pixels; bad input is one line."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from camkit.cli import main

NAME = "fcos"
SIZE = (128, 80)  # not the factory's default (256 x 160): the checkpoint's own input size must be used
H, W = 300, 190


def _save(model, out_dir):
    """``best.pt`` as the training loop writes it: its Checkpointer, with the fingerprint of the model."""
    from camkit.training import TrainConfig, config_fingerprint, config_hash
    from camkit.training.checkpointer import Checkpointer
    from camkit.training.state import TrainState

    fingerprint = config_fingerprint(model, None, None, TrainConfig())
    ckpt = Checkpointer(out_dir, fingerprint, config_hash(fingerprint), TrainConfig().to_dict(), 1, 1)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt.save_best(model.state_dict(), model.config, TrainState())
    return ckpt.best_path


@pytest.fixture(scope="module")
def detector_ckpt(tmp_path_factory):
    """A small FCOS (resnet10t) whose heads are nudged so that its random weights give boxes with an area and
    confident scores (a randomly initialised FCOS predicts points), saved as a detector training's best.pt."""
    from camkit.distill.adapter import DetectorModel
    from camkit.registry.api import create_detector

    torch.manual_seed(0)
    detector = create_detector(NAME, input_size=SIZE, backbone="timm:resnet10t")
    with torch.no_grad():
        detector.net.head.regression_head.bbox_reg.bias.fill_(1.0)
        detector.net.head.classification_head.cls_logits.bias.fill_(1.0)
    return _save(DetectorModel(NAME, detector), tmp_path_factory.mktemp("fcos-detector"))


@pytest.fixture(scope="module")
def png(tmp_path_factory):
    from PIL import Image

    yy, xx = np.mgrid[0:H, 0:W]
    img = (20000 * ((xx < 150) & ((yy - 150) ** 2 < 140 ** 2 - (xx * 0.9) ** 2))).astype(np.uint16)
    img[100:130, 60:90] = 60000
    path = tmp_path_factory.mktemp("img") / "one.png"
    Image.fromarray(img).save(path)
    return path


def run(png, ckpt, *args):
    return CliRunner().invoke(main, ["explain", str(png), "--checkpoint", str(ckpt), *args])


def test_the_best_boxes_in_the_original_pixels_and_a_figure(detector_ckpt, png, tmp_path):
    fig = tmp_path / "fig.png"
    res = run(png, detector_ckpt, "--detector", NAME, "--max-boxes", "3", "--format", "json", "--out", str(fig))
    assert res.exit_code == 0, res.output
    assert fig.read_bytes()[:4] == b"\x89PNG"
    out = json.loads(res.stdout)
    assert out["detector"] == NAME and out["input_size"] == list(SIZE) and out["figure"] == str(fig)
    found = out["boxes"][NAME]
    assert len(found["scores"]) == 3 == len(found["original_frame"]) == len(found["model_frame"])
    assert found["scores"] == sorted(found["scores"], reverse=True) and out["probability"] >= found["scores"][0] - 1e-4
    for x1, y1, x2, y2 in found["original_frame"]:
        assert 0 <= x1 < x2 <= W and 0 <= y1 < y2 <= H

    # what the detector itself finds on the image explain's preprocessing gives, back through its BoxTransform
    from camkit.data.imaging import preprocess, read_image
    from camkit.ui.explain_detector import load_detector

    model = load_detector(detector_ckpt, NAME)
    x, transform = preprocess(read_image(png), SIZE)
    with torch.no_grad():
        boxes, scores = model.detector.detect(x.reshape(1, 1, *SIZE))[0]
    assert scores[0].item() == pytest.approx(found["scores"][0], abs=1e-4)
    np.testing.assert_allclose(found["model_frame"][0], boxes[0].numpy(), atol=0.01)
    expected = np.clip(transform.to_original(np.asarray(found["model_frame"])), 0, [W, H, W, H])
    np.testing.assert_allclose(found["original_frame"], expected, atol=0.02)


def test_max_boxes_and_min_score_choose_the_boxes(detector_ckpt, png, tmp_path):
    def boxes(*args):
        res = run(png, detector_ckpt, "--detector", NAME, "--format", "json", "--out", str(tmp_path / "f.png"),
                  *args)
        assert res.exit_code == 0, res.output
        return json.loads(res.stdout)["boxes"][NAME]["scores"], res.stderr

    default, _ = boxes()
    assert len(default) == 5  # the default --max-boxes
    assert len(boxes("--max-boxes", "1")[0]) == 1
    many, _ = boxes("--max-boxes", "50")
    floor = (many[0] + many[-1]) / 2
    kept, _ = boxes("--max-boxes", "50", "--min-score", str(floor))
    assert kept and all(s >= floor for s in kept) and len(kept) < len(many)
    none, said = boxes("--min-score", "1")
    assert none == [] and "no box scores >= 1" in said


def test_table_formats_print_the_boxes(detector_ckpt, png, tmp_path):
    res = run(png, detector_ckpt, "--detector", NAME, "--max-boxes", "2", "--format", "csv",
              "--out", str(tmp_path / "f.svg"))
    assert res.exit_code == 0, res.output
    lines = res.stdout.strip().splitlines()
    assert lines[0] == "rank,score,x1,y1,x2,y2" and [line.split(",")[0] for line in lines[1:]] == ["1", "2"]
    assert (tmp_path / "f.svg").is_file()
    res = run(png, detector_ckpt, "--detector", NAME, "--format", "plain", "--out", str(tmp_path / "g.png"))
    assert res.exit_code == 0 and "boxes in the original image's pixels" in res.stdout


def test_the_checkpoint_is_read_once_and_weights_only(detector_ckpt, png, tmp_path, monkeypatch):
    calls = []
    real = torch.load

    def counting(f, *args, **kwargs):
        assert kwargs.get("weights_only") is True
        calls.append(str(f))
        return real(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counting)
    res = run(png, detector_ckpt, "--detector", NAME, "--out", str(tmp_path / "f.png"))
    assert res.exit_code == 0, res.output
    assert calls == [str(detector_ckpt)]


def refused(png, ckpt, *args_and_needles):
    """``camkit explain`` with ``args`` must exit 1 with one error line holding every needle."""
    args, needles = args_and_needles
    res = run(png, ckpt, *args)
    assert res.exit_code == 1, (res.exit_code, res.output, res.exception)
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert "Traceback" not in res.output


@pytest.mark.parametrize("args, needles", [
    (["--detector", "fcso"], ["--detector 'fcso' is not a registered detector", "Did you mean 'fcos'?"]),
    (["--detector", "retinanet"], ["holds a 'fcos' detector, not 'retinanet'", "pass --detector fcos"]),
    (["--detector", NAME, "--cam", "gradcam"], ["--cam is a CAM option", "drop --detector"]),
    (["--detector", NAME, "--model", "gmic", "--box-threshold", "0.3"], ["--model, --box-threshold are CAM options"]),
    (["--max-boxes", "2"], ["--max-boxes is for a detector's boxes", "add --detector NAME"]),
    (["--detector", NAME, "--max-boxes", "0"], ["--max-boxes must be a whole number >= 1"]),
    (["--detector", NAME, "--min-score", "1.5"], ["--min-score must be in [0, 1]"]),
    (["--detector", NAME, "--detector-opt", "fpn_channels=32"], ["do not fit the 'fcos' detector",
                                                                 "fpn_channels=32"]),
    (["--detector", NAME, "--detector-opt", "bogus=1"], ["detector 'fcos' has no option 'bogus'"]),
    ([], ["holds a 'fcos' detector's training, not a CAM model", "pass --detector fcos"]),
], ids=["unknown-name", "another-detector", "with-cam", "cam-options", "max-boxes-alone", "max-boxes-0",
        "min-score", "changed-network", "bad-option", "cam-path-on-a-detector"])
def test_bad_input_is_one_line(detector_ckpt, png, tmp_path, args, needles):
    refused(png, detector_ckpt, [*args, "--out", str(tmp_path / "f.png")], needles)
    assert not (tmp_path / "f.png").exists()


def test_a_checkpoint_that_is_not_a_detector_s_is_one_line(png, tmp_path):
    from camkit.registry.api import create_model

    torch.manual_seed(0)
    classifier = create_model("classifier", preset="cpu")
    cam_ckpt = _save(classifier, tmp_path / "classifier")
    refused(png, cam_ckpt, ["--detector", NAME, "--out", str(tmp_path / "f.png")],
            ["not a detector's training", "without --detector"])
    plain = tmp_path / "plain.pt"
    torch.save(classifier.state_dict(), plain)
    refused(png, plain, ["--detector", NAME, "--out", str(tmp_path / "f.png")],
            ["is not a camkit checkpoint", "camkit distill"])


def test_a_checkpoint_trained_by_the_loop_draws_from_best_and_last(png, tmp_path):
    """The real training loop (two steps on toy images at the detector's input size) writes best.pt and
    last.pt; both draw."""
    from train_toy import ToyMasses

    from camkit.distill.adapter import DetectorModel
    from camkit.registry.api import create_detector
    from camkit.training import TrainConfig, train

    torch.manual_seed(0)
    model = DetectorModel(NAME, create_detector(NAME, input_size=(64, 64), backbone="timm:resnet10t"))
    out = tmp_path / "run"
    train(model, ToyMasses(n=4, size=64), ToyMasses(n=2, seed=1, size=64),
          TrainConfig(epochs=1, batch_size=2, out_dir=str(out), device="cpu", progress=False, hflip=False,
                      random_crop=False))
    for name in ("best.pt", "last.pt"):
        res = run(png, out / name, "--detector", NAME, "--detector-opt", "score_threshold=0", "--format", "json",
                  "--out", str(tmp_path / "f.png"))
        assert res.exit_code == 0, res.output
        found = json.loads(res.stdout)
        assert found["input_size"] == [64, 64] and found["probability"] > 0
        assert len(found["boxes"][NAME]["scores"]) <= 5
        for x1, y1, x2, y2 in found["boxes"][NAME]["original_frame"]:
            assert 0 <= x1 < x2 <= W and 0 <= y1 < y2 <= H
