"""``camkit train``: train one model on one dataset with the core training loop (works under torchrun)."""
from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click

from camkit.cli.options import PresetChoice, format_option, parse_cam_options
from camkit.cli.options import parse_options as _parse_options


@click.command()
@click.option("--model", default=None, help="registered model [the preset's, else the default recipe's]")
@click.option("--dataset", default=None, help="registered dataset [the preset's, else required]")
@click.option("--train-cam", default=None, help="CAM that drives training (a model option, e.g. gradcampp)")
@click.option("--preset", type=PresetChoice(), default=None,
              help="recipe shared with `camkit bench` (camkit list recipes): model, dataset and training "
                   "options; explicit options override it")
@click.option("--model-opt", multiple=True, help="model option KEY=VALUE (repeatable; JSON values)")
@click.option("--cam-opt", multiple=True,
              help="the train-cam's option NAME.KEY=VALUE, e.g. fem.k=3 (repeatable; as in `camkit bench`)")
@click.option("--dataset-opt", multiple=True, help="dataset option KEY=VALUE (repeatable; JSON values)")
@click.option("--data", "data_root", default=None, help="dataset root (e.g. the VinDr-Mammo download)")
@click.option("--val-split", default="val", show_default=True, help="dataset split for validation ('none': skip)")
@click.option("--epochs", type=int, default=None, help="[preset's, else 10]")
@click.option("--batch-size", type=int, default=None, help="images per process per forward [preset's, else 6]")
@click.option("--accumulate", type=int, default=1, show_default=True, help="micro-batches per optimizer step")
@click.option("--lr", type=float, default=None, help="Adam learning rate [model's default]")
@click.option("--weight-decay", type=float, default=0.0, show_default=True)
@click.option("--lr-schedule", type=click.Choice(["constant", "cosine"]), default=None,
              help="learning rate over the run [preset's, else constant]")
@click.option("--seed", type=int, default=0, show_default=True, help="seeds model init, data order, augmentation")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="checkpoint directory [the model store: <--models>/<model>-<train-cam>-<config hash>]")
@click.option("--models", "models_dir", type=click.Path(path_type=Path), default=Path("camkit-runs/models"),
              show_default=True, help="model store shared with `camkit bench` (used when --out is not given)")
@click.option("--resume/--no-resume", default=True, show_default=True,
              help="continue a matching last.pt in --out (a complete one is reused)")
@click.option("--amp", type=click.Choice(["auto", "off", "bf16", "fp16"]), default=None,
              help="autocast [preset's, else auto: bf16 on CUDA, off on CPU]")
@click.option("--channels-last/--no-channels-last", default=None, help="[auto: on for CUDA]")
@click.option("--augment/--no-augment", default=True, show_default=True, help="horizontal flip + random crop")
@click.option("--checkpoint", "init_checkpoint", default=None, type=click.Path(exists=True, dir_okay=False),
              help="initial weights (a camkit checkpoint or a plain state dict; loaded weights-only)")
@click.option("--num-workers", type=int, default=0, show_default=True, help="DataLoader workers per process")
@click.option("--max-steps", type=int, default=None, help="stop (resumably) after this many optimizer steps")
@click.option("--device", default=None, help="cpu, cuda, cuda:1 ... [cuda:LOCAL_RANK when available]")
@format_option
@click.option("--quiet", is_flag=True, help="no progress output")
@click.option("--log", "log", multiple=True, type=click.Choice(["tensorboard", "mlflow"]),
              help="also send the curves to TensorBoard (<out>/tensorboard) or MLflow (repeatable; "
                   "pip install \"camkit[tracking]\")")
@click.option("--log-uri", default=None, help="MLflow tracking URI [sqlite:///<out>/mlflow.db]")
def train(**kw: Any) -> None:
    """Train a registered model on a registered dataset; writes best.pt and last.pt.

    With --preset, exactly what `camkit bench --preset ...` trains for that train-cam (into the same model store,
    so the bench reuses it). Data-parallel: `torchrun --nproc_per_node N -m camkit train ...` (one process per
    GPU, or gloo on CPU); --batch-size is per process, so the global batch is N x batch size x accumulate.
    """
    from camkit.training import distributed

    try:
        _run(SimpleNamespace(**kw))
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (camkit.cli.signals.Terminated)
        from camkit.cli.signals import exit_code

        click.echo("\ninterrupted: re-run the same command to resume from last.pt", err=True)
        sys.exit(exit_code(exc))
    finally:
        distributed.cleanup()


def _run(o: SimpleNamespace) -> None:
    from dataclasses import replace

    from camkit.bench.recipe import build_datasets, build_model, resolve_recipe
    from camkit.bench.store import TrainJob, store_folder, train_into_store
    from camkit.registry.host import get_host
    from camkit.registry.options import factory_options
    from camkit.storage.checkpoint import load_checkpoint
    from camkit.training import distributed
    from camkit.ui.output import render
    from camkit.ui.progress import auto_progress

    from camkit.cli.options import check_val_split
    from camkit.training.tracking import check_backend, check_log_uri

    for backend in o.log:
        check_backend(backend)
    check_log_uri(o.log_uri)
    val_split = check_val_split(o.val_split)
    dataset_options = _parse_options(o.dataset_opt, "--dataset-opt")
    if o.data_root:
        dataset_options["root"] = o.data_root
    overrides = {k: v for k, v in {"epochs": o.epochs, "batch_size": o.batch_size, "lr": o.lr, "amp": o.amp,
                                   "channels_last": o.channels_last, "lr_schedule": o.lr_schedule}.items() if v is not None}
    recipe = resolve_recipe(o.preset, model=o.model, dataset=o.dataset,
                            model_options=_parse_options(o.model_opt, "--model-opt"),
                            dataset_options=dataset_options, seed=o.seed)
    init = o.init_checkpoint
    if init and "checkpoint" in factory_options(get_host().registry.get("model", recipe.model)[0].factory)[0]:
        recipe.model_options["checkpoint"] = init  # the plugin knows its released weights' quirks
        init = None
    overrides.update(resume=o.resume, accumulate=o.accumulate, weight_decay=o.weight_decay,
                     num_workers=o.num_workers, max_steps=o.max_steps, device=o.device, hflip=o.augment,
                     random_crop=o.augment)
    TrainJob(recipe, o.train_cam, None, {}, o.models_dir, o.out, overrides).config()  # bad options fail first
    info = distributed.setup(o.device)
    net = build_model(recipe, o.train_cam, _train_cam_options(o.cam_opt, o.train_cam))
    if init:
        load_checkpoint(init, net)
    sets = build_datasets(recipe, net.input_size, ("train",) + ((val_split,) if val_split else ()))
    from camkit.data.checks import check_splits

    for note in check_splits(sets, where=f"dataset {recipe.dataset!r}"):  # bad data: one line, before training
        if info.is_main and not o.quiet:
            click.echo(f"warning: {note}", err=True)
    job = TrainJob(recipe, o.train_cam, net, {"train": sets["train"], "val": sets.get(val_split)}, o.models_dir,
                   o.out, overrides)
    out = store_folder(job, info)
    progress = auto_progress(not o.quiet) if info.is_main else None
    trackers = []
    if o.log and info.is_main:
        from camkit.training.progress import Tee
        from camkit.training.tracking import open_tracker

        tags = {"model": recipe.model, "train_cam": o.train_cam or "", "dataset": recipe.dataset}
        trackers = [open_tracker(b, out, o.train_cam or recipe.model, tags, o.log_uri, experiment="camkit-train")
                    for b in o.log]
        progress = Tee(progress, *trackers)
    ended: BaseException | None = None
    try:
        result, out = train_into_store(replace(job, out=out), info, progress)
    except BaseException as exc:
        ended = exc
        raise
    finally:
        from camkit.training.tracking import end_status

        for t in trackers:
            t.close(end_status(ended))

    if distributed.rank() != 0:
        return
    rows = [{"epoch": r["epoch"], "step": r["step"], "loss": round(r["loss"], 5),
             "val_auc": None if r["val_auc"] is None else round(r["val_auc"], 4),
             "img/s": round(r["images_per_s"], 1), "best": "*" if r["epoch"] == result.best_epoch else ""}
            for r in result.history]
    render(rows, ["epoch", "step", "loss", "val_auc", "img/s", "best"], o.fmt,
           title=f"camkit train: {out} (validation AUC per epoch; * best)")
    if not o.quiet:
        state = ("reused a complete checkpoint" if result.reused else "complete" if result.complete else
                 f"stopped after step {result.step} (re-run without --max-steps to continue)")
        best = (f"best: {result.best_checkpoint} (epoch {result.best_epoch}, val AUC {result.best_val_auc:.4f})"
                if result.best_val_auc is not None else f"best: {result.best_checkpoint}")
        click.echo(f"{state}; {best}; last: {result.last_checkpoint}; {result.images_per_s:.1f} img/s; "
                   f"config {result.config_hash}", err=True)


def _train_cam_options(pairs: tuple[str, ...], train_cam: str | None) -> dict[str, Any]:
    from camkit.errors import OptionError

    grouped = parse_cam_options(pairs)
    stray = sorted(set(grouped) - {train_cam})
    if stray:
        raise OptionError(f"--cam-opt for {', '.join(stray)}: camkit train takes options for its --train-cam "
                          f"only ({train_cam or 'none given'})")
    return grouped.get(train_cam, {}) if train_cam else {}


commands = [train]

