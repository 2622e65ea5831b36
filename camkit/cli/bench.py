"""``camkit bench`` and ``camkit leaderboard``."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from camkit.bench import metric_table
from camkit.bench.metric_table import DEFAULT_METRIC
from camkit.cli.options import PresetChoice, format_option, parse_cam_options
from camkit.errors import OptionError
from camkit.cli.options import parse_options as _parse_options


class MetricChoice(click.Choice):
    """The detection leaderboard's metrics, read from the metric table when asked (so a metric registered after
    this module was imported is a choice too)."""

    def __init__(self) -> None:
        super().__init__(metric_table.names(*metric_table.PAIRING_FAMILIES))

    @property
    def choices(self):  # type: ignore[override]
        return metric_table.names(*metric_table.PAIRING_FAMILIES)

    @choices.setter
    def choices(self, value) -> None:  # click's __init__ assigns them; the table stays the source
        pass


class ExecutorChoice(click.Choice):
    """A registered executor's name (``--executor``), read from the plugin registry when asked."""

    name = "executor"

    def __init__(self) -> None:
        super().__init__(())

    @property
    def choices(self) -> tuple[str, ...]:  # type: ignore[override]
        from camkit.registry.api import list_executors

        return tuple(list_executors())

    @choices.setter
    def choices(self, value) -> None:  # click's __init__ assigns them; the registry stays the source
        pass


class BoxThreshold(click.ParamType):
    """A fraction in (0, 1], or ``auto``."""

    name = "FLOAT|auto"

    def convert(self, value, param, ctx):
        if isinstance(value, float) or value == "auto":
            return value
        try:
            return float(value)
        except ValueError:
            self.fail(f"{value!r} is neither a number in (0, 1] nor auto", param, ctx)


@click.command()
@click.option("--model", "models", multiple=True,
              help="registered model (repeat to mix models in one matrix: a row per model and train-cam) "
                   "[the preset's]")
@click.option("--dataset", default=None,
              help="registered dataset [the preset's]")
@click.option("--train-cam", "train_cams", multiple=True,
              help="CAM driving training (repeat, 'all', or a cost class; perturbation methods cost extra forwards per "
                   "step, docs/performance.md) [cam gradcampp xgradcam]")
@click.option("--test-cam", "test_cams", multiple=True,
              help="CAM scored at test time (repeat; 'all' = every registered one, or a cost class: one-pass, "
                   "second-order, full-backward, perturbation) [the paper's five]")
@click.option("--preset", type=PresetChoice(), default=None,
              help="recipe (model, data, training options) [the --dataset's own recipe if it has one, else the "
                   "default recipe] (camkit list recipes)")
@click.option("--epochs", type=int, default=None, help="override the preset's epochs")
@click.option("--batch-size", type=int, default=None, help="override the preset's batch size")
@click.option("--seed", type=int, default=0, show_default=True, help="seeds the data, the model and training")
@click.option("--seeds", default=None, metavar="LIST",
              help="train every train-cam once per seed (0,1,2 or 0-4) into --out/seed-N, and print the seeds "
                   "combined (t interval over seeds and test studies, sd across seeds)")
@click.option("--out", type=click.Path(path_type=Path), default=Path("camkit-runs/bench"),
              show_default=True, help="run directory (re-running with the same options resumes)")
@click.option("--models", "models_dir", type=click.Path(path_type=Path), default=None,
              help="model store shared with `camkit train` [models/ beside --out]")
@click.option("--data", "data_root", default=None, help="dataset root (e.g. the VinDr-Mammo download)")
@click.option("--model-opt", multiple=True,
              help="extra model option KEY=VALUE (repeatable); MODEL.KEY=VALUE for one of several --model")
@click.option("--dataset-opt", multiple=True, help="extra dataset option KEY=VALUE (repeatable)")
@click.option("--box-threshold", type=BoxThreshold(), default="0.5", show_default=True,
              help="foreground = map >= threshold x the image's map maximum, in (0, 1]; auto: chosen per "
                   "pairing on the validation split (best TPR@1FPPI), never on test")
@click.option("--boxes", "box_mode", type=click.Choice(["single", "peaks"]), default="single", show_default=True,
              help="single: boxes where the map >= --box-threshold x its maximum; peaks: also a box for every "
                   "weaker peak, cut at --box-threshold x its own height, with box NMS (IoU 0.5), so FROC curves "
                   "reach higher FPPI")
@click.option("--faithfulness", multiple=True,
              type=click.Choice([*metric_table.faithfulness_options(), "all"]),
              help="also score the maps' faithfulness on the test masses (repeatable; extra forwards per image, "
                   "docs/performance.md): deletion/insertion areas, average drop/increase, ROAD")
@click.option("--faithfulness-steps", type=int, default=20, show_default=True,
              help="deletion/insertion steps (2 x (steps + 1) forwards per image and test-cam)")
@click.option("--bootstrap", type=int, default=1000, show_default=True, help="bootstrap resamples (by study)")
@click.option("--maxboxacc-convention", type=click.Choice(["camkit", "wsolevaluation"]), default="camkit",
              show_default=True,
              help="MaxBoxAcc's rules: camkit's pixel geometry, or clovaai/wsolevaluation's (uint8 maps, strict "
                   "threshold, hole contours, inclusive IoU) to compare with published MaxBoxAccV2 tables")
@click.option("--cam-output", default=None,
              help="model output whose score the test-time CAMs explain (GMIC: y_global (default) or y_fusion)")
@click.option("--cam-opt", multiple=True,
              help="CAM option METHOD.KEY=VALUE (repeatable), e.g. scorecam.chunk=64 or fem.k=3; applies to "
                   "the method as a test-cam and as a train-cam")
@click.option("--device", default=None, help="cpu, cuda, cuda:1 ... [cuda:LOCAL_RANK when available]")
@click.option("--executor", type=ExecutorChoice(), default="inline", show_default=True,
              help="where the cells (one per row) run: inline, one after another in this process; local, "
                   "--executor-opt workers=N at once, each its own process (one GPU each) (camkit list executors)")
@click.option("--executor-opt", multiple=True, metavar="KEY=VALUE",
              help="executor option (repeatable), e.g. workers=2; threads=N sets the CPU threads every cell "
                   "trains with, in any executor [this process's]")
@click.option("--detach", is_flag=True,
              help="submit the cells and return (--executor slurm); the same command without --detach later waits "
                   "for them and prints the leaderboard (camkit status OUT shows them meanwhile)")
@click.option("--executor-config", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="TOML file of executor options, a table per executor ([slurm] partition = \"gpu\"); "
                   "--executor-opt goes over it [$CAMKIT_EXECUTORS, else ~/.config/camkit/executors.toml if it "
                   "exists]")
@click.option("--metric", type=MetricChoice(), default=DEFAULT_METRIC,
              show_default=True, help="what the printed leaderboard shows")
@click.option("--baseline", default=None, metavar="ROW:TEST_CAM",
              help="pairing the ▲/▼ significance markers compare with [cam:cam, the released GMIC's]")
@click.option("--alpha", type=float, default=0.05, show_default=True,
              help="family-wise level of the markers (Holm-corrected across the matrix)")
@format_option
@click.option("--quiet", is_flag=True, help="no progress output")
@click.option("--log", "log", multiple=True, type=click.Choice(["tensorboard", "mlflow"]),
              help="also send each trained row's curves and final metrics to TensorBoard (--out/tensorboard) or "
                   "MLflow (repeatable; pip install \"camkit[tracking]\"; docs/report.md)")
@click.option("--log-uri", default=None, help="MLflow tracking URI [sqlite:///<--out>/mlflow.db]")
def bench(models, dataset, train_cams, test_cams, preset, epochs, batch_size, seed, seeds, out, models_dir,
          data_root, model_opt, dataset_opt, box_threshold, box_mode, faithfulness, faithfulness_steps, bootstrap,
          maxboxacc_convention, cam_output, cam_opt, device, executor, executor_opt, detach, executor_config, metric,
          baseline, alpha, fmt, quiet, log, log_uri):
    """Train with each train-cam, score every test-cam, print the leaderboard.

    With no options: the paper's matrix (train-cams cam, gradcampp, xgradcam x the five test-cams) on the
    embedded synthetic mammograms, on the CPU, in a few minutes. A model without a train-cam axis (the
    classifier) trains once and makes one row; several --model make one matrix, a row per model and train-cam.
    """
    from camkit.bench.config import PAPER_TEST_CAMS, PAPER_TRAIN_CAMS, BenchConfig, expand_cams
    from camkit.bench.faithful import expand_families
    from camkit.bench.leaderboard import Run
    from camkit.bench.runner import run_bench
    from camkit.training.distributed import env_world_size
    from camkit.ui.figures import draw_run_figures
    from camkit.ui.leaderboard import print_leaderboard
    from camkit.ui.progress import BenchProgress

    from camkit.bench.recipe import default_preset
    from camkit.training.tracking import check_backend, check_log_uri

    for backend in log:
        check_backend(backend)
    check_log_uri(log_uri)
    preset = preset or default_preset(dataset)
    train = {k: v for k, v in {"epochs": epochs, "batch_size": batch_size, "device": device}.items()
             if v is not None}
    dataset_options = _parse_options(dataset_opt, "--dataset-opt")
    if data_root:
        dataset_options["root"] = data_root
    cfg = BenchConfig(model=(models[0] if len(models) == 1 else list(models)) if models else None,
                      dataset=dataset, preset=preset, seed=seed,
                      train_cams=expand_cams(train_cams, PAPER_TRAIN_CAMS, train_time=True) if train_cams else None,
                      test_cams=expand_cams(test_cams, PAPER_TEST_CAMS),
                      model_options=_parse_options(model_opt, "--model-opt"), dataset_options=dataset_options,
                      train=train, box_threshold=box_threshold, boxes=box_mode, bootstrap=bootstrap,
                      faithfulness=expand_families(faithfulness), faithfulness_steps=faithfulness_steps,
                      cam_output=cam_output, cam_options=parse_cam_options(cam_opt),
                      maxboxacc_convention=maxboxacc_convention)
    from dataclasses import replace

    from camkit.bench.leaderboard import parse_seeds

    seed_list = parse_seeds(seeds) if seeds is not None else None
    if seed_list is not None and seed != 0:
        raise OptionError("give either --seed or --seeds, not both")
    runs = [(cfg, out)] if seed_list is None else [(replace(cfg, seed=s), out / f"seed-{s}") for s in seed_list]
    n_rows = sum(len(run_cfg.resolved().rows()) for run_cfg, _ in runs)  # every seed checked before one trains
    check_significance_options(runs[0][0].resolved(), baseline, alpha)  # not after hours of training
    from camkit.bench.executors import executor_settings

    executor_options = {**executor_settings(executor, executor_config),
                        **_parse_options(executor_opt, "--executor-opt")}
    rank0 = int(os.environ.get("RANK", "0")) == 0 or env_world_size() == 1
    progress = BenchProgress("off" if quiet or not rank0 else "auto", n_rows=n_rows)
    store = models_dir or (out / "models" if seed_list is not None else out.parent / "models")
    loaded = []
    try:
        for run_cfg, run_out in runs:
            results = run_bench(run_cfg, run_out, progress=progress, models_dir=store, log=tuple(log),
                                log_uri=log_uri, baseline=baseline, alpha=alpha, executor=executor,
                                executor_options=executor_options, detach=detach)
            loaded.append(Run(run_out, results))
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (camkit.cli.signals.Terminated)
        from camkit.cli.signals import exit_code

        click.echo(f"\ninterrupted: re-run the same command (same --out {out}) to resume", err=True)
        sys.exit(exit_code(exc))
    finally:
        progress.close()
    if results is None:  # a torchrun rank other than 0: rank 0 prints
        return
    if detach:
        where = " ".join(str(o) for _, o in runs)
        click.echo(f"submitted: the cells run on. camkit status {where} shows them; the same command without "
                   "--detach waits for them and prints the leaderboard", err=True)
        return
    for _, run_out in runs:
        try:
            draw_run_figures(run_out)
        except Exception as exc:  # noqa: BLE001 - the scores are saved; a figure is redrawn by the next run
            click.echo(f"warning: a figure of {run_out} could not be drawn ({type(exc).__name__}: {exc}); re-run "
                       "the same command to draw it", err=True)
    print_leaderboard(loaded, metric, fmt, baseline, alpha)
    for run in loaded:
        for warning in run.results.get("warnings", []):
            click.echo(f"warning ({run.path.name}): {warning}" if len(loaded) > 1 else f"warning: {warning}",
                       err=True)
    if not quiet:
        where = f"{out}/seed-* (one run per seed)" if seed_list is not None else str(out)
        click.echo(f"run directory: {where} (results.json, predictions/, overlays/, figures/); models in {store}",
                   err=True)


def check_significance_options(cfg: Any, baseline: str | None, alpha: float) -> None:
    """--alpha in (0, 1) and --baseline naming a row and a test-cam of the matrix ``cfg`` (a resolved
    BenchConfig) will train, checked before anything trains."""
    from camkit.bench.significance import parse_baseline

    if not 0.0 < alpha < 1.0:
        raise OptionError(f"--alpha must be in (0, 1), e.g. 0.05, got {alpha!r}")
    want = parse_baseline(baseline)
    if want is None:
        return
    rows = cfg.rows()
    labels = [r.label for r in rows] + [r.train_cam for r in rows if r.train_cam]
    if want[0] not in labels or want[1] not in cfg.test_cams:
        raise OptionError(f"--baseline {baseline}: not a cell of this bench (rows: {', '.join(r.label for r in rows)}; "
                          f"test-cams: {', '.join(cfg.test_cams)})")


@click.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--metric", type=MetricChoice(), default=DEFAULT_METRIC,
              show_default=True)
@click.option("--group", is_flag=True, help="runs of different configurations: one table per configuration "
                                             "(otherwise they are refused)")
@click.option("--baseline", default=None, metavar="ROW:TEST_CAM",
              help="pairing the ▲/▼ significance markers compare with [cam:cam, the released GMIC's]")
@click.option("--alpha", type=float, default=0.05, show_default=True,
              help="family-wise level of the markers (Holm-corrected across the matrix)")
@click.option("--by", type=click.Choice(["size", "view", "laterality", "density"]), default=None,
              help="one detection table per stratum: lesion size terciles, view, laterality or breast density")
@format_option
def leaderboard(run_dirs, metric, group, baseline, alpha, by, fmt):
    """Print Tables I and II of one bench run, or of several seeds of one configuration combined.

    Several runs must differ by their seed alone: cells become the mean over seeds, with a random-effects t
    interval over the seeds (which also holds the test studies they share) and the sd across seeds.
    """
    from camkit.bench.leaderboard import config_differences, group_runs, load_runs, unfinished
    from camkit.ui.leaderboard import print_leaderboard

    runs = load_runs(run_dirs)
    for run in runs:
        note = unfinished(run)
        if note:
            click.echo(f"note: {note}", err=True)
    if not group:
        print_leaderboard(runs, metric, fmt, baseline, alpha, by)
        return
    groups = group_runs(runs)
    diff = config_differences([g[0] for g in groups])
    for k, members in enumerate(groups):
        if len(groups) > 1:
            what = ", ".join(f"{f}={json.dumps(members[0].results['config'].get(f))}" for f in diff)
            click.echo(f"{'' if k == 0 else chr(10)}configuration {k + 1} of {len(groups)}: {what} "
                       f"({len(members)} run(s))")
        print_leaderboard(members, metric, fmt, baseline, alpha, by)


@click.command("bench-cell")
@click.argument("spec", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--quiet", is_flag=True, help="no progress output")
def bench_cell(spec, quiet):
    """Run one cell of a bench (a model, train-cam and seed: train, evaluate, score) from its spec file.

    `camkit bench` writes every cell's spec as <out>/cells/<row>.spec.json before it trains; a job on another
    process or machine that sees the same folders runs one with this command and writes
    <out>/cells/<row>.json. Re-running the same `camkit bench` then skips the finished cells and assembles
    results.json (docs/architecture.md, "A bench run").
    """
    from camkit.bench.cell import read_spec, run_cell
    from camkit.training import distributed
    from camkit.ui.progress import BenchProgress

    cell = read_spec(spec)
    progress = BenchProgress("off" if quiet else "auto", n_rows=1)
    try:
        document = run_cell(cell, progress)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (camkit.cli.signals.Terminated)
        from camkit.cli.signals import exit_code

        click.echo(f"\ninterrupted: re-run `camkit bench-cell {spec}` to resume (its training resumes from "
                   "last.pt)", err=True)
        sys.exit(exit_code(exc))
    finally:
        progress.close()
        distributed.cleanup()
    if document is not None and not quiet:
        click.echo(f"cell {cell.row}: {cell.document_path()}", err=True)


@click.command("status")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@format_option
def status(run_dir, fmt):
    """Show each cell of a bench run: complete, pending, running or failed, where it ran (executor and job id),
    its wall time and its log."""
    from camkit.bench.executors import cell_states
    from camkit.bench.leaderboard import Run, unfinished
    from camkit.bench.results import load_results
    from camkit.ui.output import render

    rows = cell_states(run_dir)
    for r in rows:
        r["error"] = r["error"] or ""
    render(rows, ["row", "state", "executor", "job", "wall_s", "log", "error"], fmt,
           title=f"camkit status: {run_dir}")
    note = unfinished(Run(run_dir, load_results(run_dir)))
    if note:
        click.echo(f"note: {note}", err=True)


commands = [bench, leaderboard, bench_cell, status]
