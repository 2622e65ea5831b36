"""``camkit bench``: the train-cam x test-cam matrix.

For each train-cam the model is trained once (or a complete checkpoint of the same configuration is reused
from the model store), then every test-cam is scored from ONE CAM-engine pass per test batch. The run
directory gets ``results.json``, per-pairing ``predictions/``, and ``overlays/`` (the arrays the overlay
figures are drawn from), written atomically after every train-cam, so an interrupted or failed bench resumes
where it stopped. Trained models live in the model store (by default ``models/`` beside the run directory),
shared with ``camkit train``. Figures are :mod:`camkit.ui.figures`' job (``draw_run_figures``).

Everything that can be checked is checked before training: options, CAMs, the model and dataset contracts,
the output folder.
"""
from __future__ import annotations

import contextlib
import io
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from camkit.bench.config import BenchConfig, Row
from camkit.bench.evaluate import evaluate_pairings, overlay_data
from camkit.bench.recipe import Recipe, build_datasets, build_model, model_dir, train_config
from camkit.bench.results import (RESULTS_FILE, DamagedResults, config_hash, load_results, new_results,
                                  save_results)
from camkit.bench.scoring import score_pairings
from camkit.bench.thresholds import choose_box_thresholds
from camkit.errors import CamkitError, OptionError
from camkit.storage.atomic import atomic_write, atomic_write_json
from camkit.storage.lock import FolderLock

BASELINE = ("cam", "cam")  # the released GMIC's own pairing


def run_bench(config: BenchConfig, out: str | Path, progress: Any = None,
              models_dir: str | Path | None = None, log: tuple[str, ...] = (),
              log_uri: str | None = None) -> dict[str, Any] | None:
    """Run (or resume) the matrix described by ``config`` into ``out``; returns the results document.

    ``progress``: a display such as :class:`camkit.ui.progress.BenchProgress` (None: silent). ``models_dir``:
    the model store (default ``out``'s parent / ``models``). Under ``torchrun`` every rank trains (DDP) and
    evaluates its shard; rank 0 alone scores, writes and returns the results (other ranks return None).
    A failure is recorded in ``results.json`` (``status: failed`` and the error) and re-raised; re-running the
    same command after fixing the cause resumes. ``log``: trackers (``tensorboard``, ``mlflow``;
    :mod:`camkit.training.tracking`) that get each trained row's curves and final metrics, one run per row,
    tagged with the configuration hash; ``log_uri``: MLflow's tracking URI.
    """
    from camkit.training import distributed
    from camkit.training.device import DeviceSettings

    cfg = config.resolved()
    rows = cfg.rows()
    info = distributed.setup(cfg.train.get("device"))
    out = Path(out)
    models_root = Path(models_dir) if models_dir is not None else out.parent / "models"
    # one model of each kind is built now, so every model's options and test-cams are checked before training
    recipes = {m: cfg.recipe(m) for m in cfg.models()}
    options = cfg.localize_options()
    firsts: dict[str, Any] = {}
    for row in rows:
        if row.model not in firsts:
            firsts[row.model] = _build(recipes[row.model], row, cfg)
            options.check(firsts[row.model])
    sets_by_size: dict[tuple[int, int], dict[str, Any]] = {}
    for m, model in firsts.items():
        size = tuple(int(v) for v in model.input_size)
        if size not in sets_by_size:
            sets_by_size[size] = build_datasets(recipes[m], size)
    sets = sets_by_size[tuple(int(v) for v in firsts[rows[0].model].input_size)]
    device = DeviceSettings.resolve(info.device, "off", cfg.train.get("channels_last"))
    lock = FolderLock(out, "--out")  # one bench per run folder: a second one refuses in one line
    if info.is_main:
        _check_writable(out, "--out")
        _check_writable(models_root, "the model store (--models)")
        lock.acquire()
        lock.remove_leftovers(recursive=True)  # a SIGKILLed run's half-written files
    if cfg.box_threshold == "auto" and any(not len(v["val"]) for v in sets_by_size.values()):
        raise OptionError("--box-threshold auto chooses the threshold on the validation split, and this bench has "
                          "none (the paper preset trains on all of VinDr's training split): give a number, or "
                          "dataset options that carve a validation split")
    results = _resume_or_new(out, cfg.to_dict(), progress)
    results["dataset"] = {"name": cfg.dataset, "options": cfg.dataset_options,
                          "counts": {k: len(v) for k, v in sets.items()}}
    results["rows"] = {row.label: {"model": row.model, "train_cam": row.train_cam} for row in rows}
    _record_skipped(results, sets)
    main = info.is_main
    display = progress if main else None
    if main:
        save_results(out, results)
    started = time.perf_counter()
    trackers: list[Any] = []
    try:
        for row in rows:
            label = row.label
            if label in results["detection"] and label in results["classification"]:
                _call(display, "skip", label)
                continue
            if row.train_cam is None:
                _call(display, "log", f"{label}: no train-cam axis ({row.model} retrieves no regions inside "
                                      "training): one row, trained once")
            recipe = recipes[row.model]
            model = firsts.pop(row.model, None) or _build(recipe, row, cfg)
            row_sets = sets_by_size[tuple(int(v) for v in model.input_size)]
            trackers = _open_trackers(log, log_uri, out, row, results, row_sets, options) if main else []
            training = _train_one(recipe, row, model, row_sets, out, models_root, info, display, trackers)
            t0 = time.perf_counter()
            chosen = {}
            row_options = options
            if cfg.box_threshold == "auto":
                _call(display, "log", f"{label}: choosing each test-cam's box threshold on "
                                      f"{len(row_sets['val'])} validation images")
                chosen = choose_box_thresholds(model, row_sets["val"], options, recipe.eval_batch_size, cfg, device)
                row_options = replace(options, cam_thresholds={c: v["value"] for c, v in chosen.items()})
            sink = display.eval_sink(label) if display is not None else None
            faith = (cfg.faithfulness, cfg.faithfulness_steps, cfg.seed) if cfg.faithfulness else None
            records = evaluate_pairings(model, row_sets["test"], row_options, recipe.eval_batch_size, device, sink,
                                        faith, cfg.maxboxacc_convention)
            overlays = overlay_data(model, row_sets["test"], row_options, device,
                                    batch_size=recipe.eval_batch_size) if main else None
            if not main:
                distributed.barrier()  # wait while rank 0 scores, instead of timing out in the next train()
                continue
            eval_s = time.perf_counter() - t0
            atomic_write_json(out / "predictions" / f"{label}.json",
                              {"images": records["images"], "predictions": records["predictions"],
                               "not_applicable": records["not_applicable"]})
            det, cls = score_pairings(records, cfg)
            for cam, choice in chosen.items():
                if "not_applicable" not in det.get(cam, {"not_applicable": True}):
                    det[cam]["box_threshold"] = choice
            warning = localisation_warning(row, det, cls)
            # a re-scored row replaces its old warning, or clears it
            results["warnings"] = [w for w in results.get("warnings", []) if not w.startswith(
                f"{_warning_subject(row)}:")] + ([warning] if warning else [])
            if warning:
                _call(display, "log", f"warning: {warning}")
            results["training"][label] = training
            results["detection"][label] = det
            results["classification"][label] = cls
            results["timings"][label] = {"train_s": training["seconds"], "eval_s": eval_s,
                                         "cam_s": records["cam_seconds"]}
            save_results(out, results)
            _close_trackers(trackers, det, cls)
            trackers = []
            if overlays is not None:
                _save_overlays(out / "overlays" / f"{label}.npz", overlays)
            distributed.barrier()
        _record_skipped(results, sets)
    except BaseException as exc:
        from camkit.training.tracking import end_status

        for t in trackers:            # the row that failed: its tracker runs end FAILED / KILLED, not RUNNING
            with contextlib.suppress(Exception):   # the bench's own error is the one to report
                t.close(end_status(exc))
        if main:
            interrupted = isinstance(exc, KeyboardInterrupt)
            results["status"] = "interrupted" if interrupted else "failed"
            results["error"] = None if interrupted else f"{type(exc).__name__}: {exc}"
            results["timings"]["total_s"] = results["timings"].get("total_s", 0.0) + time.perf_counter() - started
            save_results(out, results)
        lock.release()
        raise
    if not main:
        return None
    _compare_to_baseline(out, results, cfg)
    results["timings"]["total_s"] = results["timings"].get("total_s", 0.0) + time.perf_counter() - started
    results["status"] = "complete"
    results.pop("error", None)
    save_results(out, results)
    lock.release()
    return results


def _build(recipe: Recipe, row: Row, cfg: BenchConfig) -> Any:
    return build_model(recipe, row.train_cam, cfg.train_cam_options(row.train_cam) if row.train_cam else None)


#: A model that separates the classes this well but whose maps reach this little is not localising.
WARN_AUC, WARN_TPR = 0.8, 0.2


def _warning_subject(row: Row | str) -> str:
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
    return (f"{_warning_subject(row)}: the model classifies well (AUC {auc:.2f}) but none of its maps localises "
            f"(best TPR@1FPPI {max(tprs):.2f}): its maps fire beside the lesions. Look at "
            "figures/overlay-*.png and read docs/training.md, 'When the maps do not localise'")


def _record_skipped(results: dict[str, Any], sets: dict[str, Any]) -> None:
    results["dataset"]["skipped"] = {k: [list(map(str, s)) for s in getattr(v, "skipped", [])]
                                     for k, v in sets.items()}


def _call(display: Any, method: str, *args: Any) -> None:
    fn = getattr(display, method, None) if display is not None else None
    if fn is not None:
        fn(*args)


def _check_writable(folder: Path, what: str) -> None:
    """Raise OptionError (before any training) when ``folder`` cannot be created or written."""
    if folder.exists() and not folder.is_dir():
        raise OptionError(f"{what} {str(folder)!r} is a file, not a folder; choose a folder path")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / ".camkit-write-test", lambda f: f.write(b""))
        (folder / ".camkit-write-test").unlink()
    except OSError as exc:
        raise OptionError(f"{what} {str(folder)!r} is not writable ({exc.strerror or exc}); choose a folder you "
                          "can write to") from None


def _resume_or_new(out: Path, conf: dict[str, Any], display: Any) -> dict[str, Any]:
    path = out / RESULTS_FILE
    if not path.is_file():
        return new_results(conf)
    try:
        old = load_results(path)
    except DamagedResults as exc:  # keep it for inspection, start the scoring afresh (the models are kept)
        aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        path.replace(aside)
        note = (f"{exc.path.name} {exc.why}: moved it to {aside.name} and started the results afresh (trained "
                "models are reused)")
        _call(display, "log", note)
        fresh = new_results(conf)
        fresh.setdefault("warnings", []).append(note)
        return fresh
    if old.get("config_hash") == config_hash(conf):
        old["status"] = "running"
        return old
    if not old.get("detection"):  # nothing was scored there: nothing to lose
        _call(display, "log", f"{path} held an unfinished bench of another configuration with no scores; "
                              "starting this one in its place")
        return new_results(conf)
    raise CamkitError(f"{path} holds a bench with another configuration (hash {old.get('config_hash')}, now "
                      f"{config_hash(conf)}); choose a new --out, or delete that directory to start over")


def _open_trackers(log: tuple[str, ...], uri: str | None, out: Path, row: Row, results: dict[str, Any],
                   sets: dict[str, Any], options: Any) -> list[Any]:
    """One tracker per ``--log`` backend for this row, drawing overlays of up to 3 validation mass images."""
    if not log:
        return []
    from camkit.training.tracking import open_tracker

    overlays = _overlay_fn(sets["val"] if len(sets["val"]) else sets["test"], row, options)
    tags = {"config_hash": results.get("config_hash"), "row": row.label, "model": row.model,
            "train_cam": row.train_cam or "", "camkit": results.get("camkit_version")}
    return [open_tracker(b, out, row.label, tags, uri, overlays, experiment="camkit-bench") for b in log]


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


def _train_one(recipe: Recipe, row: Row, model: Any, sets: dict[str, Any], out: Path, models_root: Path,
               info: Any, display: Any, trackers: list[Any] = ()) -> dict[str, Any]:
    from camkit.storage.checkpoint import load_checkpoint
    from camkit.training import train

    val = sets["val"] if len(sets["val"]) else None  # the paper's preset has no validation split
    tcfg = train_config(recipe, out_dir=".", resume=True, progress=False)
    folder = model_dir(models_root, recipe, row.train_cam, model, sets["train"], val, tcfg, info.world_size,
                       info.device.type)
    tcfg = replace(tcfg, out_dir=str(folder))
    from camkit.training.progress import Tee

    sink = display.train_sink(row.label) if display is not None else None
    result = train(model, sets["train"], val, tcfg, progress=Tee(sink, *trackers) if trackers else sink)
    best = result.best_checkpoint or result.last_checkpoint
    load_checkpoint(best, model)
    model.eval()
    return {"checkpoint": os.path.relpath(best, out), "seconds": result.seconds, "epochs": result.epochs_done,
            "best_epoch": result.best_epoch, "best_val_auc": result.best_val_auc,
            "images_per_s": result.images_per_s, "reused": result.reused, "config_hash": result.config_hash}


def _save_overlays(path: Path, arrays: dict[str, Any]) -> None:
    import numpy as np

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write(path, lambda f: f.write(buf.getbuffer()))


def baseline_row(rows: list[Row]) -> Row | None:
    """The row of the released GMIC's own pairing: the first trained with CAM (its CAM test-cam is the
    baseline), else None."""
    return next((r for r in rows if r.train_cam == BASELINE[0]), None)


def _compare_to_baseline(out: Path, results: dict[str, Any], cfg: BenchConfig) -> None:
    """Every pairing's TPR@1FPPI against the released GMIC's own pairing (CAM for both): paired study bootstrap,
    Holm-corrected across the matrix (camkit.bench.significance), stored as ``vs_baseline``."""
    from camkit.bench.leaderboard import Run, detection_table
    from camkit.bench.significance import significance

    base = baseline_row(cfg.rows())
    if base is None or BASELINE[1] not in cfg.test_cams:
        return
    run = Run(out, results)
    table = detection_table([run], "tpr@1")
    if table["cells"].get((base.label, BASELINE[1])) is None or \
            table["cells"][(base.label, BASELINE[1])].value is None:  # the baseline pairing does not apply
        return
    found = significance([run], table, (base.label, BASELINE[1]))
    own = {"difference": 0.0, "ci": [0.0, 0.0], "p_value": 1.0, "p_holm": 1.0, "significant": False,
           "direction": 0}
    for (label, test_cam), comparison in {**found["cells"], (base.label, BASELINE[1]): own}.items():
        results["detection"][label][test_cam]["vs_baseline"] = {
            "baseline": [base.label, BASELINE[1]], "metric": "tpr@1", **comparison, "alpha": found["alpha"],
            "method": found["method"]}


def redraw_overlays(run_dir: str | Path, label: str, n: int = 8, n_negative: int = 4,
                    path: str | Path | None = None) -> Path | None:
    """Re-draw a row's overlays from its stored checkpoint (for a run whose ``overlays/<label>.npz`` was deleted
    or predates them, or for a larger gallery: ``n`` mass and ``n_negative`` normal test images, into ``path``):
    the recipe rebuilt from ``results.json``, the same test split and box thresholds. Returns the file, or None
    when the row has no checkpoint or its test set no mass image."""
    from camkit.storage.checkpoint import load_checkpoint

    run_dir = Path(run_dir)
    results = load_results(run_dir)
    checkpoint = (results.get("training", {}).get(label) or {}).get("checkpoint")
    if not checkpoint or not (run_dir / checkpoint).is_file():
        return None
    cfg = BenchConfig(**results["config"]).resolved()
    row = next((r for r in cfg.rows() if r.label == label), None)
    if row is None:
        return None
    recipe = cfg.recipe(row.model)
    model = _build(recipe, row, cfg)
    load_checkpoint(run_dir / checkpoint, model)
    model.eval()
    test = build_datasets(recipe, tuple(int(v) for v in model.input_size), ("test",))["test"]
    chosen = {cam: entry["box_threshold"]["value"] for cam, entry in results.get("detection", {}).get(label, {}).items()
              if isinstance(entry, dict) and isinstance(entry.get("box_threshold"), dict)}
    options = cfg.localize_options()
    if chosen:
        options = replace(options, cam_thresholds=chosen)
    arrays = overlay_data(model, test, options, n=n, n_negative=n_negative, batch_size=recipe.eval_batch_size)
    if arrays is None:
        return None
    path = Path(path) if path is not None else run_dir / "overlays" / f"{label}.npz"
    _save_overlays(path, arrays)
    return path
