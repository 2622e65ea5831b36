"""A model whose training loss takes more of each sample than image and label (``training_inputs``: a detector
trained on boxes, camkit.distill) gets them per image, in batch order, through the one training loop."""
from __future__ import annotations

import pytest
from torch.nn import functional as F

from camkit.errors import CamkitError
from camkit.training import TrainConfig, train
from train_toy import ToyMasses, ToyNet


class BoxSeeingNet(ToyNet):
    """ToyNet whose loss also reads each image's boxes (and records what it was given)."""

    training_inputs = ("boxes", "image_id")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen: list[tuple[str, int]] = []

    def training_loss(self, images, labels, progress, boxes, image_id):
        assert len(boxes) == len(image_id) == images.shape[0]
        self.seen += [(i, len(b)) for i, b in zip(image_id, boxes)]
        out = self(images)
        return F.binary_cross_entropy_with_logits(out["score"][:, 0], labels.float()), {}


def _config(tmp_path, **kw):
    return TrainConfig(epochs=1, batch_size=8, out_dir=str(tmp_path), hflip=False, random_crop=False, **kw)


def test_the_loss_gets_each_images_boxes(tmp_path):
    data = ToyMasses(n=16)
    model = BoxSeeingNet()
    train(model, data, None, _config(tmp_path))
    truth = {data[i]["image_id"]: len(data[i]["boxes"]) for i in range(len(data))}
    assert sorted(model.seen) == sorted(truth.items())  # every image once, with its own boxes


def test_a_model_trained_on_boxes_is_refused_image_only_augmentation(tmp_path):
    with pytest.raises(CamkitError, match="trains on boxes, image_id.*hflip and random_crop off"):
        train(BoxSeeingNet(), ToyMasses(n=16), None,
              TrainConfig(epochs=1, batch_size=8, out_dir=str(tmp_path), hflip=True, random_crop=False))


def test_training_inputs_may_not_repeat_image_or_label(tmp_path):
    class Odd(ToyNet):
        training_inputs = ("label",)

    with pytest.raises(CamkitError, match="names \\['label'\\]"):
        train(Odd(), ToyMasses(n=16), None, _config(tmp_path))
