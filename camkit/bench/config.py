"""A bench run's configuration: the recipes it trains, the CAMs it pairs, how it scores. Checked in full before
anything is trained or written, so a bad option costs seconds and leaves nothing behind.

The leaderboard's rows are :class:`Row` s: a model that retrieves regions inside training (GMIC) gets one row
per train-cam; a model that does not (the pooled classifier) gets one row. Several models make one matrix
(``--model gmic --model classifier``); their rows are then labelled ``model+train-cam``.
"""
from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from camkit.bench.recipe import Recipe, preset_model, resolve_recipe, takes_train_cam  # noqa: F401 - re-exported
from camkit.errors import OptionError

MAX_SEED = 2**32 - 1        # numpy's and torch's seeds are taken as 32-bit here
MAX_BOOTSTRAP = 100_000     # resamples: the (n, test images) weight matrix stays in memory
PAPER_TEST_CAMS = ("cam", "gradcam", "gradcampp", "xgradcam", "layercam")
PAPER_TRAIN_CAMS = ("cam", "gradcampp", "xgradcam")
FPPI_IMAGES = ("positive", "all")
BOX_MODES = ("single", "peaks")


@dataclass(frozen=True)
class Row:
    """One leaderboard row: one trained model. ``label`` keys its results, predictions and figures."""

    label: str
    model: str
    train_cam: str | None  # None: the model retrieves no regions in training (no train-cam axis)

    @property
    def title(self) -> str:
        """What the row is, in words (figure titles, progress)."""
        if self.train_cam is None:
            return f"{self.model} (no train-cam)"
        return f"trained with {self.train_cam}" if self.label == self.train_cam else \
            f"{self.model} trained with {self.train_cam}"


@dataclass
class BenchConfig:
    """Everything that decides a bench run's numbers (paths and display options are not part of it)."""

    # several: one matrix, a row per (model, train-cam); None: the preset's (the default recipe's when no preset)
    model: str | list[str] | None = None
    dataset: str | None = None
    train_cams: list[str] | None = None  # None: the paper's three (none when no model takes a train-cam)
    test_cams: list[str] = field(default_factory=lambda: list(PAPER_TEST_CAMS))
    preset: str | None = None  # None: the default recipe (the one registered with default=True)
    seed: int = 0
    model_options: dict[str, Any] = field(default_factory=dict)  # "MODEL.key" keys: for that model alone
    dataset_options: dict[str, Any] = field(default_factory=dict)
    split_options: dict[str, dict[str, Any]] = field(default_factory=dict)  # per split, over dataset_options
    train: dict[str, Any] = field(default_factory=dict)
    eval_batch_size: int | None = None
    box_threshold: float | str = 0.5  # or "auto": chosen per pairing on the validation split (AUTO_THRESHOLDS)
    box_score: str = "peak_x_prob"
    boxes: str = "single"  # "single": one threshold; "peaks": a box per map peak, cut relative to it, box NMS
    faithfulness: list[str] = field(default_factory=list)  # metric_table.faithfulness_options() run per pairing
    faithfulness_steps: int = 20  # deletion/insertion steps in the bench (the metric's own default is 50)
    iou_threshold: float = 0.3
    # MaxBoxAcc's rules (camkit.metrics.box_hits): "camkit" geometry, or clovaai/wsolevaluation's to the figure
    maxboxacc_convention: str = "camkit"
    fppi_images: str = "positive"
    bootstrap: int = 1000
    cam_fuse: str = "mean"
    cam_output: str | None = None  # the score the test-time CAMs explain; None = the model's cam_output
    # constructor options per method, for it as a test-cam and as a train-cam (the model's train_cam_options)
    cam_options: dict[str, dict[str, Any]] = field(default_factory=dict)

    def models(self) -> list[str]:
        """The models of the matrix, in order (None: the preset's)."""
        if self.model is None:
            return [preset_model(self.recipe_name())]
        names = [self.model] if isinstance(self.model, str) else list(self.model)
        if not names:
            raise OptionError("the matrix needs at least one --model")
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise OptionError(f"--model {', '.join(twice)} given twice; name each model once (its train-cams "
                              "make its rows)")
        return names

    def model_options_for(self, model: str) -> dict[str, Any]:
        """``model``'s options: the unprefixed ones, and ``MODEL.key`` ones with its name (prefix dropped)."""
        from camkit.registry.api import list_models

        models, registered = self.models(), set(list_models())
        out = {}
        for key, value in self.model_options.items():
            head, dot, rest = str(key).partition(".")
            if dot and head in registered:
                if head not in models:
                    raise OptionError(f"--model-opt {key}: model {head!r} is not in this bench (its models: "
                                      f"{', '.join(models)}); add --model {head} or drop the option")
                if head == model:
                    out[rest] = value
            else:
                out[key] = value
        return out

    def recipe_name(self) -> str:
        """The recipe this bench starts from: ``preset``, else the default recipe."""
        from camkit.registry.api import default_recipe

        return self.preset or default_recipe()

    def recipe(self, model: str | None = None) -> Recipe:
        """The training recipe of ``model`` (default: the first): the preset with the explicit options over it."""
        model = model or self.models()[0]
        return resolve_recipe(self.recipe_name(), model=model, dataset=self.dataset,
                              model_options=self.model_options_for(model), dataset_options=self.dataset_options,
                              split_options=self.split_options, train=self.train,
                              eval_batch_size=self.eval_batch_size, seed=self.seed)

    def resolved(self) -> BenchConfig:
        """A checked copy with the preset's defaults filled in under the explicit options.

        One model keeps the one-model form (a model name, plain option keys), so its configuration and hash
        are those of benches from before models could be mixed; several store each model's options prefixed.
        """
        models = self.models()
        recipes = {m: self.recipe(m) for m in models}
        r = recipes[models[0]]
        out = copy.deepcopy(self)
        out.preset = self.recipe_name()  # stored by name: the configuration (and its hash) says which recipe
        out.model = r.model if len(models) == 1 else models
        out.model_options = r.model_options if len(models) == 1 else \
            {f"{m}.{k}": v for m in models for k, v in recipes[m].model_options.items()}
        out.dataset, out.dataset_options, out.split_options = r.dataset, r.dataset_options, r.split_options
        out.train, out.eval_batch_size = r.train, r.eval_batch_size
        axis = [m for m in models if takes_train_cam(m)]
        if out.train_cams is None:
            out.train_cams = list(PAPER_TRAIN_CAMS) if axis else []
        elif out.train_cams and not axis:
            raise OptionError(f"--train-cam {' '.join(out.train_cams)}: {' and '.join(models)} retrieve(s) no "
                              "regions inside training, so there is no train-cam to choose; drop --train-cam "
                              "(the bench trains one row per such model)")
        return out.check()

    def rows(self) -> list[Row]:
        """The leaderboard's rows of a resolved config, in training order."""
        models = self.models()
        several = len(models) > 1
        out = []
        for m in models:
            if takes_train_cam(m):
                out += [Row(f"{m}+{tc}" if several else tc, m, tc) for tc in self.train_cams or ()]
            else:
                out.append(Row(m, m, None))
        return out

    def check(self) -> BenchConfig:
        """Raise OptionError for a scoring option that would only fail after training."""
        from camkit.registry.api import get_cam
        from camkit.training import TrainConfig

        train_cams = self.train_cams or []
        if not self.test_cams:
            raise OptionError("the matrix needs at least one --test-cam")
        if not self.rows():
            raise OptionError("the matrix needs at least one --train-cam for "
                              f"{', '.join(m for m in self.models() if takes_train_cam(m))}")
        stray = sorted(set(self.cam_options) - set(self.test_cams) - set(train_cams))
        if stray:
            raise OptionError(f"--cam-opt for {', '.join(stray)}, which is neither a test-cam ("
                              f"{', '.join(self.test_cams)}) nor a train-cam ({', '.join(train_cams) or 'none'})")
        from camkit.bench.faithful import expand_families

        if list(self.faithfulness) != expand_families(self.faithfulness):
            raise OptionError(f"faithfulness {self.faithfulness!r}: give families from "
                              "camkit.bench.metric_table.faithfulness_options(), each once, in that order (the CLI "
                              "does)")
        if isinstance(self.faithfulness_steps, bool) or not isinstance(self.faithfulness_steps, int) \
                or self.faithfulness_steps < 1:
            raise OptionError(f"--faithfulness-steps must be a positive integer, got {self.faithfulness_steps!r}")
        if isinstance(self.box_threshold, str) and self.box_threshold != "auto":
            raise OptionError(f"--box-threshold {self.box_threshold!r}: give a fraction in (0, 1] of each map's "
                              "maximum, or auto (chosen on the validation split)")
        self.localize_options().check()
        for name in sorted(set(self.cam_options) & set(train_cams) - set(self.test_cams)):
            get_cam(name, **self.cam_options[name])  # a train-cam's bad option fails now, not after training
        self._check_train_time(train_cams)
        if isinstance(self.bootstrap, bool) or not isinstance(self.bootstrap, int) or self.bootstrap < 1:
            raise OptionError(f"--bootstrap must be a positive number of resamples (1,000 is usual), got "
                              f"{self.bootstrap!r}")
        if self.bootstrap > MAX_BOOTSTRAP:
            raise OptionError(f"--bootstrap {self.bootstrap:,}: at most {MAX_BOOTSTRAP:,} resamples (each holds a "
                              "weight per test image in memory; 1,000-10,000 is usual)")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED:
            raise OptionError(f"--seed {self.seed!r}: seeds are integers 0 .. {MAX_SEED} (numpy and torch take "
                              "them as 32-bit)")
        if not 0.0 <= float(self.iou_threshold) < 1.0:
            raise OptionError(f"iou_threshold must be in [0, 1), got {self.iou_threshold!r}")
        from camkit.metrics.localization import MAXBOXACC_CONVENTIONS

        if self.maxboxacc_convention not in MAXBOXACC_CONVENTIONS:
            raise OptionError(f"--maxboxacc-convention {self.maxboxacc_convention!r}: choose one of "
                              f"{', '.join(MAXBOXACC_CONVENTIONS)}")
        if self.fppi_images not in FPPI_IMAGES:
            raise OptionError(f"fppi_images must be one of {', '.join(FPPI_IMAGES)}, got {self.fppi_images!r}")
        if self.eval_batch_size is not None and (not isinstance(self.eval_batch_size, int) or self.eval_batch_size < 1):
            raise OptionError(f"eval_batch_size must be a positive integer, got {self.eval_batch_size!r}")
        unknown = sorted(set(self.train) - set(TrainConfig.__dataclass_fields__))
        if unknown:
            raise OptionError(f"training option(s) {unknown} do not exist")
        TrainConfig(**self.train).check()
        return self

    def _check_train_time(self, train_cams: list[str]) -> None:
        """Refuse a test-time-only CAM method as a train-cam now: it would fail at the first training step."""
        from camkit.cams.base import train_time_problem
        from camkit.registry.api import get_cam, list_cams

        registered = set(list_cams())
        for name in train_cams:
            if name in registered:  # a model may take a train-cam of its own that is no CAM method
                problem = train_time_problem(get_cam(name, **self.cam_options.get(name, {})))
                if problem:
                    raise OptionError(f"--train-cam {name}: {problem}; score it as a --test-cam instead")

    def localize_options(self) -> Any:
        """How the test-time maps become boxes (:class:`camkit.inference.LocalizeOptions`)."""
        from camkit.inference import LocalizeOptions

        from camkit.metrics.boxes import PROPOSAL_THRESHOLDS

        options = {name: opts for name, opts in self.cam_options.items() if name in self.test_cams}
        if self.boxes not in BOX_MODES:
            raise OptionError(f"--boxes {self.boxes!r}: choose one of {', '.join(BOX_MODES)}")
        auto = self.box_threshold == "auto"
        threshold = 0.5 if auto else self.box_threshold  # auto: replaced per test-cam before the test set
        if auto and self.boxes != "single":
            raise OptionError("--box-threshold auto chooses the one threshold of --boxes single; --boxes peaks "
                              "cuts each peak at --box-threshold of its own height (give a number)")
        return LocalizeOptions(tuple(self.test_cams), threshold, self.box_score, self.cam_output, self.cam_fuse,
                               options, proposals=PROPOSAL_THRESHOLDS if self.boxes == "peaks" else None)

    def train_cam_options(self, train_cam: str) -> dict[str, Any]:
        """The ``--cam-opt`` options of ``train_cam`` (its method's options while it drives training)."""
        return dict(self.cam_options.get(train_cam, {}))

    def to_dict(self) -> dict[str, Any]:
        d = json.loads(json.dumps(asdict(self)))
        if not d["cam_options"]:  # absent when unused: configurations (and their hashes) from before it stay equal
            del d["cam_options"]
        if d["boxes"] == "single":  # likewise
            del d["boxes"]
        if not d["faithfulness"]:
            del d["faithfulness"], d["faithfulness_steps"]
        if d["maxboxacc_convention"] == "camkit":
            del d["maxboxacc_convention"]
        return d


def expand_cams(names: list[str] | tuple[str, ...], default: tuple[str, ...], *,
                train_time: bool | None = None) -> list[str]:
    """``all`` -> every registered method (``default`` first), a cost class -> its methods; unknown names fail
    with a did-you-mean message (:func:`camkit.cams.resolve.expand_names`). With ``train_time`` the groups leave
    out test-time-only methods (``--train-cam all`` trains every method that can drive training; one named
    explicitly is refused by :meth:`BenchConfig.check`); None: True when ``default`` is the train-cams'
    default, :data:`PAPER_TRAIN_CAMS` (what ``camkit bench --train-cam`` passes)."""
    from camkit.cams.resolve import expand_names

    if train_time is None:
        train_time = tuple(default) == PAPER_TRAIN_CAMS
    return expand_names(names, default, train_time=train_time)
