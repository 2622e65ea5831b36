"""``camkit distill``: train a real detector on a weakly supervised teacher's CAM boxes (camkit.distill)."""
from __future__ import annotations

import sys
from pathlib import Path

from dataclasses import replace

import click

from camkit.cli.bench import BoxThreshold, ExecutorChoice
from camkit.cli.options import format_option, parse_options
from camkit.errors import OptionError


@click.command()
@click.option("--train-cam", default="xgradcam", show_default=True,
              help="the teacher's train-cam (the teacher is the bench's training of it, from the model store); auto: "
                   "the bench's train-cam whose pairing is best on the validation split")
@click.option("--test-cam", default="gradcampp", show_default=True,
              help="the CAM that draws the pseudo-boxes; auto: the bench's test-cam whose pairing is best on the "
                   "validation split")
@click.option("--detector", default=None,
              help="a registered detector (camkit list detectors) [the recipe's, else fcos]")
@click.option("--detector-opt", multiple=True, help="detector option KEY=VALUE (repeatable)")
@click.option("--model", default=None, help="the teacher's model (default: the recipe's)")
@click.option("--dataset", default=None, help="the dataset (default: the recipe's)")
@click.option("--data", "data_root", default=None, help="dataset root")
@click.option("--dataset-opt", multiple=True, help="dataset option KEY=VALUE (repeatable)")
@click.option("--model-opt", multiple=True, help="teacher model option KEY=VALUE (repeatable)")
@click.option("--preset", default=None, help="the teacher's recipe preset (camkit list recipes)")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--seeds", default=None, metavar="LIST",
              help="one distill per seed (0,1,2 or 0-4) into --out/seed-N, printed combined (mean over seeds, "
                   "random-effects t interval, as camkit bench --seeds)")
@click.option("--box-threshold", type=BoxThreshold(), default="0.5", show_default=True,
              help="the pseudo-boxes' threshold (a fraction of each map's maximum), or auto (chosen on validation)")
@click.option("--boxes", "box_mode", type=click.Choice(["single", "peaks"]), default="single", show_default=True,
              help="one box per connected region above the threshold, or one per map peak (with NMS)")
@click.option("--max-boxes", type=int, default=1, show_default=True, help="pseudo-boxes kept per mass image")
@click.option("--min-score", type=float, default=0.0, show_default=True,
              help="leave out mass images whose best pseudo-box scores below this (uncertain images)")
@click.option("--rounds", type=click.IntRange(min=0), default=0, show_default=True,
              help="self-training rounds: the detector relabels the training masses, a new detector trains on its "
                   "boxes")
@click.option("--epochs", type=int, default=None, help="the detector's epochs [2, or the recipe's]")
@click.option("--batch-size", type=int, default=None, help="the detector's batch size [8, or the recipe's]")
@click.option("--lr", type=float, default=None, help="the detector's learning rate [1e-3, or the recipe's]")
@click.option("--oracle-epochs", type=click.IntRange(min=1), default=None,
              help="the oracle's epochs [the detector's]: a longer-trained ceiling")
@click.option("--no-oracle", is_flag=True, help="skip the oracle detector (trained on the true boxes)")
@click.option("--train-teacher", is_flag=True,
              help="train the teacher when the model store lacks it (by default it must be there: camkit bench)")
@click.option("--teacher-train", multiple=True,
              help="the teacher's training option KEY=VALUE over its recipe's (e.g. epochs=1), as camkit bench would "
                   "train it (repeatable)")
@click.option("--bootstrap", type=int, default=1000, show_default=True, help="bootstrap resamples (by study)")
@click.option("--out", type=click.Path(path_type=Path), default=Path("camkit-runs/distill"), show_default=True)
@click.option("--models", "models_dir", type=click.Path(path_type=Path), default=None,
              help="the model store [OUT/../models, where camkit bench keeps its trainings]")
@click.option("--executor", type=ExecutorChoice(), default="inline", show_default=True,
              help="where each seed's distill runs: inline (in this process), local (--executor-opt workers=N at "
                   "once, each its own process), slurm (a job array) (camkit list executors)")
@click.option("--executor-opt", multiple=True, metavar="KEY=VALUE",
              help="executor option (repeatable), e.g. workers=2, gpus=1, partition=gpu; threads=N: the CPU threads "
                   "each seed trains with")
@click.option("--executor-config", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="TOML file of executor options, a table per executor (as camkit bench)")
@click.option("--log", "log", multiple=True, type=click.Choice(["tensorboard", "mlflow"]),
              help="send each detector training's curves and its row's scores to a tracker (repeatable)")
@click.option("--log-uri", default=None, help="MLflow tracking URI [sqlite:///<--out>/mlflow.db]")
@click.option("--quiet", is_flag=True, help="no progress lines")
@format_option
def distill(train_cam, test_cam, detector, detector_opt, model, dataset, data_root, dataset_opt, model_opt, preset,
            seed, seeds, box_threshold, box_mode, max_boxes, min_score, rounds, epochs, batch_size, lr, oracle_epochs,
            no_oracle, train_teacher, teacher_train, bootstrap, out, models_dir, executor, executor_opt,
            executor_config, log, log_uri, quiet, fmt):
    """Train a detector on a teacher's CAM boxes, and score it beside the teacher and an oracle.

    The teacher is the bench's (model, --train-cam) training, reused from the model store (the default
    `camkit bench` leaves it there); its --test-cam boxes on the training images' masses are the detector's
    targets. Three rows are scored on the test split with the bench's FROC engine: cam-boxes (the teacher's
    own boxes), detector, and oracle (the same detector on the true boxes), with the weak-to-strong gain
    (detector - teacher) / (oracle - teacher).
    """
    from camkit.bench.recipe import default_preset
    from camkit.distill.run import DistillConfig, run_distill
    from camkit.ui.distill import print_distill
    from camkit.ui.progress import BenchProgress

    dataset_options = parse_options(dataset_opt, "--dataset-opt")
    if data_root:
        dataset_options["root"] = data_root
    train = {k: v for k, v in {"epochs": epochs, "batch_size": batch_size, "lr": lr}.items() if v is not None}
    config = DistillConfig(train_cam=train_cam, test_cam=test_cam, detector=detector,
                           detector_options=parse_options(detector_opt, "--detector-opt"), model=model,
                           dataset=dataset, preset=preset or default_preset(dataset), seed=seed,
                           model_options=parse_options(model_opt, "--model-opt"), dataset_options=dataset_options,
                           box_threshold=box_threshold, boxes=box_mode, max_boxes=max_boxes, min_score=min_score,
                           rounds=rounds, train=train, oracle=not no_oracle, oracle_epochs=oracle_epochs,
                           bootstrap=bootstrap, train_teacher=train_teacher,
                           teacher_train=parse_options(teacher_train, "--teacher-train"))
    from camkit.bench.leaderboard import parse_seeds
    from camkit.training.tracking import check_backend, check_log_uri

    for backend in log:
        check_backend(backend)
    check_log_uri(log_uri)
    seed_list = parse_seeds(seeds) if seeds is not None else None
    if seed_list is not None and seed != 0:
        raise OptionError("give either --seed or --seeds, not both")
    runs = [(config, out)] if seed_list is None else [(replace(config, seed=s), out / f"seed-{s}") for s in seed_list]
    store = models_dir or (out / "models" if seed_list is not None else None)
    progress = BenchProgress("off" if quiet else "auto", n_rows=3 * len(runs), name="distill")
    try:
        if executor == "inline":
            documents = [run_distill(c, o, store, display=progress, log=tuple(log), log_uri=log_uri) for c, o in runs]
        else:
            documents = _run_as_cells(runs, out, store, executor, (executor_opt, executor_config, tuple(log), log_uri),
                                      progress)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM: every training resumes from its last.pt
        from camkit.cli.signals import exit_code

        click.echo(f"\ninterrupted: re-run the same command (same --out {out}) to resume", err=True)
        sys.exit(exit_code(exc))
    finally:
        progress.close()
    if seed_list is None:
        print_distill(documents[0], fmt)
    else:
        from camkit.distill.seeds import combine_seeds
        from camkit.storage.atomic import atomic_write_json

        combined = combine_seeds([o for _, o in runs], bootstrap)
        atomic_write_json(out / "distill-seeds.json", combined)
        print_distill(combined, fmt)
    if not quiet:
        written = "distill.json, predictions.json" if seed_list is None else "seed-N/, distill-seeds.json"
        click.echo(f"run directory: {out} ({written})", err=True)


def _run_as_cells(runs: list, out: Path, store: Path | None, executor: str, settings: tuple, display) -> list[dict]:
    """Each seed's distill as a cell of ``executor`` (camkit.distill.cell); a failed seed is one line each, and
    exit 1 once every other seed has run. ``settings``: (--executor-opt, --executor-config, --log, --log-uri)."""
    import json

    from camkit.bench.executors import executor_settings
    from camkit.distill.cell import plan_distill_cells
    from camkit.distill.run import check_distill
    from camkit.registry.api import create_executor

    executor_opt, executor_config, log, log_uri = settings
    runs = [(check_distill(c), o) for c, o in runs]  # before anything is submitted
    options = {**executor_settings(executor, executor_config), **parse_options(executor_opt, "--executor-opt")}
    threads = options.pop("threads", None)
    cells = plan_distill_cells(runs, out, store or out.parent / "models", log, log_uri, threads)
    failures = create_executor(executor, **options).run(cells, display)
    for failure in failures:
        click.echo(f"{failure.row}: failed: {failure.error} (log {failure.log})", err=True)
    if failures:
        sys.exit(1)
    return [json.loads((o / "distill.json").read_text()) for _, o in runs]


commands = [distill]
