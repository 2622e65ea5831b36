"""camkit.inference.explain_image: its options are one ExplainOptions (the keywords still work), a camkit
checkpoint is read once, and the result is what localize gives for the same weights (issue 28)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from camkit.inference import ExplainOptions, LocalizeOptions, explain_image, localize
from camkit.registry.api import create_model
from camkit.storage.checkpoint import FORMAT, VERSION, save_checkpoint

CAMS = ("cam", "gradcampp")


@pytest.fixture(scope="module")
def classifier():
    torch.manual_seed(0)
    return create_model("classifier", preset="cpu")  # 256 x 160, a few thousand weights: fast on a CPU


@pytest.fixture
def png(tmp_path):
    from PIL import Image

    h, w = 300, 190
    yy, xx = np.mgrid[0:h, 0:w]
    img = (20000 * ((xx < 150) & ((yy - 150) ** 2 < 140 ** 2 - (xx * 0.9) ** 2))).astype(np.uint16)
    img[100:130, 60:90] = 60000
    Image.fromarray(img).save(tmp_path / "one.png")
    return tmp_path / "one.png"


def _camkit_checkpoint(model, path):
    save_checkpoint({"format": FORMAT, "version": VERSION, "kind": "best", "model": model.state_dict(),
                     "model_config": dict(model.config)}, path)
    return path


def _count_loads(monkeypatch) -> list[str]:
    calls: list[str] = []
    real = torch.load

    def counting(f, *args, **kwargs):
        assert kwargs.get("weights_only") is True  # every read stays weights-only
        calls.append(str(f))
        return real(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counting)
    return calls


def test_a_camkit_checkpoint_is_read_once_and_gives_what_localize_gives(classifier, png, tmp_path, monkeypatch):
    ckpt = _camkit_checkpoint(classifier, tmp_path / "best.pt")
    loads = _count_loads(monkeypatch)
    res = explain_image(png, ckpt, ExplainOptions(model_name="classifier", cams=CAMS))
    assert loads == [str(ckpt)]
    assert set(res["boxes"]) == set(CAMS) and res["not_applicable"] == {}

    from camkit.data.imaging import preprocess, read_image

    x, _ = preprocess(read_image(png), tuple(classifier.input_size))
    found = localize(classifier, x.reshape(1, 1, *x.shape[-2:]), LocalizeOptions(CAMS))
    assert res["probability"] == pytest.approx(float(found.probs[0]), abs=1e-6)
    for cam in CAMS:
        np.testing.assert_allclose(res["arrays"]["maps"][cam], found.maps[cam][0].numpy(), atol=1e-6)
        assert res["boxes"][cam]["model_frame"] == found.boxes[cam][0][0].tolist()


def test_keywords_are_the_options_fields(classifier, png, tmp_path):
    ckpt = _camkit_checkpoint(classifier, tmp_path / "best.pt")
    opts = ExplainOptions(model_name="classifier", cams=CAMS, box_threshold=0.3, box_score="peak", fuse="max")
    by_object = explain_image(png, ckpt, opts)
    by_keyword = explain_image(png, ckpt, model_name="classifier", cams=list(CAMS), box_threshold=0.3,
                               box_score="peak", fuse="max")
    assert by_object["boxes"] == by_keyword["boxes"]
    assert by_object["probability"] == by_keyword["probability"]
    # a keyword overrides the same field of options
    over = explain_image(png, ckpt, opts, box_threshold=0.5, box_score="peak_x_prob", fuse="mean")
    assert over["boxes"] == explain_image(png, ckpt, model_name="classifier", cams=CAMS)["boxes"]
    with pytest.raises(TypeError, match="box_treshold.*model_name, cams"):
        explain_image(png, ckpt, opts, box_treshold=0.3)


def test_a_plain_state_dict_goes_to_the_models_own_loader(classifier, png, tmp_path):
    plain = tmp_path / "plain.pt"
    torch.save(classifier.state_dict(), plain)
    ckpt = _camkit_checkpoint(classifier, tmp_path / "best.pt")
    res = explain_image(png, plain, model_name="classifier", cams=CAMS, model_options={"preset": "cpu"})
    assert res["boxes"] == explain_image(png, ckpt, model_name="classifier", cams=CAMS)["boxes"]
