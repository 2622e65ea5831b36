"""``camkit train``: train one model on one dataset with the core training loop (works under torchrun)."""
from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Any

import click

from camkit.cli.options import parse_options as _parse_options


def _accepts(factory: Any, name: str) -> bool:
    """Whether ``factory`` has a parameter called ``name`` (a ``**kwargs`` catch-all does not count)."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    p = params.get(name)
    return p is not None and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)


def _preset(name: str | None) -> dict[str, Any]:
    """The named recipe shared with ``camkit bench --preset`` (model/dataset options, training options)."""
    if name is None:
        return {}
    from camkit.bench.runner import PRESETS

    if name not in PRESETS:
        from camkit.errors import UnknownNameError

        raise UnknownNameError("preset", name, PRESETS)
    return PRESETS[name]


@click.command()
@click.option("--model", default="gmic", show_default=True, help="registered model")
@click.option("--dataset", default=None, help="registered dataset [the preset's, else required]")
@click.option("--train-cam", default=None, help="CAM that drives training (a model option, e.g. gradcampp)")
@click.option("--preset", default=None, help="recipe shared with `camkit bench` (cpu, paper): model, dataset "
                                             "and training options; explicit options override it")
@click.option("--model-opt", multiple=True, help="model option KEY=VALUE (repeatable; JSON values)")
@click.option("--dataset-opt", multiple=True, help="dataset option KEY=VALUE (repeatable; JSON values)")
@click.option("--data", "data_root", default=None, help="dataset root (e.g. the VinDr-Mammo download)")
@click.option("--val-split", default="val", show_default=True, help="dataset split for validation ('none': skip)")
@click.option("--epochs", type=int, default=None, help="[preset's, else 10]")
@click.option("--batch-size", type=int, default=None, help="images per process per forward [preset's, else 6]")
@click.option("--accumulate", type=int, default=1, show_default=True, help="micro-batches per optimizer step")
@click.option("--lr", type=float, default=None, help="Adam learning rate [model's default]")
@click.option("--weight-decay", type=float, default=0.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="seeds model init, data order, augmentation")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="checkpoint directory [camkit-runs/train/<model>-<dataset>[-<train-cam>]]")
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
@click.option("--format", "fmt", type=click.Choice(["auto", "table", "plain", "json", "csv", "markdown"]),
              default="auto", show_default=True, help="format of the final per-epoch table")
@click.option("--quiet", is_flag=True, help="no progress output")
def train(model: str, dataset: str | None, train_cam: str | None, preset: str | None, model_opt: tuple[str, ...],
          dataset_opt: tuple[str, ...], data_root: str | None, val_split: str, epochs: int | None,
          batch_size: int | None, accumulate: int, lr: float | None, weight_decay: float, seed: int,
          out: Path | None, resume: bool, amp: str | None, channels_last: bool | None, augment: bool,
          init_checkpoint: str | None, num_workers: int, max_steps: int | None, device: str | None, fmt: str,
          quiet: bool) -> None:
    """Train a registered model on a registered dataset; writes best.pt and last.pt.

    Data-parallel: `torchrun --nproc_per_node N -m camkit train ...` (one process per GPU, or gloo on CPU);
    --batch-size is per process, so the global batch is N x batch size x accumulate.
    """
    from camkit.errors import CamkitError

    try:
        _run(model, dataset, train_cam, preset, model_opt, dataset_opt, data_root, val_split, epochs, batch_size,
             accumulate, lr, weight_decay, seed, out, resume, amp, channels_last, augment, init_checkpoint,
             num_workers, max_steps, device, fmt, quiet)
    except CamkitError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        click.echo("\ninterrupted: re-run the same command to resume from last.pt", err=True)
        sys.exit(130)
    finally:
        from camkit.training import distributed

        distributed.cleanup()


def _run(model_name, dataset_name, train_cam, preset, model_opt, dataset_opt, data_root, val_split, epochs,
         batch_size, accumulate, lr, weight_decay, seed, out, resume, amp, channels_last, augment,
         init_checkpoint, num_workers, max_steps, device, fmt, quiet) -> None:
    import torch

    from camkit.training import distributed
    from camkit.registry.api import create_dataset, create_model
    from camkit.storage.checkpoint import load_checkpoint
    from camkit.ui.output import render
    from camkit.registry.host import get_host
    from camkit.training.loop import TrainConfig
    from camkit.training.loop import train as run_training

    recipe = _preset(preset)
    dataset_name = dataset_name or recipe.get("dataset")
    if not dataset_name:
        raise click.UsageError("--dataset is required (or a --preset that names one)")
    model_options = {**recipe.get("model_options", {}), **_parse_options(model_opt, "--model-opt")}
    if train_cam is not None:
        model_options["train_cam"] = train_cam
    model_entry, _ = get_host().registry.get("model", model_name)
    if init_checkpoint and _accepts(model_entry.factory, "checkpoint"):
        model_options["checkpoint"] = init_checkpoint  # the plugin knows its released weights' quirks
        init_checkpoint = None
    torch.manual_seed(seed)  # model initialisation is part of the seeded configuration
    net = create_model(model_name, **model_options)
    if init_checkpoint:
        load_checkpoint(init_checkpoint, net)

    dataset_entry, _ = get_host().registry.get("dataset", dataset_name)
    dataset_options = {**recipe.get("dataset_options", {}), **_parse_options(dataset_opt, "--dataset-opt")}
    if data_root:
        dataset_options["root"] = data_root
    if "size" not in dataset_options and _accepts(dataset_entry.factory, "size") and hasattr(net, "input_size"):
        dataset_options["size"] = list(net.input_size)
    if "seed" not in dataset_options and _accepts(dataset_entry.factory, "seed"):
        dataset_options["seed"] = seed
    train_set = create_dataset(dataset_name, split="train", **dataset_options)
    val_set = None if val_split.lower() == "none" else create_dataset(dataset_name, split=val_split,
                                                                      **dataset_options)

    base = recipe.get("train", {})
    if out is None:
        out = Path("camkit-runs", "train", "-".join([model_name, dataset_name] + ([train_cam] if train_cam else [])))
    options = {**base, "seed": seed, "out_dir": str(out), "resume": resume, "accumulate": accumulate,
               "weight_decay": weight_decay, "num_workers": num_workers, "max_steps": max_steps, "device": device,
               "progress": not quiet, "hflip": augment, "random_crop": augment}
    for key, value in {"epochs": epochs, "batch_size": batch_size, "lr": lr, "amp": amp,
                       "channels_last": channels_last}.items():
        if value is not None:
            options[key] = value
    result = run_training(net, train_set, val_set, TrainConfig(**options))

    if distributed.rank() != 0:
        return
    rows = [{"epoch": r["epoch"], "step": r["step"], "loss": round(r["loss"], 5),
             "val_auc": None if r["val_auc"] is None else round(r["val_auc"], 4),
             "img/s": round(r["images_per_s"], 1), "best": "*" if r["epoch"] == result.best_epoch else ""}
            for r in result.history]
    render(rows, ["epoch", "step", "loss", "val_auc", "img/s", "best"], fmt, title=f"camkit train: {out}")
    if not quiet:
        state = ("reused a complete checkpoint" if result.reused else
                 "complete" if result.complete else f"stopped after step {result.step} (re-run without --max-steps to continue)")
        best = (f"best: {result.best_checkpoint} (epoch {result.best_epoch}, val AUC {result.best_val_auc:.4f})"
                if result.best_val_auc is not None else f"best: {result.best_checkpoint}")
        click.echo(f"{state}; {best}; last: {result.last_checkpoint}; {result.images_per_s:.1f} img/s; "
                   f"config {result.config_hash}", err=True)


commands = [train]
