"""A tiny model and dataset that follow camkit's protocols, for the training-loop tests.

Run as a script (under torchrun) it trains the toy model and writes checkpoints to ``--out``.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from camkit.data.sample import BoxTransform
from camkit.protocols import ModelDefaults

SIZE = 16


class ToyMasses:
    """``n`` grey 16x16 images: noise, plus a bright blob when the label is 1 (``invert`` flips the labels).

    Images are normalised from the blob-free noise statistics, as the data contract asks (no label leak).
    """

    def __init__(self, n: int = 64, seed: int = 0, invert: bool = False, size: int = SIZE):
        self.n, self.seed, self.invert, self.size = n, seed, invert, size
        self.config = {"name": "toy", "n": n, "seed": seed, "invert": invert, "size": size}

    def __len__(self) -> int:
        return self.n

    def labels(self) -> list[int]:
        return [int(i % 2) ^ int(self.invert) for i in range(self.n)]

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < self.n:
            raise IndexError(i)
        rng = np.random.default_rng([self.seed, i])
        label = int(i % 2)
        img = rng.normal(0.0, 1.0, (self.size, self.size))
        boxes = np.zeros((0, 4), dtype=np.float32)
        if label:
            cy, cx = rng.uniform(4, self.size - 4, 2)
            yy, xx = np.mgrid[:self.size, :self.size]
            img = img + 2.5 * np.exp(-((yy + 0.5 - cy) ** 2 + (xx + 0.5 - cx) ** 2) / (2 * 1.5 ** 2))
            boxes = np.array([[cx - 3, cy - 3, cx + 3, cy + 3]], dtype=np.float32)
        return {"image": torch.from_numpy(img.astype(np.float32))[None], "label": label ^ int(self.invert),
                "boxes": torch.from_numpy(boxes), "image_id": f"toy{i}", "study_id": f"s{i // 2}",
                "laterality": "L", "view": "CC",
                "transform": BoxTransform((self.size, self.size), (self.size, self.size))}


class ToyNet(ModelDefaults, nn.Module):
    """conv + BatchNorm + ReLU ("features"), a 1x1 CAM head, and a max-pooled score."""

    def __init__(self, seed: int = 0, lr: float = 0.02, width: int = 4):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        # no conv bias before BatchNorm: its true gradient is 0, and Adam would turn rounding noise into steps
        self.features = nn.Sequential(nn.Conv2d(1, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                                      nn.ReLU())
        self.head = nn.Conv2d(width, 1, 1)
        with torch.no_grad():  # every weight from the seed, none from the global RNG
            for name, p in self.named_parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3 if p.dim() > 1 else
                        torch.ones_like(p) if name == "features.1.weight" else torch.zeros_like(p))
        self.input_size = (SIZE, SIZE)
        self.cam_layers = ["features"]
        self.score_outputs = ("score",)
        self.cam_output = "score"
        self.config = {"name": "toy", "seed": seed, "lr": lr, "width": width}
        self.progress_seen: list[float] = []

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        cam = self.head(self.features(x))
        return {"score": cam.amax(dim=(2, 3)), "cam": cam}

    def native_cam(self, outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return outputs["cam"]

    def predict(self, outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.sigmoid(outputs["score"][:, 0])

    def training_loss(self, images, labels, progress):
        self.progress_seen.append(float(progress))
        out = self(images)
        loss = F.binary_cross_entropy_with_logits(out["score"][:, 0].float(), labels.float())
        return loss, {"bce": float(loss.detach())}


class CountingToyNet(ToyNet):
    """Weights its loss by the parity of a Python-side call counter, kept through train_state()."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = 0

    def training_loss(self, images, labels, progress):
        loss, parts = super().training_loss(images, labels, progress)
        self.calls += 1
        return loss * (1.0 if self.calls % 2 else 0.25), parts

    def train_state(self) -> dict:
        return {"calls": self.calls}

    def load_train_state(self, state: dict) -> None:
        self.calls = int(state["calls"])


def main(argv: list[str] | None = None) -> None:
    from camkit.training import distributed
    from camkit.training import TrainConfig, train

    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--accumulate", type=int, default=1)
    p.add_argument("--n", type=int, default=32)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    cfg = TrainConfig(epochs=a.epochs, batch_size=a.batch_size, accumulate=a.accumulate, seed=3, out_dir=a.out,
                      progress=False, device="cpu", resume=False)
    try:
        train(ToyNet(seed=1), ToyMasses(a.n, seed=5), ToyMasses(16, seed=6), cfg)
    finally:
        distributed.cleanup()


if __name__ == "__main__":
    import train_toy  # the classes' module must be train_toy, not __main__: it enters the config hash

    train_toy.main()
