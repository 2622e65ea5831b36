"""A bench run's configuration: the recipe it trains, the CAMs it pairs, how it scores. Checked in full before
anything is trained or written, so a bad option costs seconds and leaves nothing behind."""
from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from camkit.bench.recipe import Recipe, resolve_recipe
from camkit.errors import OptionError

PAPER_TEST_CAMS = ("cam", "gradcam", "gradcampp", "xgradcam", "layercam")
PAPER_TRAIN_CAMS = ("cam", "gradcampp", "xgradcam")
FPPI_IMAGES = ("positive", "all")


@dataclass
class BenchConfig:
    """Everything that decides a bench run's numbers (paths and display options are not part of it)."""

    model: str = "gmic"
    dataset: str | None = None
    train_cams: list[str] = field(default_factory=lambda: list(PAPER_TRAIN_CAMS))
    test_cams: list[str] = field(default_factory=lambda: list(PAPER_TEST_CAMS))
    preset: str = "cpu"
    seed: int = 0
    model_options: dict[str, Any] = field(default_factory=dict)
    dataset_options: dict[str, Any] = field(default_factory=dict)
    split_options: dict[str, dict[str, Any]] = field(default_factory=dict)  # per split, over dataset_options
    train: dict[str, Any] = field(default_factory=dict)
    eval_batch_size: int | None = None
    box_threshold: float = 0.5
    box_score: str = "peak_x_prob"
    iou_threshold: float = 0.3
    fppi_images: str = "positive"
    bootstrap: int = 1000
    cam_fuse: str = "mean"
    cam_output: str | None = None  # the score the test-time CAMs explain; None = the model's cam_output
    # constructor options per method, for it as a test-cam and as a train-cam (the model's train_cam_options)
    cam_options: dict[str, dict[str, Any]] = field(default_factory=dict)

    def recipe(self) -> Recipe:
        """The training recipe: the preset with this config's explicit options over it."""
        return resolve_recipe(self.preset, model=self.model, dataset=self.dataset,
                              model_options=self.model_options, dataset_options=self.dataset_options,
                              split_options=self.split_options, train=self.train,
                              eval_batch_size=self.eval_batch_size, seed=self.seed)

    def resolved(self) -> BenchConfig:
        """A checked copy with the preset's defaults filled in under the explicit options."""
        r = self.recipe()
        out = copy.deepcopy(self)
        out.model, out.dataset = r.model, r.dataset
        out.model_options, out.dataset_options, out.split_options = r.model_options, r.dataset_options, \
            r.split_options
        out.train, out.eval_batch_size = r.train, r.eval_batch_size
        return out.check()

    def check(self) -> BenchConfig:
        """Raise OptionError for a scoring option that would only fail after training."""
        from camkit.registry.api import get_cam
        from camkit.training import TrainConfig

        if not self.train_cams or not self.test_cams:
            raise OptionError("the matrix needs at least one --train-cam and one --test-cam")
        stray = sorted(set(self.cam_options) - set(self.test_cams) - set(self.train_cams))
        if stray:
            raise OptionError(f"--cam-opt for {', '.join(stray)}, which is neither a test-cam ("
                              f"{', '.join(self.test_cams)}) nor a train-cam ({', '.join(self.train_cams)})")
        self.localize_options().check()
        for name in sorted(set(self.cam_options) & set(self.train_cams) - set(self.test_cams)):
            get_cam(name, **self.cam_options[name])  # a train-cam's bad option fails now, not after training
        if isinstance(self.bootstrap, bool) or not isinstance(self.bootstrap, int) or self.bootstrap < 1:
            raise OptionError(f"--bootstrap must be a positive number of resamples (1,000 is usual), got "
                              f"{self.bootstrap!r}")
        if not 0.0 <= float(self.iou_threshold) < 1.0:
            raise OptionError(f"iou_threshold must be in [0, 1), got {self.iou_threshold!r}")
        if self.fppi_images not in FPPI_IMAGES:
            raise OptionError(f"fppi_images must be one of {', '.join(FPPI_IMAGES)}, got {self.fppi_images!r}")
        if self.eval_batch_size is not None and (not isinstance(self.eval_batch_size, int) or self.eval_batch_size < 1):
            raise OptionError(f"eval_batch_size must be a positive integer, got {self.eval_batch_size!r}")
        unknown = sorted(set(self.train) - set(TrainConfig.__dataclass_fields__))
        if unknown:
            raise OptionError(f"training option(s) {unknown} do not exist")
        TrainConfig(**self.train).check()
        return self

    def localize_options(self) -> Any:
        """How the test-time maps become boxes (:class:`camkit.inference.LocalizeOptions`)."""
        from camkit.inference import LocalizeOptions

        options = {name: opts for name, opts in self.cam_options.items() if name in self.test_cams}
        return LocalizeOptions(tuple(self.test_cams), self.box_threshold, self.box_score, self.cam_output,
                               self.cam_fuse, options)

    def train_cam_options(self, train_cam: str) -> dict[str, Any]:
        """The ``--cam-opt`` options of ``train_cam`` (its method's options while it drives training)."""
        return dict(self.cam_options.get(train_cam, {}))

    def to_dict(self) -> dict[str, Any]:
        d = json.loads(json.dumps(asdict(self)))
        if not d["cam_options"]:  # absent when unused: configurations (and their hashes) from before it stay equal
            del d["cam_options"]
        return d


def expand_cams(names: list[str] | tuple[str, ...], default: tuple[str, ...]) -> list[str]:
    """``all`` -> every registered method (``default`` first), a cost class -> its methods; unknown names fail
    with a did-you-mean message (:func:`camkit.cams.resolve.expand_names`)."""
    from camkit.cams.resolve import expand_names

    return expand_names(names, default)
