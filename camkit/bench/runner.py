"""``camkit bench``: the train-cam x test-cam matrix.

For each train-cam the model is trained once (or a complete checkpoint with the same configuration is
reused), then every test-cam is scored from ONE CAM-engine pass per test batch. Everything lands in a run
directory (``results.json``, per-pairing predictions, checkpoints, figures), written atomically after every
train-cam, so an interrupted bench resumes where it stopped.
"""
from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


from camkit.storage.atomic import atomic_write_json
from camkit.errors import CamkitError
from camkit.bench.results import RESULTS_FILE, config_hash, load_results, new_results, save_results

PAPER_TEST_CAMS = ("cam", "gradcam", "gradcampp", "xgradcam", "layercam")
PAPER_TRAIN_CAMS = ("cam", "gradcampp", "xgradcam")

# What `--preset` fills in; explicit options override. Sizes are (H, W).
PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {
        "dataset": "synthetic",
        "model_options": {"preset": "cpu", "num_classes": 1},
        "dataset_options": {"size": [256, 160]},
        # ~10k training image-steps per train-cam: TPR@1FPPI >= 0.8 on the default synthetic difficulty
        "split_options": {"train": {"n": 1600}, "val": {"n": 200}, "test": {"n": 400}},
        "train": {"epochs": 6, "batch_size": 32, "amp": "off"},
        "eval_batch_size": 64,
    },
    "paper": {
        "dataset": "vindr",
        "model_options": {"preset": "official", "num_classes": 1},
        # balance_by="box" and no validation split give the paper's 1,978 / 474 images (docs/vindr.md)
        "dataset_options": {"size": [2944, 1920], "balanced": True, "balance_by": "box", "val_fraction": 0.0},
        # scoring counts every test image once (box balancing would repeat multi-mass images: 474 -> 438)
        "split_options": {"test": {"balance_by": "image"}},
        "train": {"epochs": 50, "batch_size": 6, "lr": 4.134e-6},
        "eval_batch_size": 6,
    },
}


@dataclass
class BenchConfig:
    """Everything that decides a bench run's numbers (paths and display options excluded from its hash)."""

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

    def resolved(self) -> BenchConfig:
        """A copy with the preset's defaults filled in under the explicit options."""
        if self.preset not in PRESETS:
            raise CamkitError(f"unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        p = copy.deepcopy(PRESETS[self.preset])
        out = copy.deepcopy(self)
        out.dataset = self.dataset or p["dataset"]
        out.model_options = {**p["model_options"], **self.model_options}
        out.dataset_options = {**p["dataset_options"], **self.dataset_options}
        # an option set explicitly for all splits beats the preset's per-split value of the same key
        out.split_options = {k: {**{key: v for key, v in p.get("split_options", {}).get(k, {}).items()
                                    if key not in self.dataset_options},
                                 **self.split_options.get(k, {})}
                             for k in ("train", "val", "test")}
        if out.dataset != p["dataset"]:  # the preset's data options belong to its own dataset
            out.dataset_options = dict(self.dataset_options)
            out.split_options = {k: dict(self.split_options.get(k, {})) for k in ("train", "val", "test")}
        out.train = {**p["train"], **self.train}
        out.eval_batch_size = self.eval_batch_size or p["eval_batch_size"]
        return out

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))


def expand_cams(names: list[str] | tuple[str, ...], default: tuple[str, ...]) -> list[str]:
    """``all`` -> every registered method; unknown names fail with a did-you-mean message."""
    from camkit.registry.api import get_cam, list_cams

    names = list(names) or list(default)
    if "all" in names:
        names = [*default, *[n for n in list_cams() if n not in default]]
    for n in names:
        get_cam(n)  # raises UnknownNameError with close matches
    return list(dict.fromkeys(names))


def run_bench(config: BenchConfig, out: str | Path, progress: Any = None) -> dict[str, Any] | None:
    """Run (or resume) the matrix described by ``config`` into ``out``; returns the results document.

    Under ``torchrun`` every rank trains (DDP) and evaluates its shard; rank 0 alone scores, writes and
    returns the results (other ranks return None).
    """
    from camkit.training import distributed
    from camkit.bench.evaluate import evaluate_pairings, score_pairings
    from camkit.ui.bench_progress import BenchProgress

    cfg = config.resolved()
    info = distributed.setup(cfg.train.get("device"))
    main = info.is_main
    out = Path(out)
    conf = cfg.to_dict()
    results = _resume_or_new(out, conf)
    sets = _datasets(cfg)
    results["dataset"] = {"name": cfg.dataset, "options": cfg.dataset_options,
                          "counts": {k: len(v) for k, v in sets.items()},
                          "skipped": {k: [list(map(str, s)) for s in getattr(v, "skipped", [])]
                                      for k, v in sets.items()}}
    if main:
        save_results(out, results)
    if not main:
        display = BenchProgress("off")
    else:
        display = progress if progress is not None else BenchProgress.auto(len(cfg.train_cams))
    started = time.perf_counter()
    try:
        for train_cam in cfg.train_cams:
            if train_cam in results["detection"] and train_cam in results["classification"]:
                display.skip(train_cam)
                continue
            model, training = _train_one(cfg, train_cam, sets, out, display)
            t0 = time.perf_counter()
            records = evaluate_pairings(model, sets["test"], cfg, display.eval_sink(train_cam))
            if not main:
                distributed.barrier()  # wait while rank 0 scores, instead of timing out in the next train()
                continue
            eval_s = time.perf_counter() - t0
            _write_predictions(out, train_cam, records)
            det, cls = score_pairings(records, cfg)
            results["training"][train_cam] = training
            results["detection"][train_cam] = det
            results["classification"][train_cam] = cls
            results["timings"][train_cam] = {"train_s": training["seconds"], "eval_s": eval_s,
                                             "cam_s": records["cam_seconds"]}
            save_results(out, results)  # scores first: a failing figure must not lose them
            overlay_figure(model, sets["test"], cfg, out / "figures" / f"overlay-{train_cam}.png")
            distributed.barrier()
    finally:
        display.close()
    if not main:
        return None
    _compare_to_baseline(out, results, cfg)
    results["timings"]["total_s"] = results["timings"].get("total_s", 0.0) + time.perf_counter() - started
    results["status"] = "complete"
    save_results(out, results)
    _figures(out, results, cfg, sets)
    return results


def _resume_or_new(out: Path, conf: dict[str, Any]) -> dict[str, Any]:
    path = out / RESULTS_FILE
    if path.is_file():
        old = load_results(path)
        if old.get("config_hash") == config_hash(conf):
            old["status"] = "running"
            return old
        raise CamkitError(f"{path} holds a bench with another configuration (hash {old.get('config_hash')}, "
                          f"now {config_hash(conf)}); choose a new --out, or delete that directory to start over")
    return new_results(conf)


def _datasets(cfg: BenchConfig) -> dict[str, Any]:
    from camkit.registry.api import create_dataset

    opts = {"seed": cfg.seed, **cfg.dataset_options}
    return {split: create_dataset(cfg.dataset, split=split, **{**opts, **cfg.split_options.get(split, {})})
            for split in ("train", "val", "test")}


def _train_one(cfg: BenchConfig, train_cam: str, sets: dict[str, Any], out: Path, display: Any):
    import torch

    from camkit.registry.api import create_model
    from camkit.storage.checkpoint import load_checkpoint
    from camkit.training.loop import TrainConfig, train

    torch.manual_seed(cfg.seed)  # model initialisation is part of the seeded configuration
    model = create_model(cfg.model, train_cam=train_cam, **cfg.model_options)
    tcfg = TrainConfig(**{**cfg.train, "seed": cfg.seed, "out_dir": str(out / "models" / train_cam),
                          "resume": True, "progress": False})
    val = sets["val"] if len(sets["val"]) else None  # the paper's preset has no validation split
    result = train(model, sets["train"], val, tcfg, progress=display.train_sink(train_cam))
    best = result.best_checkpoint or result.last_checkpoint
    load_checkpoint(best, model)
    model.eval()
    return model, {"checkpoint": str(Path(best).relative_to(out)), "seconds": result.seconds,
                   "epochs": result.epochs_done, "best_epoch": result.best_epoch,
                   "best_val_auc": result.best_val_auc, "images_per_s": result.images_per_s,
                   "reused": result.reused, "config_hash": result.config_hash}


def _write_predictions(out: Path, train_cam: str, records: dict[str, Any]) -> None:
    """Per-image boxes and scores in the original image frame, so scoring can be redone without inference."""
    atomic_write_json(out / "predictions" / f"{train_cam}.json", {
        "images": records["images"], "predictions": records["predictions"],
    })


def _figures(out: Path, results: dict[str, Any], cfg: BenchConfig, sets: dict[str, Any]) -> None:
    from camkit.ui.figures import froc_figure

    froc_figure(results, out / "figures" / "froc.png")


def _compare_to_baseline(out: Path, results: dict[str, Any], cfg: BenchConfig,
                         baseline: tuple[str, str] = ("cam", "cam")) -> None:
    """Paired bootstrap of every pairing against the released GMIC's own pairing (CAM for both)."""
    from camkit.bench.evaluate import compare_pairings

    if baseline[0] not in cfg.train_cams or baseline[1] not in cfg.test_cams:
        return
    stored = {tc: json.loads((out / "predictions" / f"{tc}.json").read_text()) for tc in cfg.train_cams}
    preds = {tc: s["predictions"] for tc, s in stored.items()}
    vs = compare_pairings(preds, stored[baseline[0]]["images"], cfg, baseline)
    for train_cam, per_test in vs.items():
        for test_cam, comparison in per_test.items():
            results["detection"][train_cam][test_cam]["vs_baseline"] = {"baseline": list(baseline), **comparison}


def overlay_figure(model: Any, test_set: Any, cfg: BenchConfig, path: Path, n: int = 4) -> Path | None:
    """The paper's Fig. 4 for one trained model: ``n`` test images with masses, each test-cam's map and boxes."""
    from camkit.metrics.boxes import maps_to_boxes
    from camkit.cams.engine import run_cams
    from camkit.data.sample import collate
    from camkit.ui.figures import overlay_grid

    from itertools import islice

    samples = list(islice((s for s in (test_set[i] for i in range(len(test_set))) if int(s["label"]) == 1), n))
    if not samples:
        return None
    batch = collate(samples)
    x = batch["image"].to(next(model.parameters()).device)
    maps, output = run_cams(model, x, cfg.test_cams, model.cam_layers, int(getattr(model, "target_class", 0)),
                            output=cfg.cam_output or model.cam_output, fuse=cfg.cam_fuse, return_output=True)
    probs = model.predict(output).detach().float().cpu().numpy()
    boxes = {c: [b for b, _ in maps_to_boxes(maps[c], cfg.box_threshold, probs, cfg.box_score)]
             for c in cfg.test_cams}
    return overlay_grid([im[0].numpy() for im in batch["image"]], [b.numpy() if hasattr(b, "numpy") else b
                                                                   for b in batch["boxes"]],
                        {c: list(maps[c].detach().cpu().numpy()) for c in cfg.test_cams}, boxes, path,
                        titles=[f"{i} p={p:.2f}" for i, p in zip(batch["image_id"], probs)])
