"""``camkit distill``: a weakly supervised teacher's CAM boxes train a real detector, scored by the bench's engine.

The steps, each resumable (the trainings live in the model store):

1. **teacher**: the bench's (model, train-cam) training of the same recipe and seed, from the model store (the
   default bench's is reused; anything missing is trained, as ``camkit bench`` would);
2. **pseudo-boxes** (camkit.distill.pseudo): the teacher's test-cam boxes on the training split's mass images,
   normals as empty targets; their CorLoc / precision / recall against the true boxes where the dataset has them;
3. **detector**: a registered detector (``camkit list detectors``) trained on them through camkit's training loop
   (camkit.distill.adapter), selected by the image-level AUC of its best box on the validation split;
4. **oracle**: the same detector trained the same way on the true boxes (the ceiling; skipped, saying why, for a
   dataset without boxes);
5. **scores**: the three rows (``cam-boxes``: the teacher's own test-cam boxes; ``detector``; ``oracle``) on the
   test split with the bench's FROC engine and study bootstrap, and the weak-to-strong gain
   ``(detector - teacher) / (oracle - teacher)`` with its paired bootstrap interval.

The document ``distill.json`` is written atomically, last.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from camkit.errors import OptionError
from camkit.storage.atomic import atomic_write_json

SCHEMA = "camkit.distill/1"
ROWS = ("cam-boxes", "detector", "oracle")
#: the metrics of the distill leaderboard (the bench's metric table's FROC family)
METRICS = ("tpr@0.5", "tpr@1", "tpr@2", "cpm")


@dataclass
class DistillConfig:
    """Everything that decides a distill run's numbers. The teacher is the bench's (model, ``train_cam``) of
    ``preset``/``dataset``/``seed``; ``test_cam`` draws its boxes (``box_threshold`` a number or ``"auto"``,
    ``boxes`` ``single``/``peaks``); ``max_boxes``, ``min_score`` (camkit.distill.pseudo.PseudoSettings) and
    ``rounds`` (self-training) the noisy-label remedies; ``detector`` with ``detector_options``, trained with
    ``train`` (TrainConfig fields)."""

    train_cam: str = "xgradcam"
    test_cam: str = "gradcampp"
    detector: str | None = None  # None: the recipe's (its ``distill`` settings), else DEFAULT_DETECTOR
    detector_options: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    dataset: str | None = None
    preset: str | None = None
    seed: int = 0
    model_options: dict[str, Any] = field(default_factory=dict)
    dataset_options: dict[str, Any] = field(default_factory=dict)
    teacher_train: dict[str, Any] = field(default_factory=dict)
    box_threshold: float | str = 0.5
    boxes: str = "single"
    max_boxes: int = 1
    min_score: float = 0.0
    train: dict[str, Any] = field(default_factory=dict)
    rounds: int = 0  # self-training rounds: the detector relabels the training split, a new one trains on it
    oracle: bool = True
    oracle_epochs: int | None = None  # None: the detector's
    bootstrap: int = 1000
    train_teacher: bool = False  # train the teacher when the store lacks it (else: an error saying how)

    def bench_config(self) -> Any:
        """The teacher's bench configuration: one row, one test-cam."""
        from camkit.bench.config import BenchConfig

        return BenchConfig(model=self.model, dataset=self.dataset, train_cams=[self.train_cam],
                           test_cams=[self.test_cam], preset=self.preset, seed=self.seed,
                           model_options=dict(self.model_options), dataset_options=dict(self.dataset_options),
                           train=dict(self.teacher_train), box_threshold=self.box_threshold, boxes=self.boxes,
                           bootstrap=self.bootstrap).resolved()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: the detector's training when ``train`` says nothing: no image-only augmentation (boxes would not follow); two
#: epochs of fcos on the 1,600 synthetic training images take 207 s on 2 cores and already pass the teacher
#: (docs/distill.md)
DEFAULT_TRAIN = {"epochs": 2, "batch_size": 8, "lr": 1e-3, "hflip": False, "random_crop": False,
                 "lr_schedule": "cosine"}


DEFAULT_DETECTOR = "fcos"


def with_recipe(config: DistillConfig) -> DistillConfig:
    """``config`` with its recipe's distill settings (camkit.registry.meta.RecipeSpec ``distill``: the detector,
    its options, its training) under the options given explicitly."""
    from camkit.registry.api import get_recipe

    preset = get_recipe(config.preset).distill if config.preset else {}
    return replace(config, detector=config.detector or preset.get("detector") or DEFAULT_DETECTOR,
                   detector_options={**preset.get("detector_options", {}), **config.detector_options},
                   train={**preset.get("train", {}), **config.train})


def run_distill(config: DistillConfig, out: str | Path, store: str | Path | None = None,
                display: Any = None, log: tuple[str, ...] = (), log_uri: str | None = None) -> dict[str, Any]:
    """Run (or resume) a distill into ``out`` and return its document (also ``out/distill.json``). ``store``:
    the model store (default: ``out``'s sibling ``models``, where ``camkit bench`` keeps its trainings);
    ``display``: a :class:`camkit.ui.progress.BenchProgress`-like object (``log(text)``, ``train_sink(row)``;
    None: silent); ``log``: tracker backends (``tensorboard``, ``mlflow``; at ``log_uri``) that get each detector
    training's curves and, at the end, its row's scores."""
    from camkit.data.annotations import has_boxes
    from camkit.distill.pseudo import pseudo_label

    say = display.log if display is not None else (lambda text: None)
    out = Path(out)
    store = Path(store) if store is not None else out.parent / "models"
    started = time.perf_counter()
    from camkit.distill.pairing import choose_pairing

    config, pairing = choose_pairing(with_recipe(config), store, display)
    settings, cfg, context, teacher, sets = _prepare(config, say)
    row = cfg.rows()[0]

    from camkit.distill.teacher import load_teacher

    teacher_info = load_teacher(cfg, row, teacher, sets, context, store, display, config.train_teacher)
    t0 = time.perf_counter()
    options = _options(cfg, teacher, sets, context, say)
    say(f"pseudo-boxes: {config.test_cam} on {len(sets['train'])} training images")
    made = pseudo_label(teacher, sets["train"], options, settings, cfg.recipe(row.model).eval_batch_size,
                        context.device)
    pseudo_s = time.perf_counter() - t0
    q = made["quality"]
    if q["corloc"] is not None:
        say(f"pseudo-boxes: CorLoc {q['corloc']:.2f}, precision {q['precision'] or 0:.2f}, recall "
            f"{q['recall']:.2f} (IoU > {q['iou']}), {q['left_out']} mass image(s) left out")

    records = {"cam-boxes": _cam_box_records(teacher, sets["test"], options, cfg, context)}
    source = {"teacher": teacher_info["config_hash"], **settings.to_dict(), "boxes": cfg.boxes,
              "thresholds": options.cam_thresholds or options.box_threshold}
    from camkit.distill.tracking import DistillTrackers

    job = _Jobs(config, sets, context, store, teacher, display, DistillTrackers(out, log, log_uri, teacher_info))
    try:
        detector, trainings, rounds = _self_train(job, made["targets"], source, settings, cfg)
        records["detector"] = _detector_records(detector, sets["test"], cfg, context)
        if config.oracle and has_boxes(sets["train"]):
            oracle, trainings["oracle"] = _train_detector(job, "oracle", sets["train"])
            records["oracle"] = _detector_records(oracle, sets["test"], cfg, context)
        document = _score(config, cfg, records, trainings, teacher_info, made["quality"])
    except BaseException as exc:
        job.trackers.end(exc)
        raise
    document["rounds"], document["pairing"] = rounds, pairing
    job.trackers.close(document)
    document["timings"] = {"pseudo_s": pseudo_s, "total_s": time.perf_counter() - started,
                           **{f"{r}_train_s": t["seconds"] for r, t in trainings.items()}}
    _write(out, document, records)
    return document


def check_distill(config: DistillConfig) -> DistillConfig:
    """The checks that need no data, before anything is submitted or trained (the options, the detector's name,
    the teacher's configuration); returns ``config`` with its recipe's settings."""
    from camkit.distill.pseudo import PseudoSettings

    config = with_recipe(config)
    PseudoSettings(config.test_cam, config.max_boxes, config.min_score).check()
    _check_detector(config)
    if "auto" not in (config.train_cam, config.test_cam):
        config.bench_config()
    return config


def _prepare(config: DistillConfig, say: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
    """Everything checked before anything trains: the remedies' settings, the detector's name, the teacher's
    model and the splits (the test split must have boxes). Returns (settings, the bench config, its cell
    context, the teacher model, the splits)."""
    from camkit.bench.cell import CellContext
    from camkit.data.annotations import has_boxes
    from camkit.data.checks import check_splits
    from camkit.distill.pseudo import PseudoSettings

    settings = PseudoSettings(config.test_cam, config.max_boxes, config.min_score).check()
    if isinstance(config.rounds, bool) or not isinstance(config.rounds, int) or config.rounds < 0:
        raise OptionError(f"--rounds must be a whole number >= 0 (self-training rounds), got {config.rounds!r}")
    cfg = config.bench_config()
    _check_detector(config)
    context = CellContext.create(cfg)
    teacher = context.model(cfg.rows()[0])
    context.options.check(teacher)
    sets = context.datasets(cfg.rows()[0].model, teacher.input_size)
    if config.oracle and not has_boxes(sets["train"]):
        say("oracle: skipped: the dataset gives no lesion boxes to train it on")
    if not has_boxes(sets["test"]):
        raise OptionError(f"camkit distill scores detections against lesion boxes, and dataset {cfg.dataset!r} gives "
                          "none on its test split (it declares annotations = ()); distill on a dataset with boxes")
    for note in check_splits(sets, where=f"dataset {cfg.dataset!r}"):
        say(f"warning: {note}")
    return settings, cfg, context, teacher, sets


def _check_detector(config: DistillConfig) -> None:
    from camkit.registry.api import list_detectors

    if config.detector not in list_detectors():
        import difflib

        close = difflib.get_close_matches(config.detector, list_detectors(), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise OptionError(f"--detector {config.detector!r} is not a registered detector.{hint} Registered: "
                          f"{', '.join(list_detectors())} (camkit list detectors)")


def _options(cfg: Any, teacher: Any, sets: dict[str, Any], context: Any, say: Any) -> Any:
    """The teacher's localisation options, with the test-cam's box threshold chosen on validation for
    ``--box-threshold auto``."""
    options = context.options
    if cfg.box_threshold == "auto":
        from camkit.bench.thresholds import choose_box_thresholds

        chosen = choose_box_thresholds(teacher, sets["val"], options, cfg.recipe(cfg.models()[0]).eval_batch_size,
                                       cfg, context.device)
        options = replace(options, cam_thresholds={c: v["value"] for c, v in chosen.items()})
        say(f"box threshold: {options.cam_thresholds} (chosen on {len(sets['val'])} validation images)")
    return options


def _cam_box_records(teacher: Any, test_set: Any, options: Any, cfg: Any, context: Any) -> dict[str, Any]:
    """The teacher's own boxes on the test split (the bench's evaluation), as ``{"images", "predictions"}``."""
    from camkit.bench.evaluate import Evaluation, evaluate_pairings

    found = evaluate_pairings(teacher, test_set, Evaluation(options, cfg.recipe(cfg.models()[0]).eval_batch_size,
                                                            context.device))
    return {"images": found["images"], "predictions": found["predictions"][cfg.test_cams[0]]}


@dataclass
class _Jobs:
    """What every detector training of one distill shares."""

    config: DistillConfig
    sets: dict[str, Any]
    context: Any
    store: Path
    teacher: Any
    display: Any
    trackers: Any  # camkit.distill.tracking.DistillTrackers


def _self_train(job: _Jobs, targets: dict[str, Any], source: dict[str, Any], settings: Any,
                cfg: Any) -> tuple[Any, dict[str, Any], list[dict[str, Any]]]:
    """The detector on the teacher's pseudo-boxes, then ``rounds`` self-training rounds, each a new detector
    (same recipe and seed) trained on the previous one's boxes on the training split. Returns the last detector,
    the trainings by role (``detector``, then ``detector-r1`` ...) and each round's label quality."""
    from camkit.distill.pseudo import PseudoBoxDataset, relabel

    detector, trainings = None, {}
    rounds = []
    for r in range(job.config.rounds + 1):
        role = "detector" if r == 0 else f"detector-r{r}"
        if r:
            _say(job.display, f"round {r}: the detector relabels {len(job.sets['train'])} training images")
            made = relabel(detector, job.sets["train"], targets, settings, cfg.recipe(cfg.models()[0]).eval_batch_size,
                           job.context.device)
            targets = made["targets"]
            rounds.append({"round": r, "pseudo_boxes": made["quality"]})
        train_set = PseudoBoxDataset(job.sets["train"], targets, {**source, "round": r} if r else source)
        detector, trainings[role] = _train_detector(job, role, train_set)
    return detector, trainings, rounds


def _train_detector(job: _Jobs, role: str, train_set: Any) -> tuple[Any, dict[str, Any]]:
    """Train (or resume, or reuse) the ``role`` detector into the model store; returns it loaded with its best
    checkpoint, and its training's facts."""
    from camkit.bench.recipe import Recipe
    from camkit.bench.store import TrainJob, load_best, train_into_store
    from camkit.distill.adapter import DetectorModel
    from camkit.registry.api import create_detector
    from camkit.training import config_fingerprint, config_hash

    config, context = job.config, job.context
    detector = create_detector(config.detector, input_size=tuple(job.teacher.input_size),
                               **dict(config.detector_options))
    model = DetectorModel(config.detector, detector)
    train = {**DEFAULT_TRAIN, **config.train}
    if role == "oracle" and config.oracle_epochs is not None:  # a ceiling that is not cut short (docs/distill.md)
        train["epochs"] = int(config.oracle_epochs)
    recipe = Recipe(model=config.detector, dataset=str(config.dataset or ""), train=train, seed=config.seed)
    job_sets = {"train": train_set, "val": job.sets.get("val")}
    train_job = TrainJob(recipe, None, model, job_sets, job.store)
    digest = config_hash(config_fingerprint(model, train_set, train_job.val_set, train_job.config(),
                                            context.info.world_size, context.info.device.type))
    train_job = replace(train_job, out=job.store / f"{config.detector}-{role}-{digest}")
    _say(job.display, f"{role}: training {config.detector} on {len(train_set)} images ({train_job.out})")
    result, folder = train_into_store(train_job, context.info, job.trackers.sink(role, _sink(job.display, role)))
    best = load_best(result, model)
    return model, {"checkpoint": best, "seconds": result.seconds, "epochs": result.epochs_done,
                   "best_epoch": result.best_epoch, "best_val_auc": result.best_val_auc, "reused": result.reused,
                   "config_hash": result.config_hash, "images": len(train_set)}


def _detector_records(model: Any, test_set: Any, cfg: Any, context: Any) -> dict[str, Any]:
    """The detector's boxes on the test split, in each image's original pixels, as the bench stores CAM boxes."""
    import torch

    from camkit.bench.evaluate import image_record
    from camkit.data.sample import collate

    loader = torch.utils.data.DataLoader(test_set, batch_size=cfg.recipe(cfg.models()[0]).eval_batch_size,
                                         shuffle=False, collate_fn=collate)
    images, predictions = [], {}
    model.eval()
    with torch.no_grad():
        for batch in loader:
            if batch is None:
                continue
            out = model(context.device.prepare_images(batch["image"]))
            probs = model.predict(out).float().cpu().numpy()
            for i, (boxes, scores) in enumerate(out["detections"]):
                b = batch["transform"][i].to_original(boxes.detach().cpu().numpy()) if len(boxes) else \
                    np.zeros((0, 4))
                predictions[batch["image_id"][i]] = {"boxes": np.round(b, 2).tolist(),
                                                     "scores": scores.detach().float().cpu().numpy().tolist()}
                images.append(image_record(batch, i, probs[i]))
    return {"images": images, "predictions": predictions}


def _score(config: DistillConfig, cfg: Any, records: dict[str, Any], trainings: dict[str, Any],
           teacher: dict[str, Any], quality: dict[str, Any]) -> dict[str, Any]:
    """The document: each row's FROC numbers with study-bootstrap intervals, and the weak-to-strong gain."""
    from camkit.bench.scoring import score_detection

    rows = {}
    for role, rec in records.items():
        entry = score_detection(rec["predictions"], rec["images"], cfg)
        rows[role] = {m: entry[m] for m in METRICS if m in entry}
        rows[role]["froc"] = entry["froc"]
    gain = weak_to_strong_gain(records, cfg) if "oracle" in records else None
    return {"schema": SCHEMA, "config": config.to_dict(), "teacher": teacher, "pseudo_boxes": quality,
            "training": trainings, "rows": rows, "gain": gain,
            "oracle": None if "oracle" in records else "skipped: the dataset gives no training boxes"}


def weak_to_strong_gain(records: dict[str, Any], cfg: Any, metric: str = "tpr@1") -> dict[str, Any]:
    """``(detector - teacher) / (oracle - teacher)`` of ``metric`` on the test split, with a 95% interval from
    the same study resamples for all three rows (a paired bootstrap: the rows share their test images)."""
    from camkit.bench.scoring import as_predictions, ground_truth

    images = records["cam-boxes"]["images"]
    gt, studies = ground_truth(images)
    ids = sorted(gt)
    by_study: dict[str, list[str]] = {}
    for i in ids:
        by_study.setdefault(studies[i], []).append(i)
    groups = sorted(by_study)
    fppi = float(metric.split("@")[1])

    preds = {role: as_predictions(records[role]["predictions"]) for role in ROWS}  # once, not per resample
    value, (t, d, o) = _gain([f"{i}#0" for i in ids], preds, gt, cfg, fppi)
    rng = np.random.default_rng(cfg.seed)
    draws = []
    for _ in range(cfg.bootstrap):
        pick = rng.integers(0, len(groups), len(groups))
        chosen = [f"{i}#{k}" for k, g in enumerate(pick) for i in by_study[groups[g]]]
        draws.append(_gain(chosen, preds, gt, cfg, fppi)[0])
    finite = np.asarray([v for v in draws if np.isfinite(v)])
    ci = [float(np.quantile(finite, 0.025)), float(np.quantile(finite, 0.975))] if len(finite) else [None, None]
    return {"metric": metric, "value": value, "ci": ci, "teacher": t, "detector": d, "oracle": o,
            "bootstrap": {"n": cfg.bootstrap, "seed": cfg.seed, "by": "study",
                          "undefined": int(len(draws) - len(finite))}}


def _gain(chosen: list[str], preds: dict[str, Any], gt: dict[str, Any], cfg: Any,
          fppi: float) -> tuple[float, tuple[float, float, float]]:
    """The gain, and the three rows' TPR at ``fppi``, on the images ``chosen`` (ids with a ``#k`` suffix, so the
    repeats of a study resample count apart); ``preds``: each row's predictions as arrays."""
    from camkit.metrics import froc

    values = []
    empty = (np.zeros((0, 4)), np.zeros(0))
    for role in ROWS:
        keep = {k: preds[role].get(k.split("#")[0], empty) for k in chosen}
        keep_gt = {k: gt[k.split("#")[0]] for k in chosen}
        values.append(float(froc(keep, keep_gt, iou_threshold=cfg.iou_threshold, images=cfg.fppi_images).tpr_at(fppi)))
    t, d, o = values
    return ((d - t) / (o - t) if o != t else float("nan")), (t, d, o)


def _say(display: Any, text: str) -> None:
    if display is not None:
        display.log(text)


def _sink(display: Any, row: str) -> Any:
    """The training progress sink of ``row`` (None: silent)."""
    return display.train_sink(row) if display is not None else None


def _write(out: Path, document: dict[str, Any], records: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "predictions.json", records)
    atomic_write_json(out / "distill.json", document)
