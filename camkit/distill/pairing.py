"""``--train-cam auto`` / ``--test-cam auto``: the teacher pairing chosen on the **validation** split.

The candidates are the bench's: its default train-cams (the teachers ``camkit bench`` trains) and its default
test-cams, or the one given for the other axis. Each candidate teacher is taken from the model store (one that
is not there is left out, saying so, unless ``--train-teacher`` trains it); one CAM-engine pass over the
validation split maps every candidate test-cam at once (:func:`camkit.bench.thresholds.choose_box_thresholds`,
the bench's own ``--box-threshold auto`` step), and the pairing with the best validation TPR@1FPPI (then CPM)
is the teacher. The test split is never looked at.
"""
from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from camkit.errors import CamkitError, OptionError

AUTO = "auto"


def wants_choice(config: Any) -> bool:
    """Whether ``config`` (a DistillConfig) leaves its train-cam or test-cam to the validation split."""
    return AUTO in (config.train_cam, config.test_cam)


def choose_pairing(config: Any, store: Any, display: Any = None) -> tuple[Any, dict[str, Any] | None]:
    """``config`` (a DistillConfig) with ``auto`` cams replaced by the best pairing on validation, and the
    record of the choice (``{"chosen_on": "val", "train_cam", "test_cam", "validation": {train_cam: {test_cam:
    {"tpr@1", "cpm", "threshold"}}}, "left_out", "requested", "seconds"}``); ``(config, None)`` when nothing
    is ``auto``."""
    from camkit.bench.cell import CellContext
    from camkit.bench.config import BenchConfig
    from camkit.distill.teacher import load_teacher

    if not wants_choice(config):
        return config, None
    t0 = time.perf_counter()
    cfg = BenchConfig(model=config.model, dataset=config.dataset, preset=config.preset, seed=config.seed,
                      train_cams=None if config.train_cam == AUTO else [config.train_cam],
                      test_cams=None if config.test_cam == AUTO else [config.test_cam],
                      model_options=dict(config.model_options), dataset_options=dict(config.dataset_options),
                      train=dict(config.teacher_train), box_threshold=config.box_threshold, boxes=config.boxes,
                      bootstrap=config.bootstrap)
    cfg = replace(cfg, test_cams=list(cfg.test_cams or BenchConfig().test_cams)).resolved()
    context = CellContext.create(cfg)
    table, left_out, sets = {}, {}, None
    for row in cfg.rows():
        model = context.model(row)
        sets = sets or context.datasets(row.model, model.input_size)
        if not len(sets["val"]):
            raise OptionError(f"--train-cam/--test-cam auto choose the pairing on the validation split, and dataset "
                              f"{cfg.dataset!r} has none in this recipe: name the cams, or give it a validation "
                              "split (e.g. --dataset-opt val_fraction=0.1)")
        try:
            load_teacher(cfg, row, model, sets, context, store, display, config.train_teacher)
        except CamkitError as exc:
            left_out[row.train_cam] = str(exc)
            continue
        table[row.train_cam] = _validation_scores(cfg, row, model, sets, context)
    if not table:
        names = ", ".join(r.train_cam for r in cfg.rows())
        raise CamkitError(f"--train-cam auto: none of the candidate teachers ({names}) is in the model "
                          f"store {store}: run camkit bench first (its trainings are the "
                          "teachers), or pass --train-teacher to train them now")
    best = max(((tc, cam) for tc, cams in table.items() for cam in cams),
               key=lambda p: (table[p[0]][p[1]]["tpr@1"], table[p[0]][p[1]]["cpm"]))
    record = {"chosen_on": "val", "train_cam": best[0], "test_cam": best[1], "validation": table,
              "left_out": left_out, "requested": {"train_cam": config.train_cam, "test_cam": config.test_cam},
              "n_images": len(sets["val"]), "seconds": time.perf_counter() - t0}
    if display is not None:
        display.log(f"pairing: train-cam {best[0]} x test-cam {best[1]}, the best TPR@1FPPI on "
                    f"{len(sets['val'])} validation images ({table[best[0]][best[1]]['tpr@1']:.2f})")
    return replace(config, train_cam=best[0], test_cam=best[1]), record


def _validation_scores(cfg: Any, row: Any, model: Any, sets: dict[str, Any], context: Any) -> dict[str, Any]:
    """Each test-cam's validation TPR@1FPPI and CPM at the box threshold the distill will use (the fixed one,
    or the one ``auto`` chooses on the same validation pass)."""
    from camkit.bench.thresholds import AUTO_THRESHOLDS, choose_box_thresholds

    if cfg.box_threshold != "auto" and not any(abs(cfg.box_threshold - t) < 1e-9 for t in AUTO_THRESHOLDS):
        grid = ", ".join(map(str, AUTO_THRESHOLDS))
        raise OptionError("--train-cam/--test-cam auto score the pairings on validation at the box threshold, which "
                          f"must be auto or one of {grid}; got {cfg.box_threshold}")
    chosen = choose_box_thresholds(model, sets["val"], context.options, cfg.recipe(row.model).eval_batch_size, cfg,
                                   context.device)
    out = {}
    for cam, entry in chosen.items():
        at = entry["value"] if cfg.box_threshold == "auto" else cfg.box_threshold
        scores = next(v for t, v in entry["validation"].items() if abs(float(t) - float(at)) < 1e-9)
        out[cam] = {"tpr@1": float(scores["tpr@1"]), "cpm": float(scores["cpm"]), "threshold": float(at)}
    return out
