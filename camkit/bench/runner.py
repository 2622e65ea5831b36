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

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from camkit.bench.cell import CellContext, CellSpec, plan_cells, read_document, save_overlays, write_spec
from camkit.bench.cell import warning_subject
from camkit.bench.config import BenchConfig, Row
from camkit.bench.evaluate import overlay_data
from camkit.bench.recipe import build_datasets
from camkit.data.checks import check_splits
from camkit.bench.assemble import assemble
from camkit.bench.results import RESULTS_FILE, DamagedResults, config_hash, load_results, new_results, save_results
from camkit.bench.scoring import not_scored_message
from camkit.data.annotations import annotations_of, has_boxes
from camkit.errors import CamkitError, OptionError
from camkit.storage.atomic import atomic_write
from camkit.storage.lock import FolderLock

@dataclass(frozen=True)
class RunSettings:
    """How a bench runs, beside what it computes (its BenchConfig): the model store (default ``out``'s parent /
    ``models``), trackers (``log``: ``tensorboard``, ``mlflow``, camkit.training.tracking; ``log_uri``:
    MLflow's URI), the significance's ``baseline`` (ROW:TEST_CAM) and ``alpha``, and the ``executor`` the cells
    run on with its ``executor_options`` (``threads``: the CPU threads every cell trains with, in any executor)."""

    models_dir: str | Path | None = None
    log: tuple[str, ...] = ()
    log_uri: str | None = None
    baseline: str | None = None
    alpha: float = 0.05
    executor: str = "inline"
    executor_options: dict[str, Any] = field(default_factory=dict)
    detach: bool = False  # submit and return (an executor whose jobs outlive this process: slurm)


@dataclass
class BenchPlan:
    """A checked matrix: its cells, the context they share in this process, the executor they run on and the
    run's settings."""

    config: BenchConfig
    out: Path
    store: Path
    cells: list[CellSpec]
    context: CellContext
    settings: RunSettings
    executor: Any


def run_bench(config: BenchConfig, out: str | Path, progress: Any = None, settings: RunSettings | None = None,
              **fields: Any) -> dict[str, Any] | None:
    """Run (or resume) the matrix described by ``config`` into ``out``; returns the results document.

    Plan (check everything, build one model per kind), run the cells not finished yet on the settings'
    executor (:mod:`camkit.bench.cell`, :mod:`camkit.bench.executors`), assemble the cells' documents into
    ``results.json`` (:func:`camkit.bench.assemble.assemble`: the leaderboard's significance is computed there,
    once). ``settings``: a :class:`RunSettings`, whose fields may also be given as keywords
    (``run_bench(cfg, out, models_dir=..., executor="local")``).

    ``progress``: a display such as :class:`camkit.ui.progress.BenchProgress` (None: silent). Under
    ``torchrun`` every rank trains (DDP) and evaluates its shard; rank 0 alone scores, writes and returns the
    results (other ranks return None). A failure is recorded in ``results.json`` (``status: failed``, the error,
    and per failed cell its error and log) and raised; re-running the same command after fixing the cause
    resumes.
    """
    plan = plan_bench(config, out, replace(settings or RunSettings(), **fields), progress)
    main = plan.context.info.is_main
    lock = FolderLock(plan.out, "--out")  # one bench per run folder: a second one refuses in one line
    results: dict[str, Any] = {}
    started = time.perf_counter()
    try:
        if main:
            lock.acquire()
            lock.remove_leftovers(recursive=True)  # a SIGKILLed run's half-written files
            results = _open_results(plan, progress)
        complete = _run_cells(plan, results, progress if main else None)
        if not main:
            return None
        if not complete:  # detached: the cells run on; the next bench on this folder collects them
            results["status"] = "submitted"
            return _save(plan, results)
        results["timings"]["total_s"] = results["timings"].get("total_s", 0.0) + time.perf_counter() - started
        results["status"] = "complete"
        results.pop("error", None)
        return _save(plan, results, final=True)
    except BaseException as exc:
        if main and results:
            interrupted = isinstance(exc, KeyboardInterrupt)
            results.update(status="interrupted" if interrupted else "failed",
                           error=None if interrupted else f"{type(exc).__name__}: {exc}")
            results["timings"]["total_s"] = results["timings"].get("total_s", 0.0) + time.perf_counter() - started
            _save(plan, results)
        raise
    finally:
        lock.release()


def plan_bench(config: BenchConfig, out: str | Path, settings: RunSettings | None = None,
               display: Any = None) -> BenchPlan:
    """Check everything that can be checked before training (options, CAMs, the executor and its options, one
    model of each kind and its datasets against their contracts and :func:`camkit.data.checks.check_splits`,
    the folders) and return the cells to run. ``display``: where the data checks' warnings go (its ``log``)."""
    from camkit.registry.api import create_executor

    settings = settings or RunSettings()
    cfg = config.resolved()
    out = Path(out)
    store = Path(settings.models_dir) if settings.models_dir is not None else out.parent / "models"
    executor_options = dict(settings.executor_options)
    threads = _threads(executor_options.pop("threads", None))
    executor = create_executor(settings.executor, **executor_options)
    if settings.detach and not hasattr(executor, "submit"):
        raise OptionError(f"--detach: the {settings.executor} executor's cells end with this process; detach from "
                          "one whose jobs outlive it (--executor slurm), or wait for it")
    context = CellContext.create(cfg)
    _check_first_models(cfg, context)
    notes = [note for sets in context.sets.values()  # bad data fails here, in one line, not after training
             for note in check_splits(sets, where=f"dataset {cfg.dataset!r}")]
    for note in dict.fromkeys(notes):  # once, however many input sizes
        _call(display, "log", f"warning: {note}")
    if any(not has_boxes(v["test"]) for v in context.sets.values()):  # decided now, said before training
        _call(display, "log", not_scored_message(cfg.dataset))
    if context.info.is_main:
        _check_writable(out, "--out")
        _check_writable(store, "the model store (--models)")
    if cfg.box_threshold == "auto" and any(not len(v["val"]) and has_boxes(v["test"])
                                           for v in context.sets.values()):
        raise OptionError("--box-threshold auto chooses the threshold on the validation split, and this bench has "
                          "none (the paper preset trains on all of VinDr's training split): give a number, or "
                          "dataset options that carve a validation split")
    cells = plan_cells(cfg, out, store, settings.log, settings.log_uri, threads)
    _warn_oversubscribed(executor, cells[0].threads if cells else None, display)
    return BenchPlan(cfg, out, store, cells, context, settings, executor)


def _check_first_models(cfg: BenchConfig, context: CellContext) -> None:
    """One model of each kind, kept for its first cell: its options and test-cams are checked before training,
    and its datasets are built (once per input size)."""
    firsts: dict[str, Row] = {}
    for row in cfg.rows():
        if row.model not in firsts:
            firsts[row.model] = row
            context.models[row.label] = model = context.model(row)
            context.options.check(model)
            context.datasets(row.model, model.input_size)


def _warn_oversubscribed(executor: Any, threads: int | None, display: Any) -> None:
    """CPU cells side by side whose threads outnumber the cores slow each other down many times over (measured:
    2 workers x 2 threads on 2 cores, 6.7x per cell, docs/cluster.md): say so before they start."""
    import os

    workers, cores = int(getattr(executor, "workers", 1) or 1), os.cpu_count() or 1
    if workers > 1 and not getattr(executor, "gpus", 0) and threads and workers * threads > cores:
        _call(display, "log", f"warning: {workers} cells at once x {threads} threads each exceed this machine's "
                              f"{cores} cores, and they slow each other down several times over: give "
                              f"--executor-opt threads={max(1, cores // workers)} (other threads give other CPU "
                              "numbers) or fewer workers")


def _threads(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise OptionError(f"--executor-opt threads={value!r}: give the CPU threads each cell trains with, an "
                          "integer >= 1")
    return value


def _open_results(plan: BenchPlan, display: Any) -> dict[str, Any]:
    """The run's results document (resumed, or new), with this plan's dataset and rows filled in and saved."""
    cfg = plan.config
    results = _resume_or_new(plan.out, cfg.to_dict(), display)
    sets = next(iter(plan.context.sets.values()))  # the first row's (the planner built them first)
    results["dataset"] = {"name": cfg.dataset, "options": cfg.dataset_options,
                          "counts": {k: len(v) for k, v in sets.items()},
                          "annotations": sorted(annotations_of(sets["test"], f"dataset {cfg.dataset!r}")),
                          "not_scored": None if has_boxes(sets["test"]) else not_scored_message(cfg.dataset),
                          "skipped": {k: [list(map(str, s)) for s in getattr(v, "skipped", [])]
                                      for k, v in sets.items()}}
    results["rows"] = {row.label: {"model": row.model, "train_cam": row.train_cam} for row in cfg.rows()}
    results["settings"] = {"baseline": plan.settings.baseline, "alpha": plan.settings.alpha}
    for spec in plan.cells:  # what a job elsewhere runs: camkit bench-cell <out>/cells/<row>.spec.json
        write_spec(spec)
    _adopt_scored_rows(plan, results)
    _save(plan, results)
    return results


def _adopt_scored_rows(plan: BenchPlan, results: dict[str, Any]) -> None:
    """Rows a run scored before cells had documents (schema ``camkit.bench/1``) become finished cells, so the
    resumed bench does not score them again."""
    from camkit.bench.cell import cell_document
    from camkit.storage.atomic import atomic_write_json

    if not results.get("migrated_from"):  # a cell of a camkit.bench/2 run is done when its document is
        return
    digest = config_hash(plan.config.to_dict())
    rows = {r.label: r for r in plan.config.rows()}
    for spec in plan.cells:
        label = spec.row
        if label not in results.get("detection", {}) or label not in results.get("classification", {}) \
                or read_document(spec, digest) is not None:
            continue
        subject = f"{warning_subject(rows[label])}:"
        warning = next((w for w in results.get("warnings", []) if w.startswith(subject)), None)
        atomic_write_json(spec.document_path(), cell_document(
            rows[label], digest, results.get("training", {}).get(label, {}), results["detection"][label],
            results["classification"][label], warning, results.get("timings", {}).get(label, {})))


def _run_cells(plan: BenchPlan, results: dict[str, Any], display: Any) -> bool:
    """Every cell not finished under this configuration, on the plan's executor (cells a detached bench
    submitted and that still run are waited for, not submitted again); ``results.json`` is re-assembled after
    each cell that finishes in this process, and once all have run. Failed cells are recorded (error, log) and
    named in one error after the others finished. Returns False when it only submitted (``detach``)."""
    from camkit.bench.cell import read_failure, record_failure

    digest = config_hash(plan.config.to_dict())
    todo = []
    for spec in plan.cells:
        if read_document(spec, digest) is not None and _outputs_readable(spec, display):
            _call(display, "skip", spec.row)
        else:
            todo.append(spec)
    rows = {r.label: r for r in plan.config.rows()}
    for spec in todo:
        row = rows[spec.row]
        if row.train_cam is None:
            _call(display, "log", f"{row.label}: no train-cam axis ({row.model} retrieves no regions inside "
                                  "training): one row, trained once")
    if results:
        plan.context.on_done = lambda spec, document: _save(plan, results)
    executor = plan.executor
    flying = executor.in_flight(todo) if hasattr(executor, "in_flight") else []
    fresh = [spec for spec in todo if spec not in flying]
    if plan.settings.detach:
        executor.submit(fresh, display)
        return False
    failures = (executor.attach(flying, display) if flying else []) + executor.run(fresh, display, plan.context)
    by_row = {spec.row: spec for spec in todo}
    for failure in failures:  # the cell's own record names its error; the executor's, where the job died
        own = read_failure(by_row[failure.row]) or {}
        failure.error = own.get("error") or failure.error
        record_failure(by_row[failure.row], failure.error, failure.log)
    if failures:
        raise CellsFailed(failures)
    return True


class CellsFailed(CamkitError):
    """Cells that raised on an executor; the others finished and are kept."""

    def __init__(self, failures: list[Any]) -> None:
        self.failures = failures
        told = "; ".join(f"{f.row}: {f.error}" + (f" (log {f.log})" if f.log else "") for f in failures)
        super().__init__(f"{len(failures)} cell(s) failed: {told}. The other cells are kept: fix the cause and "
                         "re-run the same camkit bench (same --out) to run the failed ones again")


def _outputs_readable(spec: CellSpec, display: Any) -> bool:
    """Whether a finished cell's predictions can be read; a damaged file (a disk that filled, a hand edit) is
    moved aside and the cell runs again (its model is reused, so only the evaluation is repeated)."""
    from camkit.bench.leaderboard import DamagedPredictions, read_predictions

    path = Path(spec.out) / "predictions" / f"{spec.row}.json"
    try:
        read_predictions(path)
        return True
    except DamagedPredictions:
        aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        if path.exists():
            path.replace(aside)
        _call(display, "log", f"{path} was damaged{f' (moved to {aside.name})' if aside.exists() else ''}: "
                              f"evaluating row {spec.row!r} again")
        return False


def _save(plan: BenchPlan, results: dict[str, Any], final: bool = False) -> dict[str, Any]:
    """Assemble the finished cells' documents into ``results`` (significance too, when ``final``) and write it."""
    assemble(results, plan.out, plan.cells, final=final)
    save_results(plan.out, results)
    return results


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
        note = (f"{exc.path.name} {exc.why}: moved it to {aside.name} and assembled the results afresh from the "
                "finished cells")
        _call(display, "log", note)
        fresh = new_results(conf)
        fresh["notes"].append(note)
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
    model = CellContext(cfg, None, None, None).model(row)
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
    save_overlays(path, arrays)
    return path
