"""A cell: one (model, train-cam, seed) row of a bench, the unit that runs anywhere.

A cell trains its model into the model store (:func:`camkit.bench.store.train_into_store`, as ``camkit train``
does), chooses the box thresholds, evaluates every test-cam from one CAM-engine pass per batch, scores the
pairings, and writes the row's document ``cells/<label>.json`` atomically in the run folder (with
``predictions/<label>.json`` and ``overlays/<label>.npz``). It needs nothing from the process that planned it but
its :class:`CellSpec`, which is plain JSON: it runs in-process (``camkit bench``), in a subprocess or on another
node (``camkit bench-cell SPEC.json``). :func:`camkit.bench.runner.run_bench` plans the cells, runs them and
assembles their documents into ``results.json``.

Example::

    spec = CellSpec(config=cfg.resolved().to_dict(), row="xgradcam", out="runs/bench", store="runs/models")
    document = run_cell(spec)         # or: camkit bench-cell runs/bench/cells/xgradcam.spec.json
"""
from __future__ import annotations

import io
import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from camkit.bench.config import BenchConfig, Row
from camkit.bench.scoring import not_scored_message
from camkit.data.annotations import has_boxes
from camkit.errors import CamkitError
from camkit.storage.atomic import atomic_write, atomic_write_json
from camkit.storage.lock import FolderLock

CELLS_DIR = "cells"
SPEC_SCHEMA = "camkit.cell-spec/1"
CELL_SCHEMA = "camkit.cell/1"

#: A model that separates the classes this well but whose maps reach this little is not localising.
WARN_AUC, WARN_TPR = 0.8, 0.2


@dataclass(frozen=True)
class CellSpec:
    """Everything a cell needs: the run's resolved configuration (``BenchConfig.to_dict()``), the row it
    trains, the run folder and the model store, and the trackers its curves go to."""

    config: dict[str, Any]
    row: str
    out: str
    store: str
    log: tuple[str, ...] = ()
    log_uri: str | None = None
    # CPU kernels give other weights with other thread counts, so where a cell runs must not choose it
    threads: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SPEC_SCHEMA, **asdict(self), "log": list(self.log)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "cell spec") -> CellSpec:
        """The spec of :meth:`to_dict`'s JSON; anything else is a one-line error naming ``where``."""
        if not isinstance(data, dict) or data.get("schema") != SPEC_SCHEMA:
            raise CamkitError(f"{where}: not a camkit cell spec (schema {SPEC_SCHEMA!r}); write one with "
                              "camkit.bench.cell.plan_cells or camkit bench")
        missing = [k for k in ("config", "row", "out", "store") if k not in data]
        if missing:
            raise CamkitError(f"{where}: the cell spec lacks {', '.join(missing)}")
        return cls(data["config"], str(data["row"]), str(data["out"]), str(data["store"]),
                   tuple(data.get("log") or ()), data.get("log_uri"), data.get("threads"))

    def config_object(self) -> BenchConfig:
        return BenchConfig(**self.config)

    def document_path(self) -> Path:
        return Path(self.out) / CELLS_DIR / f"{self.row}.json"


def plan_cells(config: BenchConfig, out: str | Path, store: str | Path, log: tuple[str, ...] = (),
               log_uri: str | None = None, threads: int | None = None) -> list[CellSpec]:
    """The cells of a resolved ``config``'s matrix, in training order; ``threads``: the CPU threads each trains
    with (default: this process's torch thread count, so every executor gives the numbers ``inline`` gives)."""
    import torch

    conf = config.to_dict()
    threads = int(threads) if threads is not None else torch.get_num_threads()
    return [CellSpec(conf, row.label, str(out), str(store), tuple(log), log_uri, threads) for row in config.rows()]


def write_spec(spec: CellSpec) -> Path:
    """``cells/<label>.spec.json``: what a job on another machine runs (``camkit bench-cell``)."""
    return atomic_write_json(Path(spec.out) / CELLS_DIR / f"{spec.row}.spec.json", spec.to_dict())


def read_spec(path: str | Path) -> CellSpec:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CamkitError(f"{path}: cannot read a cell spec ({type(exc).__name__}: {exc})") from None
    return CellSpec.from_dict(data, str(path))


def record_failure(spec: CellSpec, error: str, log: str | None = None) -> Path:
    """``cells/<row>.failed.json``: the cell's last error and log (``camkit status`` shows it; a later success
    removes it)."""
    return atomic_write_json(Path(spec.out) / CELLS_DIR / f"{spec.row}.failed.json",
                             {"error": error, "log": log, "at": time.strftime("%Y-%m-%d %H:%M:%S")})


def read_failure(spec: CellSpec) -> dict[str, Any] | None:
    try:
        return json.loads((Path(spec.out) / CELLS_DIR / f"{spec.row}.failed.json").read_text())
    except (OSError, ValueError):
        return None


def read_document(spec: CellSpec, config_hash: str) -> dict[str, Any] | None:
    """The cell's finished document when it was scored under ``config_hash``, else None (to run)."""
    path = spec.document_path()
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None  # absent, or half of a killed writer's: the cell runs again (its model is reused)
    if not isinstance(doc, dict) or doc.get("schema") != CELL_SCHEMA or doc.get("config_hash") != config_hash:
        return None
    return doc


@dataclass
class CellContext:
    """What the cells of one process share: its distributed setup and device, the localisation options, and
    the models and datasets already built (the planner builds one model per kind to check it; the datasets
    of one input size are built once). Built on demand when a cell runs alone."""

    config: BenchConfig
    info: Any
    device: Any
    options: Any
    models: dict[str, Any] = field(default_factory=dict)       # row label -> a fresh, checked model
    sets: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    # called with (spec, document) when a cell of this process finishes (the bench re-assembles results.json)
    on_done: Any = None

    @classmethod
    def create(cls, config: BenchConfig) -> CellContext:
        from camkit.training import distributed
        from camkit.training.device import DeviceSettings

        info = distributed.setup(config.train.get("device"))
        device = DeviceSettings.resolve(info.device, "off", config.train.get("channels_last"))
        return cls(config, info, device, config.localize_options())

    def model(self, row: Row) -> Any:
        """A fresh model of ``row`` (the one the planner built to check it, if any)."""
        from camkit.bench.recipe import build_model

        if row.label in self.models:
            return self.models.pop(row.label)
        cfg = self.config
        return build_model(cfg.recipe(row.model), row.train_cam,
                           cfg.train_cam_options(row.train_cam) if row.train_cam else None)

    def datasets(self, model_name: str, input_size: Any) -> dict[str, Any]:
        from camkit.bench.recipe import build_datasets

        size = tuple(int(v) for v in input_size)
        if size not in self.sets:
            self.sets[size] = build_datasets(self.config.recipe(model_name), size)
        return self.sets[size]


def run_cell(spec: CellSpec, display: Any = None, context: CellContext | None = None) -> dict[str, Any] | None:
    """Train, evaluate and score one cell, and write its document; returns it (None on a torchrun rank other
    than 0, which trains and evaluates its shard but writes nothing). ``display``: a
    :class:`camkit.ui.progress.BenchProgress`-like object (None: silent)."""
    cfg = spec.config_object()
    row = next((r for r in cfg.rows() if r.label == spec.row), None)
    if row is None:
        raise CamkitError(f"cell {spec.row!r} is not a row of its configuration (rows: "
                          f"{', '.join(r.label for r in cfg.rows())})")
    _use_threads(spec.threads)
    ctx = context or CellContext.create(cfg)
    # one process per cell: a second submitter, or a job and a manual bench-cell, refuses in one line
    claim = FolderLock(Path(spec.out) / CELLS_DIR / f"{spec.row}.claim", f"cell {spec.row!r} of {spec.out}")
    if ctx.info.is_main:
        _claim(claim, spec)
    try:
        return _run_claimed(spec, row, ctx, display)
    finally:
        claim.release()


def _claim(claim: FolderLock, spec: CellSpec) -> None:
    from camkit.storage.lock import FolderBusy

    try:
        claim.acquire()
    except FolderBusy:
        who = claim.holder() or {}
        raise FolderBusy(f"cell {spec.row!r} of {spec.out} is being run by another camkit process (pid "
                         f"{who.get('pid')} on {who.get('host')}, since {who.get('since')}): wait for it (camkit status "
                         f"{spec.out} shows it); if that process is gone, delete {claim.folder}") from None


def _run_claimed(spec: CellSpec, row: Row, ctx: CellContext, display: Any) -> dict[str, Any] | None:
    cfg = ctx.config
    model = ctx.model(row)
    sets = ctx.datasets(row.model, model.input_size)
    main = ctx.info.is_main
    trackers = _open_trackers(spec, row, sets, ctx.options) if main else []
    try:
        training = _train(spec, row, model, sets, ctx, display if main else None, trackers)
        t0 = time.perf_counter()
        chosen, records, overlays = _evaluate(cfg, row, model, sets, ctx, display if main else None)
        eval_s = time.perf_counter() - t0
    except BaseException as exc:
        _end_trackers(trackers, exc)
        if main and isinstance(exc, Exception):  # camkit status shows it until the cell succeeds
            record_failure(spec, f"{type(exc).__name__}: {exc}")
        raise
    if not main:
        _barrier()  # wait while rank 0 scores, instead of timing out in the next train()
        return None
    boxes = has_boxes(sets["test"])
    document = _score(spec, row, records, chosen, training, eval_s, boxes)
    if not boxes:
        document["not_scored"] = not_scored_message(cfg.dataset)
    document["threads"] = spec.threads
    _write_outputs(spec, records, overlays, document)
    (Path(spec.out) / CELLS_DIR / f"{spec.row}.failed.json").unlink(missing_ok=True)
    _close_trackers(trackers, document["detection"], document["classification"])
    _barrier()
    if ctx.on_done is not None:
        ctx.on_done(spec, document)
    return document


def _use_threads(threads: int | None) -> None:
    """Train and evaluate with ``threads`` CPU threads (the spec's), whichever process runs the cell."""
    import torch

    if threads is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(int(threads))


def _train(spec: CellSpec, row: Row, model: Any, sets: dict[str, Any], ctx: CellContext, display: Any,
           trackers: list[Any]) -> dict[str, Any]:
    from camkit.bench.store import TrainJob, load_best, train_into_store
    from camkit.training.progress import Tee

    sink = display.train_sink(row.label) if display is not None else None
    job = TrainJob(ctx.config.recipe(row.model), row.train_cam, model, sets, Path(spec.store))
    result, folder = train_into_store(job, ctx.info, Tee(sink, *trackers) if trackers else sink)
    if result.reused and display is not None:  # say so: a reuse rests on the datasets' configs (docs/plugins.md)
        display.log(f"{row.label}: reused the trained model in {folder} (same model, data, recipe and seed)")
    best = load_best(result, model)
    return {"checkpoint": os.path.relpath(best, spec.out), "seconds": result.seconds, "epochs": result.epochs_done,
            "best_epoch": result.best_epoch, "best_val_auc": result.best_val_auc,
            "images_per_s": result.images_per_s, "reused": result.reused, "config_hash": result.config_hash}


def _evaluate(cfg: BenchConfig, row: Row, model: Any, sets: dict[str, Any], ctx: CellContext,
              display: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]:
    """The chosen box thresholds (``--box-threshold auto``), every test-cam's per-image records, and the
    overlay arrays (rank 0)."""
    from camkit.bench.evaluate import Evaluation, evaluate_pairings, overlay_data
    from camkit.bench.thresholds import choose_box_thresholds

    recipe, options, chosen = cfg.recipe(row.model), ctx.options, {}
    if cfg.box_threshold == "auto" and has_boxes(sets["test"]):  # no boxes: no box is scored, none to choose
        if display is not None:
            display.log(f"{row.label}: choosing each test-cam's box threshold on {len(sets['val'])} validation "
                        "images")
        chosen = choose_box_thresholds(model, sets["val"], options, recipe.eval_batch_size, cfg, ctx.device)
        options = replace(options, cam_thresholds={c: v["value"] for c, v in chosen.items()})
    sink = display.eval_sink(row.label) if display is not None else None
    faith = (cfg.faithfulness, cfg.faithfulness_steps, cfg.seed) if cfg.faithfulness else None
    records = evaluate_pairings(model, sets["test"], Evaluation(options, recipe.eval_batch_size, ctx.device, faith,
                                                                cfg.maxboxacc_convention), sink)
    overlays = overlay_data(model, sets["test"], options, ctx.device, batch_size=recipe.eval_batch_size) \
        if ctx.info.is_main else None
    return chosen, records, overlays


def _score(spec: CellSpec, row: Row, records: dict[str, Any], chosen: dict[str, Any], training: dict[str, Any],
           eval_s: float, boxes: bool = True) -> dict[str, Any]:
    """The cell's document: its scores, its training, its timings and its warning (``boxes`` False: a test set
    without lesion boxes, scored without them)."""
    from camkit.bench.results import config_hash
    from camkit.bench.scoring import score_pairings

    det, cls = score_pairings(records, spec.config_object(), boxes)
    for cam, choice in chosen.items():
        if "not_applicable" not in det.get(cam, {"not_applicable": True}):
            det[cam]["box_threshold"] = choice
    return cell_document(row, config_hash(spec.config), training, det, cls, localisation_warning(row, det, cls),
                         {"train_s": training["seconds"], "eval_s": eval_s, "cam_s": records["cam_seconds"]})


def cell_document(row: Row, digest: str, training: dict[str, Any], detection: dict[str, Any],
                  classification: dict[str, Any], warning: str | None, timings: dict[str, Any]) -> dict[str, Any]:
    """A finished cell's document (``cells/<row>.json``), scored under the configuration hash ``digest``."""
    return {"schema": CELL_SCHEMA, "row": row.label, "model": row.model, "train_cam": row.train_cam,
            "config_hash": digest, "training": training, "detection": detection, "classification": classification,
            "warning": warning, "timings": timings}


def _write_outputs(spec: CellSpec, records: dict[str, Any], overlays: dict[str, Any] | None,
                   document: dict[str, Any]) -> None:
    """The row's predictions and overlays, then (last, so a finished document means a finished cell) its
    document."""
    out = Path(spec.out)
    atomic_write_json(out / "predictions" / f"{spec.row}.json",
                      {"images": records["images"], "predictions": records["predictions"],
                       "not_applicable": records["not_applicable"]})
    if overlays is not None:
        save_overlays(out / "overlays" / f"{spec.row}.npz", overlays)
    atomic_write_json(spec.document_path(), document)


def save_overlays(path: Path, arrays: dict[str, Any]) -> None:
    """The overlay figures' arrays as one compressed ``.npz``, written atomically."""
    import numpy as np

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write(path, lambda f: f.write(buf.getbuffer()))


def _barrier() -> None:
    from camkit.training import distributed

    distributed.barrier()


def warning_subject(row: Row | str) -> str:
    """How a warning names its row: ``train-cam 'x'`` (one model's train-cams) or ``row 'model+x'``."""
    if isinstance(row, str):  # a bare train-cam name
        return f"train-cam {row!r}"
    return f"train-cam {row.train_cam!r}" if row.label == row.train_cam else f"row {row.label!r}"


def localisation_warning(row: Row | str, detection: dict[str, Any],
                         classification: dict[str, Any]) -> str | None:
    """A warning when a trained model classifies well but none of its maps localises (the seed problem);
    ``row``: the leaderboard row (or a train-cam name)."""
    auc = (classification.get("auc") or {}).get("value")
    tprs = [e["tpr@1"]["value"] for e in detection.values() if e.get("tpr@1", {}).get("value") is not None]
    if auc is None or not tprs or not (auc >= WARN_AUC and max(tprs) < WARN_TPR):
        return None
    return (f"{warning_subject(row)}: the model classifies well (AUC {auc:.2f}) but none of its maps localises "
            f"(best TPR@1FPPI {max(tprs):.2f}): its maps fire beside the lesions. Look at "
            "figures/overlay-*.png and read docs/training.md, 'When the maps do not localise'")


# -- trackers (--log): one run per cell, its curves while training, its leaderboard cells at the end ------------
def _open_trackers(spec: CellSpec, row: Row, sets: dict[str, Any], options: Any) -> list[Any]:
    """One tracker per ``--log`` backend for this row, drawing overlays of up to 3 validation mass images."""
    if not spec.log:
        return []
    from camkit import __version__
    from camkit.bench.results import config_hash
    from camkit.training.tracking import open_tracker

    overlays = _overlay_fn(sets["val"] if len(sets["val"]) else sets["test"], row, options)
    tags = {"config_hash": config_hash(spec.config), "row": row.label, "model": row.model,
            "train_cam": row.train_cam or "", "camkit": __version__}
    return [open_tracker(b, Path(spec.out), row.label, tags, spec.log_uri, overlays, experiment="camkit-bench")
            for b in spec.log]


def _overlay_fn(dataset: Any, row: Row, options: Any):
    """model -> [(image id, image, map)] of the train-cam (else the first test-cam) on a few mass images."""
    from camkit.data.sample import collate
    from camkit.inference import LocalizeOptions, localize

    picks = [i for i, v in enumerate(dataset.labels()) if int(v) == 1][:3]
    samples = [s for s in (dataset[i] for i in picks) if s is not None]
    if not samples:
        return None
    batch = collate(samples)
    cam = row.train_cam or options.cams[0]
    local = LocalizeOptions(cams=(cam,), cam_output=options.cam_output, cam_options=options.cam_options)

    def overlays(model: Any) -> list[tuple[str, Any, Any]]:
        found = localize(model, batch["image"], local)
        maps = next(iter(found.maps.values()), None)
        if maps is None:
            return []
        return [(str(i), batch["image"][k, 0].numpy(), maps[k].detach().float().cpu().numpy())
                for k, i in enumerate(batch["image_id"])]
    return overlays


def _close_trackers(trackers: list[Any], det: dict[str, Any], cls: dict[str, Any]) -> None:
    """The row's leaderboard cells (``<test-cam>/<metric>``) and classification metrics, then close."""
    if not trackers:
        return
    metrics: dict[str, float] = {}
    for cam, entry in det.items():
        for name, value in entry.items():
            if isinstance(value, dict) and isinstance(value.get("value"), (int, float)):
                metrics[f"{cam}/{name}"] = value["value"]
    for name, value in cls.items():
        if isinstance(value, dict) and isinstance(value.get("value"), (int, float)):
            metrics[f"classification/{name}"] = value["value"]
    for t in trackers:
        t.log_results(metrics)
        t.close()


def _end_trackers(trackers: list[Any], exc: BaseException) -> None:
    """The failed cell's tracker runs end FAILED / KILLED, not RUNNING (the cell's own error is the one told)."""
    import contextlib

    from camkit.training.tracking import end_status

    for t in trackers:
        with contextlib.suppress(Exception):
            t.close(end_status(exc))
